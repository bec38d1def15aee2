// Decoding steps allocate nothing after the first: every heap allocation of the process
// (operator new, and malloc/calloc/realloc/aligned_alloc/posix_memalign from our code, through
// the linker's --wrap) is counted while a decode runs, and the count must not depend on how
// many steps the decode takes. Its own executable, since it replaces operator new.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.h"
#include "tiny_model.h"
#include "whisper_genio/decoding.h"
#include "whisper_genio/thread_pool.h"

using namespace whisper_genio;
using namespace whisper_genio::testing;

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};

void count() {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* __real_malloc(size_t n);
void* __real_calloc(size_t n, size_t size);
void* __real_realloc(void* p, size_t n);
void* __real_aligned_alloc(size_t alignment, size_t n);
int __real_posix_memalign(void** p, size_t alignment, size_t n);

void* __wrap_malloc(size_t n) {
  count();
  return __real_malloc(n);
}
void* __wrap_calloc(size_t n, size_t size) {
  count();
  return __real_calloc(n, size);
}
void* __wrap_realloc(void* p, size_t n) {
  count();
  return __real_realloc(p, n);
}
void* __wrap_aligned_alloc(size_t alignment, size_t n) {
  count();
  return __real_aligned_alloc(alignment, n);
}
int __wrap_posix_memalign(void** p, size_t alignment, size_t n) {
  count();
  return __real_posix_memalign(p, alignment, n);
}
}

// Every form of operator new, so that nothing reaches the C++ runtime's own (the sanitizers'
// included), and every delete to match.
void* operator new(size_t n) {
  count();
  if (void* p = __real_malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, std::align_val_t a) {
  count();
  const size_t align = static_cast<size_t>(a);
  if (void* p = __real_aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  count();
  return __real_malloc(n == 0 ? 1 : n);
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

int64_t allocations_during(const std::function<void()>& fn) {
  g_allocations = 0;
  g_counting = true;
  fn();
  g_counting = false;
  return g_allocations.load();
}

DecodingOptions options_for(int sample_len) {
  DecodingOptions o;
  o.initial_tokens = {kSot, kLang, kTranscribe};
  o.sot_index = 0;
  o.sample_len = sample_len;
  o.blank_tokens = {0, kEot};
  o.suppress_tokens = {kSot, kLang, kTranscribe, kNoSpeech, kEot};  // no end: the decode runs sample_len steps
  o.eot = kEot;
  o.no_speech = kNoSpeech;
  o.no_timestamps = kNoTimestamps;
  o.timestamp_begin = kTimestampBegin;
  return o;
}

}  // namespace

void* volatile g_sink = nullptr;  // keeps the compiler from eliding the allocations below

TEST(Allocations, TheCounterCounts) {
  const int64_t n = allocations_during([] {
    std::vector<int> v(100);
    g_sink = std::malloc(8);
    std::free(g_sink);
    ASSERT_EQ(v.size(), 100u);
  });
  EXPECT_GE(n, 2);
}

// Greedy, sampling (best_of 3) and beam search (3 beams, with the timestamp rules): a decode of
// 12 steps allocates exactly what one of 2 steps does (the first step sizes everything).
TEST(Allocations, DecodeStepsAllocateNothingAfterTheFirst) {
  TinyModel m(5);
  auto pool = std::make_shared<ThreadPool>(2);
  auto dec = Decoder::create(m.dims(), m.map(), pool, ComputeType::kFloat32);
  ASSERT_OK(dec);
  std::vector<float> states(static_cast<size_t>(m.dims().n_audio_ctx * m.dims().n_audio_state));
  wg_test::Rng rng(3);
  for (float& v : states) v = rng.uniform_int(-64, 64) / 64.0f;
  ASSERT_OK(dec.value()->set_audio(EncoderStates{states.data(), m.dims().n_audio_ctx, m.dims().n_audio_state}));
  struct Case {
    const char* name;
    void (*set)(DecodingOptions&);
  };
  const Case cases[] = {
      {"greedy", [](DecodingOptions& o) { o.without_timestamps = true; }},
      {"sampling", [](DecodingOptions& o) { o.temperature = 1.0f; o.best_of = 3; o.without_timestamps = true; }},
      {"beam search", [](DecodingOptions& o) { o.beam_size = 3; o.patience = 1.0; }},
  };
  for (const Case& c : cases) {
    int64_t counts[2] = {0, 0};
    int steps[2] = {0, 0};
    DecodingOptions warm_up = options_for(2);
    c.set(warm_up);
    ASSERT_OK(dec.value()->decode(warm_up));  // what lives across decodes (the KV cache, scratch) is sized here
    for (int k = 0; k < 2; ++k) {
      DecodingOptions o = options_for(k == 0 ? 2 : 12);
      c.set(o);
      const int64_t calls0 = dec.value()->forward_calls();
      counts[k] = allocations_during([&] { ASSERT_OK(dec.value()->decode(o)); });
      steps[k] = static_cast<int>(dec.value()->forward_calls() - calls0);
    }
    EXPECT_EQ(steps[0], 2) << c.name;
    EXPECT_EQ(steps[1], 12) << c.name;
    EXPECT_EQ(counts[1], counts[0]) << c.name << ": " << counts[1] - counts[0] << " allocations in 10 more steps";
  }
}
