// The Neuron runtime loader, the "neuron" and "replay" encoder backends and device tensor I/O,
// against the STAND-IN Neuron runtime (tests/cpp/standin/neuron_standin.cc; NOT MediaTek's
// library): search order and override, required/optional symbols, version -> struct layouts,
// every error code's message, size checks, zero-copy buffer identity, failure injection with
// release always called, the input-latching self-test, quantized I/O, two models in two threads.
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "backends/neuron/dma_buffer.h"
#include "backends/neuron/neuron_encoder.h"
#include "backends/neuron/neuron_library.h"
#include "backends/neuron/runtime.h"
#include "backends/replay/replay_encoder.h"
#include "backends/tensor_io.h"
#include "offload/neuron_runners.h"
#include "test_util.h"

using namespace whisper_genio;
using namespace whisper_genio::backends;

#ifndef WG_STANDIN_FULL
#error "tests/cpp/CMakeLists.txt defines the stand-in library paths"
#endif

namespace {

// ---- the stand-in's control API, through dlopen of the same file the loader opens ----------
struct Standin {
  void* h = nullptr;
  void (*reset)() = nullptr;
  void (*set_version)(int, int, int) = nullptr;
  void (*fail)(const char*, int, int) = nullptr;
  void (*set_latch)(int) = nullptr;
  void (*set_io_count)(int, int) = nullptr;
  size_t (*log)(char*, size_t) = nullptr;
  void (*clear_log)() = nullptr;
  int (*calls)(const char*) = nullptr;
  int (*live)() = nullptr;

  explicit Standin(const char* path) {
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) return;
    bind("wg_standin_reset", &reset);
    bind("wg_standin_set_version", &set_version);
    bind("wg_standin_fail", &fail);
    bind("wg_standin_set_latch", &set_latch);
    bind("wg_standin_set_io_count", &set_io_count);
    bind("wg_standin_log", &log);
    bind("wg_standin_clear_log", &clear_log);
    bind("wg_standin_calls", &calls);
    bind("wg_standin_live", &live);
    reset();
  }
  ~Standin() {
    if (h != nullptr) dlclose(h);
  }
  template <typename F>
  void bind(const char* name, F* slot) {
    *slot = reinterpret_cast<F>(dlsym(h, name));
  }
  bool ok() const { return h != nullptr && reset && live && log; }
  std::vector<std::string> lines() const {
    const size_t n = log(nullptr, 0);
    std::string buf(n + 1, '\0');
    log(&buf[0], n + 1);
    std::vector<std::string> out;
    std::istringstream s(buf.c_str());
    for (std::string l; std::getline(s, l);) {
      if (!l.empty()) out.push_back(l);
    }
    return out;
  }
  std::vector<std::string> lines_of(const std::string& fn) const {
    std::vector<std::string> out;
    for (const auto& l : lines()) {
      if (l.compare(0, fn.size() + 1, fn + " ") == 0 || l == fn) out.push_back(l);
    }
    return out;
  }
};

std::string field(const std::string& line, const std::string& key) {
  const size_t p = line.find(" " + key + "=");
  if (p == std::string::npos) return "";
  const size_t b = p + key.size() + 2;
  const size_t e = line.find(' ', b);
  return line.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

std::string hexptr(const void* p) {
  char b[32];
  std::snprintf(b, sizeof(b), "%p", p);
  return b;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A scratch directory for model files.
std::string scratch() {
  static std::string dir;
  if (dir.empty()) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wg_neuron_XXXXXX";
    std::vector<char> t(tmpl.begin(), tmpl.end());
    t.push_back('\0');
    const char* d = mkdtemp(t.data());
    dir = d ? d : "/tmp";
  }
  return dir;
}

struct Io {
  uint32_t dtype = 0;  // stand-in codes: 0 f32, 1 f16, 2 i8, 3 u8, 4 i16
  float scale = 1.0f;
  int32_t zp = 0;
  // the stand-in's device layout (neuron_standin.cc): rows of `cols` held in rows of `padded_cols`
  uint32_t cols = 0, padded_cols = 0, fp16_native = 0;
};

// A stand-in model file: linear map out[j] = alpha * in[j % n_in] + beta.
std::string write_model(const std::string& name, uint64_t n_in, uint64_t n_out, Io in, Io out, float alpha, float beta) {
  const std::string path = scratch() + "/" + name;
  std::ofstream f(path, std::ios::binary);
  const uint32_t version = 1, kind = 0, n_entries = 0;
  const uint32_t flags = (in.padded_cols || in.fp16_native || out.padded_cols || out.fp16_native) ? 1 : 0;
  f.write("WGSTNDIN", 8);
  auto put = [&](const void* p, size_t n) { f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n)); };
  put(&version, 4);
  put(&kind, 4);
  put(&in.dtype, 4);
  put(&out.dtype, 4);
  put(&n_in, 8);
  put(&n_out, 8);
  put(&in.scale, 4);
  put(&in.zp, 4);
  put(&out.scale, 4);
  put(&out.zp, 4);
  put(&alpha, 4);
  put(&beta, 4);
  put(&n_entries, 4);
  put(&flags, 4);
  if (flags) {
    const uint32_t layout[6] = {in.cols, in.padded_cols, in.fp16_native, out.cols, out.padded_cols, out.fp16_native};
    put(layout, sizeof(layout));
  }
  return path;
}

ModelDims small_dims() {
  ModelDims d;
  d.n_mels = 80;
  d.n_audio_ctx = 1500;
  d.n_audio_state = 16;
  d.n_audio_head = 2;
  d.n_audio_layer = 1;
  d.n_vocab = 64;
  d.n_text_ctx = 8;
  d.n_text_state = 16;
  d.n_text_head = 2;
  d.n_text_layer = 1;
  return d;
}

constexpr int64_t kMel = 80 * 3000;
constexpr int64_t kStates = 1500 * 16;

NeuronEncoderConfig config_for(const std::string& model, const char* lib,
                               NeuronEncoderConfig::Api api = NeuronEncoderConfig::Api::kAuto) {
  NeuronEncoderConfig c;
  c.dims = small_dims();
  c.dla_path = model;
  c.input = NeuronEncoderConfig::default_input(c.dims);
  c.output = NeuronEncoderConfig::default_output(c.dims);
  c.api = api;
  c.dma_heap = "";  // host memory: deterministic on every machine
  c.library.path = lib;
  return c;
}

std::string float_model() { return write_model("linear_f32.dla", kMel, kStates, Io{}, Io{}, 2.0f, 0.5f); }

void fill_mel(float* mel, int k) {
  for (int64_t i = 0; i < kMel; ++i) mel[i] = static_cast<float>(std::sin(0.01 * static_cast<double>(i + 7 * k)));
}

}  // namespace

// ============================== loader ======================================================

TEST(Neuron, DefaultSearchOrder) {
  const std::vector<std::string> want = {"libneuronusdk_runtime.mtk.so", "libneuronusdk_runtime.mtk.so.8",
                                         "libneuronusdk_runtime.mtk.so.6", "libneuron_runtime.so"};
  EXPECT_EQ(neuron::default_library_names(), want);
}

TEST(Neuron, SearchOrderStopsAtTheFirstThatLoads) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  unsetenv(neuron::kLibraryEnv);
  neuron::LoadOptions o;
  o.names = {"/nonexistent/libneuronusdk_runtime.mtk.so", WG_STANDIN_NOV2, WG_STANDIN_FULL};
  auto lib = neuron::NeuronLibrary::load(o);
  ASSERT_OK(lib);
  EXPECT_EQ(lib.value()->path(), std::string(WG_STANDIN_NOV2));
  ASSERT_EQ(lib.value()->attempts().size(), size_t(2));
  EXPECT_TRUE(contains(lib.value()->attempts()[0], "/nonexistent/libneuronusdk_runtime.mtk.so"));
  EXPECT_TRUE(contains(lib.value()->attempts()[1], "loaded"));
  EXPECT_FALSE(lib.value()->has_v2());  // the V1-only variant
}

