#include "runtime.h"

#include <algorithm>

namespace whisper_genio::neuron {

namespace {
// "NeuronRuntimeV2_getInputSize" or "NeuronRuntime_getInputSize": messages name the call made.
std::string fn_name(bool v2, const char* suffix) { return std::string(v2 ? "NeuronRuntimeV2_" : "NeuronRuntime_") + suffix; }
}  // namespace

std::vector<std::string> api_choice_names() { return {"auto", "v1", "v2"}; }

StatusOr<ApiChoice> parse_api_choice(const std::string& name) {
  const std::vector<std::string> names = api_choice_names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<ApiChoice>(i);
  }
  return invalid_argument("neuron_api must be one of auto, v1, v2; got '" + name + "'");
}

abi::IOBuffer io_buffer(const backends::DmaBuffer& b) { return abi::IOBuffer{b.data(), b.size(), b.fd(), 0, 0, 0}; }

StatusOr<std::unique_ptr<Runtime>> Runtime::open(std::shared_ptr<const NeuronLibrary> lib, const std::string& dla_path,
                                                 ApiChoice api, int cpu_threads) {
  const NeuronLibrary& l = *lib;
  if (api == ApiChoice::kV2 && !l.has_v2()) {
    return unavailable(l.resolved_path() + " (runtime " + l.version_string() +
                       ") lacks the V2 API (NeuronRuntimeV2_create/run/release/getInputSize/getOutputSize); use the "
                       "V1 API (neuron_api='v1' or 'auto')");
  }
  std::unique_ptr<Runtime> rt(new Runtime());
  rt->lib_ = std::move(lib);
  rt->dla_path_ = dla_path;
  rt->v2_ = api == ApiChoice::kV2 || (api == ApiChoice::kAuto && l.has_v2());
  const Api& a = l.api();
  const std::string hint = " (run `whisper-genio doctor` to check /etc/nhw, /dev/apusys* and the APU firmware)";
  const std::string loading = "loading " + dla_path + " with runtime " + l.version_string() + " failed: ";
  // A failed create leaves nothing to release: the handle is only kept on success.
  void* h = nullptr;
  if (rt->v2_) {
    const int rc = a.v2_create(dla_path.c_str(), 1, &h, 2048);
    if (rc != abi::kNoError) return bad_model(loading + call_failed("NeuronRuntimeV2_create", rc) + hint);
    rt->handle_ = h;
    return rt;
  }
  const std::vector<unsigned char> env = l.env_options(cpu_threads);
  const int rc = a.create(env.data(), &h);
  if (rc != abi::kNoError) {
    return unavailable("the Neuron runtime could not start: " + call_failed("NeuronRuntime_create", rc) + hint);
  }
  rt->handle_ = h;  // from here on the destructor releases it
  const int lrc = a.loadNetworkFromFile(h, dla_path.c_str());
  if (lrc != abi::kNoError) {
    return bad_model(loading + call_failed("NeuronRuntime_loadNetworkFromFile", lrc) +
                     " (a DLA loads only into a runtime of the ncc-tflite major version that compiled it, for the "
                     "SoC it was compiled for)");
  }
  return rt;
}

Runtime::~Runtime() {
  if (handle_ == nullptr) return;
  if (v2_) {
    lib_->api().v2_release(handle_);
  } else {
    lib_->api().release(handle_);
  }
}

Status Runtime::io_counts(size_t* n_in, size_t* n_out) const {
  const Api& a = lib_->api();
  auto in_number = v2_ ? a.v2_getInputNumber : a.getInputNumber;
  auto out_number = v2_ ? a.v2_getOutputNumber : a.getOutputNumber;
  int rc = abi::kNoError;
  if (in_number != nullptr && (rc = in_number(handle_, n_in)) != abi::kNoError) {
    return runtime_error(call_failed(fn_name(v2_, "getInputNumber").c_str(), rc));
  }
  if (out_number != nullptr && (rc = out_number(handle_, n_out)) != abi::kNoError) {
    return runtime_error(call_failed(fn_name(v2_, "getOutputNumber").c_str(), rc));
  }
  return Status::Ok();
}

StatusOr<size_t> Runtime::input_bytes(size_t i) const {
  size_t bytes = 0;
  const int rc = (v2_ ? lib_->api().v2_getInputSize : lib_->api().getInputSize)(handle_, i, &bytes);
  if (rc != abi::kNoError) return runtime_error(call_failed(fn_name(v2_, "getInputSize").c_str(), rc));
  return bytes;
}

