// NumPy <-> C++ views with dtype and layout checks at the boundary.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "errors.h"
#include "whisper_genio/model.h"

namespace whisper_genio::python {

namespace py = pybind11;

// A C-contiguous float32 array of the given rank (-1: any), or an InvalidOptionError.
inline py::array_t<float, py::array::c_style> as_float32(const py::handle& obj, const char* what, int ndim = -1) {
  auto arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!arr) throw_status(invalid_argument(std::string(what) + " must be convertible to a float32 array"));
  if (ndim >= 0 && arr.ndim() != ndim) {
    throw_status(invalid_argument(std::string(what) + " must have " + std::to_string(ndim) + " dimensions, got " +
                                  std::to_string(arr.ndim())));
  }
  return arr;
}

// ModelDims from the Python dict of ModelDims.to_dict(), validated.
inline ModelDims dims_from_dict(const py::dict& d) {
  ModelDims m;
  auto get = [&](const char* key) -> int {
    if (!d.contains(key)) throw_status(bad_model(std::string("model dimensions lack '") + key + "'"));
    return d[key].cast<int>();
  };
  m.n_mels = get("n_mels");
  m.n_audio_ctx = get("n_audio_ctx");
  m.n_audio_state = get("n_audio_state");
  m.n_audio_head = get("n_audio_head");
  m.n_audio_layer = get("n_audio_layer");
  m.n_vocab = get("n_vocab");
  m.n_text_ctx = get("n_text_ctx");
  m.n_text_state = get("n_text_state");
  m.n_text_head = get("n_text_head");
  m.n_text_layer = get("n_text_layer");
  check(m.validate());
  return m;
}

// True when arr is a read-only view of a read-only mmap.mmap (the checkpoint readers map weight
// files that way): its pages can be given back once converted, and re-read from the file.
inline bool is_read_only_file_mapping(const py::array& arr) {
  if (arr.writeable()) return false;
  py::object base = arr.base();
  while (py::isinstance<py::array>(base)) base = base.attr("base");
  const py::object mmap_type = py::module_::import("mmap").attr("mmap");
  if (base.is_none() || !py::isinstance(base, mmap_type)) return false;
  Py_buffer view;
  if (PyObject_GetBuffer(base.ptr(), &view, PyBUF_SIMPLE) != 0) {
    PyErr_Clear();
    return false;
  }
  const bool read_only = view.readonly != 0;  // ACCESS_READ; a copy-on-write map may hold edits
  PyBuffer_Release(&view);
  return read_only;
}

// Builds the borrowed TensorMap from {name: ndarray}; keeps the arrays alive in `keep`.
inline TensorMap tensor_map(const py::dict& tensors, py::list& keep) {
  TensorMap map;
  for (auto item : tensors) {
    const std::string name = py::str(item.first);
    py::array arr = py::reinterpret_borrow<py::array>(py::array::ensure(item.second));
    if (!arr) throw_status(bad_model("tensor '" + name + "' is not an array"));
    TensorRef ref;
    if (arr.dtype().is(py::dtype::of<float>())) {
      ref.dtype = DType::kFloat32;
    } else if (arr.dtype().kind() == 'f' && arr.dtype().itemsize() == 2) {
      ref.dtype = DType::kFloat16;
    } else {
      throw_status(bad_model("tensor '" + name + "' has dtype " + std::string(py::str(arr.dtype())) +
                             "; expected float32 or float16"));
    }
    if (!(arr.flags() & py::array::c_style)) {
      arr = py::array::ensure(arr, py::array::c_style);
    }
    for (py::ssize_t i = 0; i < arr.ndim(); ++i) ref.shape.push_back(arr.shape(i));
    ref.data = arr.data();
    ref.file_mapped = is_read_only_file_mapping(arr);
    keep.append(arr);
    map.emplace(name, ref);
  }
  return map;
}

}  // namespace whisper_genio::python
