// One persistent pool of worker threads per model.
//
// Per-token decoding issues hundreds of small parallel loops per second, so workers are
// created once and woken per loop (a short spin, then a condition variable), never spawned
// per call. The calling thread takes part in every loop, so `num_threads` counts it.
// Loops submitted from inside a worker run inline (no nested parallelism, no deadlock).
// Thread-safe: concurrent callers are serialised.
//
// Shared CPUs (an embedded app always has a UI, capture or camera thread beside it): work is
// handed out in chunks claimed one at a time, several per thread, so a worker that the
// scheduler has taken off its core holds up at most one small chunk while the others take
// the rest; and nobody spins while the pool looks contended (a spinner was itself descheduled,
// or the caller waited far longer than its own share took): waits go straight to sleep then,
// so the CPU goes to the threads doing the work.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "whisper_genio/function_ref.h"
#include "whisper_genio/status.h"

namespace whisper_genio {

// Threads per pool at most. The kernels split work into at most a few hundred blocks and the
// decoder is bound by memory bandwidth: threads beyond the cores only add contention, and
// each costs a stack. 256 covers every board and server this runs on.
inline constexpr int kMaxThreads = 256;

// Largest CPU id cpu_affinity accepts: the size of the kernel's CPU set that pinning uses.
inline constexpr int kMaxCpuId = 1023;

class ThreadPool {
 public:
  // num_threads >= 1 (1 = everything runs on the caller). cpus: optional CPU ids to pin
  // threads to (caller first); empty = no pinning. When a worker cannot be started (thread
  // or memory limits) the ones already started are stopped and joined and std::system_error
  // is thrown; create() returns that as a Status instead.
  explicit ThreadPool(int num_threads, std::vector<int> cpus = {});
  static StatusOr<std::shared_ptr<ThreadPool>> create(int num_threads, std::vector<int> cpus = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls task(i) for every i in [0, n_tasks), spread over the pool; returns when all ran.
  void run(int64_t n_tasks, FunctionRef<void(int64_t)> task);

  // Splits [0, n) into at most kChunksPerThread * num_threads contiguous ranges of at least
  // `grain` items and calls body(begin, end) on each (one range when num_threads is 1).
  void parallel_for(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> body);

  // Chunks per thread in parallel_for: enough that a descheduled worker strands little work,
  // few enough that claiming them costs nothing next to the work.
  static constexpr int64_t kChunksPerThread = 4;

  // Pins the calling thread to `cpus_` (first entry); workers pin themselves at start.
  // Returns a description of what happened (pinning can fail in containers).
  std::string affinity_report() const { return affinity_report_; }

 private:
  void worker_loop(int index);
  void work_on(FunctionRef<void(int64_t)> task, int64_t n);
  void stop_workers();
  // Blocks until done() holds: spins while the pool looks uncontended, then sleeps on
  // caller_cv_ (workers wake it when they make done() true).
  template <typename Pred>
  void caller_wait(Pred done);
  void notify_caller();
  bool contended() const;
  void mark_contended();

  int num_threads_;
  std::vector<std::thread> workers_;
  std::vector<int> cpus_;
  std::string affinity_report_;

  std::mutex submit_mutex_;  // serialises callers
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};

  // Current job; written under mutex_ by the (single, serialised) caller.
  const FunctionRef<void(int64_t)>* task_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int64_t> done_tasks_{0};
  std::atomic<int> active_workers_{0};

  // The caller's sleep while workers finish.
  std::mutex caller_mutex_;
  std::condition_variable caller_cv_;
  std::atomic<bool> caller_sleeping_{false};
  // Until when (steady clock, ns) waits skip spinning: set on signs of a shared CPU.
  std::atomic<int64_t> contended_until_ns_{0};
};

namespace testing {
// Test hook: makes the constructor's thread creation fail (std::system_error, EAGAIN) from the
// `n`-th worker on, as under `ulimit -u`; -1 turns it off. Not for production use.
void fail_thread_start_from(int n);
}  // namespace testing

// Default thread count: min(4, hardware threads), as whisper.cpp argues for small boards.
int default_thread_count();

}  // namespace whisper_genio
