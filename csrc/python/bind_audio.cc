// Log-mel bindings: NumPy in, NumPy out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "convert.h"
#include "whisper_genio/audio.h"

namespace py = pybind11;

namespace whisper_genio::python {

// MelWindows borrows the samples; this holder keeps the NumPy array alive with it.
struct PyMelWindows {
  py::array_t<float, py::array::c_style> samples;
  MelWindows windows;
};

void register_audio(py::module_& m) {
  m.def("mel_filters", [](int n_mels) {
        auto f = unwrap(mel_filters(n_mels));
        py::array_t<float> out({n_mels, kNFft / 2 + 1});
        std::copy(f.begin(), f.end(), out.mutable_data());
        return out;
      }, py::arg("n_mels"), "librosa-equivalent Slaney mel filter bank [n_mels, 201].");

  m.def("log_mel_spectrogram",
        [](const py::object& audio, int n_mels, const py::handle& padding_arg, std::shared_ptr<ThreadPool> pool) {
          // Any Python int converts; log_mel_spectrogram checks it against kMaxMelSamples.
          const int64_t padding = int_arg(padding_arg, "padding", std::numeric_limits<int64_t>::min(),
                                          std::numeric_limits<int64_t>::max());
          auto samples = as_float32(audio, "audio", 1);
          auto fe = unwrap(MelFrontEnd::create(n_mels));
          std::vector<float> mel;
          {
            py::gil_scoped_release release;
            auto r = log_mel_spectrogram(*fe, samples.data(), samples.shape(0), padding, pool.get());
            if (!r.ok()) {
              py::gil_scoped_acquire gil;
              throw_status(r.status());
            }
            mel = std::move(r).value();
          }
          const int64_t frames = MelFrontEnd::frame_count(samples.shape(0) + padding);
          py::array_t<float> out({static_cast<int64_t>(n_mels), frames});
          std::copy(mel.begin(), mel.end(), out.mutable_data());
          return out;
        },
        py::arg("audio"), py::arg("n_mels") = 80, py::arg("padding") = 0, py::arg("pool") = nullptr,
        "openai-whisper's log_mel_spectrogram: [n_mels, len(audio + padding) // 160], float32.");

  py::class_<PyMelWindows, std::shared_ptr<PyMelWindows>>(m, "MelWindows",
      "30-second log-mel windows of a long signal, computed on demand (bounded memory).")
      .def(py::init([](const py::object& audio, int n_mels, std::shared_ptr<ThreadPool> pool, bool one_window) {
             auto holder = std::make_shared<PyMelWindows>();
             holder->samples = as_float32(audio, "audio", 1);
             auto fe = unwrap(MelFrontEnd::create(n_mels));
             StatusOr<MelWindows> w = Status();
             {
               py::gil_scoped_release release;
               const float* x = holder->samples.data();
               const int64_t n = holder->samples.shape(0);
               w = one_window ? MelWindows::one_window(fe, x, n, pool.get()) : MelWindows::create(fe, x, n, pool.get());
             }
             holder->windows = unwrap(std::move(w));
             return holder;
           }),
           py::arg("audio"), py::arg("n_mels"), py::arg("pool") = nullptr, py::arg("one_window") = false,
           "one_window=False: the recording's windows as transcribe() cuts them; True: the single window "
           "decode() takes, log_mel_spectrogram(pad_or_trim(audio)).")
      .def_property_readonly("content_frames", [](const PyMelWindows& w) { return w.windows.content_frames(); })
      .def_property_readonly("n_mels", [](const PyMelWindows& w) { return w.windows.n_mels(); })
      .def("window",
           [](const PyMelWindows& w, int64_t seek, int64_t size, std::shared_ptr<ThreadPool> pool) {
             py::array_t<float> out({static_cast<int64_t>(w.windows.n_mels()), static_cast<int64_t>(kNFrames)});
             float* dst = out.mutable_data();
             Status s;
             {
               py::gil_scoped_release release;
               s = w.windows.window(seek, size, dst, pool.get());
             }
             check(s);
             return out;
           },
           py::arg("seek"), py::arg("size") = kNFrames, py::arg("pool") = nullptr,
           "[n_mels, 3000]: frames [seek, seek + size), zero beyond.");

  m.attr("SAMPLE_RATE") = kSampleRate;
  m.attr("N_FFT") = kNFft;
  m.attr("HOP_LENGTH") = kHopLength;
  m.attr("CHUNK_LENGTH") = kChunkSeconds;
  m.attr("N_SAMPLES") = kNSamples;
  m.attr("N_FRAMES") = kNFrames;
}

// Exposed for bind_model.cc (the window path takes the native windows).
const MelWindows* native_windows(const py::handle& obj) {
  return py::isinstance<PyMelWindows>(obj) ? &obj.cast<PyMelWindows&>().windows : nullptr;
}

}  // namespace whisper_genio::python