TEST(Neuron, NothingLoadsListsEveryAttemptAndTheFix) {
  unsetenv(neuron::kLibraryEnv);
  neuron::LoadOptions o;
  o.names = {"/nonexistent/a.so", "/nonexistent/b.so"};
  auto lib = neuron::NeuronLibrary::load(o);
  ASSERT_STATUS(lib, StatusCode::kUnavailable);
  const std::string& m = lib.status().message();
  EXPECT_TRUE(contains(m, "/nonexistent/a.so")) << m;
  EXPECT_TRUE(contains(m, "/nonexistent/b.so")) << m;
  EXPECT_TRUE(contains(m, "WHISPER_GENIO_NEURON_LIB")) << m;
}

TEST(Neuron, EnvironmentOverrideComesFirst) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  setenv(neuron::kLibraryEnv, WG_STANDIN_FULL, 1);
  neuron::LoadOptions o;
  o.names = {WG_STANDIN_NOV2};
  auto lib = neuron::NeuronLibrary::load(o);
  ASSERT_OK(lib);
  EXPECT_EQ(lib.value()->path(), std::string(WG_STANDIN_FULL));
  EXPECT_TRUE(lib.value()->has_v2());
  // An explicit path wins over the environment.
  o.path = WG_STANDIN_NOV2;
  auto lib2 = neuron::NeuronLibrary::load(o);
  ASSERT_OK(lib2);
  EXPECT_EQ(lib2.value()->path(), std::string(WG_STANDIN_NOV2));
  // A broken override is an error naming the variable, never silently replaced.
  setenv(neuron::kLibraryEnv, "/nonexistent/libneuron_override.so", 1);
  neuron::LoadOptions o3;
  o3.names = {WG_STANDIN_FULL};
  auto lib3 = neuron::NeuronLibrary::load(o3);
  ASSERT_STATUS(lib3, StatusCode::kUnavailable);
  EXPECT_TRUE(contains(lib3.status().message(), "WHISPER_GENIO_NEURON_LIB")) << lib3.status().message();
  EXPECT_TRUE(contains(lib3.status().message(), "/nonexistent/libneuron_override.so"));
  unsetenv(neuron::kLibraryEnv);
}

TEST(Neuron, MissingRequiredSymbolIsNamed) {
  neuron::LoadOptions o;
  o.path = WG_STANDIN_NOINFER;
  auto lib = neuron::NeuronLibrary::load(o);
  ASSERT_STATUS(lib, StatusCode::kUnavailable);
  EXPECT_TRUE(contains(lib.status().message(), "NeuronRuntime_inference")) << lib.status().message();
  EXPECT_TRUE(contains(lib.status().message(), "required")) << lib.status().message();
}

TEST(Neuron, OptionalSymbolsAreRecorded) {
  Standin s(WG_STANDIN_NOQOS);
  ASSERT_TRUE(s.ok());
  neuron::LoadOptions o;
  o.path = WG_STANDIN_NOQOS;
  auto lib = neuron::NeuronLibrary::load(o);
  ASSERT_OK(lib);
  const auto& missing = lib.value()->missing_optional();
  EXPECT_TRUE(std::find(missing.begin(), missing.end(), "NeuronRuntime_setQoSOption") != missing.end());
  EXPECT_TRUE(lib.value()->api().setQoSOption == nullptr);
  EXPECT_TRUE(lib.value()->api().getInputNumber != nullptr);
}

TEST(Neuron, VersionPicksLayouts) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  neuron::LoadOptions o;
  o.path = WG_STANDIN_FULL;
  s.set_version(3, 1, 0);
  auto old = neuron::NeuronLibrary::load(o);
  ASSERT_STATUS(old, StatusCode::kVersionMismatch);
  EXPECT_TRUE(contains(old.status().message(), "3.1.0")) << old.status().message();

  s.set_version(4, 2, 0);
  auto legacy = neuron::NeuronLibrary::load(o);
  ASSERT_OK(legacy);
  EXPECT_TRUE(legacy.value()->layout() == neuron::StructLayout::kLegacy);
  auto env = legacy.value()->env_options(3);
  ASSERT_EQ(env.size(), size_t(12));
  EXPECT_EQ(int(env[0]), 4);  // kEnvOptHardware
  EXPECT_EQ(int(env[8]), 0);  // suppressInputConversion (no CPUThreadNum in this layout)
  neuron::QoS q;
  q.boost = 77;
  q.deadline_ms = 0x1234;
  auto qos = legacy.value()->qos_options(q);
  ASSERT_EQ(qos.size(), size_t(24));
  EXPECT_EQ(int(qos[4]), 2);     // priority high
  EXPECT_EQ(int(qos[8]), 77);    // boostValue
  EXPECT_EQ(int(qos[10]), 0x34);  // deadline, little-endian at offset 10
  EXPECT_EQ(int(qos[11]), 0x12);

  s.set_version(6, 3, 3);
  auto np6 = neuron::NeuronLibrary::load(o);
  ASSERT_OK(np6);
  EXPECT_TRUE(np6.value()->layout() == neuron::StructLayout::kNP6);
  EXPECT_EQ(np6.value()->version_string(), std::string("6.3.3"));
  env = np6.value()->env_options(3);
  EXPECT_EQ(int(env[8]), 3);  // CPUThreadNum
  qos = np6.value()->qos_options(q);
  ASSERT_EQ(qos.size(), size_t(40));
  EXPECT_EQ(int(qos[8]), 77);
  EXPECT_EQ(int(qos[12]), 0x34);  // deadline at offset 12 in the NP6 layout
  EXPECT_EQ(int(qos[16]), 0xff);  // delayedPowerOffTime = -1

  s.set_version(9, 0, 1);
  auto newer = neuron::NeuronLibrary::load(o);
  ASSERT_OK(newer);
  EXPECT_TRUE(contains(newer.value()->layout_reason(), "newer")) << newer.value()->layout_reason();

  setenv(neuron::kLayoutEnv, "legacy", 1);
  auto forced = neuron::NeuronLibrary::load(o);
  unsetenv(neuron::kLayoutEnv);
  ASSERT_OK(forced);
  EXPECT_TRUE(forced.value()->layout() == neuron::StructLayout::kLegacy);

  s.fail("NeuronRuntime_getVersion", 1, 6);
  auto broken = neuron::NeuronLibrary::load(o);
  ASSERT_STATUS(broken, StatusCode::kVersionMismatch);
  EXPECT_TRUE(contains(broken.status().message(), "NEURONRUNTIME_RUNTIME_ERROR")) << broken.status().message();
  s.reset();
}

TEST(Neuron, EveryErrorCodeHasAMessage) {
  const char* names[] = {"NEURONRUNTIME_NO_ERROR",        "NEURONRUNTIME_OUT_OF_MEMORY", "NEURONRUNTIME_INCOMPLETE",
                         "NEURONRUNTIME_UNEXPECTED_NULL", "NEURONRUNTIME_BAD_DATA",      "NEURONRUNTIME_BAD_STATE",
                         "NEURONRUNTIME_RUNTIME_ERROR"};
  for (int code = 0; code <= 6; ++code) {
    const std::string m = neuron::describe_error(code);
    EXPECT_TRUE(contains(m, names[code])) << m;
    EXPECT_TRUE(contains(m, "(" + std::to_string(code) + ")")) << m;
    EXPECT_GT(m.size(), std::string(names[code]).size() + 10) << m;
  }
  EXPECT_TRUE(contains(neuron::describe_error(42), "(42)"));
  EXPECT_TRUE(contains(neuron::call_failed("NeuronRuntime_inference", 6), "NeuronRuntime_inference failed"));
}

