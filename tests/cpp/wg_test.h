// wg_test: the minimal unit-test framework of whisper_genio's C++ tests.
//
// Header-only, standard C++17 only, so that the tests cross-compile with nothing but the
// target's g++ (no gtest in a Yocto SDK) and run under qemu.
//
//   TEST(kv_cache_reorder) {
//     EXPECT_EQ(a, b) << "beam " << i;   // records a failure, the test goes on
//     ASSERT_TRUE(p != nullptr);         // records a failure and leaves the test
//     EXPECT_NEAR(x, 1.0, 1e-6);
//   }
//
// Checks: EXPECT_/ASSERT_ TRUE, FALSE, EQ, NE, LT, LE, GT, GE, NEAR. Each failure prints the
// file, line, the expression and the values involved, plus any message streamed after the
// macro. Tests whose name starts with DISABLED_ are listed but not run (unless
// --run-disabled is given).
//
// Exactly one translation unit defines WG_TEST_MAIN before including this header; it gets
// a main() that runs every registered test:
//   wg_tests                    run everything
//   wg_tests kv_cache beam      run tests whose id contains "kv_cache" or "beam"
//   wg_tests --list             list test ids ("<file stem>/<name>", e.g. test_kernels/dot)
//   wg_tests --run-disabled     also run DISABLED_ tests
// It prints one line per test and a summary, and exits non-zero when any test failed or a
// filter matched no test at all.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace wg_test {

// ---------------------------------------------------------------------------------------
// Registry

struct TestCase {
  std::string id;  // "<file stem>/<name>"
  std::string name;
  void (*fn)();
};

inline std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

inline std::string file_stem(const char* path) {
  std::string p(path);
  const size_t slash = p.find_last_of("/\\");
  if (slash != std::string::npos) p = p.substr(slash + 1);
  const size_t dot = p.find('.');
  if (dot != std::string::npos) p = p.substr(0, dot);
  return p;
}

struct Registrar {
  Registrar(const char* file, const char* name, void (*fn)()) {
    registry().push_back(TestCase{file_stem(file) + "/" + name, name, fn});
  }
};

// Per-test state.
struct State {
  int failures = 0;
  std::string current;
};

inline State& state() {
  static State s;
  return s;
}

// ---------------------------------------------------------------------------------------
// Value printing: numbers with enough digits to tell them apart, enums as integers,
// containers element by element, anything else streamable as itself.

template <typename T, typename = void>
struct is_streamable : std::false_type {};
template <typename T>
struct is_streamable<T, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

template <typename T, typename = void>
struct is_container : std::false_type {};
template <typename T>
struct is_container<T, std::void_t<decltype(std::declval<const T&>().begin()), decltype(std::declval<const T&>().end())>>
    : std::true_type {};

template <typename T>
void print_value(std::ostream& os, const T& v);

template <typename T>
void print_value_impl(std::ostream& os, const T& v) {
  using D = std::decay_t<T>;
  if constexpr (std::is_same_v<D, bool>) {
    os << (v ? "true" : "false");
  } else if constexpr (std::is_same_v<D, char> || std::is_same_v<D, signed char> || std::is_same_v<D, unsigned char>) {
    os << static_cast<int>(v);
  } else if constexpr (std::is_floating_point_v<D>) {
    std::ostringstream s;
    s << std::setprecision(std::numeric_limits<D>::max_digits10) << v;
    os << s.str();
  } else if constexpr (std::is_enum_v<D>) {
    os << "enum(" << static_cast<long long>(static_cast<std::underlying_type_t<D>>(v)) << ")";
  } else if constexpr (std::is_same_v<D, std::string> || std::is_same_v<D, const char*> || std::is_same_v<D, char*>) {
    os << '"' << v << '"';
  } else if constexpr (is_container<D>::value) {
    os << "{";
    size_t i = 0;
    for (const auto& e : v) {
      if (i == 32) {
        os << ", ...";
        break;
      }
      if (i++) os << ", ";
      print_value(os, e);
    }
    os << "}";
  } else if constexpr (is_streamable<D>::value) {
    os << v;
  } else {
    os << "<" << sizeof(D) << "-byte object>";
  }
}

