// The one place where a C++ Status becomes a Python exception.
#pragma once

#include <pybind11/pybind11.h>

#include "whisper_genio/status.h"

namespace whisper_genio::python {

// Raises the whisper_genio.errors class for status.code() (never returns).
[[noreturn]] void throw_status(const Status& status);

inline void check(const Status& status) {
  if (!status.ok()) throw_status(status);
}

template <typename T>
T unwrap(StatusOr<T>&& v) {
  if (!v.ok()) throw_status(v.status());
  return std::move(v).value();
}

}  // namespace whisper_genio::python