// ============================== neuron encoder ==============================================

TEST(Neuron, V1ZeroCopyAndCallOrder) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  auto enc = NeuronEncoderBackend::create(config_for(float_model(), WG_STANDIN_FULL, NeuronEncoderConfig::Api::kV1));
  ASSERT_OK(enc);
  NeuronEncoderBackend& e = *enc.value();
  EXPECT_EQ(std::string(e.api_name()), std::string("v1"));
  EXPECT_TRUE(e.input_zero_copy());
  EXPECT_TRUE(e.output_zero_copy());
  EXPECT_TRUE(static_cast<void*>(e.mel_buffer()) == e.input_buffer().data());
  s.clear_log();
  for (int k = 0; k < 3; ++k) {
    fill_mel(e.mel_buffer(), k);
    auto st = e.run();
    ASSERT_OK(st);
    EXPECT_TRUE(st.value().data == static_cast<const float*>(e.output_buffer().data()));  // the decoder reads in place
    for (int64_t j = 0; j < kStates; j += 997) {
      EXPECT_NEAR(st.value().data[j], 2.0f * e.mel_buffer()[j % kMel] + 0.5f, 1e-6);
    }
  }
  const auto inf = s.lines_of("NeuronRuntime_inference");
  ASSERT_EQ(inf.size(), size_t(3));
  for (const auto& l : inf) {
    EXPECT_EQ(field(l, "in"), hexptr(e.input_buffer().data())) << l;
    EXPECT_EQ(field(l, "out"), hexptr(e.output_buffer().data())) << l;
  }
  for (const auto& l : s.lines_of("NeuronRuntime_setInput")) {
    EXPECT_EQ(field(l, "ptr"), hexptr(e.input_buffer().data())) << l;  // rebinding: the same buffer
    EXPECT_EQ(field(l, "fd"), std::string("-1")) << l;
    EXPECT_EQ(field(l, "len"), std::to_string(kMel * 4)) << l;
  }
  // call order of a run: setInput, setOutput, inference
  const auto all = s.lines();
  ASSERT_GE(all.size(), size_t(3));
  EXPECT_TRUE(contains(all[0], "NeuronRuntime_setInput"));
  EXPECT_TRUE(contains(all[1], "NeuronRuntime_setOutput"));
  EXPECT_TRUE(contains(all[2], "NeuronRuntime_inference"));
  enc.value().reset();
  EXPECT_EQ(s.live(), 0);
  EXPECT_EQ(s.calls("NeuronRuntime_release"), 1);
}

TEST(Neuron, V1CreateSequenceAndEnvBytes) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  auto c = config_for(float_model(), WG_STANDIN_FULL, NeuronEncoderConfig::Api::kV1);
  c.cpu_threads = 2;
  c.set_qos = true;
  c.qos.boost = 55;
  auto enc = NeuronEncoderBackend::create(c);
  ASSERT_OK(enc);
  const auto all = s.lines();
  std::vector<std::string> order;
  for (const auto& l : all) order.push_back(l.substr(0, l.find(' ')));
  const std::vector<std::string> want_prefix = {
      "NeuronRuntime_getVersion",      "NeuronRuntime_create",        "NeuronRuntime_loadNetworkFromFile",
      "NeuronRuntime_getInputNumber",  "NeuronRuntime_getOutputNumber", "NeuronRuntime_getInputSize",
      "NeuronRuntime_getInputPaddedSize", "NeuronRuntime_getInputPaddedDimensions",
      "NeuronRuntime_getOutputSize",   "NeuronRuntime_getOutputPaddedSize", "NeuronRuntime_getOutputPaddedDimensions",
      "NeuronRuntime_setInput",        "NeuronRuntime_setOutput",     "NeuronRuntime_setQoSOption"};
  ASSERT_GE(order.size(), want_prefix.size());
  EXPECT_EQ(std::vector<std::string>(order.begin(), order.begin() + static_cast<long>(want_prefix.size())), want_prefix);
  // EnvOptions, NP6 layout: deviceKind 4, MDLACoreOption 0, CPUThreadNum 2, no suppression
  EXPECT_EQ(field(s.lines_of("NeuronRuntime_create")[0], "env"), std::string("040000000000000002000000"));
  const std::string qos = field(s.lines_of("NeuronRuntime_setQoSOption")[0], "qos");
  ASSERT_EQ(qos.size(), size_t(80));  // 40 bytes
  EXPECT_EQ(qos.substr(16, 2), std::string("37"));  // boostValue 55 at offset 8
  // The self-test ran: two inferences with different inputs.
  EXPECT_EQ(s.calls("NeuronRuntime_inference"), 2);
}

TEST(Neuron, LegacyRuntimeGetsLegacyStructs) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  s.set_version(4, 1, 0);
  auto c = config_for(float_model(), WG_STANDIN_FULL, NeuronEncoderConfig::Api::kV1);
  c.set_qos = true;
  c.qos.boost = 55;
  auto enc = NeuronEncoderBackend::create(c);
  ASSERT_OK(enc);
  // legacy EnvOptions: deviceKind 4, MDLACoreOption 0, suppress bools at 8 and 9
  EXPECT_EQ(field(s.lines_of("NeuronRuntime_create")[0], "env"), std::string("040000000000000000000000"));
  const std::string qos = field(s.lines_of("NeuronRuntime_setQoSOption")[0], "qos");
  EXPECT_EQ(qos.size(), size_t(48));  // the stand-in reads 24 bytes at this version
  EXPECT_EQ(qos.substr(16, 2), std::string("37"));
  s.reset();
}

TEST(Neuron, V2ZeroCopy) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  auto enc = NeuronEncoderBackend::create(config_for(float_model(), WG_STANDIN_FULL));
  ASSERT_OK(enc);
  NeuronEncoderBackend& e = *enc.value();
  EXPECT_EQ(std::string(e.api_name()), std::string("v2"));
  s.clear_log();
  for (int k = 0; k < 3; ++k) {
    fill_mel(e.mel_buffer(), k);
    auto st = e.run();
    ASSERT_OK(st);
    EXPECT_TRUE(st.value().data == static_cast<const float*>(e.output_buffer().data()));
  }
  const auto runs = s.lines_of("NeuronRuntimeV2_run");
  ASSERT_EQ(runs.size(), size_t(3));
  for (const auto& l : runs) {
    EXPECT_EQ(field(l, "in"), hexptr(e.input_buffer().data())) << l;
    EXPECT_EQ(field(l, "out"), hexptr(e.output_buffer().data())) << l;
    EXPECT_EQ(field(l, "in_len"), std::to_string(kMel * 4)) << l;
    EXPECT_EQ(field(l, "out_fd"), std::string("-1")) << l;
  }
  enc.value().reset();
  EXPECT_EQ(s.calls("NeuronRuntimeV2_release"), 1);
  EXPECT_EQ(s.live(), 0);
}

TEST(Neuron, V2RequestedFromAV1OnlyRuntime) {
  Standin s(WG_STANDIN_NOV2);
  ASSERT_TRUE(s.ok());
  auto enc = NeuronEncoderBackend::create(config_for(float_model(), WG_STANDIN_NOV2, NeuronEncoderConfig::Api::kV2));
  ASSERT_STATUS(enc, StatusCode::kUnavailable);
  EXPECT_TRUE(contains(enc.status().message(), "V2")) << enc.status().message();
  auto v1 = NeuronEncoderBackend::create(config_for(float_model(), WG_STANDIN_NOV2));
  ASSERT_OK(v1);
  EXPECT_EQ(std::string(v1.value()->api_name()), std::string("v1"));
}

