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
  // Storage of one layer owned elsewhere: K and V each [beams (of reset), capacity, d] floats.
  struct External {
    float* k = nullptr;
    float* v = nullptr;
  };

  // (Re)shapes the cache; keeps its memory when it is already large enough. Length = 0.
  // `external` (empty, or one entry per layer; null entries = own memory) places layers in
  // memory owned elsewhere, sized for exactly `beams` beams.
  Status reset(int n_layer, int beams, int capacity, int d, const std::vector<External>& external = {});

  int n_layer() const { return n_layer_; }
  int beams() const { return beams_; }
  int capacity() const { return capacity_; }
  int d() const { return d_; }
  int length() const { return length_; }
  void set_length(int length) { length_ = length; }

  float* keys(int layer, int beam) { return base_[layer * 2] + beam_offset(beam); }
  float* values(int layer, int beam) { return base_[layer * 2 + 1] + beam_offset(beam); }
  const float* keys(int layer, int beam) const { return base_[layer * 2] + beam_offset(beam); }
  const float* values(int layer, int beam) const { return base_[layer * 2 + 1] + beam_offset(beam); }
  bool is_external(int layer) const { return external_[layer]; }

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
  size_t beam_offset(int beam) const { return static_cast<size_t>(beam) * capacity_ * d_; }
  float* base(int layer, int kv) { return base_[static_cast<size_t>(layer) * 2 + kv]; }
  std::vector<float*> base_;     // [layer * 2 + kv]: beam 0 of that layer's K or V
  std::vector<bool> external_;   // per layer
  Buffer<float> data_;
  Buffer<float> spare_;
  int ext_beams_ = 0;
  int n_layer_ = 0, beams_ = 0, max_beams_ = 0, capacity_ = 0, d_ = 0, length_ = 0;
};

}  // namespace whisper_genio
