// STAND-IN Neuron runtime for whisper_genio's tests. NOT MediaTek's library, NOT an NPU.
//
// It exports the same V1 (NeuronRuntime_*) and V2 (NeuronRuntimeV2_*) C symbols that
// whisper_genio's loader looks up, so the loader and the "neuron" encoder backend can be
// tested on any machine. Instead of a DLA it executes a *stand-in model file* of the tests'
// own format (below), records what it was given (pointers, sizes, fds, struct bytes, call
// order), reports a version the test chooses, and fails any call on request.
//
// Build variants (compile definitions):
//   WG_STANDIN_NO_V2         no NeuronRuntimeV2_* symbols (a V1-only runtime)
//   WG_STANDIN_NO_INFERENCE  no NeuronRuntime_inference (a library lacking a required symbol)
//   WG_STANDIN_NO_QOS        no NeuronRuntime_setQoSOption / NeuronRuntimeV2_setQoSOption
//
// Stand-in model file (little-endian), "WGSTNDIN" version 1:
//   char magic[8]; u32 version; u32 kind (0 = linear, 1 = lookup with linear fallback);
//   u32 in_dtype; u32 out_dtype  (0 float32, 1 float16, 2 int8, 3 uint8, 4 int16);
//   u64 in_elems; u64 out_elems;
//   f32 in_scale; i32 in_zero_point; f32 out_scale; i32 out_zero_point;
//   f32 alpha; f32 beta; u32 n_entries; u32 reserved;                          (72 bytes)
//   then n_entries x { u64 key; out_bytes of output in out_dtype }.
// Execution: with kind 1, the FNV-1a-64 hash of the input bytes is looked up among the
// entries and the entry's bytes are the output (e.g. the real whisper-base encoder states of
// a test clip's mel); otherwise (kind 0, or a miss) out[j] = quantize(alpha * real(in[j mod
// in_elems]) + beta) in the output dtype.
//
// Control (for tests; all thread-safe): wg_standin_reset, wg_standin_set_version,
// wg_standin_fail (the n-th call of a function returns a chosen code), wg_standin_set_latch
// (V1 keeps the input of its first inference, as reported for one real runtime),
// wg_standin_set_io_count, wg_standin_log (text, one line per call), wg_standin_calls,
// wg_standin_live (runtimes created and not released), wg_standin_lookup_hits/misses.
// Environment (read when the library loads, for tests that run a subprocess):
//   WG_STANDIN_VERSION=6.3.3   WG_STANDIN_FAIL=NeuronRuntime_inference:1:6
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#define WG_STANDIN_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

struct Version {
  uint8_t major, minor, patch;
};

struct BufferAttribute {
  int ionFd;
};

struct IOBuffer {
  void* buffer;
  size_t length;
  int fd;
  int offset;
  uint64_t reserved2;
  uint64_t reserved3;
};

struct SyncRequest {
  IOBuffer* inputs;
  IOBuffer* outputs;
};

enum { kOk = 0, kOutOfMemory = 1, kUnexpectedNull = 3, kBadData = 4, kBadState = 5, kRuntimeError = 6 };

struct Model {
  uint32_t kind = 0, in_dtype = 0, out_dtype = 0;
  uint64_t in_elems = 0, out_elems = 0;
  float in_scale = 1, out_scale = 1, alpha = 1, beta = 0;
  int32_t in_zp = 0, out_zp = 0;
  std::vector<uint64_t> keys;
  std::vector<std::vector<uint8_t>> outputs;
};

struct Runtime {
  bool v2 = false;
  bool loaded = false;
  Model model;
  const void* in_ptr = nullptr;
  size_t in_len = 0;
  void* out_ptr = nullptr;
  size_t out_len = 0;
  std::vector<uint8_t> latched;
  bool has_latched = false;
};

struct Failure {
  std::string function;
  int nth = 0;  // 1-based call index from when it was set; 0 = every call
  int code = 0;
  int seen = 0;
};

