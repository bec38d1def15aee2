// Decoder offload: subgraph runners (neuron DLAs, Python callbacks) and the dispatch plan.
// Conversion and GIL handling only; the plan is made in csrc/src/offload/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "../src/layers/executor.h"
#include "../src/offload/decoder_offload.h"
#include "../src/offload/plan_loader.h"
#include "convert.h"
#include "whisper_genio/decoding.h"

namespace py = pybind11;

namespace whisper_genio::python {

namespace {

// The Python callable outlives nothing: released with the GIL held whoever drops the last ref.
std::shared_ptr<py::function> keep_function(py::function fn) {
  return std::shared_ptr<py::function>(new py::function(std::move(fn)), [](py::function* f) {
    py::gil_scoped_acquire gil;
    delete f;
  });
}

offload::CallbackSubgraph::Fn callback_fn(std::shared_ptr<py::function> fn, int rows, int64_t in, int64_t out,
                                          std::string name) {
  return [fn, rows, in, out, name](const float* x, float* y) -> Status {
    py::gil_scoped_acquire gil;  // only while Python runs
    try {
      // A view of the runner's input (no copy); the callback must not keep it.
      py::array_t<float> xa({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(in)}, x, py::none());
      py::object r = (*fn)(xa);
      auto ya = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(r);
      if (!ya || ya.size() != rows * out) {
        return runtime_error(name + ": the callback returned " + (ya ? std::to_string(ya.size()) : "no array") +
                             " values, expected [" + std::to_string(rows) + ", " + std::to_string(out) + "]");
      }
      std::memcpy(y, ya.data(), static_cast<size_t>(rows * out) * sizeof(float));
      return Status::Ok();
    } catch (py::error_already_set& e) {
      return runtime_error(name + ": the callback raised " + std::string(e.what()));
    }
  };
}

// f(x, self_k, self_v, cross_k, cross_v, mask) -> (x', k, v), on views of the runner's buffers.
offload::CallbackLayerStep::Fn layer_step_fn(std::shared_ptr<py::function> fn, int rows, int64_t d, int n_ctx,
                                             int64_t n_audio, std::string name) {
  return [fn, rows, d, n_ctx, n_audio, name](const std::vector<float*>& in, const std::vector<float*>& out) -> Status {
    py::gil_scoped_acquire gil;
    try {
      using S = std::vector<py::ssize_t>;
      const py::ssize_t B = rows, D = d, C = n_ctx, T = n_audio;
      const S shapes[6] = {{B, D}, {B, C, D}, {B, C, D}, {T, D}, {T, D}, {B, C}};
      py::tuple args(6);
      for (int i = 0; i < 6; ++i) args[static_cast<size_t>(i)] = py::array_t<float>(shapes[i], in[static_cast<size_t>(i)], py::none());
      py::object r = (*fn)(*args);
      py::tuple t = r.cast<py::tuple>();
      if (t.size() != 3) return runtime_error(name + ": the callback must return (x, k, v)");
      for (size_t i = 0; i < 3; ++i) {
        auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(t[i]);
        if (!a || a.size() != B * D) return runtime_error(name + ": output " + std::to_string(i) + " must be [rows, d]");
        std::memcpy(out[i], a.data(), static_cast<size_t>(B * D) * sizeof(float));
      }
      return Status::Ok();
    } catch (py::error_already_set& e) {
      return runtime_error(name + ": the callback raised " + std::string(e.what()));
    } catch (py::cast_error&) {
      return runtime_error(name + ": the callback must return a tuple (x, k, v)");
    }
  };
}

// A subgraph entry from its dict: {"op", "layer" | "chunk" + "col0" + "cols", "batch", and "file" +
// "inputs" + "outputs" (a DLA) or "callback"}; errors name the entry and the key.
offload::SubgraphEntry subgraph_entry(const py::handle& item, size_t index, const ModelDims& dims) {
  const std::string where = "decoder subgraph " + std::to_string(index);
  if (!py::isinstance<py::dict>(item)) throw_status(invalid_argument(where + " must be a dict, got " + std::string(py::repr(item))));
  const py::dict d = py::reinterpret_borrow<py::dict>(item);
  auto get = [&](const char* key) -> py::object { return d.contains(key) ? d[key] : py::object(py::none()); };
  auto require = [&](const char* key) -> py::object {
    if (!d.contains(key)) throw_status(invalid_argument(where + " has no '" + key + "'"));
    return d[key];
  };
  offload::SubgraphEntry e;
  e.kind = unwrap(offload::parse_op_kind(str_arg(require("op"), where + ".op")));
  // The decoder never runs more rows side by side than kMaxDecodingGroup: a larger batch could
  // never be used, and it sizes the subgraph's buffers.
  e.batch = static_cast<int>(int_arg(require("batch"), where + ".batch", 1, kMaxDecodingGroup));
  if (!get("layer").is_none()) e.layer = static_cast<int>(int_arg(get("layer"), where + ".layer"));
  if (!get("chunk").is_none()) e.chunk = static_cast<int>(int_arg(get("chunk"), where + ".chunk"));
  if (!get("col0").is_none()) e.col0 = int_arg(get("col0"), where + ".col0", 0, dims.n_vocab);
  if (!get("cols").is_none()) e.cols = int_arg(get("cols"), where + ".cols", 0, dims.n_vocab);
  const py::object callback = get("callback");
  if (!callback.is_none()) {
    if (!PyCallable_Check(callback.ptr())) throw_status(invalid_argument(where + ".callback must be callable"));
    auto fn = keep_function(callback.cast<py::function>());
    const int64_t D = dims.n_text_state;
    int64_t out = 0, in = 0;
    offload::linear_shape(e.kind, D, e.cols, &out, &in);
    if (e.kind == offload::OpKind::kLayerStep) {
      e.step_fn = layer_step_fn(fn, e.batch, D, dims.n_text_ctx, dims.n_audio_ctx, e.name());
    } else {
      e.dense_fn = callback_fn(fn, e.batch, in, out, e.name());
    }
    return e;
  }
  if (!get("file").is_none()) e.file = str_arg(get("file"), where + ".file");
  for (const auto& [key, list] : {std::make_pair("inputs", &e.inputs), std::make_pair("outputs", &e.outputs)}) {
    const py::object tensors = get(key);
    if (tensors.is_none()) continue;
    if (!py::isinstance<py::list>(tensors)) throw_status(invalid_argument(where + "." + key + " must be a list of tensors"));
    size_t i = 0;
    for (const auto& t : tensors) list->push_back(tensor_spec_arg(t, where + "." + key + "[" + std::to_string(i++) + "]"));
  }
  return e;
}

py::list plan_to_list(const offload::DecoderOffload& o) {
  py::list out;
  for (const offload::PlanEntry& e : o.plan()) {
    py::dict d;
    d["op"] = offload::op_kind_name(e.kind);
    d["layer"] = e.layer;
    d["chunk"] = e.chunk;
    d["batch"] = e.batch;
    d["col0"] = e.col0;
    d["cols"] = e.cols;
    d["where"] = e.npu ? "npu" : "cpu";
    d["runner"] = e.runner;
    d["reason"] = e.reason;
    d["macs"] = e.macs;
    out.append(d);
  }
  return out;
}

}  // namespace

void register_offload(py::module_& m) {
  m.def(
      "decoder_set_offload",
      [](Decoder& dec, const py::handle& mode, const std::vector<int>& batches, const py::list& subgraphs,
         const std::optional<std::string>& library, const std::optional<std::string>& dma_heap,
         const py::handle& api, bool strict) {
        const ModelDims& dims = dec.dims();
        const offload::Mode m = unwrap(offload::parse_mode(str_arg(mode, "decoder_offload")));
        offload::PlanSettings settings;
        settings.api = unwrap(neuron::parse_api_choice(str_arg(api, "neuron_api")));
        settings.dma_heap = dma_heap ? *dma_heap : backends::default_dma_heap();
        settings.library.path = library ? *library : std::string();
        settings.strict = strict;
        std::vector<offload::SubgraphEntry> entries;
        size_t index = 0;
        for (const auto& item : subgraphs) entries.push_back(subgraph_entry(item, index++, dims));
        StatusOr<std::shared_ptr<offload::DecoderOffload>> plan = Status();
        {
          py::gil_scoped_release release;  // loading DLAs takes a while; callbacks re-acquire the GIL
          plan = offload::load_plan(dims, m, batches, entries, settings);
        }
        dec.set_offload(unwrap(std::move(plan)));
        return plan_to_list(*dec.offload());
      },
      py::arg("decoder"), py::arg("mode"), py::arg("batches"), py::arg("subgraphs"), py::arg("library") = py::none(),
      py::arg("dma_heap") = py::none(), py::arg("neuron_api") = "auto", py::arg("strict") = false,
      "Loads decoder subgraphs (neuron DLA files or Python callbacks) and installs the dispatch plan; returns it. "
      "A subgraph that fails to load leaves its op on the CPU with the reason (strict=True raises instead).");

  m.attr("DECODER_OFFLOAD_MODES") = py::tuple(py::cast(offload::mode_names()));
  m.def("resolve_decoder_offload",
        [](const py::handle& name) { return offload::mode_name(unwrap(offload::parse_mode(str_arg(name, "decoder_offload")))); },
        py::arg("name"), "The decoder_offload mode (InvalidOptionError naming the modes if unknown).");
  m.def(
      "decoder_offload_plan",
      [](const Decoder& dec) { return dec.offload() ? plan_to_list(*dec.offload()) : py::list(); },
      py::arg("decoder"));

  m.def(
      "decoder_offload_stats",
      [](const Decoder& dec) {
        const layers::ExecutionStats& s = dec.offload_stats();
        py::dict d;
        d["npu_calls"] = s.npu_calls;
        d["npu_macs"] = s.npu_macs;
        d["cpu_macs"] = s.cpu_macs;
        d["cpu_rows_other"] = s.cpu_rows_other;
        d["runner_seconds"] = s.runner_seconds;
        d["runner_cpu_seconds"] = s.runner_cpu_seconds;
        d["tokens"] = s.tokens;
        return d;
      },
      py::arg("decoder"));
  m.def("decoder_reset_offload_stats", [](Decoder& dec) { dec.reset_offload_stats(); }, py::arg("decoder"));
}

}  // namespace whisper_genio::python