StatusOr<size_t> Runtime::output_bytes(size_t i) const {
  size_t bytes = 0;
  const int rc = (v2_ ? lib_->api().v2_getOutputSize : lib_->api().getOutputSize)(handle_, i, &bytes);
  if (rc != abi::kNoError) return runtime_error(call_failed(fn_name(v2_, "getOutputSize").c_str(), rc));
  return bytes;
}

StatusOr<Runtime::DeviceIo> Runtime::device_io(bool input, size_t i) const {
  DeviceIo io;
  WG_ASSIGN_OR_RETURN(io.logical_bytes, input ? input_bytes(i) : output_bytes(i));
  const Api& a = lib_->api();
  auto padded_size = v2_ ? (input ? a.v2_getInputPaddedSize : a.v2_getOutputPaddedSize)
                         : (input ? a.getInputPaddedSize : a.getOutputPaddedSize);
  auto padded_dims = v2_ ? (input ? a.v2_getInputPaddedDimensions : a.v2_getOutputPaddedDimensions)
                         : (input ? a.getInputPaddedDimensions : a.getOutputPaddedDimensions);
  const char* which = input ? "Input" : "Output";
  if (padded_size != nullptr) {
    const int rc = padded_size(handle_, i, &io.padded_bytes);
    if (rc != abi::kNoError) {
      return runtime_error(call_failed(fn_name(v2_, (std::string("get") + which + "PaddedSize").c_str()).c_str(), rc));
    }
  }
  if (padded_dims != nullptr) {
    abi::RuntimeAPIDimensions d{};
    const int rc = padded_dims(handle_, i, &d);
    if (rc != abi::kNoError) {
      return runtime_error(
          call_failed(fn_name(v2_, (std::string("get") + which + "PaddedDimensions").c_str()).c_str(), rc));
    }
    io.has_dims = true;
    for (int k = 0; k < 4; ++k) io.dims[k] = d.dimensions[k];
  }
  return io;
}

namespace {

// One tensor against the runtime's view of it: "" when they agree (spec->padded_shape filled in
// from the runtime where it pads), else what differs.
std::string resolve_one(const Runtime::DeviceIo& io, backends::TensorSpec* spec, std::string* notes) {
  using backends::IoDType;
  using backends::shape_string;
  const size_t es = backends::io_dtype_size(spec->dtype);
  const size_t logical = spec->bytes();
  // A --relax-fp32 DLA compiled with --suppress-input/--suppress-output takes float16 natively
  // while the runtime may report its float32 model size as the logical one.
  // Told apart from a float32 DLA (a manifest error) by its padded buffer, which is in float16:
  // 2 bytes per element of the padded dimensions (without them: a padded size that differs).
  size_t padded_elems = 1;
  for (uint32_t d : io.dims) padded_elems *= std::max<uint32_t>(1, d);
  const bool fp32_logical = spec->dtype == IoDType::kFloat16 &&
                            io.logical_bytes == static_cast<size_t>(spec->numel()) * 4 && io.padded_bytes != 0 &&
                            (io.has_dims ? io.padded_bytes == padded_elems * 2 : io.padded_bytes != io.logical_bytes);
  if (io.logical_bytes != logical && !fp32_logical) {
    return "the manifest declares " + spec->describe() + ": " + backends::describe_size_mismatch(io.logical_bytes, *spec);
  }
  if (fp32_logical) *notes += spec->name + ": float16 native I/O (the runtime reports the float32 size); ";
  const size_t padded = io.padded_bytes != 0 ? io.padded_bytes : logical;
  if (padded == logical) {  // the runtime does not pad this tensor
    if (spec->padded()) {
      return "the manifest declares " + spec->describe() + " (" + std::to_string(spec->device_bytes()) +
             " bytes) but the runtime's buffer is not padded (" + std::to_string(padded) + " bytes)";
    }
    spec->padded_shape.clear();
    return "";
  }
  if (padded < logical) {
    return "the runtime's padded size " + std::to_string(padded) + " bytes is smaller than " + spec->describe() +
           " (" + std::to_string(logical) + " bytes)";
  }
  std::vector<int64_t> runtime_shape;
  if (io.has_dims) {
    auto p = backends::padded_shape_from_dims(spec->shape, io.dims);
    if (!p.ok()) return spec->describe() + ": " + p.status().message();
    runtime_shape = p.value();
  } else {  // no dimensions call: a whole number of wider rows
    const int64_t cols = spec->shape.back(), rows = spec->numel() / cols;
    const size_t row_bytes = static_cast<size_t>(rows) * es;
    if (padded % row_bytes != 0 || static_cast<int64_t>(padded / row_bytes) < cols) {
      return spec->describe() + ": the runtime's padded size " + std::to_string(padded) +
             " bytes is not a whole number of padded rows (and the runtime gives no padded dimensions)";
    }
    runtime_shape = spec->shape;
    runtime_shape.back() = static_cast<int64_t>(padded / row_bytes);
  }
  backends::TensorSpec got = *spec;
  got.padded_shape = runtime_shape;
  if (got.device_bytes() != padded) {
    return spec->describe() + ": the runtime's padded dimensions " + shape_string(runtime_shape) + " (" +
           std::to_string(got.device_bytes()) + " bytes) disagree with its padded size " + std::to_string(padded) +
           " bytes";
  }
  if (!spec->padded_shape.empty() && spec->padded_shape != runtime_shape) {
    return "the manifest declares " + spec->describe() + " but the runtime pads it to " + shape_string(runtime_shape);
  }
  if (spec->padded_shape.empty()) *notes += spec->name + ": padded by the runtime to " + shape_string(runtime_shape) + "; ";
  spec->padded_shape = runtime_shape;
  return "";
}

}  // namespace