template <typename T>
void print_value(std::ostream& os, const T& v) {
  print_value_impl(os, v);
}

template <typename T>
std::string to_text(const T& v) {
  std::ostringstream s;
  print_value(s, v);
  return s.str();
}

// ---------------------------------------------------------------------------------------
// Results of a check, and the reporting machinery behind the macros.

class Result {
 public:
  static Result pass() { return Result(true, {}); }
  static Result fail(std::string message) { return Result(false, std::move(message)); }
  explicit operator bool() const { return ok_; }
  const std::string& message() const { return message_; }

 private:
  Result(bool ok, std::string m) : ok_(ok), message_(std::move(m)) {}
  bool ok_;
  std::string message_;
};

// Extra context streamed after a macro: EXPECT_EQ(a, b) << "at index " << i;
class Message {
 public:
  template <typename T>
  Message& operator<<(const T& v) {
    print_value(ss_, v);
    return *this;
  }
  Message& operator<<(const char* s) {
    ss_ << s;
    return *this;
  }
  Message& operator<<(const std::string& s) {
    ss_ << s;
    return *this;
  }
  std::string str() const { return ss_.str(); }

 private:
  std::ostringstream ss_;
};

class Reporter {
 public:
  Reporter(const char* file, int line, const std::string& what, bool fatal)
      : file_(file), line_(line), what_(what), fatal_(fatal) {}
  // `=` binds looser than `<<`, so the whole streamed message arrives here.
  void operator=(const Message& m) const {
    ++state().failures;
    std::ostringstream s;
    s << file_ << ":" << line_ << ": " << (fatal_ ? "assertion" : "expectation") << " failed\n" << what_;
    const std::string extra = m.str();
    if (!extra.empty()) s << "\n  note: " << extra;
    std::cout << s.str() << std::endl;
  }

 private:
  const char* file_;
  int line_;
  const std::string& what_;
  bool fatal_;
};

inline Result check_bool(bool value, bool expected, const char* expr) {
  if (value == expected) return Result::pass();
  return Result::fail(std::string("  ") + expr + " is " + (value ? "true" : "false") + ", expected " +
                      (expected ? "true" : "false"));
}

template <typename A, typename B, typename Op>
Result check_cmp(const A& a, const B& b, const char* ea, const char* eb, const char* op, Op cmp) {
  if (cmp(a, b)) return Result::pass();
  std::ostringstream s;
  s << "  expected: " << ea << " " << op << " " << eb << "\n"
    << "  " << ea << " = " << to_text(a) << "\n"
    << "  " << eb << " = " << to_text(b);
  return Result::fail(s.str());
}

// Integer comparisons across signedness (C++17 stand-ins for C++20's std::cmp_*), so that
// EXPECT_EQ(vec.size(), 3) neither warns nor compares -1 equal to SIZE_MAX.
template <typename A, typename B>
constexpr bool both_integral() {
  return std::is_integral_v<A> && std::is_integral_v<B> && !std::is_same_v<A, bool> && !std::is_same_v<B, bool>;
}

template <typename A, typename B>
constexpr bool int_equal(A a, B b) {
  if constexpr (std::is_signed_v<A> == std::is_signed_v<B>) return a == b;
  else if constexpr (std::is_signed_v<A>) return a >= 0 && static_cast<std::make_unsigned_t<A>>(a) == b;
  else return b >= 0 && a == static_cast<std::make_unsigned_t<B>>(b);
}

template <typename A, typename B>
constexpr bool int_less(A a, B b) {
  if constexpr (std::is_signed_v<A> == std::is_signed_v<B>) return a < b;
  else if constexpr (std::is_signed_v<A>) return a < 0 || static_cast<std::make_unsigned_t<A>>(a) < b;
  else return b >= 0 && a < static_cast<std::make_unsigned_t<B>>(b);
}

struct Eq {
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    if constexpr (both_integral<A, B>()) return int_equal(a, b);
    else return a == b;
  }
};
struct Ne {
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const { return !Eq()(a, b); }
};
struct Lt {
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    if constexpr (both_integral<A, B>()) return int_less(a, b);
    else return a < b;
  }
};
struct Le {
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    if constexpr (both_integral<A, B>()) return !int_less(b, a);
    else return a <= b;
  }
};
struct Gt {
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const { return Lt()(b, a); }
};
struct Ge {
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const { return Le()(b, a); }
};

