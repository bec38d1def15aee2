// Self-attention key/value cache of the text decoder.
//
// Fixed capacity (n_text_ctx positions) allocated once and reused across windows; the
// length grows by one position per generated token. Layout per layer: K then V, each
// [beams, capacity, d], so a beam's history is contiguous. Beam search reorders beams in
// place through a spare buffer of the same size: no allocation per step.
#pragma once

#include <cstdint>
#include <vector>

#include "whisper_genio/buffer.h"
#include "whisper_genio/status.h"

namespace whisper_genio {

class KVCache {
 public:
  // (Re)shapes the cache; keeps its memory when it is already large enough. Length = 0.
  Status reset(int n_layer, int beams, int capacity, int d);

  int n_layer() const { return n_layer_; }
  int beams() const { return beams_; }
  int capacity() const { return capacity_; }
  int d() const { return d_; }
  int length() const { return length_; }
  void set_length(int length) { length_ = length; }

  float* keys(int layer, int beam) { return data_.data() + offset(layer, 0, beam); }
  float* values(int layer, int beam) { return data_.data() + offset(layer, 1, beam); }
  const float* keys(int layer, int beam) const { return data_.data() + offset(layer, 0, beam); }
  const float* values(int layer, int beam) const { return data_.data() + offset(layer, 1, beam); }

  // Beam i takes the history of beam source[i] (source.size() == beams). Only beams whose
  // source differs are copied.
  Status reorder(const std::vector<int>& source);

  // Widens a cache filled for beam 0 alone to `beams` identical beams (after the prompt has
  // been run once). Requires beams <= the beams given to reset().
  Status broadcast_first(int beams);

  // Bytes of memory held (both buffers), for reports.
  size_t bytes() const { return (data_.size() + spare_.size()) * sizeof(float); }

 private:
  size_t offset(int layer, int kv, int beam) const {
    return ((static_cast<size_t>(layer) * 2 + kv) * max_beams_ + beam) * static_cast<size_t>(capacity_) * d_;
  }
  Buffer<float> data_;
  Buffer<float> spare_;
  int n_layer_ = 0, beams_ = 0, max_beams_ = 0, capacity_ = 0, d_ = 0, length_ = 0;
};

}  // namespace whisper_genio
