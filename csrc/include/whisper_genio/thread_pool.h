// One persistent pool of worker threads per model.
//
// Per-token decoding issues hundreds of small parallel loops per second, so workers are
// created once and woken per loop (a short spin, then a condition variable), never spawned
// per call. The calling thread takes part in every loop, so `num_threads` counts it.
// Loops submitted from inside a worker run inline (no nested parallelism, no deadlock).
// Thread-safe: concurrent callers are serialised.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "whisper_genio/function_ref.h"

namespace whisper_genio {

// Threads per pool at most. The kernels split work into at most a few hundred blocks and the
// decoder is bound by memory bandwidth: threads beyond the cores only add contention, and
// each costs a stack. 256 covers every board and server this runs on.
inline constexpr int kMaxThreads = 256;

class ThreadPool {
 public:
  // num_threads >= 1 (1 = everything runs on the caller). cpus: optional CPU ids to pin
  // threads to (caller first); empty = no pinning.
  explicit ThreadPool(int num_threads, std::vector<int> cpus = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls task(i) for every i in [0, n_tasks), spread over the pool; returns when all ran.
  void run(int64_t n_tasks, FunctionRef<void(int64_t)> task);

  // Splits [0, n) into at most num_threads contiguous ranges of at least `grain` items and
  // calls body(begin, end) on each.
  void parallel_for(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> body);

  // Pins the calling thread to `cpus_` (first entry); workers pin themselves at start.
  // Returns a description of what happened (pinning can fail in containers).
  std::string affinity_report() const { return affinity_report_; }

 private:
  void worker_loop(int index);
  void work_on(FunctionRef<void(int64_t)> task, int64_t n);

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
};

// Default thread count: min(4, hardware threads), as whisper.cpp argues for small boards.
int default_thread_count();

}  // namespace whisper_genio
