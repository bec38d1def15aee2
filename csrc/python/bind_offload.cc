// Decoder offload: subgraph runners (neuron DLAs, Python callbacks) and the dispatch plan.
// Conversion and GIL handling only; the plan is made in csrc/src/offload/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "../src/offload/decoder_offload.h"
#include "../src/offload/neuron_subgraph.h"
#include "convert.h"
#include "whisper_genio/decoding.h"

namespace py = pybind11;

namespace whisper_genio::python {

namespace {

using backends::TensorSpec;
using offload::Candidate;
using offload::OpKind;

TensorSpec tensor_spec(const py::dict& d, const std::string& where) {
  TensorSpec t;
  if (!d.contains("shape")) throw_status(bad_model(where + ": tensor without a shape"));
  if (d.contains("name") && !d["name"].is_none()) t.name = d["name"].cast<std::string>();
  t.shape = d["shape"].cast<std::vector<int64_t>>();
  if (d.contains("dtype") && !d["dtype"].is_none()) {
    auto dt = backends::parse_io_dtype(d["dtype"].cast<std::string>());
    if (!dt.ok()) throw_status(bad_model(where + ": " + dt.status().message()));
    t.dtype = dt.value();
  }
  if (d.contains("scale") && !d["scale"].is_none()) t.scale = d["scale"].cast<float>();
  if (d.contains("zero_point") && !d["zero_point"].is_none()) t.zero_point = d["zero_point"].cast<int32_t>();
  Status s = t.validate();
  if (!s.ok()) throw_status(bad_model(where + ": " + s.message()));
  return t;
}

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

// [out, in] of a linear op (vocab: cols) for width d.
void linear_shape(OpKind k, int64_t d, int64_t cols, int64_t* out, int64_t* in) {
  *in = k == OpKind::kFc2 ? 4 * d : d;
  *out = k == OpKind::kSelfQkv ? 3 * d : k == OpKind::kFc1 ? 4 * d : k == OpKind::kVocab ? cols : d;
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
      [](Decoder& dec, const std::string& mode_name, const std::vector<int>& batches, const py::list& subgraphs,
         const std::optional<std::string>& library, const std::optional<std::string>& dma_heap,
         const std::string& api, bool strict) {
        const ModelDims& dims = dec.dims();
        const int64_t d = dims.n_text_state;
        offload::Mode mode = unwrap(offload::parse_mode(mode_name));
        const offload::NeuronSubgraphConfig::Api napi = unwrap(neuron::parse_api_choice(api));
        std::vector<Candidate> cands;
        // Layer steps first: a layer whose step loads needs none of its linear subgraphs loaded.
        std::vector<std::pair<int, int>> stepped;  // (layer, batch)
        for (int pass = 0; pass < 2; ++pass) {
          for (const auto& item : subgraphs) {
            py::dict s = py::reinterpret_borrow<py::dict>(item);
            const bool is_step = s["op"].cast<std::string>() == "layer_step";
            if (is_step != (pass == 0)) continue;
            Candidate c;
            c.kind = unwrap(offload::parse_op_kind(s["op"].cast<std::string>()));
            c.layer = s.contains("layer") ? s["layer"].cast<int>() : -1;
            c.chunk = s.contains("chunk") ? s["chunk"].cast<int>() : -1;
            c.batch = s["batch"].cast<int>();
            c.col0 = s.contains("col0") ? s["col0"].cast<int64_t>() : 0;
            c.cols = s.contains("cols") ? s["cols"].cast<int64_t>() : 0;
            const std::string name = std::string(offload::op_kind_name(c.kind)) +
                                     (c.kind == OpKind::kVocab ? " chunk " + std::to_string(c.chunk)
                                                               : " layer " + std::to_string(c.layer)) +
                                     " batch " + std::to_string(c.batch);
            if (c.batch <= 0) throw_status(invalid_argument(name + ": batch must be positive"));
            if (mode == offload::Mode::kNone) continue;
            if (c.kind == OpKind::kLayerStep && mode == offload::Mode::kLinear) continue;
            if (c.kind != OpKind::kVocab &&
                std::find(stepped.begin(), stepped.end(), std::make_pair(c.layer, c.batch)) != stepped.end()) {
              continue;
            }
            if (s.contains("callback") && c.kind == OpKind::kLayerStep) {
              auto fn = keep_function(s["callback"].cast<py::function>());
              auto r = offload::CallbackLayerStep::create(
                  c.batch, d, dims.n_text_ctx, dims.n_audio_ctx,
                  layer_step_fn(fn, c.batch, d, dims.n_text_ctx, dims.n_audio_ctx, name), name);
              if (!r.ok()) throw_status(r.status());
              c.step = std::shared_ptr<offload::LayerStepRunner>(std::move(r).value());
              stepped.emplace_back(c.layer, c.batch);
              cands.push_back(std::move(c));
              continue;
            }
            if (s.contains("callback")) {
              int64_t out, in;
              linear_shape(c.kind, d, c.cols, &out, &in);
              auto r = offload::CallbackSubgraph::create(
                  c.batch, in, out, callback_fn(keep_function(s["callback"].cast<py::function>()), c.batch, in, out, name),
                  name);
              if (!r.ok()) throw_status(r.status());
              c.dense = std::shared_ptr<offload::SubgraphRunner>(std::move(r).value());
              cands.push_back(std::move(c));
              continue;
            }
            if (!s.contains("file") || !s.contains("inputs") || !s.contains("outputs")) {
              throw_status(invalid_argument(name + ": an entry needs 'file', 'inputs' and 'outputs' (or a 'callback')"));
            }
            offload::NeuronSubgraphConfig cfg;
            cfg.name = name;
            cfg.dla_path = s["file"].cast<std::string>();
            for (auto t : s["inputs"].cast<py::list>()) cfg.inputs.push_back(tensor_spec(t.cast<py::dict>(), name));
            for (auto t : s["outputs"].cast<py::list>()) cfg.outputs.push_back(tensor_spec(t.cast<py::dict>(), name));
            cfg.api = napi;
            cfg.dma_heap = dma_heap ? *dma_heap : backends::default_dma_heap();
            cfg.library.path = library ? *library : std::string();
            Status st;
            {
              py::gil_scoped_release release;
              if (c.kind == OpKind::kLayerStep) {
                auto r = offload::NeuronLayerStep::create(cfg, c.batch, d, dims.n_text_ctx, dims.n_audio_ctx);
                if (r.ok()) c.step = std::shared_ptr<offload::LayerStepRunner>(std::move(r).value());
                st = r.status();
              } else {
                int64_t out, in;
                linear_shape(c.kind, d, c.cols, &out, &in);
                auto r = offload::NeuronDense::create(cfg, c.batch, in, out);
                if (r.ok()) c.dense = std::shared_ptr<offload::SubgraphRunner>(std::move(r).value());
                st = r.status();
              }
            }
            if (!st.ok()) {
              if (strict) throw_status(st);
              c.error = st.message();  // this op falls back to the CPU, with the reason in the plan
            }
            if (c.step) stepped.emplace_back(c.layer, c.batch);
            cands.push_back(std::move(c));
          }
        }
        std::shared_ptr<offload::DecoderOffload> plan;
        {
          py::gil_scoped_release release;
          auto o = offload::DecoderOffload::create(dims, mode, batches, std::move(cands));
          if (o.ok()) plan = std::move(o).value();
          else {
            py::gil_scoped_acquire gil;
            throw_status(o.status());
          }
        }
        dec.set_offload(plan);
        return plan_to_list(*plan);
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
        const offload::OffloadStats& s = dec.offload_stats();
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
