#include "whisper_genio/kv_cache.h"

#include <cstring>

namespace whisper_genio {

Status KVCache::reset(int n_layer, int beams, int capacity, int d, const std::vector<External>& external) {
  if (n_layer <= 0 || beams <= 0 || capacity <= 0 || d <= 0) return invalid_argument("KV cache shape must be positive");
  if (!external.empty() && static_cast<int>(external.size()) != n_layer) {
    return invalid_argument("KV cache: external storage must list every layer");
  }
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
  ext_beams_ = external.empty() ? 0 : beams;  // external buffers hold exactly this many beams
  base_.assign(static_cast<size_t>(n_layer) * 2, nullptr);
  external_.assign(static_cast<size_t>(n_layer), false);
  for (int l = 0; l < n_layer; ++l) {
    const bool ext = !external.empty() && external[l].k != nullptr && external[l].v != nullptr;
    external_[l] = ext;
    base_[l * 2] = ext ? external[l].k : data_.data() + offset(l, 0, 0);
    base_[l * 2 + 1] = ext ? external[l].v : data_.data() + offset(l, 1, 0);
  }
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
        if (source[b] != b) std::memcpy(spare_.data() + offset(layer, kv, b), base(layer, kv) + beam_offset(source[b]), rows);
      }
      for (int b = 0; b < beams_; ++b) {
        if (source[b] != b) std::memcpy(base(layer, kv) + beam_offset(b), spare_.data() + offset(layer, kv, b), rows);
      }
    }
  }
  return Status::Ok();
}

Status KVCache::broadcast_first(int beams) {
  if (beams <= 0 || beams > max_beams_ || (ext_beams_ > 0 && beams > ext_beams_)) {
    return invalid_argument("broadcast: beam count exceeds the cache's capacity");
  }
  const size_t rows = static_cast<size_t>(length_) * d_ * sizeof(float);
  beams_ = beams;
  for (int layer = 0; layer < n_layer_; ++layer) {
    for (int kv = 0; kv < 2; ++kv) {
      for (int b = 1; b < beams_; ++b) std::memcpy(base(layer, kv) + beam_offset(b), base(layer, kv), rows);
    }
  }
  return Status::Ok();
}

}  // namespace whisper_genio