struct State {
  std::mutex mu;
  Version version{6, 3, 3};
  std::vector<Failure> failures;
  std::vector<std::string> log;
  int live = 0;
  bool latch = false;
  size_t n_in = 1, n_out = 1;
  long hits = 0, misses = 0;
};

State& state() {
  static State s;  // destroyed when the library is unloaded (no leak for LeakSanitizer)
  return s;
}

size_t dtype_size(uint32_t t) { return t == 0 ? 4 : (t == 1 || t == 4) ? 2 : 1; }

uint64_t fnv1a(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    f = mant ? NAN : INFINITY;
  } else {
    f = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= sign;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {  // round to nearest even, enough for the stand-in
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  float a = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (a < std::ldexp(1.0f, -14)) {
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * std::ldexp(1.0f, 24))));
  }
  int e;
  const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  uint32_t mant = static_cast<uint32_t>(std::nearbyint((m * 2.0f - 1.0f) * 1024.0f));
  uint32_t exp = static_cast<uint32_t>(e - 1 + 15);
  if (mant == 1024) {
    mant = 0;
    ++exp;
  }
  return static_cast<uint16_t>(sign | (exp << 10) | mant);
}

float read_real(const void* p, uint64_t i, uint32_t dtype, float scale, int32_t zp) {
  switch (dtype) {
    case 0: return static_cast<const float*>(p)[i];
    case 1: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case 2: return (static_cast<const int8_t*>(p)[i] - zp) * scale;
    case 3: return (static_cast<const uint8_t*>(p)[i] - zp) * scale;
    default: return (static_cast<const int16_t*>(p)[i] - zp) * scale;
  }
}

void write_real(void* p, uint64_t i, float v, uint32_t dtype, float scale, int32_t zp) {
  auto q = [&](float lo, float hi) {
    float x = std::round(v / scale) + static_cast<float>(zp);
    return x < lo ? lo : x > hi ? hi : x;
  };
  switch (dtype) {
    case 0: static_cast<float*>(p)[i] = v; return;
    case 1: static_cast<uint16_t*>(p)[i] = float_to_half(v); return;
    case 2: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(q(-128, 127)); return;
    case 3: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(q(0, 255)); return;
    default: static_cast<int16_t*>(p)[i] = static_cast<int16_t>(q(-32768, 32767)); return;
  }
}

std::string hex(const void* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    s += digits[b[i] >> 4];
    s += digits[b[i] & 15];
  }
  return s;
}

void note(State& s, const std::string& line) { s.log.push_back(line); }

// Called with the lock held: the injected return code of this call, or kOk.
int injected(State& s, const char* fn) {
  for (Failure& f : s.failures) {
    if (f.function != fn) continue;
    ++f.seen;
    if (f.nth == 0 || f.seen == f.nth) return f.code;
  }
  return kOk;
}

std::string ptr(const void* p) {
  char b[32];
  std::snprintf(b, sizeof(b), "%p", p);
  return b;
}

bool load_model(const char* path, Model* m) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return false;
  unsigned char h[72];
  bool ok = std::fread(h, 1, 72, f) == 72 && std::memcmp(h, "WGSTNDIN", 8) == 0;
  uint32_t version = 0, n_entries = 0;
  if (ok) {
    std::memcpy(&version, h + 8, 4);
    std::memcpy(&m->kind, h + 12, 4);
    std::memcpy(&m->in_dtype, h + 16, 4);
    std::memcpy(&m->out_dtype, h + 20, 4);
    std::memcpy(&m->in_elems, h + 24, 8);
    std::memcpy(&m->out_elems, h + 32, 8);
    std::memcpy(&m->in_scale, h + 40, 4);
    std::memcpy(&m->in_zp, h + 44, 4);
    std::memcpy(&m->out_scale, h + 48, 4);
    std::memcpy(&m->out_zp, h + 52, 4);
    std::memcpy(&m->alpha, h + 56, 4);
    std::memcpy(&m->beta, h + 60, 4);
    std::memcpy(&n_entries, h + 64, 4);
    ok = version == 1 && m->in_dtype <= 4 && m->out_dtype <= 4 && m->in_elems > 0 && m->out_elems > 0;
  }
  const size_t out_bytes = ok ? m->out_elems * dtype_size(m->out_dtype) : 0;
  for (uint32_t e = 0; ok && e < n_entries; ++e) {
    uint64_t key = 0;
    std::vector<uint8_t> out(out_bytes);
    ok = std::fread(&key, 1, 8, f) == 8 && std::fread(out.data(), 1, out_bytes, f) == out_bytes;
    if (ok) {
      m->keys.push_back(key);
      m->outputs.push_back(std::move(out));
    }
  }
  std::fclose(f);
  return ok;
}