// |a - b| <= tol; NaN never passes (use EXPECT_TRUE(std::isnan(x)) for expected NaNs).
inline Result check_near(double a, double b, double tol, const char* ea, const char* eb, const char* et) {
  const double diff = std::fabs(a - b);
  if (diff <= tol) return Result::pass();
  std::ostringstream s;
  s << std::setprecision(10) << "  expected: |" << ea << " - " << eb << "| <= " << et << "\n"
    << "  " << ea << " = " << a << "\n"
    << "  " << eb << " = " << b << "\n"
    << "  difference = " << diff << ", tolerance = " << tol;
  return Result::fail(s.str());
}

// ---------------------------------------------------------------------------------------
// Running

inline int run_all(int argc, char** argv) {
  std::vector<std::string> filters;
  bool list = false, run_disabled = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--list") {
      list = true;
    } else if (a == "--run-disabled") {
      run_disabled = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: " << argv[0] << " [--list] [--run-disabled] [SUBSTRING...]\n"
                << "Runs the tests whose id (<file stem>/<name>) contains any SUBSTRING (all without one).\n";
      return 0;
    } else {
      filters.push_back(a);
    }
  }
  auto selected = [&](const TestCase& t) {
    if (filters.empty()) return true;
    for (const auto& f : filters) {
      if (t.id.find(f) != std::string::npos) return true;
    }
    return false;
  };
  auto disabled = [](const TestCase& t) { return t.name.rfind("DISABLED_", 0) == 0; };

  if (list) {
    for (const auto& t : registry()) {
      if (selected(t)) std::cout << t.id << (disabled(t) ? "  (disabled)" : "") << "\n";
    }
    return 0;
  }

  int passed = 0, skipped = 0, matched = 0;
  std::vector<std::string> failed;
  const auto t_all = std::chrono::steady_clock::now();
  for (const auto& t : registry()) {
    if (!selected(t)) continue;
    ++matched;
    if (disabled(t) && !run_disabled) {
      ++skipped;
      std::cout << "[ DISABLED ] " << t.id << std::endl;
      continue;
    }
    std::cout << "[ RUN      ] " << t.id << std::endl;
    state().failures = 0;
    state().current = t.id;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      t.fn();
    } catch (const std::exception& e) {
      ++state().failures;
      std::cout << "unexpected exception: " << e.what() << std::endl;
    } catch (...) {
      ++state().failures;
      std::cout << "unexpected non-standard exception" << std::endl;
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (state().failures == 0) {
      ++passed;
      std::cout << "[       OK ] " << t.id << " (" << std::fixed << std::setprecision(1) << ms << " ms)" << std::endl;
    } else {
      failed.push_back(t.id);
      std::cout << "[  FAILED  ] " << t.id << " (" << state().failures << " failed check"
                << (state().failures == 1 ? "" : "s") << ", " << std::fixed << std::setprecision(1) << ms << " ms)"
                << std::endl;
    }
  }
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
  std::cout << "\n==== " << passed << " passed, " << failed.size() << " failed, " << skipped << " disabled ("
            << std::fixed << std::setprecision(2) << total_s << " s)" << std::endl;
  for (const auto& f : failed) std::cout << "FAILED: " << f << std::endl;
  if (matched == 0) {
    std::cout << "no test matches the filter" << std::endl;
    return 2;
  }
  return failed.empty() ? 0 : 1;
}

}  // namespace wg_test

// ---------------------------------------------------------------------------------------
// Macros

#define WG_TEST_CAT_INNER_(a, b) a##b
#define WG_TEST_CAT_(a, b) WG_TEST_CAT_INNER_(a, b)

#define TEST(name)                                                                          \
  static void WG_TEST_CAT_(wg_test_fn_, name)();                                            \
  static const ::wg_test::Registrar WG_TEST_CAT_(wg_test_reg_, name)(__FILE__, #name,       \
                                                                     &WG_TEST_CAT_(wg_test_fn_, name)); \
  static void WG_TEST_CAT_(wg_test_fn_, name)()

