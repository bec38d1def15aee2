#include "errors.h"

namespace py = pybind11;

namespace whisper_genio::python {

[[noreturn]] void throw_status(const Status& status) {
  py::gil_scoped_acquire gil;
  if (status.code() == StatusCode::kOutOfMemory) {
    PyErr_SetString(PyExc_MemoryError, status.message().c_str());
    throw py::error_already_set();
  }
  const char* cls = "WhisperGenioError";  // kInternal and anything unexpected
  switch (status.code()) {
    case StatusCode::kInvalidArgument: cls = "InvalidOptionError"; break;
    case StatusCode::kNotFound: cls = "ModelNotFoundError"; break;
    case StatusCode::kBadModel: cls = "ModelLoadError"; break;
    case StatusCode::kUnavailable: cls = "BackendUnavailableError"; break;
    case StatusCode::kVersionMismatch: cls = "RuntimeVersionError"; break;
    case StatusCode::kRuntimeError: cls = "InferenceError"; break;
    default: break;
  }
  py::object type = py::module_::import("whisper_genio.errors").attr(cls);
  PyErr_SetString(type.ptr(), status.message().c_str());
  throw py::error_already_set();
}

}  // namespace whisper_genio::python
