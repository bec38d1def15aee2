#include "whisper_genio/status.h"

#include <cstdio>
#include <cstdlib>

namespace whisper_genio {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kBadModel: return "bad model";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kVersionMismatch: return "version mismatch";
    case StatusCode::kRuntimeError: return "runtime error";
    case StatusCode::kOutOfMemory: return "out of memory";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

namespace detail {
void die_on_missing_value(const Status& status) {
  std::fprintf(stderr, "whisper_genio: StatusOr::value() called without a value (%s)\n", status.to_string().c_str());
  std::abort();
}
}  // namespace detail

}  // namespace whisper_genio
