// ThreadPool (csrc/src/util/thread_pool.cc): coverage of run(), nesting, concurrent callers,
// parallel_for partitions, shutdown. Every test that could hang on a bug runs under a
// deadline that fails the whole binary instead of waiting for CTest's timeout.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <system_error>
#include <ctime>

#include "test_util.h"
#include "whisper_genio/thread_pool.h"

using whisper_genio::ThreadPool;

namespace {

// Runs fn on a helper thread; if it has not finished after `seconds`, reports a deadlock
// and exits the process (a hung thread cannot be cancelled).
template <typename F>
void with_deadline(double seconds, const char* what, F fn) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread t([&] {
    fn();
    std::lock_guard<std::mutex> lock(m);
    done = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(m);
    if (!cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return done; })) {
      std::printf("DEADLOCK: %s did not finish within %.0f s\n", what, seconds);
      std::fflush(stdout);
      std::_Exit(3);
    }
  }
  t.join();
}

// Emulated runs (qemu) are slow; deadlines are generous.
constexpr double kDeadline = 120.0;

}  // namespace

TEST(ThreadPool, ThreadCounts) {
  EXPECT_EQ(ThreadPool(1).num_threads(), 1);
  EXPECT_EQ(ThreadPool(3).num_threads(), 3);
  EXPECT_EQ(ThreadPool(0).num_threads(), 1);   // clamped: the caller always takes part
  EXPECT_EQ(ThreadPool(-2).num_threads(), 1);
  const int d = whisper_genio::default_thread_count();
  EXPECT_GE(d, 1);
  EXPECT_LE(d, 4);
}

TEST(ThreadPool, RunCoversEveryIndexExactlyOnce) {
  with_deadline(kDeadline, "run() coverage", [] {
    for (int threads = 1; threads <= 4; ++threads) {
      ThreadPool pool(threads);
      for (int64_t n : {0, 1, 2, 3, 4, 5, 7, 8, 16, 31, 100, 1000, 10007}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        for (auto& h : hits) h.store(0);
        pool.run(n, [&](int64_t i) {
          if (i >= 0 && i < n) hits[static_cast<size_t>(i)].fetch_add(1);
        });
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; ++i) wrong += hits[static_cast<size_t>(i)].load() != 1;
        EXPECT_EQ(wrong, 0) << "threads " << threads << ", n " << n;
      }
      pool.run(-5, [&](int64_t) { EXPECT_TRUE(false) << "negative n must run nothing"; });
    }
  });
}

// The results of tasks are visible to the caller when run() returns (no missing writes).
TEST(ThreadPool, RunResultsVisibleAfterReturn) {
  with_deadline(kDeadline, "run() visibility", [] {
    ThreadPool pool(4);
    std::vector<int64_t> out(4096);
    for (int rep = 0; rep < 50; ++rep) {
      pool.run(static_cast<int64_t>(out.size()), [&](int64_t i) { out[static_cast<size_t>(i)] = i * rep; });
      int64_t wrong = 0;
      for (size_t i = 0; i < out.size(); ++i) wrong += out[i] != static_cast<int64_t>(i) * rep;
      EXPECT_EQ(wrong, 0) << "rep " << rep;
    }
  });
}

// A loop submitted from inside a task runs inline on that thread, to completion, without
// deadlocking on the pool it is already part of.
TEST(ThreadPool, NestedRunRunsInline) {
  with_deadline(kDeadline, "nested run()", [] {
    ThreadPool pool(3);
    const int outer = 12, inner = 9;
    std::vector<std::atomic<int>> hits(outer * inner);
    for (auto& h : hits) h.store(0);
    std::atomic<int> foreign_thread{0};
    pool.run(outer, [&](int64_t i) {
      const auto me = std::this_thread::get_id();
      pool.run(inner, [&](int64_t j) {
        if (std::this_thread::get_id() != me) foreign_thread.fetch_add(1);
        hits[static_cast<size_t>(i * inner + j)].fetch_add(1);
      });
      pool.parallel_for(inner, 1, [&](int64_t b, int64_t e) {
        if (std::this_thread::get_id() != me) foreign_thread.fetch_add(1);
        for (int64_t j = b; j < e; ++j) hits[static_cast<size_t>(i * inner + j)].fetch_add(1);
      });
    });
    int wrong = 0;
    for (auto& h : hits) wrong += h.load() != 2;
    EXPECT_EQ(wrong, 0);
    EXPECT_EQ(foreign_thread.load(), 0) << "nested loops must stay on the submitting thread";
  });
}

