// Python -> C++ argument conversion at the boundary: NumPy views with dtype and layout checks,
// and scalars whose errors name the option they belong to.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "../src/backends/tensor_io.h"
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

// A Python int (not a bool) in [lo, hi], else an InvalidOptionError naming the option.
inline long long int_arg(const py::handle& v, const std::string& name, long long lo = std::numeric_limits<int>::min(),
                         long long hi = std::numeric_limits<int>::max()) {
  if (!PyIndex_Check(v.ptr()) || PyBool_Check(v.ptr())) {  // int and numpy integers pass
    throw_status(invalid_argument(name + " must be an integer, got " + std::string(py::repr(v))));
  }
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
  if (!i) PyErr_Clear();
  int overflow = 0;
  const long long x = i ? PyLong_AsLongLongAndOverflow(i.ptr(), &overflow) : 0;
  if (i && overflow == 0 && x >= lo && x <= hi) return x;
  throw_status(invalid_argument(name + " " + std::string(py::repr(v)) + " is out of range [" + std::to_string(lo) +
                                ", " + std::to_string(hi) + "]"));
}

// A Python int in [0, 2**64).
inline uint64_t uint64_arg(const py::handle& v, const std::string& name) {
  if (PyIndex_Check(v.ptr()) && !PyBool_Check(v.ptr())) {
    py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
    const unsigned long long x = i ? PyLong_AsUnsignedLongLong(i.ptr()) : 0;
    if (i && !PyErr_Occurred()) return x;
    PyErr_Clear();
  }
  throw_status(invalid_argument(name + " must be an integer in [0, 2**64), got " + std::string(py::repr(v))));
}

// A Python int or float (not a bool, not a string). NaN and infinities pass: ranges are the
// validator's, which names them.
inline double float_arg(const py::handle& v, const std::string& name) {
  if (PyNumber_Check(v.ptr()) && !PyBool_Check(v.ptr())) {  // int, float, numpy scalars
    const double x = PyFloat_AsDouble(v.ptr());
    if (!PyErr_Occurred()) return x;
    PyErr_Clear();
  }
  throw_status(invalid_argument(name + " must be a number, got " + std::string(py::repr(v))));
}

inline std::string str_arg(const py::handle& v, const std::string& name) {
  if (PyUnicode_Check(v.ptr())) return v.cast<std::string>();
  throw_status(invalid_argument(name + " must be a string, got " + std::string(py::repr(v))));
}

inline bool bool_arg(const py::handle& v, const std::string& name) {
  if (PyBool_Check(v.ptr())) return v.ptr() == Py_True;
  throw_status(invalid_argument(name + " must be True or False, got " + std::string(py::repr(v))));
}

template <typename T, typename Convert>
std::optional<T> optional_arg(const py::handle& v, Convert convert) {
  if (v.is_none()) return std::nullopt;
  return static_cast<T>(convert(v));
}

// A device tensor {"name", "shape", "dtype", "scale", "zero_point", "transposed", "padded_shape"} (missing keys keep
// `defaults`; other keys are ignored), validated; errors are ModelLoadErrors naming `where` and the key.
inline backends::TensorSpec tensor_spec_arg(const py::handle& obj, const std::string& where,
                                            backends::TensorSpec t = {}) {
  auto fail = [&](const std::string& what) -> void { throw_status(bad_model(where + ": " + what)); };
  if (!py::isinstance<py::dict>(obj)) fail("a tensor must be a dict, got " + std::string(py::repr(obj)));
  const py::dict d = py::reinterpret_borrow<py::dict>(obj);
  auto get = [&](const char* key) -> py::object { return d.contains(key) ? d[key] : py::object(py::none()); };
  try {
    if (!get("name").is_none()) t.name = str_arg(get("name"), where + ".name");
    if (!get("shape").is_none()) {
      if (!py::isinstance<py::list>(get("shape")) && !py::isinstance<py::tuple>(get("shape"))) {
        fail("shape must be a list of integers, got " + std::string(py::repr(get("shape"))));
      }
      t.shape.clear();
      for (const auto& v : get("shape")) t.shape.push_back(int_arg(v, where + ".shape", 1, int64_t{1} << 40));
    }
    if (!get("dtype").is_none()) t.dtype = unwrap(backends::parse_io_dtype(str_arg(get("dtype"), where + ".dtype")));
    if (!get("scale").is_none()) t.scale = static_cast<float>(float_arg(get("scale"), where + ".scale"));
    if (!get("zero_point").is_none()) t.zero_point = static_cast<int32_t>(int_arg(get("zero_point"), where + ".zero_point"));
    if (!get("transposed").is_none()) t.transposed = bool_arg(get("transposed"), where + ".transposed");
    if (!get("padded_shape").is_none()) {
      if (!py::isinstance<py::list>(get("padded_shape")) && !py::isinstance<py::tuple>(get("padded_shape"))) {
        fail("padded_shape must be a list of integers, got " + std::string(py::repr(get("padded_shape"))));
      }
      t.padded_shape.clear();
      for (const auto& v : get("padded_shape")) {
        t.padded_shape.push_back(int_arg(v, where + ".padded_shape", 1, int64_t{1} << 40));
      }
    }
  } catch (py::error_already_set& e) {  // a converter's InvalidOptionError: the manifest is at fault
    if (!e.matches(PyExc_ValueError)) throw;
    const std::string message = py::str(e.value());
    fail(message);
  }
  Status s = t.validate();
  if (!s.ok()) fail(s.message());
  return t;
}

// ModelDims from the Python dict of ModelDims.to_dict(), validated.
inline ModelDims dims_from_dict(const py::dict& d) {
  ModelDims m;
  auto get = [&](const char* key) -> int {
    if (!d.contains(key)) throw_status(bad_model(std::string("model dimensions lack '") + key + "'"));
    const py::handle v = d[key];
    if (!PyLong_Check(v.ptr()) || PyBool_Check(v.ptr())) {
      throw_status(bad_model(std::string("model dimension ") + key + " must be a positive integer, got " +
                             std::string(py::repr(v))));
    }
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (overflow != 0 || x > std::numeric_limits<int>::max() || x < std::numeric_limits<int>::min()) {
      throw_status(bad_model(std::string("model dimension ") + key + " is out of range: " + std::string(py::repr(v))));
    }
    return static_cast<int>(x);
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