size_t in_bytes(const Model& m) { return m.in_elems * dtype_size(m.in_dtype); }
size_t out_bytes(const Model& m) { return m.out_elems * dtype_size(m.out_dtype); }

void execute(State& s, const Model& m, const void* in, void* out) {
  if (m.kind == 1) {
    const uint64_t key = fnv1a(in, in_bytes(m));
    for (size_t e = 0; e < m.keys.size(); ++e) {
      if (m.keys[e] == key) {
        std::memcpy(out, m.outputs[e].data(), out_bytes(m));
        ++s.hits;
        return;
      }
    }
    ++s.misses;
  }
  for (uint64_t j = 0; j < m.out_elems; ++j) {
    const float x = read_real(in, j % m.in_elems, m.in_dtype, m.in_scale, m.in_zp);
    write_real(out, j, m.alpha * x + m.beta, m.out_dtype, m.out_scale, m.out_zp);
  }
}

// Sizes the runtime reads for EnvOptions / QoSOptions at the version it reports.
size_t env_size() { return 12; }
size_t qos_size(const State& s) { return s.version.major <= 4 ? 24 : 40; }

void read_env() {
  State& s = state();
  if (const char* v = std::getenv("WG_STANDIN_VERSION")) {
    unsigned a = 0, b = 0, c = 0;
    if (std::sscanf(v, "%u.%u.%u", &a, &b, &c) >= 1) {
      s.version = Version{static_cast<uint8_t>(a), static_cast<uint8_t>(b), static_cast<uint8_t>(c)};
    }
  }
  if (const char* v = std::getenv("WG_STANDIN_FAIL")) {
    char fn[128] = {0};
    int nth = 0, code = 0;
    if (std::sscanf(v, "%127[^:]:%d:%d", fn, &nth, &code) == 3) s.failures.push_back(Failure{fn, nth, code, 0});
  }
}

struct EnvReader {
  EnvReader() { read_env(); }
} env_reader;

}  // namespace

// ============================ control API (tests only) ================================

WG_STANDIN_EXPORT int wg_standin_is_standin(void) { return 1; }

// The lookup key of an input: FNV-1a-64 of its bytes (what the model file's entries carry).
WG_STANDIN_EXPORT uint64_t wg_standin_hash(const void* data, size_t n) { return fnv1a(data, n); }

WG_STANDIN_EXPORT void wg_standin_reset(void) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  s.version = Version{6, 3, 3};
  s.failures.clear();
  s.log.clear();
  s.latch = false;
  s.n_in = s.n_out = 1;
  s.hits = s.misses = 0;
  // `live` is not reset: it counts real runtimes.
}

WG_STANDIN_EXPORT void wg_standin_set_version(int major, int minor, int patch) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  s.version = Version{static_cast<uint8_t>(major), static_cast<uint8_t>(minor), static_cast<uint8_t>(patch)};
}

WG_STANDIN_EXPORT void wg_standin_fail(const char* function, int nth, int code) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  s.failures.push_back(Failure{function, nth, code, 0});
}