TEST(Neuron, SizeMismatchSaysWhatDiffers) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  // The model's output is float32, the "manifest" says int8.
  auto c = config_for(float_model(), WG_STANDIN_FULL);
  c.output.dtype = IoDType::kInt8;
  c.output.scale = 0.1f;
  auto enc = NeuronEncoderBackend::create(c);
  ASSERT_STATUS(enc, StatusCode::kBadModel);
  const std::string& m = enc.status().message();
  EXPECT_TRUE(contains(m, "output 0")) << m;
  EXPECT_TRUE(contains(m, "expected " + std::to_string(kStates) + " bytes")) << m;
  EXPECT_TRUE(contains(m, "got " + std::to_string(kStates * 4) + " bytes")) << m;
  EXPECT_TRUE(contains(m, "float32")) << m;
  EXPECT_FALSE(contains(m, "input 0")) << m;
  EXPECT_EQ(s.live(), 0);  // the runtime made for the check was released
  // A manifest shape that is not this model's at all.
  auto c2 = config_for(float_model(), WG_STANDIN_FULL);
  c2.output.shape = {1, 1500, 32};
  auto enc2 = NeuronEncoderBackend::create(c2);
  ASSERT_STATUS(enc2, StatusCode::kBadModel);
  // More than one input.
  s.set_io_count(2, 1);
  auto enc3 = NeuronEncoderBackend::create(config_for(float_model(), WG_STANDIN_FULL));
  ASSERT_STATUS(enc3, StatusCode::kBadModel);
  EXPECT_TRUE(contains(enc3.status().message(), "2 input(s)")) << enc3.status().message();
  s.reset();
  EXPECT_EQ(s.live(), 0);
}

TEST(Neuron, FailuresAtEveryStepReleaseTheRuntime) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  struct Case {
    const char* fn;
    NeuronEncoderConfig::Api api;
    StatusCode code;
  };
  const Case cases[] = {
      {"NeuronRuntime_create", NeuronEncoderConfig::Api::kV1, StatusCode::kUnavailable},
      {"NeuronRuntime_loadNetworkFromFile", NeuronEncoderConfig::Api::kV1, StatusCode::kBadModel},
      {"NeuronRuntime_getInputNumber", NeuronEncoderConfig::Api::kV1, StatusCode::kRuntimeError},
      {"NeuronRuntime_getOutputSize", NeuronEncoderConfig::Api::kV1, StatusCode::kRuntimeError},
      {"NeuronRuntime_setInput", NeuronEncoderConfig::Api::kV1, StatusCode::kRuntimeError},
      {"NeuronRuntime_setOutput", NeuronEncoderConfig::Api::kV1, StatusCode::kRuntimeError},
      {"NeuronRuntime_inference", NeuronEncoderConfig::Api::kV1, StatusCode::kRuntimeError},
      {"NeuronRuntimeV2_create", NeuronEncoderConfig::Api::kV2, StatusCode::kBadModel},
      {"NeuronRuntimeV2_getInputSize", NeuronEncoderConfig::Api::kV2, StatusCode::kRuntimeError},
      {"NeuronRuntimeV2_run", NeuronEncoderConfig::Api::kV2, StatusCode::kRuntimeError},
  };
  for (const Case& k : cases) {
    s.reset();
    s.fail(k.fn, 0, 5);  // every call: NEURONRUNTIME_BAD_STATE
    auto enc = NeuronEncoderBackend::create(config_for(float_model(), WG_STANDIN_FULL, k.api));
    EXPECT_STATUS(enc, k.code) << k.fn;
    if (!enc.ok()) {
      EXPECT_TRUE(contains(enc.status().message(), k.fn)) << enc.status().message();
      EXPECT_TRUE(contains(enc.status().message(), "NEURONRUNTIME_BAD_STATE")) << enc.status().message();
    }
    EXPECT_EQ(s.live(), 0) << k.fn << ": every runtime created was released";
  }
  s.reset();
}

TEST(Neuron, InferenceFailureMidStreamRaisesAndRecovers) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  for (auto api : {NeuronEncoderConfig::Api::kV1, NeuronEncoderConfig::Api::kV2}) {
    s.reset();
    auto enc = NeuronEncoderBackend::create(config_for(float_model(), WG_STANDIN_FULL, api));
    ASSERT_OK(enc);
    const char* fn = api == NeuronEncoderConfig::Api::kV1 ? "NeuronRuntime_inference" : "NeuronRuntimeV2_run";
    s.fail(fn, 2, 6);  // the second call from now
    fill_mel(enc.value()->mel_buffer(), 1);
    EXPECT_OK(enc.value()->run());
    fill_mel(enc.value()->mel_buffer(), 2);
    auto bad = enc.value()->run();
    ASSERT_STATUS(bad, StatusCode::kRuntimeError);
    EXPECT_TRUE(contains(bad.status().message(), "NEURONRUNTIME_RUNTIME_ERROR")) << bad.status().message();
    fill_mel(enc.value()->mel_buffer(), 3);
    EXPECT_OK(enc.value()->run());
    enc.value().reset();
    EXPECT_EQ(s.live(), 0);
  }
  s.reset();
}

TEST(Neuron, SelfTestCatchesInputLatching) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  s.set_latch(1);  // the stand-in's V1 keeps the first inference's input
  auto enc = NeuronEncoderBackend::create(config_for(float_model(), WG_STANDIN_FULL, NeuronEncoderConfig::Api::kV1));
  ASSERT_STATUS(enc, StatusCode::kRuntimeError);
  EXPECT_TRUE(contains(enc.status().message(), "latch")) << enc.status().message();
  EXPECT_EQ(s.live(), 0);
  // Without the self-test the model loads, and the latching shows: a new mel, the old output.
  auto c = config_for(float_model(), WG_STANDIN_FULL, NeuronEncoderConfig::Api::kV1);
  c.self_test = false;
  auto enc2 = NeuronEncoderBackend::create(c);
  ASSERT_OK(enc2);
  fill_mel(enc2.value()->mel_buffer(), 1);
  auto a = enc2.value()->run();
  ASSERT_OK(a);
  const float first = a.value().data[100];
  fill_mel(enc2.value()->mel_buffer(), 2);
  auto b = enc2.value()->run();
  ASSERT_OK(b);
  EXPECT_EQ(b.value().data[100], first);
  EXPECT_STATUS(enc2.value()->self_test(), StatusCode::kRuntimeError);
  s.reset();
}

