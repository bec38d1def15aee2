#include "whisper_genio/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <new>
#include <string>
#include <system_error>

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
// A gap this long between two looks at the clock while spinning means the spinner was taken
// off its core: the CPU is shared, and spinning only takes time from the threads that work.
constexpr int64_t kPreemptedNs = 200'000;
// The caller waiting this long for stragglers (and longer than its own share took) means a
// worker was descheduled mid-chunk.
constexpr int64_t kStragglerNs = 1'000'000;
// How long one sign of contention turns spinning off. Contention keeps renewing it; once the
// CPU is ours again, spinning comes back this much later.
constexpr int64_t kContendedForNs = 50'000'000;

std::atomic<int> g_fail_thread_start_from{-1};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool pin_current_thread(int cpu) {
#if defined(__linux__)
  if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
#else
  (void)cpu;
  return false;
#endif
}

// Spins until done() or `budget_ns` passed; returns whether done() holds. *preempted is set
// when the spinner itself was descheduled meanwhile.
template <typename Pred>
bool spin_for(Pred done, int64_t budget_ns, bool* preempted) {
  if (budget_ns <= 0) return done();
  const int64_t start = now_ns();
  int64_t last = start;
  for (int spin = 1;; ++spin) {
    if (done()) return true;
    WG_CPU_RELAX();
    if (spin % 64 == 0) {
      const int64_t t = now_ns();
      if (t - last > kPreemptedNs) {
        *preempted = true;
        return done();
      }
      if (t - start > budget_ns) return done();
      last = t;
    }
  }
}

}  // namespace

namespace testing {
void fail_thread_start_from(int n) { g_fail_thread_start_from.store(n); }
}  // namespace testing

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
  try {
    workers_.reserve(num_threads_ - 1);
    for (int i = 1; i < num_threads_; ++i) {
      const int fail_from = g_fail_thread_start_from.load();
      if (fail_from >= 0 && i >= fail_from) {
        throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                "thread creation failed (test hook)");
      }
      workers_.emplace_back(&ThreadPool::worker_loop, this, i);
    }
  } catch (...) {
    // The destructor does not run for a half-built object: stop and join what started, or
    // ~std::thread on a joinable thread terminates the process (and the mutexes and condition
    // variables would be destroyed under waiting workers).
    stop_workers();
    throw;
  }
}

StatusOr<std::shared_ptr<ThreadPool>> ThreadPool::create(int num_threads, std::vector<int> cpus) {
  try {
    return std::make_shared<ThreadPool>(num_threads, std::move(cpus));
  } catch (const std::system_error& e) {
    return Status(StatusCode::kBadModel,
                  "could not start " + std::to_string(std::max(1, num_threads) - 1) + " worker threads (" +
                      e.code().message() +
                      "): the process's thread or memory limit is reached (ulimit -u, ulimit -v); load the model "
                      "with fewer threads");
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "out of memory while starting " + std::to_string(num_threads) + " threads");
  }
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

ThreadPool::~ThreadPool() { stop_workers(); }

bool ThreadPool::contended() const {
  return now_ns() < contended_until_ns_.load(std::memory_order_relaxed);
}

void ThreadPool::mark_contended() {
  contended_until_ns_.store(now_ns() + kContendedForNs, std::memory_order_relaxed);
}

void ThreadPool::notify_caller() {
  // Pairs with caller_wait(): the caller publishes caller_sleeping_ before its last look at
  // the counters, we publish the counters before looking at caller_sleeping_ (both seq_cst),
  // so one of the two sees the other.
  if (caller_sleeping_.load()) {
    std::lock_guard<std::mutex> lock(caller_mutex_);
    caller_cv_.notify_one();
  }
}

template <typename Pred>
void ThreadPool::caller_wait(Pred done) {
  bool preempted = false;
  if (spin_for(done, contended() ? 0 : kSpinTime.count() * 1000 / 2, &preempted)) return;
  if (preempted) mark_contended();
  std::unique_lock<std::mutex> lock(caller_mutex_);
  caller_sleeping_.store(true);
  caller_cv_.wait(lock, done);
  caller_sleeping_.store(false);
}

void ThreadPool::work_on(FunctionRef<void(int64_t)> task, int64_t n) {
  for (;;) {
    int64_t i = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n) break;
    task(i);
    if (done_tasks_.fetch_add(1) + 1 == n) notify_caller();
  }
}

void ThreadPool::worker_loop(int index) {
  tl_inside_pool_worker = true;
  if (!cpus_.empty()) pin_current_thread(cpus_[static_cast<size_t>(index) % cpus_.size()]);
  uint64_t seen = 0;
  for (;;) {
    // Wait for a new generation: spin first (unless the CPU looks shared), then sleep.
    bool preempted = false;
    const auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_for(fresh, contended() ? 0 : kSpinTime.count() * 1000, &preempted)) {
      if (preempted) mark_contended();
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, fresh);
    }
    seen = generation_.load(std::memory_order_acquire);
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
      if (task != nullptr) active_workers_.fetch_add(1);
    }
    if (task != nullptr) {
      work_on(*task, n);
      if (active_workers_.fetch_sub(1) == 1) notify_caller();
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
  const int64_t t0 = now_ns();
  tl_inside_pool_worker = true;  // nested loops from the task run inline on this thread too
  work_on(task, n_tasks);
  tl_inside_pool_worker = false;
  const int64_t t1 = now_ns();
  caller_wait([&] { return done_tasks_.load() >= n_tasks; });
  // A straggler held us up far longer than our own share took: a worker lost its core.
  const int64_t waited = now_ns() - t1;
  if (waited > kStragglerNs && waited > t1 - t0) mark_contended();
  // Workers that woke late must not touch task_ after we return.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = nullptr;
  }
  caller_wait([&] { return active_workers_.load() == 0; });
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (num_threads_ == 1 || tl_inside_pool_worker) {
    body(0, n);
    return;
  }
  // Every chunk gets at least `grain` items; several chunks per thread, claimed one at a
  // time, so that the threads that have a core take the chunks of one that lost it.
  int64_t chunks = std::min<int64_t>(num_threads_ * kChunksPerThread, std::max<int64_t>(1, n / grain));
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