// A one-shot `for` instead of `if/else`: the macro is a single statement with no `else` to
// capture or to trigger -Wdangling-else in `if (c) EXPECT_TRUE(x); else ...`. The body runs
// once when the check failed (the update step then marks it passed, ending the loop).
#define WG_TEST_IF_FAILED_(result_expr) \
  for (::wg_test::Result wg_test_r_ = (result_expr); !wg_test_r_; wg_test_r_ = ::wg_test::Result::pass())

#define WG_TEST_EXPECT_(result_expr)                                                    \
  WG_TEST_IF_FAILED_(result_expr)                                                       \
  ::wg_test::Reporter(__FILE__, __LINE__, wg_test_r_.message(), false) = ::wg_test::Message()

#define WG_TEST_ASSERT_(result_expr)                                                           \
  WG_TEST_IF_FAILED_(result_expr)                                                              \
  return ::wg_test::Reporter(__FILE__, __LINE__, wg_test_r_.message(), true) = ::wg_test::Message()

#define WG_TEST_CMP_(a, b, op, Cmp) ::wg_test::check_cmp((a), (b), #a, #b, op, ::wg_test::Cmp())

#define EXPECT_TRUE(c) WG_TEST_EXPECT_(::wg_test::check_bool(static_cast<bool>(c), true, #c))
#define EXPECT_FALSE(c) WG_TEST_EXPECT_(::wg_test::check_bool(static_cast<bool>(c), false, #c))
#define EXPECT_EQ(a, b) WG_TEST_EXPECT_(WG_TEST_CMP_(a, b, "==", Eq))
#define EXPECT_NE(a, b) WG_TEST_EXPECT_(WG_TEST_CMP_(a, b, "!=", Ne))
#define EXPECT_LT(a, b) WG_TEST_EXPECT_(WG_TEST_CMP_(a, b, "<", Lt))
#define EXPECT_LE(a, b) WG_TEST_EXPECT_(WG_TEST_CMP_(a, b, "<=", Le))
#define EXPECT_GT(a, b) WG_TEST_EXPECT_(WG_TEST_CMP_(a, b, ">", Gt))
#define EXPECT_GE(a, b) WG_TEST_EXPECT_(WG_TEST_CMP_(a, b, ">=", Ge))
#define EXPECT_NEAR(a, b, tol) WG_TEST_EXPECT_(::wg_test::check_near((a), (b), (tol), #a, #b, #tol))

#define ASSERT_TRUE(c) WG_TEST_ASSERT_(::wg_test::check_bool(static_cast<bool>(c), true, #c))
#define ASSERT_FALSE(c) WG_TEST_ASSERT_(::wg_test::check_bool(static_cast<bool>(c), false, #c))
#define ASSERT_EQ(a, b) WG_TEST_ASSERT_(WG_TEST_CMP_(a, b, "==", Eq))
#define ASSERT_NE(a, b) WG_TEST_ASSERT_(WG_TEST_CMP_(a, b, "!=", Ne))
#define ASSERT_LT(a, b) WG_TEST_ASSERT_(WG_TEST_CMP_(a, b, "<", Lt))
#define ASSERT_LE(a, b) WG_TEST_ASSERT_(WG_TEST_CMP_(a, b, "<=", Le))
#define ASSERT_GT(a, b) WG_TEST_ASSERT_(WG_TEST_CMP_(a, b, ">", Gt))
#define ASSERT_GE(a, b) WG_TEST_ASSERT_(WG_TEST_CMP_(a, b, ">=", Ge))
#define ASSERT_NEAR(a, b, tol) WG_TEST_ASSERT_(::wg_test::check_near((a), (b), (tol), #a, #b, #tol))

// The number of failed checks so far in the running test (to stop a loop after the first
// failure instead of printing thousands).
#define WG_TEST_FAILURES() (::wg_test::state().failures)

#if defined(WG_TEST_MAIN)
int main(int argc, char** argv) { return ::wg_test::run_all(argc, argv); }
#endif