StatusOr<std::string> Runtime::resolve_io(std::vector<backends::TensorSpec>* inputs,
                                          std::vector<backends::TensorSpec>* outputs, std::string* notes) const {
  std::string diffs;
  for (int pass = 0; pass < 2; ++pass) {
    auto& specs = pass == 0 ? *inputs : *outputs;
    for (size_t i = 0; i < specs.size(); ++i) {
      WG_ASSIGN_OR_RETURN(DeviceIo io, device_io(pass == 0, i));
      const std::string d = resolve_one(io, &specs[i], notes);
      if (d.empty()) continue;
      if (!diffs.empty()) diffs += "; ";
      diffs += std::string(pass == 0 ? "input " : "output ") + std::to_string(i) + ": " + d;
    }
  }
  return diffs;
}

Status Runtime::bind_input(size_t i, const backends::DmaBuffer& b) {
  if (v2_) return internal_error("bind_input on a V2 runtime (V2 takes its buffers per run)");
  const int rc = lib_->api().setInput(handle_, i, b.data(), b.size(), abi::BufferAttribute{b.fd()});
  if (rc != abi::kNoError) return runtime_error(call_failed("NeuronRuntime_setInput", rc));
  return Status::Ok();
}

Status Runtime::bind_output(size_t i, const backends::DmaBuffer& b) {
  if (v2_) return internal_error("bind_output on a V2 runtime (V2 takes its buffers per run)");
  const int rc = lib_->api().setOutput(handle_, i, b.data(), b.size(), abi::BufferAttribute{b.fd()});
  if (rc != abi::kNoError) return runtime_error(call_failed("NeuronRuntime_setOutput", rc));
  return Status::Ok();
}

Status Runtime::run(abi::IOBuffer* inputs, abi::IOBuffer* outputs) {
  const Api& a = lib_->api();
  if (v2_) {
    const int rc = a.v2_run(handle_, abi::SyncInferenceRequest{inputs, outputs});
    if (rc != abi::kNoError) return runtime_error(call_failed("NeuronRuntimeV2_run", rc));
    return Status::Ok();
  }
  const int rc = a.inference(handle_);
  if (rc != abi::kNoError) return runtime_error(call_failed("NeuronRuntime_inference", rc));
  return Status::Ok();
}

Status Runtime::set_qos(const QoS& qos) {
  auto fn = v2_ ? lib_->api().v2_setQoSOption : lib_->api().setQoSOption;
  const std::string fname = fn_name(v2_, "setQoSOption");
  if (fn == nullptr) {
    return unavailable(lib_->resolved_path() + " does not export " + fname +
                       ": QoS options cannot be applied (drop them)");
  }
  const std::vector<unsigned char> options = lib_->qos_options(qos);
  const int rc = fn(handle_, options.data());
  if (rc != abi::kNoError) return runtime_error(call_failed(fname.c_str(), rc) + " (" + qos.to_string() + ")");
  return Status::Ok();
}

}  // namespace whisper_genio::neuron