TEST(Neuron, QuantizedIoConvertsNatively) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  struct Case {
    IoDType in_t, out_t;
    uint32_t in_code, out_code;
    float in_scale, out_scale;
    int32_t in_zp, out_zp;
    float tol;
  };
  const Case cases[] = {
      {IoDType::kFloat16, IoDType::kFloat16, 1, 1, 1, 1, 0, 0, 3e-3f},
      {IoDType::kInt8, IoDType::kInt16, 2, 4, 1.0f / 64, 1.0f / 4096, -3, 0, 0.05f},
      {IoDType::kUInt8, IoDType::kInt8, 3, 2, 1.0f / 100, 1.0f / 40, 128, 5, 0.06f},
      {IoDType::kFloat32, IoDType::kUInt8, 0, 3, 1, 1.0f / 50, 0, 100, 0.02f},
  };
  int n = 0;
  for (const Case& k : cases) {
    const std::string model = write_model("q" + std::to_string(n++) + ".dla", kMel, kStates,
                                          Io{k.in_code, k.in_scale, k.in_zp}, Io{k.out_code, k.out_scale, k.out_zp},
                                          1.5f, 0.25f);
    auto c = config_for(model, WG_STANDIN_FULL);
    c.input.dtype = k.in_t;
    c.input.scale = k.in_scale;
    c.input.zero_point = k.in_zp;
    c.output.dtype = k.out_t;
    c.output.scale = k.out_scale;
    c.output.zero_point = k.out_zp;
    auto enc = NeuronEncoderBackend::create(c);
    ASSERT_OK(enc);
    NeuronEncoderBackend& e = *enc.value();
    EXPECT_EQ(e.input_zero_copy(), k.in_t == IoDType::kFloat32);
    EXPECT_FALSE(e.output_zero_copy());
    fill_mel(e.mel_buffer(), 5);
    std::vector<float> mel(e.mel_buffer(), e.mel_buffer() + kMel);
    auto st = e.run();
    ASSERT_OK(st);
    EXPECT_TRUE(st.value().data != static_cast<const float*>(e.output_buffer().data()));
    for (int64_t j = 0; j < kStates; j += 101) {
      const float want = 1.5f * mel[static_cast<size_t>(j % kMel)] + 0.25f;
      EXPECT_NEAR(st.value().data[j], want, k.tol) << io_dtype_name(k.in_t) << " -> " << io_dtype_name(k.out_t) << " j=" << j;
    }
  }
}

TEST(Neuron, TwoModelsInTwoThreads) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  const std::string m1 = write_model("t1.dla", kMel, kStates, Io{}, Io{}, 1.0f, 1.0f);
  const std::string m2 = write_model("t2.dla", kMel, kStates, Io{}, Io{}, -1.0f, 0.0f);
  std::atomic<int> bad{0};
  auto worker = [&](const std::string& model, float alpha, float beta, NeuronEncoderConfig::Api api) {
    auto enc = NeuronEncoderBackend::create(config_for(model, WG_STANDIN_FULL, api));
    if (!enc.ok()) {
      ++bad;
      return;
    }
    for (int k = 0; k < 8; ++k) {
      fill_mel(enc.value()->mel_buffer(), k);
      auto st = enc.value()->run();
      if (!st.ok()) {
        ++bad;
        return;
      }
      for (int64_t j = 0; j < kStates; j += 333) {
        const float want = alpha * enc.value()->mel_buffer()[j % kMel] + beta;
        if (std::fabs(st.value().data[j] - want) > 1e-6f) ++bad;
      }
    }
  };
  std::thread a(worker, m1, 1.0f, 1.0f, NeuronEncoderConfig::Api::kV1);
  std::thread b(worker, m2, -1.0f, 0.0f, NeuronEncoderConfig::Api::kV2);
  a.join();
  b.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(s.live(), 0);
}

// neuron::Runtime on its own: the one owner of a runtime handle, for the encoder and the
// decoder subgraphs alike.
TEST(Neuron, RuntimeOwnsOneHandleV1AndV2) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  neuron::LoadOptions o;
  o.path = WG_STANDIN_FULL;
  auto lib = neuron::NeuronLibrary::load(o);
  ASSERT_OK(lib);
  const std::string dla = float_model();
  const TensorSpec in = NeuronEncoderConfig::default_input(small_dims());
  const TensorSpec out = NeuronEncoderConfig::default_output(small_dims());
  for (auto api : {neuron::ApiChoice::kV1, neuron::ApiChoice::kV2}) {
    const bool v1 = api == neuron::ApiChoice::kV1;
    s.reset();
    auto rt = neuron::Runtime::open(lib.value(), dla, api, 1);
    ASSERT_OK(rt);
    neuron::Runtime& r = *rt.value();
    EXPECT_EQ(std::string(r.api_name()), std::string(v1 ? "v1" : "v2"));
    EXPECT_EQ(s.live(), 1);
    size_t n_in = 7, n_out = 7;
    ASSERT_OK(r.io_counts(&n_in, &n_out));
    EXPECT_EQ(n_in, size_t(1));
    EXPECT_EQ(n_out, size_t(1));
    std::vector<TensorSpec> ins = {in}, outs = {out};
    std::string notes;
    auto sizes = r.resolve_io(&ins, &outs, &notes);
    ASSERT_OK(sizes);
    EXPECT_EQ(sizes.value(), std::string());
    EXPECT_TRUE(ins[0].padded_shape.empty() && outs[0].padded_shape.empty());
    TensorSpec out8 = out;
    out8.dtype = IoDType::kInt8;
    outs = {out8};
    sizes = r.resolve_io(&ins, &outs, &notes);
    ASSERT_OK(sizes);
    EXPECT_TRUE(contains(sizes.value(), "output 0: the manifest declares")) << sizes.value();
    auto ib = DmaBuffer::allocate(in.bytes(), "");
    auto ob = DmaBuffer::allocate(out.bytes(), "");
    ASSERT_OK(ib);
    ASSERT_OK(ob);
    fill_mel(static_cast<float*>(ib.value().data()), 1);
    if (v1) {
      ASSERT_OK(r.bind_input(0, ib.value()));
      ASSERT_OK(r.bind_output(0, ob.value()));
    } else {
      EXPECT_STATUS(r.bind_input(0, ib.value()), StatusCode::kInternal);  // V2 takes buffers per run
    }
    neuron::abi::IOBuffer io_in = neuron::io_buffer(ib.value()), io_out = neuron::io_buffer(ob.value());
    ASSERT_OK(r.run(&io_in, &io_out));
    const float* x = static_cast<const float*>(ib.value().data());
    EXPECT_NEAR(static_cast<const float*>(ob.value().data())[5], 2.0f * x[5] + 0.5f, 1e-6);
    rt.value().reset();
    EXPECT_EQ(s.live(), 0);
    EXPECT_EQ(s.calls(v1 ? "NeuronRuntime_release" : "NeuronRuntimeV2_release"), 1);
  }
  // A failed load releases what the create made; a failed create leaves nothing to release.
  s.reset();
  s.fail("NeuronRuntime_loadNetworkFromFile", 0, 4);
  EXPECT_STATUS(neuron::Runtime::open(lib.value(), dla, neuron::ApiChoice::kV1, 1), StatusCode::kBadModel);
  EXPECT_EQ(s.calls("NeuronRuntime_release"), 1);
  s.reset();
  s.fail("NeuronRuntime_create", 0, 5);
  EXPECT_STATUS(neuron::Runtime::open(lib.value(), dla, neuron::ApiChoice::kV1, 1), StatusCode::kUnavailable);
  EXPECT_EQ(s.calls("NeuronRuntime_release"), 0);
  EXPECT_EQ(s.live(), 0);
  s.reset();
}

TEST(Neuron, MissingDlaIsNotFound) {
  auto enc = NeuronEncoderBackend::create(config_for(scratch() + "/absent.dla", WG_STANDIN_FULL));
  ASSERT_STATUS(enc, StatusCode::kNotFound);
}

TEST(Neuron, QosWithoutTheSymbolIsRefused) {
  Standin s(WG_STANDIN_NOQOS);
  ASSERT_TRUE(s.ok());
  auto c = config_for(float_model(), WG_STANDIN_NOQOS);
  c.set_qos = true;
  auto enc = NeuronEncoderBackend::create(c);
  ASSERT_STATUS(enc, StatusCode::kUnavailable);
  EXPECT_TRUE(contains(enc.status().message(), "setQoSOption")) << enc.status().message();
  EXPECT_EQ(s.live(), 0);
  c.qos.boost = 300;
  EXPECT_STATUS(NeuronEncoderBackend::create(c), StatusCode::kInvalidArgument);
}

// ============================== dma buffer ==================================================

