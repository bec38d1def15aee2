// Accelerator encoder backends (neuron, replay, external/onnxruntime) and the Neuron loader's
// probe. Conversion and GIL release only; every decision lives in csrc/src/backends/.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>

#include "../src/backends/external/external_encoder.h"
#include "../src/backends/neuron/neuron_encoder.h"
#include "../src/backends/replay/replay_encoder.h"
#include "../src/backends/tensor_io.h"
#include "convert.h"
#include "whisper_genio/decoding.h"

namespace py = pybind11;

namespace whisper_genio::python {

namespace {

using backends::IoDType;
using backends::TensorSpec;


uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

std::string version_string(const neuron::NeuronLibrary& lib) { return lib.version_string(); }

py::dict library_report(const neuron::NeuronLibrary& lib) {
  py::dict r;
  r["ok"] = true;
  r["path"] = lib.path();
  r["resolved_path"] = lib.resolved_path();
  r["version"] = version_string(lib);
  r["layout"] = neuron::layout_name(lib.layout());
  r["layout_reason"] = lib.layout_reason();
  r["v2"] = lib.has_v2();
  r["qos"] = lib.api().setQoSOption != nullptr;
  r["attempts"] = lib.attempts();
  r["missing_optional"] = lib.missing_optional();
  return r;
}

// {field: value} in QoS::set's user-facing form (str() of each value), validated.
neuron::QoS qos_from(const py::dict& fields) {
  neuron::QoS q;
  for (const auto& item : fields) check(q.set(py::str(item.first), py::str(item.second)));
  check(q.validate());
  return q;
}

}  // namespace

void register_backends(py::module_& m) {
  // ---- Neuron runtime loader --------------------------------------------------------------
  m.def("neuron_default_library_names", &neuron::default_library_names,
        "The runtime library names tried, in order, after $WHISPER_GENIO_NEURON_LIB.");
  m.def("neuron_error_message", &neuron::describe_error, py::arg("code"),
        "The message for a Neuron runtime error code.");
  m.def(
      "neuron_probe",
      [](const std::optional<std::string>& path, const std::optional<std::vector<std::string>>& names, bool use_env) {
        neuron::LoadOptions o;
        if (path) o.path = *path;
        if (names) o.names = *names;
        o.use_env = use_env;
        StatusOr<std::shared_ptr<const neuron::NeuronLibrary>> lib = Status();
        {
          py::gil_scoped_release release;
          lib = neuron::NeuronLibrary::load(o);
        }
        if (lib.ok()) return library_report(*lib.value());
        py::dict r;
        r["ok"] = false;
        r["code"] = status_code_name(lib.status().code());
        r["reason"] = lib.status().message();
        return r;
      },
      py::arg("path") = py::none(), py::arg("names") = py::none(), py::arg("use_env") = true,
      "Loads the Neuron runtime as the neuron backend would and reports what it found (never raises).");
  m.def(
      "neuron_check_library",
      [](const std::optional<std::string>& path) {
        neuron::LoadOptions o;
        if (path) o.path = *path;
        StatusOr<std::shared_ptr<const neuron::NeuronLibrary>> lib = Status();
        {
          py::gil_scoped_release release;
          lib = neuron::NeuronLibrary::load(o);
        }
        return library_report(*unwrap(std::move(lib)));
      },
      py::arg("path") = py::none(), "Like neuron_probe, but raises the loader's error.");

  m.attr("NEURON_APIS") = py::tuple(py::cast(neuron::api_choice_names()));
  // The environment variables the Neuron code reads.
  py::dict env;
  env["neuron_library"] = neuron::kLibraryEnv;
  env["neuron_layout"] = neuron::kLayoutEnv;
  env["dma_heap"] = backends::kDmaHeapEnv;
  m.attr("NEURON_ENV") = env;
  m.def("resolve_neuron_api",
        [](const py::handle& name) {
          return neuron::api_choice_names()[static_cast<size_t>(unwrap(neuron::parse_api_choice(str_arg(name, "neuron_api"))))];
        },
        py::arg("name"), "The Neuron runtime API choice (InvalidOptionError if unknown).");
  m.def(
      "neuron_qos",
      [](const py::dict& fields) {
        py::dict out;
        for (const auto& [k, v] : qos_from(fields).fields()) out[py::str(k)] = v;
        return out;
      },
      py::arg("fields"),
      "Validated QoS {field: value} (the defaults filled in); raises InvalidOptionError naming the field.");
  m.attr("IO_DTYPES") = py::tuple(py::cast(backends::io_dtype_names()));
  m.def("check_tensor", [](const py::handle& spec, const std::string& where) { tensor_spec_arg(spec, where); },
        py::arg("spec"), py::arg("where"),
        "Raises ModelLoadError naming `where` when a device tensor's dtype, shape, scale or zero point is invalid.");
  m.def(
      "io_dtype",
      [](const std::string& name) {
        const backends::IoDType t = unwrap(backends::parse_io_dtype(name));
        int64_t lo = 0, hi = 0;
        backends::io_dtype_range(t, &lo, &hi);
        py::dict d;
        d["name"] = backends::io_dtype_name(t);
        d["size"] = backends::io_dtype_size(t);
        d["quantized"] = backends::io_dtype_is_quantized(t);
        d["min"] = lo;
        d["max"] = hi;
        return d;
      },
      py::arg("name"), "{name, size, quantized, min, max} of a device tensor dtype (InvalidOptionError if unknown).");

  // ---- neuron encoder ---------------------------------------------------------------------
  py::class_<backends::NeuronEncoderBackend, EncoderBackend, std::shared_ptr<backends::NeuronEncoderBackend>>(
      m, "NeuronEncoder", "Whisper encoder DLA on the MDLA through the Neuron runtime.")
      .def(py::init([](const py::dict& dims, const std::string& dla, const py::dict& input, const py::dict& output,
                       const std::string& api, const std::optional<py::dict>& qos,
                       const std::optional<std::string>& dma_heap, bool rebind, int cpu_threads, bool self_test,
                       const std::optional<std::string>& library) {
             backends::NeuronEncoderConfig c;
             c.dims = dims_from_dict(dims);
             c.dla_path = dla;
             c.input = tensor_spec_arg(input, "encoder input", backends::NeuronEncoderConfig::default_input(c.dims));
             c.output = tensor_spec_arg(output, "encoder output", backends::NeuronEncoderConfig::default_output(c.dims));
             c.api = unwrap(neuron::parse_api_choice(api));
             if (qos) {
               c.set_qos = true;
               c.qos = qos_from(*qos);
             }
             c.dma_heap = dma_heap ? *dma_heap : backends::default_dma_heap();
             c.rebind_each_run = rebind;
             c.cpu_threads = cpu_threads;
             c.self_test = self_test;
             if (library) c.library.path = *library;
             StatusOr<std::unique_ptr<backends::NeuronEncoderBackend>> enc = Status();
             {
               py::gil_scoped_release release;
               enc = backends::NeuronEncoderBackend::create(c);
             }
             return std::shared_ptr<backends::NeuronEncoderBackend>(unwrap(std::move(enc)));
           }),
           py::arg("dims"), py::arg("dla"), py::arg("input") = py::dict(), py::arg("output") = py::dict(),
           py::arg("api") = "auto", py::arg("qos") = py::none(), py::arg("dma_heap") = py::none(),
           py::arg("rebind") = true, py::arg("cpu_threads") = 1, py::arg("self_test") = true,
           py::arg("library") = py::none())
      .def("self_test",
           [](backends::NeuronEncoderBackend& e) {
             Status s;
             {
               py::gil_scoped_release release;
               s = e.self_test();
             }
             check(s);
           },
           "Runs two different mel windows; raises InferenceError if the output did not change.")
      .def("describe", &backends::NeuronEncoderBackend::describe)
      .def_property_readonly("api", [](const backends::NeuronEncoderBackend& e) { return std::string(e.api_name()); })
      .def_property_readonly("library", [](const backends::NeuronEncoderBackend& e) { return library_report(e.library()); })
      .def_property_readonly("runtime_version",
                             [](const backends::NeuronEncoderBackend& e) { return version_string(e.library()); })
      .def_property_readonly("input_address",
                             [](const backends::NeuronEncoderBackend& e) { return address(e.input_buffer().data()); })
      .def_property_readonly("output_address",
                             [](const backends::NeuronEncoderBackend& e) { return address(e.output_buffer().data()); })
      .def_property_readonly("mel_buffer_address",
                             [](backends::NeuronEncoderBackend& e) { return address(e.mel_buffer()); })
      .def_property_readonly("states_address",
                             [](const backends::NeuronEncoderBackend& e) { return address(e.states_data()); })
      .def_property_readonly("input_fd", [](const backends::NeuronEncoderBackend& e) { return e.input_buffer().fd(); })
      .def_property_readonly("output_fd", [](const backends::NeuronEncoderBackend& e) { return e.output_buffer().fd(); })
      .def_property_readonly("input_memory",
                             [](const backends::NeuronEncoderBackend& e) { return std::string(e.input_buffer().kind_name()); })
      .def_property_readonly("output_memory",
                             [](const backends::NeuronEncoderBackend& e) { return std::string(e.output_buffer().kind_name()); })
      .def_property_readonly("memory_note", [](const backends::NeuronEncoderBackend& e) { return e.input_buffer().note(); })
      .def_property_readonly("input_zero_copy", &backends::NeuronEncoderBackend::input_zero_copy)
      .def_property_readonly("output_zero_copy", &backends::NeuronEncoderBackend::output_zero_copy)
      .def_property_readonly("runs", &backends::NeuronEncoderBackend::runs)
      .def_property_readonly("notes", &backends::NeuronEncoderBackend::notes)
      .def_property_readonly("input_padded_shape",
                             [](const backends::NeuronEncoderBackend& e) { return e.input_spec().padded_shape; })
      .def_property_readonly("output_padded_shape",
                             [](const backends::NeuronEncoderBackend& e) { return e.output_spec().padded_shape; });

  // ---- replay -----------------------------------------------------------------------------
  py::class_<backends::ReplayEncoderBackend, EncoderBackend, std::shared_ptr<backends::ReplayEncoderBackend>>(
      m, "ReplayEncoder", "Encoder states read back from a device's raw output files, one file per window.")
      .def(py::init([](const py::dict& dims, const std::vector<std::string>& files, const py::dict& output) {
             backends::ReplayConfig c;
             c.dims = dims_from_dict(dims);
             c.files = files;
             c.output = tensor_spec_arg(output, "encoder output", backends::NeuronEncoderConfig::default_output(c.dims));
             StatusOr<std::unique_ptr<backends::ReplayEncoderBackend>> enc = Status();
             {
               py::gil_scoped_release release;
               enc = backends::ReplayEncoderBackend::create(c);
             }
             return std::shared_ptr<backends::ReplayEncoderBackend>(unwrap(std::move(enc)));
           }),
           py::arg("dims"), py::arg("files"), py::arg("output") = py::dict())
      .def_property_readonly("files", [](const backends::ReplayEncoderBackend& e) { return e.config().files; })
      .def_property_readonly("output_spec",
                             [](const backends::ReplayEncoderBackend& e) { return e.config().output.describe(); });

  // ---- external (Python-supplied run, e.g. ONNX Runtime) -------------------------------------
  py::class_<backends::ExternalEncoderBackend, EncoderBackend, std::shared_ptr<backends::ExternalEncoderBackend>>(
      m, "ExternalEncoder",
      "Native mel/states buffers with a Python run(): the callable reads .mel and writes .states in place.",
      py::dynamic_attr())
      .def(py::init([](const py::dict& dims, const std::string& name, const py::function& run) {
             ModelDims md = dims_from_dict(dims);
             // The callable is released with the GIL held, whoever drops the backend.
             std::shared_ptr<py::object> fn(new py::object(run), [](py::object* p) {
               py::gil_scoped_acquire gil;
               delete p;
             });
             backends::ExternalEncoderBackend::RunHook hook = [fn, name]() -> Status {
               py::gil_scoped_acquire gil;
               try {
                 (*fn)();
               } catch (py::error_already_set& e) {
                 return runtime_error(name + " encoder failed: " + std::string(e.what()));
               }
               return Status::Ok();
             };
             return std::shared_ptr<backends::ExternalEncoderBackend>(
                 unwrap(backends::ExternalEncoderBackend::create(name, md, std::move(hook))));
           }),
           py::arg("dims"), py::arg("name"), py::arg("run"))
      .def_property_readonly("mel",
                             [](py::object self) {
                               auto& e = self.cast<backends::ExternalEncoderBackend&>();
                               const ModelDims& d = e.dims();
                               return py::array_t<float>({static_cast<py::ssize_t>(d.n_mels), static_cast<py::ssize_t>(2 * d.n_audio_ctx)},
                                                         e.mel_buffer(), self);
                             })
      .def_property_readonly("states",
                             [](py::object self) {
                               auto& e = self.cast<backends::ExternalEncoderBackend&>();
                               const ModelDims& d = e.dims();
                               return py::array_t<float>({static_cast<py::ssize_t>(d.n_audio_ctx), static_cast<py::ssize_t>(d.n_audio_state)},
                                                         e.states_buffer(), self);
                             })
      .def_property_readonly("mel_address", [](backends::ExternalEncoderBackend& e) { return address(e.mel_buffer()); })
      .def_property_readonly("states_address",
                             [](backends::ExternalEncoderBackend& e) { return address(e.states_buffer()); });

  // ---- device bytes <-> float (the conversions the backends use) -------------------------
  m.def(
      "dequantize",
      [](const py::buffer& raw, const py::dict& spec, const py::handle& rows_arg, const py::handle& cols_arg) {
        // Any Python int converts (2**64 included) so that the bound check below names it.
        const int64_t rows = int_arg(rows_arg, "rows", std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max());
        const int64_t cols = int_arg(cols_arg, "cols", std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max());
        TensorSpec t;
        t.shape = {rows, cols};
        // The arguments' own bounds (TensorSpec::validate: positive, at most 2^40 elements) before
        // the spec's, so that the error names them and not the spec.
        t.name = "rows x cols";
        if (Status s = t.validate(); !s.ok()) throw_status(invalid_argument(s.message()));
        t.name.clear();
        t = tensor_spec_arg(spec, "spec", t);
        t.shape = {rows, cols};
        t.padded_shape.clear();  // logical bytes: padding is the neuron subgraphs' business
        py::buffer_info info = raw.request();
        const size_t bytes = static_cast<size_t>(info.size) * static_cast<size_t>(info.itemsize);
        if (bytes != t.bytes()) throw_status(invalid_argument(backends::describe_size_mismatch(bytes, t)));
        py::array_t<float> out({rows, cols});
        backends::dequantize_to_float(info.ptr, rows, cols, t, out.mutable_data());
        return out;
      },
      py::arg("raw"), py::arg("spec"), py::arg("rows"), py::arg("cols"),
      "Device bytes -> float32 [rows, cols] (the native dequantization the backends use).");
  m.def(
      "quantize",
      [](const py::object& values, const py::dict& spec) {
        auto arr = as_float32(values, "values", 2);
        TensorSpec t;
        t.shape = {arr.shape(0), arr.shape(1)};
        t = tensor_spec_arg(spec, "spec", t);
        t.shape = {arr.shape(0), arr.shape(1)};
        t.padded_shape.clear();
        std::string buf(t.bytes(), '\0');
        backends::quantize_from_float(arr.data(), arr.shape(0), arr.shape(1), t, buf.data());
        return py::bytes(buf);
      },
      py::arg("values"), py::arg("spec"),
      "float32 [rows, cols] -> device bytes (the native quantization the backends use).");
}

}  // namespace whisper_genio::python
