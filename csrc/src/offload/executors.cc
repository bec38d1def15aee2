#include "executors.h"

#include <cstring>
#include <ctime>

#include "../kernels/cpu/ops.h"

namespace whisper_genio::offload {

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double wall_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Runs `run` (one runner call doing `macs` multiply-accumulates) and counts it.
template <typename Run>
Status timed(layers::ExecutionStats& stats, int64_t macs, Run&& run) {
  const double c0 = thread_cpu_seconds(), w0 = wall_seconds();
  Status s = run();
  stats.runner_cpu_seconds += thread_cpu_seconds() - c0;
  stats.runner_seconds += wall_seconds() - w0;
  ++stats.npu_calls;
  stats.npu_macs += macs;
  return s;
}

}  // namespace

StatusOr<const float*> SubgraphLinear::run(int64_t rows, ThreadPool* /*pool*/) {
  WG_RETURN_IF_ERROR(timed(stats_, rows * runner_.in_features() * runner_.out_features(), [&] { return runner_.run(); }));
  return runner_.output();
}

Status SubgraphLayerStep::forward(float* x, const layers::Step& step, KVCache* cache, const layers::CrossKV& cross,
                                  ThreadPool* pool) {
  if (cache->keys(layer_, 0) != runner_.self_k() || cache->values(layer_, 0) != runner_.self_v()) {
    return fallback_.forward(x, step, cache, cross, pool);
  }
  const int64_t M = step.rows(), d = d_;
  const int C = runner_.n_ctx();
  const int pos = cache->length();
  // Positions [0, pos) of the cache are attended; the step attends to its own new k/v itself.
  // Row strides of the runner's views (0: contiguous); a padded DLA's rows are wider.
  auto stride = [](int64_t s, int64_t natural) { return s > 0 ? s : natural; };
  const int64_t ms = stride(runner_.input_stride(5), C), xs = stride(runner_.input_stride(0), d);
  float* mask = runner_.mask();
  for (int64_t b = 0; b < M; ++b) {
    for (int j = 0; j < C; ++j) mask[b * ms + j] = j < pos ? 0.0f : kMaskedScore;
  }
  for (int64_t b = 0; b < M; ++b) std::memcpy(runner_.x() + b * xs, x + b * d, static_cast<size_t>(d) * sizeof(float));
  const int64_t macs = M * (14 * d * d + 2 * (pos + 1) * d + 2 * cross.n_ctx * d);
  WG_RETURN_IF_ERROR(timed(stats_, macs, [&] { return runner_.run(); }));
  const int64_t os = stride(runner_.output_stride(0), d), ks = stride(runner_.output_stride(1), d),
                vs = stride(runner_.output_stride(2), d);
  for (int64_t b = 0; b < M; ++b) std::memcpy(x + b * d, runner_.x_out() + b * os, static_cast<size_t>(d) * sizeof(float));
  // The new position's keys/values: the only write to the cache this step.
  for (int64_t b = 0; b < M; ++b) {
    std::memcpy(cache->keys(layer_, static_cast<int>(b)) + static_cast<int64_t>(pos) * d, runner_.k_out() + b * ks,
                d * sizeof(float));
    std::memcpy(cache->values(layer_, static_cast<int>(b)) + static_cast<int64_t>(pos) * d, runner_.v_out() + b * vs,
                d * sizeof(float));
  }
  return Status::Ok();
}

void SubgraphLayerStep::set_window(const float* kv, int64_t n_audio) {
  // The step takes this window's cross K/V as [T, d] inputs: written once here.
  float* ck = runner_.cross_k();
  float* cv = runner_.cross_v();
  const int64_t ks = runner_.input_stride(3) > 0 ? runner_.input_stride(3) : d_;
  const int64_t vs = runner_.input_stride(4) > 0 ? runner_.input_stride(4) : d_;
  for (int64_t t = 0; t < n_audio; ++t) {
    std::memcpy(ck + t * ks, kv + t * 2 * d_, d_ * sizeof(float));
    std::memcpy(cv + t * vs, kv + t * 2 * d_ + d_, d_ * sizeof(float));
  }
}

Status ChunkedVocabulary::forward(const float* h, int64_t rows, float* logits, ThreadPool* pool) {
  const int64_t d = embedding_.k, V = embedding_.n;
  for (const auto& c : chunks_) {
    if (c.runner == nullptr) {
      // This chunk on the CPU: the embedding rows [col0, col0 + cols) as a weight of their own.
      cpu::WeightView part = embedding_.view();
      const size_t elem = part.type == cpu::WeightType::kF32 ? 4 : part.type == cpu::WeightType::kF16 ? 2 : 1;
      part.data = static_cast<const char*>(part.data) + static_cast<size_t>(c.col0 * d) * elem;
      if (part.scales != nullptr) part.scales += c.col0;
      part.packed = nullptr;  // packed int8 panels are not row-sliceable; the row-major copy is
      part.n = c.cols;
      cpu::linear(h, rows, part, nullptr, logits + c.col0, V, pool);
      stats_.cpu_macs += rows * c.cols * d;
      continue;
    }
    // Row by row at the runner's strides: a padded chunk is read in place.
    const int64_t is = c.runner->input_stride() > 0 ? c.runner->input_stride() : d;
    const int64_t os = c.runner->output_stride() > 0 ? c.runner->output_stride() : c.cols;
    for (int64_t i = 0; i < rows; ++i) {
      std::memcpy(c.runner->input() + i * is, h + i * d, static_cast<size_t>(d) * sizeof(float));
    }
    WG_RETURN_IF_ERROR(timed(stats_, rows * c.cols * d, [&] { return c.runner->run(); }));
    for (int64_t i = 0; i < rows; ++i) {
      std::memcpy(logits + i * V + c.col0, c.runner->output() + i * os, static_cast<size_t>(c.cols) * sizeof(float));
    }
  }
  return Status::Ok();
}

}  // namespace whisper_genio::offload
