// libFuzzer target: model dimensions as a checkpoint's header declares them, validated, then the
// checkpoint schema built from them (model/model_dims.cc, model/checkpoint_schema.cc): valid
// dimensions must give a schema of positive shapes whose element counts do not overflow.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>

#include "whisper_genio/model.h"

using namespace whisper_genio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  ModelDims d;
  for (int* f : {&d.n_mels, &d.n_audio_ctx, &d.n_audio_state, &d.n_audio_head, &d.n_audio_layer, &d.n_vocab,
                 &d.n_text_ctx, &d.n_text_state, &d.n_text_head, &d.n_text_layer}) {
    *f = in.ConsumeBool() ? in.ConsumeIntegralInRange<int>(0, 64) : in.ConsumeIntegral<int>();
  }
  (void)d.to_string();
  if (!d.validate().ok()) return 0;
  for (const TensorSchema& s : checkpoint_schema(d)) {
    int64_t n = 1;
    for (int64_t k : s.shape) {
      if (k <= 0 || __builtin_mul_overflow(n, k, &n)) __builtin_trap();
    }
  }
  return 0;
}
