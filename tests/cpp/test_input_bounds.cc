// Sizes from outside (a manifest, a runtime, a caller's argument) are checked before anything is
// allocated: products that overflow int64, and log-mel lengths past their bound, give a clear
// error instead of undefined behaviour or an unbounded allocation (issue 16; found by fuzzing).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../../csrc/src/backends/tensor_io.h"
#include "whisper_genio/audio.h"

using namespace whisper_genio;
using backends::IoDType;
using backends::TensorSpec;

namespace {

constexpr int64_t kBig = int64_t{1} << 62;

TEST(InputBounds, NumelOfAnOverflowingShapeIsMinusOne) {
  TensorSpec t;
  t.shape = {kBig + 1, 4};  // the fuzzer's reproducer: (2^62 + 1) * 4 overflows int64
  EXPECT_EQ(t.numel(), -1);
  EXPECT_EQ(t.bytes(), std::numeric_limits<size_t>::max());
  t.shape = {-3, 4};
  EXPECT_EQ(t.numel(), -1);
  t.shape = {int64_t{1} << 31, int64_t{1} << 31, 4};
  EXPECT_EQ(t.numel(), -1);
  t.shape = {3, 4};
  EXPECT_EQ(t.numel(), 12);
  EXPECT_EQ(t.bytes(), 48u);
  t.shape = {int64_t{1} << 61, 1};  // 2^61 float32 elements: 2^63 bytes still fit size_t
  EXPECT_EQ(t.numel(), int64_t{1} << 61);
  t.dtype = IoDType::kFloat32;
  EXPECT_EQ(t.bytes(), size_t{1} << 63);
  t.shape = {int64_t{1} << 62, 1};  // 2^62 float32 elements: 2^64 bytes overflow size_t
  EXPECT_EQ(t.bytes(), std::numeric_limits<size_t>::max());
}

TEST(InputBounds, CheckedProducts) {
  EXPECT_EQ(backends::checked_numel({}), 1);
  EXPECT_EQ(backends::checked_numel({std::numeric_limits<int64_t>::max(), 1}), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(backends::checked_numel({std::numeric_limits<int64_t>::max(), 2}), -1);
  EXPECT_EQ(backends::checked_bytes(-1, IoDType::kInt8), std::numeric_limits<size_t>::max());
  EXPECT_EQ(backends::checked_bytes(5, IoDType::kInt16), 10u);
}

TEST(InputBounds, ValidateRefusesOverflowingShapesWithAMessage) {
  TensorSpec t;
  t.name = "states";
  t.shape = {kBig + 1, 4};
  Status s = t.validate();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("too large"), std::string::npos) << s.message();
  // A negative padded dimension used to reach a signed overflow in the padded product before
  // the shape was checked (fuzz_tensor_io).
  t.shape = {-5, 3};
  t.padded_shape = {std::numeric_limits<int64_t>::min() / 2, -8};
  s = t.validate();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("non-positive"), std::string::npos) << s.message();
  t.shape = {3, 4};
  t.padded_shape = {int64_t{1} << 30, int64_t{1} << 30};
  s = t.validate();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("padded shape is too large"), std::string::npos) << s.message();
}

TEST(InputBounds, PaddedDimsFromTheRuntimeDoNotOverflow) {
  // The folded reading multiplies three uint32 leading dimensions, past int64: refused, not wrapped.
  const uint32_t p4[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 64};
  auto r = backends::padded_shape_from_dims({6, 32}, p4);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("do not hold"), std::string::npos);
}

TEST(InputBounds, SizeMismatchOfAnOverflowingSpecIsDescribed) {
  TensorSpec t;
  t.shape = {kBig + 1, 4};
  EXPECT_FALSE(backends::describe_size_mismatch(16, t).empty());
}

TEST(InputBounds, LogMelRefusesHugePaddingBeforeAllocating) {
  auto fe = MelFrontEnd::create(80);
  ASSERT_TRUE(fe.ok());
  std::vector<float> x(16, 0.1f);
  for (int64_t pad : {kMaxMelSamples, kBig, std::numeric_limits<int64_t>::max()}) {
    auto r = log_mel_spectrogram(*fe.value(), x.data(), 16, pad, nullptr);
    ASSERT_FALSE(r.ok()) << pad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("MelWindows"), std::string::npos) << r.status().message();
  }
  // The bound itself is accepted (16 samples + padding up to it); a small case computes.
  auto ok = log_mel_spectrogram(*fe.value(), x.data(), 16, kNSamples, nullptr);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), static_cast<size_t>(80) * MelFrontEnd::frame_count(16 + kNSamples));
  EXPECT_FALSE(log_mel_spectrogram(*fe.value(), x.data(), -1, 0, nullptr).ok());
  EXPECT_FALSE(log_mel_spectrogram(*fe.value(), x.data(), 16, -1, nullptr).ok());
}

