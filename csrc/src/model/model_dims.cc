#include <cstdint>
#include <cstring>
#include <sstream>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "whisper_genio/model.h"

namespace whisper_genio {

Status ModelDims::validate() const {
  const std::pair<const char*, int> fields[] = {
      {"n_mels", n_mels},           {"n_audio_ctx", n_audio_ctx},   {"n_audio_state", n_audio_state},
      {"n_audio_head", n_audio_head}, {"n_audio_layer", n_audio_layer}, {"n_vocab", n_vocab},
      {"n_text_ctx", n_text_ctx},   {"n_text_state", n_text_state}, {"n_text_head", n_text_head},
      {"n_text_layer", n_text_layer}};
  // The bound keeps every size computed from two dimensions (n_vocab x n_text_state, ...) far
  // inside int64 and in reach of real memory; the largest released model has dimensions < 52000.
  constexpr int kMaxDimension = 1 << 20;
  for (const auto& [name, value] : fields) {
    if (value <= 0 || value > kMaxDimension) {
      return bad_model(std::string("model dimension ") + name + " must be a positive integer <= " +
                       std::to_string(kMaxDimension) + ", got " + std::to_string(value));
    }
  }
  // Layers are stacked, not multiplied: the bound is what any Whisper-shaped model could have (the
  // largest released one has 32), so a hostile config can't ask for a million layers' schema.
  constexpr int kMaxLayers = 256;
  if (n_audio_layer > kMaxLayers || n_text_layer > kMaxLayers) {
    return bad_model("n_audio_layer and n_text_layer must be <= " + std::to_string(kMaxLayers) + ", got " +
                     std::to_string(n_audio_layer) + " and " + std::to_string(n_text_layer));
  }
  if (n_mels != 80 && n_mels != 128) return bad_model("n_mels must be 80 or 128, got " + std::to_string(n_mels));
  if (n_audio_state % n_audio_head != 0 || n_text_state % n_text_head != 0) {
    return bad_model("state width is not a multiple of the head count: n_audio_state " + std::to_string(n_audio_state) +
                     " / n_audio_head " + std::to_string(n_audio_head) + ", n_text_state " +
                     std::to_string(n_text_state) + " / n_text_head " + std::to_string(n_text_head));
  }
  if (n_audio_state != n_text_state) {
    return bad_model("n_audio_state (" + std::to_string(n_audio_state) + ") differs from n_text_state (" +
                     std::to_string(n_text_state) + ")");
  }
  return Status::Ok();
}

std::string ModelDims::to_string() const {
  std::ostringstream s;
  s << "ModelDims(n_mels=" << n_mels << ", n_audio_ctx=" << n_audio_ctx << ", n_audio_state=" << n_audio_state
    << ", n_audio_head=" << n_audio_head << ", n_audio_layer=" << n_audio_layer << ", n_vocab=" << n_vocab
    << ", n_text_ctx=" << n_text_ctx << ", n_text_state=" << n_text_state << ", n_text_head=" << n_text_head
    << ", n_text_layer=" << n_text_layer << ")";
  return s.str();
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void release_mapped_pages(const void* data, size_t bytes) {
#if defined(__unix__) || defined(__APPLE__)
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  // Best effort: a failure only means the pages stay resident until the mapping is closed.
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
#else
  (void)data;
  (void)bytes;
#endif
}

std::vector<std::string> compute_type_names() { return {"auto", "float32", "float16", "int8"}; }

StatusOr<ComputeType> parse_compute_type(const std::string& name) {
  if (name == "float32" || name == "auto") return ComputeType::kFloat32;
  if (name == "float16") return ComputeType::kFloat16;
  if (name == "int8") return ComputeType::kInt8;
  return invalid_argument("compute_type must be one of auto, float32, float16, int8; got '" + name + "'");
}

const char* compute_type_name(ComputeType type) {
  switch (type) {
    case ComputeType::kFloat32: return "float32";
    case ComputeType::kFloat16: return "float16";
    case ComputeType::kInt8: return "int8";
  }
  return "unknown";
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504: inf
  if (abs < 0x38800000u) {  // result is subnormal (or zero): shift the mantissa with rounding
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // below half of the smallest subnormal
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14..24
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((abs - 0x38000000u) >> 13);  // rebias exponent 127 -> 15
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace whisper_genio
