// whisper_genio-specific helpers for the C++ tests: Status checks and deterministic random data.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "wg_test.h"
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

template <typename S>
Result check_ok(const S& s, const char* expr) {
  if (is_ok(s)) return Result::pass();
  return Result::fail(std::string("  ") + expr + " is not ok: " + status_of(s).to_string());
}

template <typename S>
Result check_code(const S& s, whisper_genio::StatusCode code, const char* expr) {
  if (!is_ok(s) && status_of(s).code() == code) return Result::pass();
  return Result::fail(std::string("  ") + expr + " returned " +
                      (is_ok(s) ? std::string("ok") : status_of(s).to_string()) + ", expected status '" +
                      whisper_genio::status_code_name(code) + "'");
}

template <typename S>
Result check_not_ok(const S& s, const char* expr) {
  if (!is_ok(s)) return Result::pass();
  return Result::fail(std::string("  ") + expr + " returned ok, expected an error status");
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

#define EXPECT_OK(s) WG_TEST_EXPECT_(::wg_test::check_ok((s), #s))
#define ASSERT_OK(s) WG_TEST_ASSERT_(::wg_test::check_ok((s), #s))
#define EXPECT_NOT_OK(s) WG_TEST_EXPECT_(::wg_test::check_not_ok((s), #s))
#define ASSERT_NOT_OK(s) WG_TEST_ASSERT_(::wg_test::check_not_ok((s), #s))
#define EXPECT_STATUS(s, code) WG_TEST_EXPECT_(::wg_test::check_code((s), (code), #s))
#define ASSERT_STATUS(s, code) WG_TEST_ASSERT_(::wg_test::check_code((s), (code), #s))
