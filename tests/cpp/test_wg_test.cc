// Self-test of the framework: every check must pass on true statements and record a failure
// (with the values in its message) on false ones; ASSERT_* must leave the test.
#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "wg_test.h"

namespace {

// Runs `body` with the framework's output captured; returns the failures it recorded and
// restores the running test's own failure count.
template <typename F>
int failures_of(F body, std::string* output = nullptr) {
  const int before = WG_TEST_FAILURES();
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  body();
  std::cout.rdbuf(old);
  const int n = WG_TEST_FAILURES() - before;
  wg_test::state().failures = before;
  if (output) *output = captured.str();
  return n;
}

bool reached_after_assert = false;

void failing_assert() {
  ASSERT_EQ(1, 2);
  reached_after_assert = true;
}

}  // namespace

TEST(passing_checks_record_nothing) {
  const int n = failures_of([] {
    EXPECT_TRUE(1 + 1 == 2);
    EXPECT_FALSE(1 + 1 == 3);
    EXPECT_EQ(3, 3);
    EXPECT_EQ(std::vector<int>({1, 2}), std::vector<int>({1, 2}));
    EXPECT_EQ(std::size_t{3}, 3);   // mixed signedness compares by value
    EXPECT_NE(-1, std::size_t{0xffffffffu});
    EXPECT_LT(-1, 1u);              // naive -1 < 1u is false
    EXPECT_LE(2, 2);
    EXPECT_GT(2.5, 2);
    EXPECT_GE(2, 2);
    EXPECT_NEAR(1.0, 1.0 + 1e-9, 1e-8);
    EXPECT_OK(whisper_genio::Status::Ok());
    EXPECT_STATUS(whisper_genio::invalid_argument("x"), whisper_genio::StatusCode::kInvalidArgument);
  });
  EXPECT_EQ(n, 0);
}

TEST(failing_checks_record_and_show_values) {
  std::string out;
  const int n = failures_of(
      [] {
        EXPECT_TRUE(false);
        EXPECT_FALSE(true);
        EXPECT_EQ(41, 42) << "context " << 7;
        EXPECT_NE(5, 5);
        EXPECT_LT(2, 1);
        EXPECT_LE(3, 2);
        EXPECT_GT(1, 1);
        EXPECT_GE(0, 1);
        EXPECT_NEAR(1.0, 1.1, 0.01);
        EXPECT_NEAR(std::nan(""), 0.0, 1.0);  // NaN never passes
        EXPECT_EQ(-1, std::size_t{0xffffffffffffffffull});
        EXPECT_OK(whisper_genio::bad_model("broken"));
        EXPECT_STATUS(whisper_genio::Status::Ok(), whisper_genio::StatusCode::kBadModel);
      },
      &out);
  EXPECT_EQ(n, 13);
  EXPECT_TRUE(out.find("41") != std::string::npos && out.find("42") != std::string::npos) << out;
  EXPECT_TRUE(out.find("context 7") != std::string::npos) << out;
  EXPECT_TRUE(out.find("broken") != std::string::npos) << out;
  EXPECT_TRUE(out.find("test_wg_test.cc:") != std::string::npos) << out;
}

TEST(assert_leaves_the_test) {
  reached_after_assert = false;
  const int n = failures_of(failing_assert);
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(reached_after_assert);
}

TEST(checks_evaluate_arguments_once) {
  int calls = 0;
  auto next = [&] { return ++calls; };
  EXPECT_EQ(next(), 1);
  EXPECT_NEAR(next(), 2.0, 0.0);
  EXPECT_EQ(calls, 2);
}

TEST(dangling_else_is_safe) {
  int branch = 0;
  if (branch == 1)
    EXPECT_TRUE(false);
  else
    branch = 2;
  EXPECT_EQ(branch, 2);
}
