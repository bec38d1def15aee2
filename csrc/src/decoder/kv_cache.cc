#include "whisper_genio/kv_cache.h"

#include <cstring>

namespace whisper_genio {

Status KVCache::reset(int n_layer, int beams, int capacity, int d) {
  if (n_layer <= 0 || beams <= 0 || capacity <= 0 || d <= 0) return invalid_argument("KV cache shape must be positive");
  const size_t need = static_cast<size_t>(n_layer) * 2 * beams * capacity * d;
  if (data_.size() < need || n_layer != n_layer_ || capacity != capacity_ || d != d_ || beams > max_beams_) {
    if (!data_.reset(need) || !spare_.reset(need)) {
      return Status(StatusCode::kOutOfMemory, "allocating the KV cache");
    }
    max_beams_ = beams;
  }
  n_layer_ = n_layer;
  beams_ = beams;
  capacity_ = capacity;
  d_ = d;
  length_ = 0;
  return Status::Ok();
}

Status KVCache::reorder(const std::vector<int>& source) {
  if (static_cast<int>(source.size()) != beams_) return invalid_argument("beam reorder: wrong number of beams");
  for (int s : source) {
    if (s < 0 || s >= beams_) return invalid_argument("beam reorder: source beam out of range");
  }
  const size_t rows = static_cast<size_t>(length_) * d_ * sizeof(float);
  if (rows == 0) return Status::Ok();
  // Read every moved source first (into the spare), then write: sources may be overwritten.
  for (int layer = 0; layer < n_layer_; ++layer) {
    for (int kv = 0; kv < 2; ++kv) {
      for (int b = 0; b < beams_; ++b) {
        if (source[b] != b) std::memcpy(spare_.data() + offset(layer, kv, b), data_.data() + offset(layer, kv, source[b]), rows);
      }
      for (int b = 0; b < beams_; ++b) {
        if (source[b] != b) std::memcpy(data_.data() + offset(layer, kv, b), spare_.data() + offset(layer, kv, b), rows);
      }
    }
  }
  return Status::Ok();
}

Status KVCache::broadcast_first(int beams) {
  if (beams <= 0 || beams > max_beams_) return invalid_argument("broadcast: beam count exceeds the cache's capacity");
  const size_t rows = static_cast<size_t>(length_) * d_ * sizeof(float);
  beams_ = beams;
  for (int layer = 0; layer < n_layer_; ++layer) {
    for (int kv = 0; kv < 2; ++kv) {
      for (int b = 1; b < beams_; ++b) std::memcpy(data_.data() + offset(layer, kv, b), data_.data() + offset(layer, kv, 0), rows);
    }
  }
  return Status::Ok();
}

}  // namespace whisper_genio
