// The extension module whisper_genio._core: registration only.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace whisper_genio::python {
void register_runtime(py::module_& m);
void register_audio(py::module_& m);
void register_model(py::module_& m);
void register_backends(py::module_& m);
void register_offload(py::module_& m);
void register_build_info(py::module_& m);
}  // namespace whisper_genio::python

PYBIND11_MODULE(_core, m) {
  m.doc() = "whisper_genio native core (C++): log-mel, CPU kernels, encoder backends, decode loop.";
  whisper_genio::python::register_runtime(m);
  whisper_genio::python::register_audio(m);
  whisper_genio::python::register_model(m);
  whisper_genio::python::register_backends(m);
  whisper_genio::python::register_offload(m);
  whisper_genio::python::register_build_info(m);
#ifdef WG_VERSION
  m.attr("__version__") = WG_VERSION;
#endif
}
