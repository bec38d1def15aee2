// Status and StatusOr: how every fallible C++ call reports failure.
//
// The core never throws across its public API and never exits the process (but for a
// programming error: StatusOr::value() without a value aborts). A failed call
// returns a Status whose code says what kind of failure it was; only the Python binding
// (csrc/python/errors.cc) turns it into an exception, one mapping for the whole library.
#pragma once

#include <string>
#include <utility>

namespace whisper_genio {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // a caller passed a bad value (option out of range, wrong shape)
  kNotFound,          // a file, symbol or library does not exist
  kBadModel,          // weights or a model file are truncated, corrupt or mismatched
  kUnavailable,       // a backend cannot run here (library missing, no device)
  kVersionMismatch,   // a runtime library or file has an unsupported version
  kRuntimeError,      // a backend failed while running
  kOutOfMemory,
  kInternal,          // a bug in whisper_genio
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status bad_model(std::string m) { return {StatusCode::kBadModel, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status runtime_error(std::string m) { return {StatusCode::kRuntimeError, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

namespace detail {
[[noreturn]] void die_on_missing_value(const Status& status);
}  // namespace detail

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  StatusOr(T value) : value_(std::move(value)), has_value_(true) {}  // NOLINT

  bool ok() const { return has_value_; }
  const Status& status() const { return status_; }
  // The value; asking for it when there is none is a bug in the caller: it aborts, naming the
  // status, rather than hand out a default-constructed value.
  T& value() & {
    check_has_value();
    return value_;
  }
  T&& value() && {
    check_has_value();
    return std::move(value_);
  }
  T* operator->() {
    check_has_value();
    return &value_;
  }

 private:
  void check_has_value() const {
    if (!has_value_) detail::die_on_missing_value(status_);
  }
  Status status_;
  T value_{};
  bool has_value_ = false;
};

}  // namespace whisper_genio

#define WG_CONCAT_INNER(a, b) a##b
#define WG_CONCAT(a, b) WG_CONCAT_INNER(a, b)

#define WG_RETURN_IF_ERROR(expr)                     \
  do {                                               \
    ::whisper_genio::Status wg_status_ = (expr);     \
    if (!wg_status_.ok()) return wg_status_;         \
  } while (0)

#define WG_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#define WG_ASSIGN_OR_RETURN(lhs, expr) WG_ASSIGN_OR_RETURN_IMPL(WG_CONCAT(wg_or_, __LINE__), lhs, expr)