WG_STANDIN_EXPORT void wg_standin_set_latch(int on) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  s.latch = on != 0;
}

WG_STANDIN_EXPORT void wg_standin_set_io_count(int n_in, int n_out) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  s.n_in = static_cast<size_t>(n_in);
  s.n_out = static_cast<size_t>(n_out);
}

// Copies the call log (one line per call, "\n"-separated) into buf; returns the full length.
WG_STANDIN_EXPORT size_t wg_standin_log(char* buf, size_t cap) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  std::string all;
  for (const std::string& l : s.log) all += l + "\n";
  if (buf != nullptr && cap > 0) {
    const size_t n = all.size() < cap - 1 ? all.size() : cap - 1;
    std::memcpy(buf, all.data(), n);
    buf[n] = '\0';
  }
  return all.size();
}

WG_STANDIN_EXPORT void wg_standin_clear_log(void) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  s.log.clear();
  s.hits = s.misses = 0;
}

WG_STANDIN_EXPORT int wg_standin_calls(const char* function) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  const std::string prefix = std::string(function) + " ";
  int n = 0;
  for (const std::string& l : s.log) n += l.compare(0, prefix.size(), prefix) == 0 || l == function;
  return n;
}

WG_STANDIN_EXPORT int wg_standin_live(void) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  return s.live;
}

WG_STANDIN_EXPORT long wg_standin_lookup_hits(void) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  return s.hits;
}

WG_STANDIN_EXPORT long wg_standin_lookup_misses(void) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  return s.misses;
}

// ================================ V1 API (stand-in) ===================================

WG_STANDIN_EXPORT int NeuronRuntime_getVersion(Version* v) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_getVersion");
  if (int rc = injected(s, "NeuronRuntime_getVersion")) return rc;
  if (v == nullptr) return kUnexpectedNull;
  *v = s.version;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntime_create(const void* env, void** runtime) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_create env=" + (env ? hex(env, env_size()) : std::string("null")));
  if (int rc = injected(s, "NeuronRuntime_create")) return rc;
  if (runtime == nullptr) return kUnexpectedNull;
  *runtime = new Runtime();
  ++s.live;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntime_loadNetworkFromFile(void* runtime, const char* path) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_loadNetworkFromFile rt=" + ptr(runtime) + " path=" + (path ? path : "null"));
  if (int rc = injected(s, "NeuronRuntime_loadNetworkFromFile")) return rc;
  auto* rt = static_cast<Runtime*>(runtime);
  if (rt == nullptr || path == nullptr) return kUnexpectedNull;
  if (!load_model(path, &rt->model)) return kBadData;
  rt->loaded = true;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntime_getInputNumber(void* runtime, size_t* n) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_getInputNumber rt=" + ptr(runtime));
  if (int rc = injected(s, "NeuronRuntime_getInputNumber")) return rc;
  if (runtime == nullptr || n == nullptr) return kUnexpectedNull;
  *n = s.n_in;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntime_getOutputNumber(void* runtime, size_t* n) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_getOutputNumber rt=" + ptr(runtime));
  if (int rc = injected(s, "NeuronRuntime_getOutputNumber")) return rc;
  if (runtime == nullptr || n == nullptr) return kUnexpectedNull;
  *n = s.n_out;
  return kOk;
}

namespace {
int get_size(const char* fn, void* runtime, uint64_t handle, size_t* size, bool input) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, std::string(fn) + " rt=" + ptr(runtime) + " handle=" + std::to_string(handle));
  if (int rc = injected(s, fn)) return rc;
  auto* rt = static_cast<Runtime*>(runtime);
  if (rt == nullptr || size == nullptr) return kUnexpectedNull;
  if (!rt->loaded) return kBadState;
  if (handle != 0) return kBadData;
  *size = input ? in_bytes(rt->model) : out_bytes(rt->model);
  return kOk;
}
}  // namespace

