// Thread pool and CPU facts.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "../src/kernels/cpu/isa.h"
#include "whisper_genio/thread_pool.h"

namespace py = pybind11;

namespace whisper_genio::python {

void register_runtime(py::module_& m) {
  py::class_<ThreadPool, std::shared_ptr<ThreadPool>>(m, "ThreadPool",
                                                      "Persistent worker threads shared by one model's encoder and decoder.")
      .def(py::init([](int threads, std::vector<int> cpus) {
             if (threads < 1) throw py::value_error("threads must be >= 1");
             return std::make_shared<ThreadPool>(threads, std::move(cpus));
           }),
           py::arg("threads"), py::arg("cpus") = std::vector<int>{})
      .def_property_readonly("num_threads", &ThreadPool::num_threads)
      .def_property_readonly("affinity", &ThreadPool::affinity_report);
  m.def("default_thread_count", &default_thread_count, "min(4, hardware threads)");
  m.def("isa", [] { return std::string(cpu::isa_name(cpu::active_isa())); }, "Kernel variant in use.");
  m.def("cpu_features", [] { return std::string(cpu::cpu_features()); });
}

}  // namespace whisper_genio::python