// Two threads submitting to one pool: every job is complete and jobs never overlap (the
// caller of one job is not running while tasks of another are).
TEST(ThreadPool, ConcurrentCallersAreSerialised) {
  with_deadline(kDeadline, "concurrent callers", [] {
    ThreadPool pool(3);
    std::atomic<int> running[2];
    running[0].store(0);
    running[1].store(0);
    std::atomic<int> overlaps{0};
    std::atomic<int> bad_jobs{0};
    auto caller = [&](int c) {
      std::vector<std::atomic<int>> hits(64);
      for (int job = 0; job < 200; ++job) {
        for (auto& h : hits) h.store(0);
        pool.run(64, [&](int64_t i) {
          running[c].fetch_add(1);
          if (running[1 - c].load() != 0) overlaps.fetch_add(1);
          hits[static_cast<size_t>(i)].fetch_add(1);
          for (volatile int spin = 0; spin < 200; spin = spin + 1) {
          }
          running[c].fetch_sub(1);
        });
        for (auto& h : hits) {
          if (h.load() != 1) {
            bad_jobs.fetch_add(1);
            break;
          }
        }
      }
    };
    std::thread a(caller, 0), b(caller, 1);
    a.join();
    b.join();
    EXPECT_EQ(bad_jobs.load(), 0);
    EXPECT_EQ(overlaps.load(), 0);
  });
}

// parallel_for splits [0, n) into at most kChunksPerThread * num_threads contiguous, disjoint, non-empty ranges.
TEST(ThreadPool, ParallelForPartitionsTheRange) {
  with_deadline(kDeadline, "parallel_for", [] {
    for (int threads = 1; threads <= 4; ++threads) {
      ThreadPool pool(threads);
      for (int64_t n : {0, 1, 2, 5, 63, 64, 65, 100, 1001}) {
        for (int64_t grain : {0, 1, 7, 64, 5000}) {
          std::mutex m;
          std::vector<std::pair<int64_t, int64_t>> ranges;
          pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
            std::lock_guard<std::mutex> lock(m);
            ranges.emplace_back(b, e);
          });
          std::sort(ranges.begin(), ranges.end());
          int64_t next = 0;
          bool ok = true;
          for (const auto& [b, e] : ranges) {
            ok = ok && b == next && e > b;
            next = e;
          }
          ok = ok && next == n;
          EXPECT_TRUE(ok) << "threads " << threads << " n " << n << " grain " << grain << " ranges " << ranges.size();
          EXPECT_LE(ranges.size(), static_cast<size_t>(threads == 1 ? 1 : threads * ThreadPool::kChunksPerThread));
          if (n == 0) {
            EXPECT_EQ(ranges.size(), 0u);
          }
        }
      }
    }
  });
}

// thread_pool.h promises ranges "of at least `grain` items"; the chunk count is computed as
// ceil(n / grain), which makes chunks smaller than grain (n = 100, grain = 64 -> 2 x 50).
// Disabled until thread_pool.cc uses floor(n / grain) (see the test report).
TEST(ThreadPool, ParallelForRespectsGrain) {
  ThreadPool pool(4);
  for (int64_t n : {65, 100, 127, 128, 1001}) {
    for (int64_t grain : {7, 64}) {
      std::mutex m;
      std::vector<int64_t> sizes;
      pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
        std::lock_guard<std::mutex> lock(m);
        sizes.push_back(e - b);
      });
      for (int64_t s : sizes) EXPECT_GE(s, std::min(n, grain)) << "n " << n << " grain " << grain;
    }
  }
}

TEST(ThreadPool, DestructorJoinsCleanly) {
  with_deadline(kDeadline, "pool destruction", [] {
    for (int rep = 0; rep < 40; ++rep) {
      for (int threads = 1; threads <= 4; ++threads) {
        { ThreadPool idle(threads); }  // destroyed right after its workers start
        ThreadPool used(threads);
        std::atomic<int64_t> sum{0};
        used.run(17, [&](int64_t i) { sum.fetch_add(i); });
        EXPECT_EQ(sum.load(), 136);
        if (rep % 2) std::this_thread::sleep_for(std::chrono::microseconds(200));  // let workers fall asleep
      }
    }
  });
}