TEST(InputBounds, MelWindowsRefusesImpossibleLengths) {
  auto fe = MelFrontEnd::create(80);
  ASSERT_TRUE(fe.ok());
  std::vector<float> x(16, 0.1f);
  // No buffer of 2^62 samples exists: the length is refused before it is read or multiplied.
  for (int64_t n : {kBig, std::numeric_limits<int64_t>::max(), int64_t{-1}}) {
    EXPECT_FALSE(MelWindows::create(fe.value(), x.data(), n, nullptr).ok()) << n;
    EXPECT_FALSE(MelWindows::one_window(fe.value(), x.data(), n, nullptr).ok()) << n;
  }
  auto w = MelWindows::create(fe.value(), x.data(), 16, nullptr);
  ASSERT_TRUE(w.ok());
  std::vector<float> out(static_cast<size_t>(80) * kNFrames);
  EXPECT_TRUE(w->window(std::numeric_limits<int64_t>::max(), kNFrames, out.data(), nullptr).ok());
  EXPECT_EQ(out[0], 0.0f);  // past the end: zeros
  EXPECT_FALSE(w->window(0, kNFrames + 1, out.data(), nullptr).ok());
}

// The STAND-IN Neuron runtime's model-file reader (tests/cpp/standin): a header claiming sizes the
// file does not hold is refused (kBadData = 4) before anything is allocated; it used to allocate
// what the header said (64 GiB and more: found by fuzz_standin_model).
std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + name + "-" + std::to_string(getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return path;
}

template <typename T>
void put(std::string* s, T v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

TEST(InputBounds, StandinModelHeaderSizesAreCheckedAgainstTheFile) {
  void* h = dlopen(WG_STANDIN_FULL, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  using Create = int (*)(const void*, void**);
  using Load = int (*)(void*, const char*);
  using Release = void (*)(void*);
  auto create = reinterpret_cast<Create>(dlsym(h, "NeuronRuntime_create"));
  auto load = reinterpret_cast<Load>(dlsym(h, "NeuronRuntime_loadNetworkFromFile"));
  auto release = reinterpret_cast<Release>(dlsym(h, "NeuronRuntime_release"));
  ASSERT_TRUE(create && load && release);

  // Version 1: one lookup entry of 2^38 float32 outputs (1 TiB) in a 72-byte file.
  std::string v1 = "WGSTNDIN";
  for (uint32_t v : {1u, 0u, 0u, 0u}) put(&v1, v);  // version, kind, in dtype, out dtype
  put<uint64_t>(&v1, 4);
  put<uint64_t>(&v1, uint64_t{1} << 38);
  put(&v1, 1.0f);
  put<int32_t>(&v1, 0);
  put(&v1, 1.0f);
  put<int32_t>(&v1, 0);
  put(&v1, 1.0f);
  put(&v1, 0.0f);
  put<uint32_t>(&v1, 1);  // entries
  put<uint32_t>(&v1, 0);  // flags
  ASSERT_EQ(v1.size(), 72u);
  // Version 2 dense: a 65536 x 65536 float32 weight (16 GiB) in a 92-byte file.
  std::string v2 = "WGSTNDIN";
  for (uint32_t v : {2u, 2u, 1u, 1u}) put(&v2, v);  // version, kind dense, one input, one output
  for (int i = 0; i < 2; ++i) {
    put<uint32_t>(&v2, 0);
    put<int32_t>(&v2, 0);
    put(&v2, 1.0f);
    put<uint32_t>(&v2, 0);
    put<uint64_t>(&v2, uint64_t{65536} * 65536);
  }
  for (uint32_t v : {65536u, 65536u, 65536u, 0u}) put(&v2, v);  // rows, in, out, float32 weights
  for (const auto& [name, bytes] : {std::make_pair("v1", v1), std::make_pair("v2", v2)}) {
    const std::string path = write_file(std::string("standin-huge-") + name, bytes);
    void* rt = nullptr;
    ASSERT_EQ(create(nullptr, &rt), 0);
    EXPECT_EQ(load(rt, path.c_str()), 4) << name;  // kBadData, not an allocation of the claimed size
    release(rt);
    std::remove(path.c_str());
  }
  dlclose(h);
}

}  // namespace