TEST(Neuron, DmaBufferFallsBackToHostMemory) {
  auto b = DmaBuffer::allocate(10000, "/nonexistent/dma_heap/system");
  ASSERT_OK(b);
  EXPECT_TRUE(b.value().kind() == DmaBuffer::Kind::kHost);
  EXPECT_EQ(b.value().fd(), -1);
  EXPECT_EQ(b.value().size(), size_t(10000));
  EXPECT_TRUE(contains(b.value().note(), "/nonexistent/dma_heap/system")) << b.value().note();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.value().data()) % 4096, uintptr_t(0));
  const auto* p = static_cast<const unsigned char*>(b.value().data());
  for (size_t i = 0; i < 10000; i += 999) EXPECT_EQ(int(p[i]), 0);
  EXPECT_OK(b.value().begin_cpu_access(true));
  EXPECT_OK(b.value().end_cpu_access(true));
  DmaBuffer moved = std::move(b.value());
  EXPECT_TRUE(moved.data() != nullptr);
  EXPECT_TRUE(b.value().data() == nullptr);
}

TEST(Neuron, DmaBufferFromTheHeapWhenThereIsOne) {
  if (access("/dev/dma_heap/system", R_OK) != 0) {
    std::printf("  (no /dev/dma_heap/system here: the dma-buf path runs on boards only)\n");
    return;
  }
  auto b = DmaBuffer::allocate(1 << 20, "/dev/dma_heap/system");
  ASSERT_OK(b);
  if (b.value().kind() == DmaBuffer::Kind::kDmaHeap) {
    EXPECT_GE(b.value().fd(), 0);
    EXPECT_OK(b.value().begin_cpu_access(true));
    std::memset(b.value().data(), 1, 1 << 20);
    EXPECT_OK(b.value().end_cpu_access(true));
  }
}

// ============================== tensor I/O ==================================================

TEST(Neuron, Float16IoRoundTripsEveryValue) {
  TensorSpec t;
  t.shape = {1, 65536};
  t.dtype = IoDType::kFloat16;
  std::vector<uint16_t> halves(65536), back(65536);
  for (uint32_t h = 0; h < 65536; ++h) halves[h] = static_cast<uint16_t>(h);
  std::vector<float> f(65536);
  dequantize_to_float(halves.data(), 1, 65536, t, f.data());
  quantize_from_float(f.data(), 1, 65536, t, back.data());
  int bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    if (std::isnan(f[h])) {
      bad += (back[h] & 0x7c00u) != 0x7c00u || (back[h] & 0x3ffu) == 0;
    } else {
      bad += back[h] != h;
    }
  }
  EXPECT_EQ(bad, 0);
  t.shape = {1, 4};
  const float edge[4] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 1e6f, -1e-9f};
  uint16_t q[4];
  quantize_from_float(edge, 1, 4, t, q);
  EXPECT_EQ(int(q[0]), 0x3c00);  // tie -> even
  EXPECT_EQ(int(q[1]), 0x3c02);
  EXPECT_EQ(int(q[2]), 0x7c00);  // overflow -> inf
  EXPECT_EQ(int(q[3]), 0x8000);  // underflow -> -0
}

TEST(Neuron, QuantizeRoundsHalfAwayAndSaturates) {
  TensorSpec t;
  t.shape = {1, 6};
  t.dtype = IoDType::kInt8;
  t.scale = 0.5f;
  t.zero_point = 1;
  const float src[6] = {0.25f, -0.25f, 1000.0f, -1000.0f, 0.75f, NAN};
  int8_t q[6];
  quantize_from_float(src, 1, 6, t, q);
  EXPECT_EQ(int(q[0]), 2);     // 0.5 -> 1, +1
  EXPECT_EQ(int(q[1]), 0);     // -0.5 -> -1, +1
  EXPECT_EQ(int(q[2]), 127);
  EXPECT_EQ(int(q[3]), -128);
  EXPECT_EQ(int(q[4]), 3);     // 1.5 -> 2, +1
  EXPECT_EQ(int(q[5]), -128);  // NaN -> lowest
  float back[6];
  dequantize_to_float(q, 1, 6, t, back);
  EXPECT_NEAR(back[0], 0.5f, 0);
  EXPECT_NEAR(back[2], 63.0f, 0);
}

TEST(Neuron, TransposedLayouts) {
  TensorSpec t;
  t.shape = {1, 3, 2};
  t.dtype = IoDType::kFloat32;
  t.transposed = true;
  const float host[6] = {0, 1, 2, 3, 4, 5};  // [2, 3]
  float dev[6];
  quantize_from_float(host, 2, 3, t, dev);  // -> [3, 2]
  const float want[6] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(dev[i], want[i]);
  float round[6];
  dequantize_to_float(dev, 2, 3, t, round);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(round[i], host[i]);
}