TEST(ThreadPool, ManySmallJobsBackToBack) {
  with_deadline(kDeadline, "1000 small jobs", [] {
    ThreadPool pool(4);
    int64_t expected = 0;
    std::atomic<int64_t> total{0};
    for (int job = 0; job < 1000; ++job) {
      const int64_t n = 2 + job % 7;
      pool.run(n, [&](int64_t i) { total.fetch_add(i + 1); });
      expected += n * (n + 1) / 2;
      if (job % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // workers go to sleep
    }
    EXPECT_EQ(total.load(), expected);
  });
}

// Pinning may fail in containers; either way the pool reports it and still works. Done on a
// helper thread so that the test process's own affinity is untouched.
TEST(ThreadPool, PinnedPoolStillRuns) {
  with_deadline(kDeadline, "pinned pool", [] {
    ThreadPool pool(2, {0, 0});
    const std::string report = pool.affinity_report();
    EXPECT_TRUE(report == "pinned" || report == "pinning failed") << report;
    std::atomic<int> n{0};
    pool.run(10, [&](int64_t) { n.fetch_add(1); });
    EXPECT_EQ(n.load(), 10);
  });
}

// Thread creation failing half-way (ulimit -u, RLIMIT_AS; here the test hook) must stop and
// join the workers already started and report it, not deadlock in the destruction of a
// condition variable they wait on or terminate on a joinable std::thread.
TEST(ThreadPool, FailedThreadStartIsCleanedUp) {
  with_deadline(kDeadline, "failed thread start", [] {
    for (int rep = 0; rep < 20; ++rep) {
      for (int fail_from : {1, 2, 5}) {
        whisper_genio::testing::fail_thread_start_from(fail_from);
        bool threw = false;
        try {
          ThreadPool pool(8);
        } catch (const std::system_error& e) {
          threw = true;
          EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again);
        }
        EXPECT_TRUE(threw) << "fail_from " << fail_from;
        auto made = ThreadPool::create(8);
        whisper_genio::testing::fail_thread_start_from(-1);
        ASSERT_FALSE(made.ok());
        const std::string msg = made.status().message();
        EXPECT_NE(msg.find("could not start 7 worker threads"), std::string::npos) << msg;
        EXPECT_NE(msg.find("fewer threads"), std::string::npos) << msg;
      }
    }
    auto ok = ThreadPool::create(3);
    ASSERT_TRUE(ok.ok());
    std::atomic<int> n{0};
    ok.value()->run(10, [&](int64_t) { n.fetch_add(1); });
    EXPECT_EQ(n.load(), 10);
  });
}

// A worker that lost its core in the middle of a chunk strands only that chunk: the caller
// takes the others. Here a worker's first chunk stalls until three other chunks are done; with
// one chunk per thread that never happens (the test then fails on its 10 s wait).
TEST(ThreadPool, StalledWorkerStrandsOneChunk) {
  with_deadline(kDeadline, "stalled worker", [] {
    ThreadPool pool(2);
    const auto caller = std::this_thread::get_id();
    for (int rep = 0; rep < 5; ++rep) {
      std::atomic<int> done{0};
      std::atomic<bool> stalled{false}, gave_up{false};
      pool.parallel_for(64, 1, [&](int64_t, int64_t) {
        if (std::this_thread::get_id() != caller && !stalled.exchange(true)) {
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (done.load() < 3) {
            if (std::chrono::steady_clock::now() > until) {
              gave_up.store(true);
              break;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(100));
          }
        }
        done.fetch_add(1);
      });
      EXPECT_FALSE(gave_up.load()) << "rep " << rep << ": the caller did not take the stalled worker's share";
      EXPECT_EQ(done.load(), static_cast<int>(2 * ThreadPool::kChunksPerThread));
    }
  });
}

// While a straggler works, the caller sleeps instead of spinning or yielding in a loop: on a
// shared CPU that spinning takes the core from the very worker it waits for. The caller's own
// CPU time over a 300 ms wait stays far below the wait.
TEST(ThreadPool, CallerSleepsWhileWaitingForAStraggler) {
  with_deadline(kDeadline, "straggler wait", [] {
    ThreadPool pool(2);
    const auto caller = std::this_thread::get_id();
    std::atomic<bool> worker_took_one{false};
    timespec c0{}, c1{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    pool.run(2, [&](int64_t) {
      if (std::this_thread::get_id() == caller) {
        // Leave the other task to the worker, then wait for it.
        while (!worker_took_one.load()) std::this_thread::sleep_for(std::chrono::microseconds(100));
        return;
      }
      worker_took_one.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    });
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    const double cpu_ms = (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6;
    EXPECT_LT(cpu_ms, 100.0) << "the caller burned CPU while waiting for the worker";
  });
}
