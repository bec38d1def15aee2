// libFuzzer target: the log-mel front end with fuzzed sizes (audio/mel.cc). n_mels, the padding,
// the window position and size are any integers; the samples are the input's bytes. Every call
// returns an error or a result, never a crash, an overflow or an unbounded allocation.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "whisper_genio/audio.h"

using namespace whisper_genio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int n_mels = in.ConsumeBool() ? (in.ConsumeBool() ? 80 : 128) : in.ConsumeIntegral<int>();
  auto fe = MelFrontEnd::create(n_mels);
  if (!fe.ok()) return 0;
  const int64_t zero_pad = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(-1, kSampleRate)
                                            : in.ConsumeIntegral<int64_t>();
  const int64_t seek = in.ConsumeIntegral<int64_t>(), wsize = in.ConsumeIntegralInRange<int64_t>(-1, kNFrames + 1);
  const bool one = in.ConsumeBool();
  // MelWindows always covers 30 s of padding (tens of ms per input under ASan): one input in 32
  // builds them, so the sizes above are tried at a useful rate.
  const bool windows = in.ConsumeIntegralInRange<int>(0, 31) == 31;  // not when the input ran out (0)
  std::vector<uint8_t> raw = in.ConsumeRemainingBytes<uint8_t>();
  std::vector<float> x(raw.size() / 4);
  if (!x.empty()) std::memcpy(x.data(), raw.data(), x.size() * 4);
  const int64_t n = static_cast<int64_t>(x.size());
  // Sizes past the bound must be refused; accepted ones are computed only up to one second of
  // audio, so that one input stays fast (the bound itself is far past that).
  if (zero_pad < 0 || zero_pad > kMaxMelSamples - n || n + zero_pad <= kSampleRate) {
    auto mel = log_mel_spectrogram(*fe.value(), x.data(), n, zero_pad, nullptr);
    if (mel.ok() != (zero_pad >= 0 && zero_pad <= kMaxMelSamples - n)) __builtin_trap();
    if (mel.ok() && mel->size() != static_cast<size_t>(n_mels * MelFrontEnd::frame_count(n + zero_pad))) __builtin_trap();
  }
  if (!windows) return 0;
  auto w = one ? MelWindows::one_window(fe.value(), x.data(), n, nullptr) : MelWindows::create(fe.value(), x.data(), n, nullptr);
  if (!w.ok()) __builtin_trap();  // a real buffer is always taken
  std::vector<float> out(static_cast<size_t>(n_mels) * kNFrames);
  (void)w->window(seek, wsize, out.data(), nullptr);
  (void)w->window(w->content_frames() > 0 ? seek % w->content_frames() : 0, kNFrames, out.data(), nullptr);
  return 0;
}