TEST(Neuron, PaddedRowsConvertAtTheirOffsets) {
  TensorSpec t;
  t.shape = {2, 3};
  t.padded_shape = {2, 5};
  t.dtype = IoDType::kFloat32;
  ASSERT_OK(t.validate());
  EXPECT_TRUE(t.padded() && t.padded_last_dim_only());
  EXPECT_EQ(t.device_bytes(), size_t(40));
  EXPECT_EQ(t.device_row_stride(), 5);
  const float host[6] = {1, 2, 3, 4, 5, 6};
  float dev[10];
  for (float& v : dev) v = -9.0f;
  quantize_from_float(host, 2, 3, t, dev);
  const float want[10] = {1, 2, 3, -9, -9, 4, 5, 6, -9, -9};  // padding untouched
  for (int i = 0; i < 10; ++i) EXPECT_EQ(dev[i], want[i]) << i;
  for (int i : {3, 4, 8, 9}) dev[i] = NAN;  // padding is never read
  float back[6];
  dequantize_to_float(dev, 2, 3, t, back);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(back[i], host[i]);
  // float16, padded in two dimensions: [2, 2, 3] in [2, 3, 4]
  TensorSpec h;
  h.shape = {2, 2, 3};
  h.padded_shape = {2, 3, 4};
  h.dtype = IoDType::kFloat16;
  ASSERT_OK(h.validate());
  EXPECT_FALSE(h.padded_last_dim_only());
  const float x[12] = {0.5f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  uint16_t d16[24] = {};
  quantize_from_float(x, 4, 3, h, d16);
  EXPECT_EQ(half_to_float(d16[0]), 0.5f);
  EXPECT_EQ(half_to_float(d16[4]), 3.0f);   // [0, 1, 0]
  EXPECT_EQ(half_to_float(d16[12]), 6.0f);  // [1, 0, 0]: the second block starts after 3 padded rows
  EXPECT_EQ(half_to_float(d16[18]), 11.0f); // [1, 1, 2]
  float y[12];
  dequantize_to_float(d16, 4, 3, h, y);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(y[i], x[i]);
  // int8 transposed and padded: host [2, 3] -> device [3, 2] in rows of 4
  TensorSpec q;
  q.shape = {3, 2};
  q.padded_shape = {3, 4};
  q.transposed = true;
  q.dtype = IoDType::kInt8;
  q.scale = 1.0f;
  int64_t rows, cols;
  host_rows_cols(q, &rows, &cols);
  EXPECT_EQ(rows, 2);
  EXPECT_EQ(cols, 3);
  int8_t d8[12] = {};
  quantize_from_float(host, 2, 3, q, d8);
  const int8_t w8[12] = {1, 4, 0, 0, 2, 5, 0, 0, 3, 6, 0, 0};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(d8[i], w8[i]) << i;
  // bad padded shapes
  TensorSpec b = t;
  b.padded_shape = {2, 2};
  EXPECT_STATUS(b.validate(), StatusCode::kInvalidArgument);
  b.padded_shape = {2, 3, 1};
  EXPECT_STATUS(b.validate(), StatusCode::kInvalidArgument);
}

TEST(Neuron, PaddedShapeFromTheRuntimesDimensions) {
  const uint32_t aligned[4] = {1, 1, 80, 3008};
  auto p = padded_shape_from_dims({1, 80, 3000}, aligned);
  ASSERT_OK(p);
  EXPECT_EQ(p.value(), (std::vector<int64_t>{1, 80, 3008}));
  const uint32_t unused_zero[4] = {0, 5, 448, 576};
  p = padded_shape_from_dims({5, 448, 512}, unused_zero);
  ASSERT_OK(p);
  EXPECT_EQ(p.value(), (std::vector<int64_t>{5, 448, 576}));
  const uint32_t folded[4] = {1, 1, 2240, 576};  // leading dimensions folded: same rows, wider
  p = padded_shape_from_dims({5, 448, 512}, folded);
  ASSERT_OK(p);
  EXPECT_EQ(p.value(), (std::vector<int64_t>{5, 448, 576}));
  const uint32_t small[4] = {1, 1, 80, 2990};
  EXPECT_STATUS(padded_shape_from_dims({1, 80, 3000}, small), StatusCode::kBadModel);
}

// A DLA whose runtime pads the rows (the stand-in's padded mode), float16 native on the output:
// the encoder binds the padded buffers, writes the mel at the padded offsets and reads the states
// from them, V1 and V2.
TEST(Neuron, PaddedAndFloat16NativeEncoderIo) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  Io in{0, 1.0f, 0, 3000, 3008, 0};
  Io out{1, 1.0f, 0, 16, 32, 1};
  const std::string dla = write_model("padded.dla", kMel, kStates, in, out, 2.0f, 0.5f);
  for (auto api : {NeuronEncoderConfig::Api::kV1, NeuronEncoderConfig::Api::kV2}) {
    s.reset();
    NeuronEncoderConfig c = config_for(dla, WG_STANDIN_FULL, api);
    c.output.dtype = IoDType::kFloat16;
    auto enc = NeuronEncoderBackend::create(c);
    ASSERT_OK(enc);
    NeuronEncoderBackend& e = *enc.value();
    EXPECT_EQ(e.input_spec().padded_shape, (std::vector<int64_t>{1, 80, 3008}));
    EXPECT_EQ(e.output_spec().padded_shape, (std::vector<int64_t>{1, 1500, 32}));
    EXPECT_EQ(e.input_buffer().size(), size_t(80 * 3008 * 4));
    EXPECT_EQ(e.output_buffer().size(), size_t(1500 * 32 * 2));
    EXPECT_FALSE(e.input_zero_copy());
    EXPECT_FALSE(e.output_zero_copy());
    EXPECT_TRUE(contains(e.describe(), "padded to [1, 80, 3008]")) << e.describe();
    EXPECT_TRUE(contains(e.describe(), "float16 native I/O")) << e.describe();
    fill_mel(e.mel_buffer(), 3);
    std::vector<float> mel(e.mel_buffer(), e.mel_buffer() + kMel);
    auto st = e.run();
    ASSERT_OK(st);
    for (int64_t j : {int64_t{0}, int64_t{15}, int64_t{16}, int64_t{3001}, kStates - 1}) {
      const float want = half_to_float(float_to_half(2.0f * mel[static_cast<size_t>(j % kMel)] + 0.5f));
      EXPECT_EQ(st.value().data[j], want) << j;
    }
  }
  // A manifest padded shape the runtime does not report is refused with both shapes.
  NeuronEncoderConfig c = config_for(dla, WG_STANDIN_FULL);
  c.output.dtype = IoDType::kFloat16;
  c.input.padded_shape = {1, 80, 3072};
  auto bad = NeuronEncoderBackend::create(c);
  ASSERT_STATUS(bad, StatusCode::kBadModel);
  EXPECT_TRUE(contains(bad.status().message(), "but the runtime pads it to [1, 80, 3008]")) << bad.status().message();
  EXPECT_EQ(s.live(), 0);
}

TEST(Neuron, SizeMismatchMessages) {
  TensorSpec t;
  t.shape = {1, 1500, 512};
  t.dtype = IoDType::kFloat32;
  EXPECT_TRUE(contains(describe_size_mismatch(1500 * 512 * 2, t), "float16 or int16"));
  EXPECT_TRUE(contains(describe_size_mismatch(1500 * 512, t), "int8 or uint8"));
  EXPECT_TRUE(contains(describe_size_mismatch(1500 * 768 * 4, t), "[1, 1500, 768] float32"));
  EXPECT_TRUE(contains(describe_size_mismatch(12345, t), "not a whole number"));
  t.dtype = IoDType::kInt8;
  t.scale = 0.0f;
  EXPECT_STATUS(t.validate(), StatusCode::kInvalidArgument);
  t.scale = 0.1f;
  t.zero_point = 300;
  EXPECT_STATUS(t.validate(), StatusCode::kInvalidArgument);
}

// ============================== replay ======================================================

TEST(Neuron, ReplayReadsWindowsAndChecksSizes) {
  const ModelDims d = small_dims();
  std::vector<int8_t> q(static_cast<size_t>(kStates));
  for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<int8_t>(static_cast<int>(i % 200) - 100);
  const std::string f0 = scratch() + "/w0.bin", f1 = scratch() + "/w1.bin", bad = scratch() + "/bad.bin";
  {
    std::ofstream a(f0, std::ios::binary);
    a.write(reinterpret_cast<const char*>(q.data()), static_cast<std::streamsize>(q.size()));
    std::ofstream b(f1, std::ios::binary);
    for (auto& v : q) v = static_cast<int8_t>(-v);
    b.write(reinterpret_cast<const char*>(q.data()), static_cast<std::streamsize>(q.size()));
    std::ofstream c(bad, std::ios::binary);
    c.write(reinterpret_cast<const char*>(q.data()), 100);
  }
  ReplayConfig c;
  c.dims = d;
  c.files = {f0, f1};
  c.output = NeuronEncoderConfig::default_output(d);
  c.output.dtype = IoDType::kInt8;
  c.output.scale = 0.5f;
  c.output.zero_point = -2;
  auto r = ReplayEncoderBackend::create(c);
  ASSERT_OK(r);
  auto s0 = r.value()->run();
  ASSERT_OK(s0);
  EXPECT_NEAR(s0.value().data[5], (5 - 100 + 2) * 0.5f, 0);
  const int64_t stride = r.value()->window_stride();  // one file per 30 s window
  ASSERT_OK(r.value()->seek(stride));
  auto s1 = r.value()->run();
  ASSERT_OK(s1);
  EXPECT_NEAR(s1.value().data[5], (-(5 - 100) + 2) * 0.5f, 0);
  EXPECT_STATUS(r.value()->seek(2 * stride), StatusCode::kInvalidArgument);
  EXPECT_STATUS(r.value()->seek(stride / 2), StatusCode::kInvalidArgument);  // windows cannot start inside one

  // float32 declared, int8 bytes given: the message says what the size would mean.
  ReplayConfig wrong = c;
  wrong.output.dtype = IoDType::kFloat32;
  auto w = ReplayEncoderBackend::create(wrong);
  ASSERT_STATUS(w, StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(w.status().message(), "int8 or uint8")) << w.status().message();
  EXPECT_TRUE(contains(w.status().message(), "w0.bin")) << w.status().message();
  ReplayConfig truncated = c;
  truncated.files = {bad};
  EXPECT_STATUS(ReplayEncoderBackend::create(truncated), StatusCode::kInvalidArgument);
  ReplayConfig absent = c;
  absent.files = {scratch() + "/absent.bin"};
  EXPECT_STATUS(ReplayEncoderBackend::create(absent), StatusCode::kNotFound);
}

