// The Whisper audio encoder on CPU kernels: conv stem, sinusoidal positions, pre-LN
// transformer blocks, final LayerNorm. Exactly openai-whisper's AudioEncoder in float32.
#pragma once

#include <memory>
#include <mutex>

#include "weights.h"
#include "whisper_genio/buffer.h"
#include "whisper_genio/model.h"
#include "whisper_genio/thread_pool.h"

namespace whisper_genio::layers {

class AudioEncoder {
 public:
  static StatusOr<std::unique_ptr<AudioEncoder>> create(const ModelDims& dims, const TensorMap& tensors,
                                                      ComputeType type);

  // mel [n_mels, 2 * n_audio_ctx] -> out [positions, d]: the first `positions` (1..n_audio_ctx)
  // encoder positions, from mel frames [0, 2 * positions) and the frame after them (the conv's
  // right edge). All positions is openai-whisper's encoder; fewer is whisper.cpp's audio_ctx: the
  // positions attend to each other only, and the cost falls with their count. One call at a time
  // per instance (scratch memory is reused between calls).
  Status forward(const float* mel, int64_t positions, float* out, ThreadPool* pool);

  const ModelDims& dims() const { return dims_; }
  size_t weight_bytes() const { return w_.bytes(); }

 private:
  AudioEncoder() = default;
  ModelDims dims_;
  EncoderWeights w_;
  // Activations, allocated once: x [2T, d], h [T, d], big (see create), qkv [T, 3d].
  Buffer<float> x_, h_, big_, qkv_;
};

// Multi-head self-attention without mask over T positions. qkv [T, 3d] holds q | k | v per
// row; writes the concatenated head outputs to out [T, d].
void encoder_self_attention(const float* qkv, int64_t T, int64_t d, int64_t n_head, float* out, ThreadPool* pool);

}  // namespace whisper_genio::layers
