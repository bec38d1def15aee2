// Thread pool and CPU facts; the kernels submodule (benchmarks compare our GEMM/GEMV with
// PyTorch's through it).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "../src/kernels/cpu/isa.h"
#include "../src/kernels/cpu/ops.h"
#include "../src/layers/weights.h"
#include "convert.h"
#include "whisper_genio/thread_pool.h"

namespace py = pybind11;

namespace whisper_genio::python {

void register_runtime(py::module_& m) {
  py::class_<ThreadPool, std::shared_ptr<ThreadPool>>(m, "ThreadPool",
                                                      "Persistent worker threads shared by one model's encoder and decoder.")
      .def(py::init([](const py::handle& threads, const py::handle& cpus) {
             const int n = static_cast<int>(int_arg(threads, "threads", 1, kMaxThreads));
             std::vector<int> ids;
             if (!py::isinstance<py::list>(cpus) && !py::isinstance<py::tuple>(cpus)) {
               throw_status(invalid_argument("cpu_affinity must be a list of CPU ids, got " + std::string(py::repr(cpus))));
             }
             for (const auto& c : cpus) ids.push_back(static_cast<int>(int_arg(c, "cpu_affinity", 0, kMaxCpuId)));
             StatusOr<std::shared_ptr<ThreadPool>> pool = [&] {
               py::gil_scoped_release release;
               return ThreadPool::create(n, std::move(ids));
             }();
             if (!pool.ok()) throw_status(pool.status());
             return std::move(pool).value();
           }),
           py::arg("threads"), py::arg("cpus") = std::vector<int>{})
      .def_property_readonly("num_threads", &ThreadPool::num_threads)
      .def_property_readonly("affinity", &ThreadPool::affinity_report);
  m.def("default_thread_count", &default_thread_count, "min(4, hardware threads)");
  m.def("isa", [] { return std::string(cpu::isa_name(cpu::active_isa())); }, "Kernel variant in use.");
  m.def("cpu_features", [] { return std::string(cpu::cpu_features()); });

  py::module_ k = m.def_submodule("kernels", "Direct access to the CPU kernels (benchmarks and tests).");
  // y = x w^T + bias through cpu::linear with float32 weights: sgemm for M > 8 rows, the
  // weight-streaming GEMV below.
  k.def(
      "linear_f32",
      [](const py::handle& x_obj, const py::handle& w_obj, std::shared_ptr<ThreadPool> pool) {
        auto x = as_float32(x_obj, "x", 2);
        auto w = as_float32(w_obj, "w", 2);
        if (x.shape(1) != w.shape(1)) throw_status(invalid_argument("x and w disagree on K"));
        const int64_t M = x.shape(0), N = w.shape(0), K = w.shape(1);
        py::array_t<float> y({M, N});
        cpu::WeightView v;
        v.data = w.data();
        v.n = N;
        v.k = K;
        const float* xp = x.data();
        float* yp = y.mutable_data();
        {
          py::gil_scoped_release release;
          cpu::linear(xp, M, v, nullptr, yp, N, pool.get());
        }
        return y;
      },
      py::arg("x"), py::arg("w"), py::arg("pool") = nullptr);

  // An int8 Linear as the model stores one: per-row symmetric int8 weights, the row-major
  // copy (GEMV) and the packed panels (GEMM) of the active kernels.
  py::class_<layers::Linear, std::shared_ptr<layers::Linear>>(k, "Int8Linear")
      .def(py::init([](const py::handle& w_obj) {
             auto w = as_float32(w_obj, "w", 2);
             auto lin = std::make_shared<layers::Linear>();
             lin->n = w.shape(0);
             lin->k = w.shape(1);
             check(lin->store(cpu::WeightType::kI8, w.data()));
             check(lin->pack_i8(/*keep_rows=*/true));
             return lin;
           }),
           py::arg("w"))
      .def_property_readonly("weight_bytes", [](const layers::Linear& l) { return static_cast<int64_t>(l.w8.size()); })
      .def(
          "forward",
          [](const layers::Linear& l, const py::handle& x_obj, const std::string& path, std::shared_ptr<ThreadPool> pool) {
            auto x = as_float32(x_obj, "x", 2);
            if (x.shape(1) != l.k) throw_status(invalid_argument("x has the wrong K"));
            const int64_t M = x.shape(0);
            cpu::WeightView v = l.view();
            if (path == "gemm") {
              v.data = nullptr;  // packed panels only: the int8 GEMM whatever M
            } else if (path == "gemv") {
              if (M > 8) throw_status(invalid_argument("the GEMV path takes at most 8 rows"));
              v.packed = nullptr;
            } else {
              throw_status(invalid_argument("path must be 'gemm' or 'gemv'"));
            }
            py::array_t<float> y({M, l.n});
            const float* xp = x.data();
            float* yp = y.mutable_data();
            {
              py::gil_scoped_release release;
              cpu::linear(xp, M, v, nullptr, yp, l.n, pool.get());
            }
            return y;
          },
          py::arg("x"), py::arg("path") = "gemm", py::arg("pool") = nullptr)
      .def_property_readonly("scales", [](const layers::Linear& l) {
        return py::array_t<float>(static_cast<py::ssize_t>(l.n), l.scales.data());
      });
}

}  // namespace whisper_genio::python