// ============================== decoder subgraphs ===========================================
// Stand-in model format version 2, kind "dense": W [out, in] + bias with declared I/O dtypes.

namespace {

std::string write_dense(const std::string& name, uint32_t rows, uint32_t in, uint32_t out, Io io_in, Io io_out,
                        const std::vector<float>& w, const std::vector<float>& b) {
  const std::string path = scratch() + "/" + name;
  std::ofstream f(path, std::ios::binary);
  auto put = [&](const void* p, size_t n) { f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n)); };
  auto u32 = [&](uint32_t v) { put(&v, 4); };
  f.write("WGSTNDIN", 8);
  u32(2);
  u32(2);  // dense
  u32(1);
  u32(1);
  for (auto [io, elems] : {std::pair<Io, uint64_t>{io_in, uint64_t(rows) * in}, {io_out, uint64_t(rows) * out}}) {
    u32(io.dtype);
    put(&io.zp, 4);
    put(&io.scale, 4);
    u32(0);
    put(&elems, 8);
  }
  u32(rows);
  u32(in);
  u32(out);
  u32(0);  // float32 weights
  put(w.data(), w.size() * 4);
  put(b.data(), b.size() * 4);
  return path;
}

neuron::SubgraphConfig dense_config(const std::string& path, int64_t rows, int64_t in, int64_t out, Io io_in,
                                           Io io_out, neuron::ApiChoice api) {
  neuron::SubgraphConfig c;
  c.dla_path = path;
  c.name = "test dense";
  TensorSpec ti, to;
  ti.shape = {rows, in};
  to.shape = {rows, out};
  ti.dtype = static_cast<IoDType>(io_in.dtype);
  to.dtype = static_cast<IoDType>(io_out.dtype);
  ti.scale = io_in.scale;
  to.scale = io_out.scale;
  c.inputs = {ti};
  c.outputs = {to};
  c.api = api;
  c.dma_heap = "";
  c.library.path = WG_STANDIN_FULL;
  return c;
}

}  // namespace

TEST(Neuron, DecoderSubgraphBindsOnceAndComputesTheDenseOp) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  const int rows = 3, in = 5, out = 4;
  std::vector<float> w(out * in), b(out);
  for (int i = 0; i < out * in; ++i) w[i] = 0.125f * static_cast<float>((i * 7) % 11 - 5);
  for (int i = 0; i < out; ++i) b[i] = 0.25f * static_cast<float>(i);
  for (auto api : {neuron::ApiChoice::kV1, neuron::ApiChoice::kV2}) {
    for (Io io : {Io{}, Io{4, 1.0f / 1024, 0}}) {  // float32 I/O in place; int16 I/O through staging
      s.reset();
      const std::string path = write_dense("dense.dla", rows, in, out, io, io, w, b);
      auto g = offload::NeuronDense::create(dense_config(path, rows, in, out, io, io, api), rows, in, out);
      ASSERT_OK(g);
      offload::NeuronDense& d = *g.value();
      const bool v1 = api == neuron::ApiChoice::kV1;
      EXPECT_EQ(s.calls("NeuronRuntime_setInput"), v1 ? 1 : 0);
      EXPECT_EQ(d.subgraph().input_direct(0), io.dtype == 0);
      s.clear_log();
      for (int k = 0; k < 4; ++k) {
        float* x = d.input();
        for (int i = 0; i < rows * in; ++i) x[i] = 0.1f * static_cast<float>((i + k) % 7) - 0.3f;
        ASSERT_OK(d.run());
        for (int r = 0; r < rows; ++r) {
          for (int o = 0; o < out; ++o) {
            double want = b[o];
            for (int i = 0; i < in; ++i) want += static_cast<double>(w[o * in + i]) * x[r * in + i];
            EXPECT_NEAR(d.output()[r * out + o], want, io.dtype == 0 ? 1e-5 : 4.0 / 1024);
          }
        }
      }
      // bound once at load: no setInput/setOutput while running
      EXPECT_EQ(s.calls("NeuronRuntime_setInput") + s.calls("NeuronRuntime_setOutput"), 0);
      EXPECT_EQ(s.calls(v1 ? "NeuronRuntime_inference" : "NeuronRuntimeV2_run"), 4);
      if (!v1) {
        for (const auto& l : s.lines_of("NeuronRuntimeV2_run")) {
          if (io.dtype == 0) {
            EXPECT_EQ(field(l, "in"), hexptr(d.input())) << l;
          }
        }
      }
      g.value().reset();
      EXPECT_EQ(s.live(), 0);
    }
  }
}

TEST(Neuron, DecoderSubgraphRefusesWhatDoesNotMatch) {
  Standin s(WG_STANDIN_FULL);
  ASSERT_TRUE(s.ok());
  std::vector<float> w(4 * 5, 0.5f), b(4, 0.0f);
  const std::string path = write_dense("dense2.dla", 2, 5, 4, Io{}, Io{}, w, b);
  // the manifest says batch 3, the file was made for batch 2: sizes disagree, the message says so
  auto g = offload::NeuronDense::create(dense_config(path, 3, 5, 4, Io{}, Io{}, neuron::ApiChoice::kV1),
                                        3, 5, 4);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(g.status().code() == StatusCode::kBadModel);
  EXPECT_TRUE(contains(g.status().message(), "does not match the manifest")) << g.status().message();
  EXPECT_EQ(s.live(), 0);  // released whatever failed
  // a runtime failure names the subgraph and the call
  s.fail("NeuronRuntime_loadNetworkFromFile", 0, 4);
  auto unloadable = offload::NeuronDense::create(
      dense_config(path, 2, 5, 4, Io{}, Io{}, neuron::ApiChoice::kV1), 2, 5, 4);
  ASSERT_FALSE(unloadable.ok());
  EXPECT_TRUE(contains(unloadable.status().message(), "test dense: loading " + path)) << unloadable.status().message();
  EXPECT_TRUE(contains(unloadable.status().message(), "NeuronRuntime_loadNetworkFromFile failed"));
  EXPECT_EQ(s.live(), 0);
  s.reset();
  // a manifest entry of the wrong shape for the op is refused before loading
  auto h = offload::NeuronDense::create(dense_config(path, 2, 5, 4, Io{}, Io{}, neuron::ApiChoice::kV1),
                                        2, 5, 6);
  ASSERT_FALSE(h.ok());
  EXPECT_TRUE(contains(h.status().message(), "this model needs")) << h.status().message();
  auto missing = offload::NeuronDense::create(
      dense_config(scratch() + "/nope.dla", 2, 5, 4, Io{}, Io{}, neuron::ApiChoice::kV1), 2, 5, 4);
  EXPECT_TRUE(missing.status().code() == StatusCode::kNotFound);
  // a layer step whose cache inputs are not float32 cannot be the decoder's cache
  neuron::SubgraphConfig c = dense_config(path, 2, 5, 4, Io{}, Io{}, neuron::ApiChoice::kV1);
  TensorSpec t;
  c.inputs.clear();
  c.outputs.clear();
  const int64_t B = 1, d = 4, C = 8, T = 6;
  for (int64_t n : {B * d, B * C * d, B * C * d, T * d, T * d, B * C}) {
    t.shape = {n};
    c.inputs.push_back(t);
  }
  c.inputs[1].dtype = IoDType::kFloat16;
  for (int i = 0; i < 3; ++i) {
    t.shape = {B, d};
    c.outputs.push_back(t);
  }
  auto step = offload::NeuronLayerStep::create(c, 1, d, 8, T);
  ASSERT_FALSE(step.ok());
  EXPECT_TRUE(contains(step.status().message(), "KV cache inputs must be float32")) << step.status().message();
}
