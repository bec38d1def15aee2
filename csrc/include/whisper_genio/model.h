// Model dimensions and the weights handed over from Python.
//
// Python parses every checkpoint format (OpenAI .pt, Hugging Face, CTranslate2) into one set
// of named arrays with openai-whisper's state_dict names; C++ checks each name, shape and
// dtype against the dimensions and converts to its compute layout. A model is never
// half-built: construction either succeeds completely or returns a kBadModel status that
// names the tensor and what is wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "whisper_genio/status.h"

namespace whisper_genio {

struct ModelDims {
  int n_mels = 0;
  int n_audio_ctx = 0;
  int n_audio_state = 0;
  int n_audio_head = 0;
  int n_audio_layer = 0;
  int n_vocab = 0;
  int n_text_ctx = 0;
  int n_text_state = 0;
  int n_text_head = 0;
  int n_text_layer = 0;

  Status validate() const;
  std::string to_string() const;
};

enum class DType { kFloat32, kFloat16 };

// A borrowed, C-contiguous array. Only read during model construction, one row at a time
// (data need not be aligned: checkpoint records are often unpadded).
struct TensorRef {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  // data lies in a read-only mapping of the weights file. The loader then drops the pages of
  // each tensor once converted (madvise), so peak memory holds the converted weights plus one
  // tensor, not the whole file as well; touched again, the pages come back from the file.
  bool file_mapped = false;

  int64_t numel() const;
};

// Gives the whole pages inside [data, data + bytes) of a read-only file mapping back to the
// kernel (no-op where madvise is unavailable). Never call it on anonymous memory: its contents
// would be lost.
void release_mapped_pages(const void* data, size_t bytes);

using TensorMap = std::unordered_map<std::string, TensorRef>;

// One tensor of a checkpoint: its openai-whisper state_dict name and exact shape.
struct TensorSchema {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor of a Whisper checkpoint with these dimensions, in openai-whisper's state_dict
// order: the one definition of the checkpoint layout (the loaders in Python read it too).
std::vector<TensorSchema> checkpoint_schema(const ModelDims& dims);

// Precision of the weights on the CPU (faster-whisper's compute_type): float32, float16
// storage (computed in float32), or int8 (symmetric per output channel; the decoder's
// per-token products run int8 x int8 with dynamically quantised activations).
enum class ComputeType { kFloat32, kFloat16, kInt8 };

// "auto", "float32", "float16", "int8". "auto" is float32, whose tokens are openai-whisper's.
std::vector<std::string> compute_type_names();
StatusOr<ComputeType> parse_compute_type(const std::string& name);
const char* compute_type_name(ComputeType type);

// IEEE half -> float, exact for every value including subnormals, inf and NaN.
float half_to_float(uint16_t h);
// float -> IEEE half, round to nearest even; overflow gives inf, NaN stays NaN.
uint16_t float_to_half(float f);

}  // namespace whisper_genio