WG_STANDIN_EXPORT int NeuronRuntime_getInputSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntime_getInputSize", runtime, handle, size, true);
}
WG_STANDIN_EXPORT int NeuronRuntime_getOutputSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntime_getOutputSize", runtime, handle, size, false);
}
WG_STANDIN_EXPORT int NeuronRuntime_getInputPaddedSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntime_getInputPaddedSize", runtime, handle, size, true);
}
WG_STANDIN_EXPORT int NeuronRuntime_getOutputPaddedSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntime_getOutputPaddedSize", runtime, handle, size, false);
}

WG_STANDIN_EXPORT int NeuronRuntime_setInput(void* runtime, uint64_t handle, const void* buffer, size_t length,
                                             BufferAttribute attr) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_setInput rt=" + ptr(runtime) + " handle=" + std::to_string(handle) + " ptr=" + ptr(buffer) +
              " len=" + std::to_string(length) + " fd=" + std::to_string(attr.ionFd));
  if (int rc = injected(s, "NeuronRuntime_setInput")) return rc;
  auto* rt = static_cast<Runtime*>(runtime);
  if (rt == nullptr || buffer == nullptr) return kUnexpectedNull;
  if (!rt->loaded) return kBadState;
  if (handle != 0 || length != in_bytes(rt->model)) return kBadData;
  rt->in_ptr = buffer;
  rt->in_len = length;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntime_setOutput(void* runtime, uint64_t handle, void* buffer, size_t length,
                                              BufferAttribute attr) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_setOutput rt=" + ptr(runtime) + " handle=" + std::to_string(handle) + " ptr=" + ptr(buffer) +
              " len=" + std::to_string(length) + " fd=" + std::to_string(attr.ionFd));
  if (int rc = injected(s, "NeuronRuntime_setOutput")) return rc;
  auto* rt = static_cast<Runtime*>(runtime);
  if (rt == nullptr || buffer == nullptr) return kUnexpectedNull;
  if (!rt->loaded) return kBadState;
  if (handle != 0 || length != out_bytes(rt->model)) return kBadData;
  rt->out_ptr = buffer;
  rt->out_len = length;
  return kOk;
}

#if !defined(WG_STANDIN_NO_QOS)
WG_STANDIN_EXPORT int NeuronRuntime_setQoSOption(void* runtime, const void* qos) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_setQoSOption rt=" + ptr(runtime) + " qos=" + (qos ? hex(qos, qos_size(s)) : "null"));
  if (int rc = injected(s, "NeuronRuntime_setQoSOption")) return rc;
  return runtime && qos ? kOk : kUnexpectedNull;
}
#endif

#if !defined(WG_STANDIN_NO_INFERENCE)
WG_STANDIN_EXPORT int NeuronRuntime_inference(void* runtime) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  auto* rt = static_cast<Runtime*>(runtime);
  note(s, "NeuronRuntime_inference rt=" + ptr(runtime) + " in=" + ptr(rt ? rt->in_ptr : nullptr) +
              " out=" + ptr(rt ? rt->out_ptr : nullptr));
  if (int rc = injected(s, "NeuronRuntime_inference")) return rc;
  if (rt == nullptr) return kUnexpectedNull;
  if (!rt->loaded || rt->in_ptr == nullptr || rt->out_ptr == nullptr) return kBadState;
  const void* in = rt->in_ptr;
  if (s.latch) {  // the reported V1 behaviour: the first inference's input is kept
    if (!rt->has_latched) {
      rt->latched.assign(static_cast<const uint8_t*>(in), static_cast<const uint8_t*>(in) + rt->in_len);
      rt->has_latched = true;
    }
    in = rt->latched.data();
  }
  execute(s, rt->model, in, rt->out_ptr);
  return kOk;
}
#endif

WG_STANDIN_EXPORT void NeuronRuntime_release(void* runtime) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_release rt=" + ptr(runtime));
  if (runtime == nullptr) return;
  delete static_cast<Runtime*>(runtime);
  --s.live;
}

