#include "whisper_genio/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WG_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define WG_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define WG_CPU_RELAX() ((void)0)
#endif

namespace whisper_genio {
namespace {

thread_local bool tl_inside_pool_worker = false;

// How long an idle worker spins before sleeping: back-to-back loops of a decoder step arrive
// within microseconds, while sleeping and waking costs tens of microseconds. Kept short so
// an idle model costs no CPU.
constexpr auto kSpinTime = std::chrono::microseconds(100);

bool pin_current_thread(int cpu) {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
#else
  (void)cpu;
  return false;
#endif
}

// Spin briefly, then yield: when the machine is oversubscribed a busy wait would steal the
// core from the very worker it waits for.
template <typename Pred>
void wait_until(Pred done) {
  for (int spin = 0; !done(); ++spin) {
    if (spin < 2000) {
      WG_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace

int default_thread_count() {
  unsigned hw = std::thread::hardware_concurrency();
  if (hw == 0) hw = 1;
  return static_cast<int>(std::min(4u, hw));
}

ThreadPool::ThreadPool(int num_threads, std::vector<int> cpus)
    : num_threads_(std::max(1, num_threads)), cpus_(std::move(cpus)) {
  if (!cpus_.empty()) {
    bool ok = pin_current_thread(cpus_[0]);
    affinity_report_ = ok ? "pinned" : "pinning failed";
  }
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back(&ThreadPool::worker_loop, this, i);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work_on(FunctionRef<void(int64_t)> task, int64_t n) {
  for (;;) {
    int64_t i = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n) break;
    task(i);
    done_tasks_.fetch_add(1, std::memory_order_release);
  }
}

void ThreadPool::worker_loop(int index) {
  tl_inside_pool_worker = true;
  if (!cpus_.empty()) pin_current_thread(cpus_[static_cast<size_t>(index) % cpus_.size()]);
  uint64_t seen = 0;
  for (;;) {
    // Wait for a new generation: spin first, then sleep.
    uint64_t gen = generation_.load(std::memory_order_acquire);
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    for (int spin = 1; gen == seen; ++spin) {
      WG_CPU_RELAX();
      gen = generation_.load(std::memory_order_acquire);
      if (spin % 64 == 0 && std::chrono::steady_clock::now() > spin_until) break;
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    // Snapshot the job under the lock and register as active; the caller clears task_
    // under the same lock and then waits for active workers, so a late waker either
    // sees no job or is waited for.
    const FunctionRef<void(int64_t)>* task = nullptr;
    int64_t n = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task = task_;
      n = n_tasks_;
      if (task != nullptr) active_workers_.fetch_add(1, std::memory_order_acq_rel);
    }
    if (task != nullptr) {
      work_on(*task, n);
      active_workers_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

void ThreadPool::run(int64_t n_tasks, FunctionRef<void(int64_t)> task) {
  if (n_tasks <= 0) return;
  if (num_threads_ == 1 || n_tasks == 1 || tl_inside_pool_worker) {
    for (int64_t i = 0; i < n_tasks; ++i) task(i);
    return;
  }
  std::lock_guard<std::mutex> submit(submit_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    done_tasks_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  tl_inside_pool_worker = true;  // nested loops from the task run inline on this thread too
  work_on(task, n_tasks);
  tl_inside_pool_worker = false;
  wait_until([&] { return done_tasks_.load(std::memory_order_acquire) >= n_tasks; });
  // Workers that woke late must not touch task_ after we return.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = nullptr;
  }
  wait_until([&] { return active_workers_.load(std::memory_order_acquire) == 0; });
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  // Every chunk gets at least `grain` items.
  int64_t chunks = std::min<int64_t>(num_threads_, std::max<int64_t>(1, n / grain));
  if (chunks <= 1) {
    body(0, n);
    return;
  }
  run(chunks, [&](int64_t c) {
    int64_t begin = n * c / chunks;
    int64_t end = n * (c + 1) / chunks;
    if (begin < end) body(begin, end);
  });
}

}  // namespace whisper_genio
