// whisper_genio-specific helpers for the C++ tests (GoogleTest): Status checks, the running
// test's failure count, and deterministic random data.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "whisper_genio/status.h"

namespace wg_test {

inline const whisper_genio::Status& status_of(const whisper_genio::Status& s) { return s; }
template <typename T>
const whisper_genio::Status& status_of(const whisper_genio::StatusOr<T>& s) {
  return s.status();
}
template <typename T>
bool is_ok(const whisper_genio::StatusOr<T>& s) {
  return s.ok();
}
inline bool is_ok(const whisper_genio::Status& s) { return s.ok(); }

// Predicate-formatters for EXPECT_PRED_FORMAT*: the expression's text and its status in the
// failure message.
template <typename S>
::testing::AssertionResult check_ok(const char* expr, const S& s) {
  if (is_ok(s)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " is not ok: " << status_of(s).to_string();
}

template <typename S>
::testing::AssertionResult check_code(const char* expr, const char* /*code_expr*/, const S& s,
                                      whisper_genio::StatusCode code) {
  if (!is_ok(s) && status_of(s).code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " returned "
                                       << (is_ok(s) ? std::string("ok") : status_of(s).to_string())
                                       << ", expected status '" << whisper_genio::status_code_name(code) << "'";
}

template <typename S>
::testing::AssertionResult check_not_ok(const char* expr, const S& s) {
  if (!is_ok(s)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " returned ok, expected an error status";
}

// The number of failed checks so far in the running test (to stop a loop after the first
// few failures instead of printing thousands).
inline int failure_count() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return 0;
  const ::testing::TestResult* result = info->result();
  int n = 0;
  for (int i = 0; i < result->total_part_count(); ++i) n += result->GetTestPartResult(i).failed() ? 1 : 0;
  return n;
}

// Deterministic pseudo-random data (the tests must give the same numbers on every platform:
// std::uniform_real_distribution is implementation-defined, so draw from mt19937 bits).
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  // Uniform in [lo, hi).
  double uniform(double lo = 0.0, double hi = 1.0) {
    const double u = static_cast<double>(g_() >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
  }
  int uniform_int(int lo, int hi_inclusive) {
    return lo + static_cast<int>(g_() % static_cast<uint64_t>(hi_inclusive - lo + 1));
  }
  std::vector<float> floats(size_t n, double lo = -1.0, double hi = 1.0) {
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(uniform(lo, hi));
    return v;
  }

 private:
  std::mt19937_64 g_;
};

}  // namespace wg_test

#define EXPECT_OK(s) EXPECT_PRED_FORMAT1(::wg_test::check_ok, s)
#define ASSERT_OK(s) ASSERT_PRED_FORMAT1(::wg_test::check_ok, s)
#define EXPECT_NOT_OK(s) EXPECT_PRED_FORMAT1(::wg_test::check_not_ok, s)
#define ASSERT_NOT_OK(s) ASSERT_PRED_FORMAT1(::wg_test::check_not_ok, s)
#define EXPECT_STATUS(s, code) EXPECT_PRED_FORMAT2(::wg_test::check_code, s, code)
#define ASSERT_STATUS(s, code) ASSERT_PRED_FORMAT2(::wg_test::check_code, s, code)