// ================================ V2 API (stand-in) ===================================
#if !defined(WG_STANDIN_NO_V2)
WG_STANDIN_EXPORT int NeuronRuntimeV2_create(const char* path, size_t nb_threads, void** runtime, size_t backlog) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, std::string("NeuronRuntimeV2_create path=") + (path ? path : "null") + " threads=" +
              std::to_string(nb_threads) + " backlog=" + std::to_string(backlog));
  if (int rc = injected(s, "NeuronRuntimeV2_create")) return rc;
  if (path == nullptr || runtime == nullptr) return kUnexpectedNull;
  auto* rt = new Runtime();
  rt->v2 = true;
  if (!load_model(path, &rt->model)) {
    delete rt;
    return kBadData;
  }
  rt->loaded = true;
  *runtime = rt;
  ++s.live;
  return kOk;
}

WG_STANDIN_EXPORT void NeuronRuntimeV2_release(void* runtime) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntimeV2_release rt=" + ptr(runtime));
  if (runtime == nullptr) return;
  delete static_cast<Runtime*>(runtime);
  --s.live;
}

WG_STANDIN_EXPORT int NeuronRuntimeV2_getInputNumber(void* runtime, size_t* n) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntimeV2_getInputNumber rt=" + ptr(runtime));
  if (int rc = injected(s, "NeuronRuntimeV2_getInputNumber")) return rc;
  if (runtime == nullptr || n == nullptr) return kUnexpectedNull;
  *n = s.n_in;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntimeV2_getOutputNumber(void* runtime, size_t* n) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntimeV2_getOutputNumber rt=" + ptr(runtime));
  if (int rc = injected(s, "NeuronRuntimeV2_getOutputNumber")) return rc;
  if (runtime == nullptr || n == nullptr) return kUnexpectedNull;
  *n = s.n_out;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntimeV2_getInputSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntimeV2_getInputSize", runtime, handle, size, true);
}
WG_STANDIN_EXPORT int NeuronRuntimeV2_getOutputSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntimeV2_getOutputSize", runtime, handle, size, false);
}

#if !defined(WG_STANDIN_NO_QOS)
WG_STANDIN_EXPORT int NeuronRuntimeV2_setQoSOption(void* runtime, const void* qos) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntimeV2_setQoSOption rt=" + ptr(runtime) + " qos=" + (qos ? hex(qos, qos_size(s)) : "null"));
  if (int rc = injected(s, "NeuronRuntimeV2_setQoSOption")) return rc;
  return runtime && qos ? kOk : kUnexpectedNull;
}
#endif

WG_STANDIN_EXPORT int NeuronRuntimeV2_run(void* runtime, SyncRequest req) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  auto* rt = static_cast<Runtime*>(runtime);
  const IOBuffer* in = req.inputs;
  const IOBuffer* out = req.outputs;
  note(s, "NeuronRuntimeV2_run rt=" + ptr(runtime) + " in=" + ptr(in ? in->buffer : nullptr) + " in_len=" +
              std::to_string(in ? in->length : 0) + " in_fd=" + std::to_string(in ? in->fd : -2) +
              " out=" + ptr(out ? out->buffer : nullptr) + " out_len=" + std::to_string(out ? out->length : 0) +
              " out_fd=" + std::to_string(out ? out->fd : -2));
  if (int rc = injected(s, "NeuronRuntimeV2_run")) return rc;
  if (rt == nullptr || in == nullptr || out == nullptr || in->buffer == nullptr || out->buffer == nullptr) {
    return kUnexpectedNull;
  }
  if (in->length != in_bytes(rt->model) || out->length != out_bytes(rt->model)) return kBadData;
  if (in->reserved2 != 0 || in->reserved3 != 0 || out->reserved2 != 0 || out->reserved3 != 0) return kBadData;
  execute(s, rt->model, in->buffer, out->buffer);
  return kOk;
}
#endif
