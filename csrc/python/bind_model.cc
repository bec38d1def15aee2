// Encoder backends, the decoder and decoding options. Conversion and GIL release only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>

#include "../src/backends/cpu/cpu_encoder.h"
#include "convert.h"
#include "whisper_genio/decoding.h"
#include "whisper_genio/pipeline.h"

namespace py = pybind11;

namespace whisper_genio::python {

const MelWindows* native_windows(const py::handle& obj);

namespace {

py::array_t<float> states_to_numpy(const EncoderStates& s) {
  py::array_t<float> out({s.n_ctx, s.d});
  std::memcpy(out.mutable_data(), s.data, static_cast<size_t>(s.n_ctx * s.d) * sizeof(float));
  return out;
}

// None, a MelWindows, or a float32 [n_mels, 3000] array (held in `keep` for the call).
MelSource mel_source(const py::handle& obj, const ModelDims& d, py::object* keep) {
  if (obj.is_none()) return MelSource();
  if (const MelWindows* w = native_windows(obj)) return MelSource(*w);
  auto arr = as_float32(obj, "mel", 2);
  if (arr.shape(0) != d.n_mels || arr.shape(1) != 2 * d.n_audio_ctx) {
    throw_status(invalid_argument("mel must be [" + std::to_string(d.n_mels) + ", " + std::to_string(2 * d.n_audio_ctx) +
                                  "], got [" + std::to_string(arr.shape(0)) + ", " + std::to_string(arr.shape(1)) + "]"));
  }
  *keep = arr;
  return MelSource(arr.data());
}

// openai-whisper's decoding options from keyword arguments, each converted with an error that
// names it; the token fields are filled in afterwards (whisper_genio/transcription/decoding.py).
DecodingOptions decoding_options(const py::kwargs& kwargs) {
  DecodingOptions o;
  auto opt_int = [](const py::handle& v, const std::string& k) { return optional_arg<int>(v, [&](auto h) { return int_arg(h, k); }); };
  auto opt_float = [](const py::handle& v, const std::string& k) {
    return optional_arg<double>(v, [&](auto h) { return float_arg(h, k); });
  };
  for (const auto& item : kwargs) {
    const std::string key = py::str(item.first);
    const py::handle v = item.second;
    if (key == "temperature") o.temperature = static_cast<float>(float_arg(v, key));
    else if (key == "sample_len") o.sample_len = opt_int(v, key);
    else if (key == "best_of") o.best_of = opt_int(v, key);
    else if (key == "beam_size") o.beam_size = opt_int(v, key);
    else if (key == "patience") o.patience = opt_float(v, key);
    else if (key == "length_penalty") o.length_penalty = opt_float(v, key);
    else if (key == "suppress_blank") o.suppress_blank = bool_arg(v, key);
    else if (key == "without_timestamps") o.without_timestamps = bool_arg(v, key);
    else if (key == "max_initial_timestamp") o.max_initial_timestamp = opt_float(v, key);
    else if (key == "seed") o.seed = uint64_arg(v, key);
    else if (key == "repetition_penalty") o.repetition_penalty = float_arg(v, key);
    else if (key == "no_repeat_ngram_size") o.no_repeat_ngram_size = static_cast<int>(int_arg(v, key));
    else if (key == "repetition_cutoff") o.repetition_cutoff = opt_int(v, key);
    else throw_status(invalid_argument("unknown decoding option '" + key + "'"));
  }
  return o;
}

py::dict timings_dict(const WindowTimings& t) {
  py::dict out;
  out["mel"] = t.mel_seconds;
  out["encoder"] = t.encoder_seconds;
  out["cross_kv"] = t.cross_kv_seconds;
  out["mel_cpu"] = t.mel_cpu_seconds;
  out["encoder_cpu"] = t.encoder_cpu_seconds;
  out["cross_kv_cpu"] = t.cross_kv_cpu_seconds;
  return out;
}

}  // namespace

void register_model(py::module_& m) {
  py::class_<EncoderBackend, std::shared_ptr<EncoderBackend>>(m, "EncoderBackend",
      "Native encoder backend: mel [n_mels, 3000] -> states [n_audio_ctx, d].")
      .def_property_readonly("name", &EncoderBackend::name)
      .def_property_readonly("reads_mel", &EncoderBackend::reads_mel)
      .def_property_readonly("window_stride", &EncoderBackend::window_stride)
      .def_property_readonly("window_count", &EncoderBackend::window_count)
      .def_property_readonly("variable_positions", &EncoderBackend::variable_positions,
                             "Whether it can encode a window trimmed to its audio (fewer positions).")
      .def("encode",
           [](EncoderBackend& enc, const py::object& source, int64_t seek, int64_t size,
              std::shared_ptr<ThreadPool> pool, int64_t trim_min_frames) {
             py::object keep;
             const MelSource src = mel_source(source, enc.dims(), &keep);
             StatusOr<EncoderStates> states = Status();
             {
               py::gil_scoped_release release;
               states = encode_window(src, seek, size, enc, pool.get(), nullptr, trim_min_frames);
             }
             return states_to_numpy(unwrap(std::move(states)));
           },
           py::arg("mel") = py::none(), py::arg("seek") = 0, py::arg("size") = kNFrames, py::arg("pool") = nullptr,
           py::arg("trim_min_frames") = -1,
           "Encodes one window (a mel [n_mels, 3000], or frames [seek, seek + size) of a MelWindows; None for "
           "backends that read no mel); returns a new float32 array [n_audio_ctx, d] (fewer positions when "
           "trim_min_frames >= 0: the window's audio and a second of padding, at least that many frames, in "
           "whole seconds).");

  py::class_<backends::CpuEncoderBackend, EncoderBackend, std::shared_ptr<backends::CpuEncoderBackend>>(m, "CpuEncoder")
      .def(py::init([](const py::dict& dims, const py::dict& tensors, std::shared_ptr<ThreadPool> pool,
                       const std::string& compute_type) {
             ModelDims md = dims_from_dict(dims);
             ComputeType ct = unwrap(parse_compute_type(compute_type));
             py::list keep;
             TensorMap map = tensor_map(tensors, keep);
             StatusOr<std::unique_ptr<backends::CpuEncoderBackend>> enc = Status();
             {
               py::gil_scoped_release release;
               enc = backends::CpuEncoderBackend::create(md, map, std::move(pool), ct);
             }
             return std::shared_ptr<backends::CpuEncoderBackend>(unwrap(std::move(enc)));
           }),
           py::arg("dims"), py::arg("tensors"), py::arg("pool"), py::arg("compute_type") = "float32")
      .def_property_readonly("weight_bytes", &backends::CpuEncoderBackend::weight_bytes);

  py::class_<DecodingOptions>(m, "DecodingOptions",
                              "Options of one decode call: openai-whisper's (keyword arguments, validated by "
                              "check()) and the tokenised ones Python's tokenizer fills in (see decoding.h).")
      .def(py::init([](const py::kwargs& kwargs) { return decoding_options(kwargs); }))
      .def_readonly("temperature", &DecodingOptions::temperature)
      .def_readonly("sample_len", &DecodingOptions::sample_len)
      .def_readonly("best_of", &DecodingOptions::best_of)
      .def_readonly("beam_size", &DecodingOptions::beam_size)
      .def_readonly("patience", &DecodingOptions::patience)
      .def_readonly("length_penalty", &DecodingOptions::length_penalty)
      .def_readonly("suppress_blank", &DecodingOptions::suppress_blank)
      .def_readonly("without_timestamps", &DecodingOptions::without_timestamps)
      .def_readonly("max_initial_timestamp", &DecodingOptions::max_initial_timestamp)
      .def_readonly("seed", &DecodingOptions::seed)
      .def_readonly("repetition_penalty", &DecodingOptions::repetition_penalty)
      .def_readonly("no_repeat_ngram_size", &DecodingOptions::no_repeat_ngram_size)
      .def_readonly("repetition_cutoff", &DecodingOptions::repetition_cutoff)
      .def_readwrite("initial_tokens", &DecodingOptions::initial_tokens)
      .def_readwrite("sot_index", &DecodingOptions::sot_index)
      .def_readwrite("suppress_tokens", &DecodingOptions::suppress_tokens)
      .def_readwrite("blank_tokens", &DecodingOptions::blank_tokens)
      .def_readwrite("eot", &DecodingOptions::eot)
      .def_readwrite("no_speech", &DecodingOptions::no_speech)
      .def_readwrite("no_timestamps", &DecodingOptions::no_timestamps)
      .def_readwrite("timestamp_begin", &DecodingOptions::timestamp_begin)
      .def("check", [](const DecodingOptions& o) { check(o.check()); },
           "Raises InvalidOptionError naming the option when openai-whisper's options are out of range.")
      .def("__repr__", &DecodingOptions::to_string);

  m.attr("COMPUTE_TYPES") = py::tuple(py::cast(compute_type_names()));
  m.attr("MAX_DECODING_GROUP") = kMaxDecodingGroup;  // rows a decoder runs side by side (beams x samples)
  m.def("resolve_compute_type",
        [](const py::handle& name) { return compute_type_name(unwrap(parse_compute_type(str_arg(name, "compute_type")))); },
        py::arg("name"), "The compute type a name stands for ('auto' -> 'float32'); InvalidOptionError if unknown.");
  m.def("check_dims", [](const py::dict& dims) { dims_from_dict(dims); }, py::arg("dims"),
        "Raises ModelLoadError naming the dimension when these are not a Whisper model's.");
  m.def("checkpoint_schema",
        [](const py::dict& dims) {
          py::list out;
          for (const TensorSchema& t : checkpoint_schema(dims_from_dict(dims))) {
            out.append(py::make_tuple(t.name, py::tuple(py::cast(t.shape))));
          }
          return out;
        },
        py::arg("dims"), "[(name, shape)] of every tensor of a checkpoint, in openai-whisper's state_dict order.");

  py::class_<DecodingResult>(m, "DecodingResult")
      .def_readonly("tokens", &DecodingResult::tokens)
      .def_readonly("sum_logprob", &DecodingResult::sum_logprob)
      .def_readonly("avg_logprob", &DecodingResult::avg_logprob)
      .def_readonly("no_speech_prob", &DecodingResult::no_speech_prob)
      .def_readonly("temperature", &DecodingResult::temperature)
      .def_readonly("looped", &DecodingResult::looped);

  py::class_<Decoder, std::shared_ptr<Decoder>>(m, "Decoder", "Native text decoder with KV cache and the decode loop.")
      .def(py::init([](const py::dict& dims, const py::dict& tensors, std::shared_ptr<ThreadPool> pool,
                       const std::string& compute_type) {
             ModelDims md = dims_from_dict(dims);
             ComputeType ct = unwrap(parse_compute_type(compute_type));
             py::list keep;
             TensorMap map = tensor_map(tensors, keep);
             StatusOr<std::unique_ptr<Decoder>> dec = Status();
             {
               py::gil_scoped_release release;
               dec = Decoder::create(md, map, std::move(pool), ct);
             }
             return std::shared_ptr<Decoder>(unwrap(std::move(dec)));
           }),
           py::arg("dims"), py::arg("tensors"), py::arg("pool"), py::arg("compute_type") = "float32")
      .def_property_readonly("weight_bytes", &Decoder::weight_bytes)
      .def_property_readonly("fixed_window", &Decoder::fixed_window,
                             "Whether set_audio needs all n_audio_ctx positions (NPU layer steps planned).")
      .def_property_readonly("forward_calls", &Decoder::forward_calls)
      .def_property_readonly("forward_tokens", &Decoder::forward_tokens)
      .def("set_audio",
           [](Decoder& dec, const py::object& states) {
             auto arr = as_float32(states, "encoder states", 2);
             EncoderStates s{arr.data(), arr.shape(0), arr.shape(1)};
             Status st;
             {
               py::gil_scoped_release release;
               st = dec.set_audio(s);
             }
             check(st);
           },
           py::arg("states"), "Computes the cross-attention keys/values of encoder states [n_audio_ctx, d].")
      .def("decode",
           [](Decoder& dec, const DecodingOptions& options) {
             StatusOr<DecodingResult> r = Status();
             {
               py::gil_scoped_release release;
               r = dec.decode(options);
             }
             return unwrap(std::move(r));
           },
           py::arg("options"))
      .def("step_logits",
           [](Decoder& dec, const std::vector<int>& prompt, std::vector<int> tokens, int beams) {
             std::vector<float> logits;
             Status s;
             {
               py::gil_scoped_release release;
               s = dec.step_logits(prompt, beams, &tokens, &logits);
             }
             check(s);
             const py::ssize_t n = static_cast<py::ssize_t>(tokens.size()), V = dec.dims().n_vocab;
             py::array_t<float> out({n, static_cast<py::ssize_t>(beams), V});
             std::copy(logits.begin(), logits.end(), out.mutable_data());
             return py::make_tuple(tokens, out);
           },
           py::arg("prompt"), py::arg("tokens"), py::arg("beams") = 1,
           "(tokens fed, logits [steps, beams, n_vocab]) of single-token steps after `prompt`; a token of -1 is "
           "the argmax of the previous logits (the NPU self-check, see decoding.h).")
      .def("language_probs",
           [](Decoder& dec, int sot, const std::vector<int>& language_tokens) {
             StatusOr<std::vector<float>> r = Status();
             {
               py::gil_scoped_release release;
               r = dec.language_probs(sot, language_tokens);
             }
             return unwrap(std::move(r));
           },
           py::arg("sot"), py::arg("language_tokens"))
      .def("alignment",
           [](Decoder& dec, const std::vector<int>& tokens, const std::vector<std::pair<int, int>>& heads, int n_frames,
              int text_vocab) {
             StatusOr<Alignment> r = Status();
             {
               py::gil_scoped_release release;
               r = dec.alignment(tokens, heads, n_frames, text_vocab);
             }
             Alignment a = unwrap(std::move(r));
             py::array_t<float> qk({a.n_heads, a.n_tokens, a.n_frames});
             std::copy(a.qk.begin(), a.qk.end(), qk.mutable_data());
             py::array_t<float> probs(static_cast<py::ssize_t>(a.token_probs.size()));
             std::copy(a.token_probs.begin(), a.token_probs.end(), probs.mutable_data());
             return py::make_tuple(qk, probs);
           },
           py::arg("tokens"), py::arg("heads"), py::arg("n_frames"), py::arg("text_vocab"),
           "(qk [heads, tokens, n_frames], next-token probabilities [tokens - 1]) of a forced pass (see decoding.h).");

  m.def(
      "dtw",
      [](const py::object& cost) {
        auto x = as_float32(cost, "cost", 2);
        // Tokens x audio frames (at most 448 x 1500 in Whisper): the bound keeps the native int
        // indices exact, far past any real alignment.
        constexpr py::ssize_t kMaxDtwSide = py::ssize_t{1} << 20;
        if (x.shape(0) > kMaxDtwSide || x.shape(1) > kMaxDtwSide) {
          throw_status(invalid_argument("cost [" + std::to_string(x.shape(0)) + ", " + std::to_string(x.shape(1)) +
                                        "] is too large for dtw: at most " + std::to_string(kMaxDtwSide) + " per side"));
        }
        std::vector<int> rows, cols;
        {
          py::gil_scoped_release release;
          dtw(x.data(), static_cast<int>(x.shape(0)), static_cast<int>(x.shape(1)), &rows, &cols);
        }
        return py::make_tuple(py::array_t<int>(static_cast<py::ssize_t>(rows.size()), rows.data()),
                              py::array_t<int>(static_cast<py::ssize_t>(cols.size()), cols.data()));
      },
      py::arg("cost"), "The least-cost monotonic path through cost [n, m]: (row indices, column indices).");

  m.def("prepare_window",
        [](const py::object& source, int64_t seek, int64_t size, EncoderBackend& encoder, Decoder& decoder,
           std::shared_ptr<ThreadPool> pool, int64_t trim_min_frames) {
          py::object keep;
          const MelSource src = mel_source(source, encoder.dims(), &keep);
          WindowTimings t;
          Status s;
          {
            py::gil_scoped_release release;
            s = prepare_window(src, seek, size, encoder, decoder, pool.get(), &t, trim_min_frames);
          }
          check(s);
          return timings_dict(t);
        },
        py::arg("source"), py::arg("seek"), py::arg("size"), py::arg("encoder"), py::arg("decoder"),
        py::arg("pool") = nullptr, py::arg("trim_min_frames") = -1,
        "The window path: mel (a MelWindows, a [n_mels, 3000] array, or None for backends that read no mel) -> "
        "encoder input buffer -> encoder -> decoder cross-attention, without copies. trim_min_frames >= 0 "
        "encodes only the window's audio and a second of padding, at least that many frames (trimmed_positions). Returns the seconds "
        "spent in each stage.");
}

}  // namespace whisper_genio::python
