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
//   f32 alpha; f32 beta; u32 n_entries; u32 flags;                             (72 bytes)
//   flags bit 0: a device-layout block follows (24 bytes): for the input, then the output,
//   { u32 cols; u32 padded_cols; u32 tensor_flags } (see "Device layout" below);
//   then n_entries x { u64 key; out_bytes of output in out_dtype }.
// Version 2 (decoder subgraphs; several inputs/outputs, weights in the file):
//   char magic[8]; u32 version = 2; u32 kind (2 = dense, 3 = decoder_layer_step);
//   u32 n_inputs; u32 n_outputs;
//   (n_inputs + n_outputs) x { u32 dtype; i32 zero_point; f32 scale; u32 layout; u64 elems }
//   (layout: bits 0-23 padded_cols, 0 = not padded; bit 31 = tensor_flags bit 0; the logical
//   cols come from the kind: dense in/out, layer step d (mask n_ctx))
//   dense:  u32 rows, in, out, weight_dtype (0 float32 | 2 int8 per-row scales);
//           W [out, in]; (int8: f32 scales[out]); f32 bias[out].     in [rows, in] -> out [rows, out]
//   decoder_layer_step: u32 rows (B), d, n_head, n_ctx, n_audio, weight_dtype; then, in order,
//           attn_ln, qkv [3d, d], attn_out [d, d], cross_ln, cross_q [d, d], cross_out [d, d],
//           mlp_ln, fc1 [4d, d], fc2 [d, 4d]: LayerNorms as gamma[d], beta[d]; matrices as dense.
//           Inputs: x [B, d], self K cache [B, n_ctx, d], self V cache, cross K [n_audio, d],
//           cross V [n_audio, d], mask [B, n_ctx] (added to the self-attention scores: 0 =
//           attend, very negative = skip). Outputs: x' [B, d], new k [B, d], new v [B, d].
//           One Whisper residual block for one token per row, the new token attending to the
//           masked cache and to itself, in plain reference loops (float accumulation).
// Device layout (a padded mode and a float16-native mode, per model file and tensor, as reported
// for DLAs compiled with --suppress-input/--suppress-output): a tensor of `elems` elements in rows
// of `cols` is held by the caller in rows of `padded_cols` (>= cols) elements;
// get*PaddedSize reports rows * padded_cols * dtype size, get*PaddedDimensions [1, 1, rows,
// padded_cols], and setInput/setOutput and V2 IOBuffers must have that length. The stand-in reads
// only the logical elements of a padded input and fills an output's padding with 0xff bytes (so
// a caller reading padding as data gets NaN or -1). tensor_flags bit 0 ("float16 native"): the
// tensor is float16 but get*Size reports the float32 size (what a --relax-fp32 model's own I/O
// would be); the padded size stays in float16.
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

struct Tensor {
  uint32_t dtype = 0;
  int32_t zp = 0;
  float scale = 1;
  uint64_t elems = 0;
  uint64_t cols = 0, padded_cols = 0;  // padded_cols 0: not padded
  bool fp32_logical = false;           // float16 native, the float32 size reported as the logical one
};

struct Matrix {  // W [out, in] (float, dequantized from int8 when the file stores int8) + bias
  uint32_t out = 0, in = 0;
  std::vector<float> w, bias;
};

struct Norm {
  std::vector<float> gamma, beta;
};

struct Model {
  uint32_t version = 1;
  uint32_t kind = 0, in_dtype = 0, out_dtype = 0;
  // version 2
  std::vector<Tensor> ins, outs;
  uint32_t rows = 0, d = 0, n_head = 0, n_ctx = 0, n_audio = 0;
  Matrix dense;
  Norm attn_ln, cross_ln, mlp_ln;
  Matrix qkv, attn_out, cross_q, cross_out, fc1, fc2;
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
  std::vector<const void*> in_ptrs;  // version-2 models: one per input handle
  std::vector<void*> out_ptrs;
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

// Tensors beyond 2^40 elements are refused: byte counts stay far inside 64 bits.
constexpr uint64_t kMaxElems = uint64_t{1} << 40;

// Whether `count` items of `size` bytes are still to be read in f: sizes in a model file are
// checked against the file before anything is allocated (a header may claim exabytes).
bool file_holds(std::FILE* f, uint64_t count, uint64_t size) {
  uint64_t want = 0;
  if (__builtin_mul_overflow(count, size, &want)) return false;
  const long here = std::ftell(f);
  if (here < 0 || std::fseek(f, 0, SEEK_END) != 0) return false;
  const long end = std::ftell(f);
  if (end < 0 || std::fseek(f, here, SEEK_SET) != 0) return false;
  return want <= static_cast<uint64_t>(end - here);
}

bool read_matrix(std::FILE* f, uint32_t out, uint32_t in, uint32_t wdtype, Matrix* mat) {
  mat->out = out;
  mat->in = in;
  const size_t n = static_cast<size_t>(out) * in;
  if (!file_holds(f, n + out, wdtype == 0 ? 4 : 1)) return false;
  mat->w.resize(n);
  mat->bias.resize(out);
  if (wdtype == 0) {
    if (std::fread(mat->w.data(), 4, n, f) != n) return false;
  } else {
    std::vector<int8_t> q(n);
    std::vector<float> scales(out);
    if (std::fread(q.data(), 1, n, f) != n || std::fread(scales.data(), 4, out, f) != out) return false;
    for (size_t o = 0; o < out; ++o) {
      for (size_t k = 0; k < in; ++k) mat->w[o * in + k] = q[o * in + k] * scales[o];
    }
  }
  return std::fread(mat->bias.data(), 4, out, f) == out;
}

bool read_norm(std::FILE* f, uint32_t d, Norm* n) {
  if (!file_holds(f, 2 * uint64_t{d}, 4)) return false;
  n->gamma.resize(d);
  n->beta.resize(d);
  return std::fread(n->gamma.data(), 4, d, f) == d && std::fread(n->beta.data(), 4, d, f) == d;
}

uint64_t prod(std::initializer_list<uint64_t> v) {
  uint64_t p = 1;
  for (uint64_t x : v) p *= x;
  return p;
}

// Every tensor's logical cols known: a padded one must be wider and hold whole rows.
bool set_layouts(Model* m) {
  for (auto* io : {&m->ins, &m->outs}) {
    for (Tensor& t : *io) {
      if (t.cols == 0 || t.elems % t.cols != 0) return false;
      if (t.padded_cols != 0 && t.padded_cols < t.cols) return false;
      if (t.fp32_logical && t.dtype != 1) return false;
    }
  }
  return true;
}

bool load_v2(std::FILE* f, const unsigned char* h12, Model* m) {
  std::memcpy(&m->kind, h12, 4);
  uint32_t n_io[2];
  if (std::fread(n_io, 4, 2, f) != 2 || n_io[0] == 0 || n_io[1] == 0 || n_io[0] > 16 || n_io[1] > 16) return false;
  for (uint32_t i = 0; i < n_io[0] + n_io[1]; ++i) {
    unsigned char t[24];
    if (std::fread(t, 1, 24, f) != 24) return false;
    Tensor x;
    std::memcpy(&x.dtype, t, 4);
    std::memcpy(&x.zp, t + 4, 4);
    std::memcpy(&x.scale, t + 8, 4);
    std::memcpy(&x.elems, t + 16, 8);
    uint32_t layout = 0;
    std::memcpy(&layout, t + 12, 4);
    x.padded_cols = layout & 0xffffffu;
    x.fp32_logical = (layout >> 31) != 0;
    if (x.dtype > 4 || x.elems == 0 || x.elems > kMaxElems) return false;
    (i < n_io[0] ? m->ins : m->outs).push_back(x);
  }
  if (m->kind == 2) {
    uint32_t p[4];
    if (std::fread(p, 4, 4, f) != 4 || p[3] > 2) return false;
    m->rows = p[0];
    if (m->ins.size() != 1 || m->outs.size() != 1) return false;
    if (m->ins[0].elems != prod({p[0], p[1]}) || m->outs[0].elems != prod({p[0], p[2]})) return false;
    m->ins[0].cols = p[1];
    m->outs[0].cols = p[2];
    return set_layouts(m) && read_matrix(f, p[2], p[1], p[3], &m->dense);
  }
  if (m->kind == 3) {
    uint32_t p[6];
    if (std::fread(p, 4, 6, f) != 6 || p[5] > 2) return false;
    m->rows = p[0];
    m->d = p[1];
    m->n_head = p[2];
    m->n_ctx = p[3];
    m->n_audio = p[4];
    const uint32_t B = p[0], d = p[1], w = p[5];
    if (d == 0 || m->n_head == 0 || d % m->n_head != 0) return false;
    if (m->ins.size() != 6 || m->outs.size() != 3) return false;
    const uint64_t want_in[6] = {prod({B, d}), prod({B, m->n_ctx, d}), prod({B, m->n_ctx, d}),
                                 prod({m->n_audio, d}), prod({m->n_audio, d}), prod({B, m->n_ctx})};
    for (int i = 0; i < 6; ++i) {
      if (m->ins[i].elems != want_in[i]) return false;
    }
    for (int i = 0; i < 3; ++i) {
      if (m->outs[i].elems != prod({B, d})) return false;
    }
    for (auto* io : {&m->ins, &m->outs}) {
      for (Tensor& t : *io) t.cols = d;
    }
    m->ins[5].cols = m->n_ctx;
    if (!set_layouts(m)) return false;
    return read_norm(f, d, &m->attn_ln) && read_matrix(f, 3 * d, d, w, &m->qkv) &&
           read_matrix(f, d, d, w, &m->attn_out) && read_norm(f, d, &m->cross_ln) &&
           read_matrix(f, d, d, w, &m->cross_q) && read_matrix(f, d, d, w, &m->cross_out) &&
           read_norm(f, d, &m->mlp_ln) && read_matrix(f, 4 * d, d, w, &m->fc1) &&
           read_matrix(f, d, 4 * d, w, &m->fc2);
  }
  return false;
}

bool load_model(const char* path, Model* m) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return false;
  unsigned char h[72];
  bool ok = std::fread(h, 1, 16, f) == 16 && std::memcmp(h, "WGSTNDIN", 8) == 0;
  uint32_t version = 0, n_entries = 0, flags = 0;
  if (ok) std::memcpy(&version, h + 8, 4);
  m->version = version;
  if (ok && version == 2) {
    ok = load_v2(f, h + 12, m);
    std::fclose(f);
    return ok;
  }
  ok = ok && version == 1 && std::fread(h + 16, 1, 56, f) == 56;
  if (ok) {
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
    std::memcpy(&flags, h + 68, 4);
    ok = m->in_dtype <= 4 && m->out_dtype <= 4 && m->in_elems > 0 && m->out_elems > 0 && m->kind <= 1;
  }
  uint32_t layout[6] = {0, 0, 0, 0, 0, 0};
  if (ok && (flags & 1u) != 0) ok = std::fread(layout, 4, 6, f) == 6;
  const size_t out_bytes = ok ? m->out_elems * dtype_size(m->out_dtype) : 0;
  ok = ok && m->in_elems <= kMaxElems && m->out_elems <= kMaxElems && file_holds(f, n_entries, 8 + uint64_t{out_bytes});
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
  if (ok) {  // the one input and output as version-2 tensors, so sizes are looked up one way
    m->ins = {Tensor{m->in_dtype, m->in_zp, m->in_scale, m->in_elems}};
    m->outs = {Tensor{m->out_dtype, m->out_zp, m->out_scale, m->out_elems}};
    m->ins[0].cols = layout[0] ? layout[0] : m->in_elems;
    m->ins[0].padded_cols = layout[1];
    m->ins[0].fp32_logical = (layout[2] & 1u) != 0;
    m->outs[0].cols = layout[3] ? layout[3] : m->out_elems;
    m->outs[0].padded_cols = layout[4];
    m->outs[0].fp32_logical = (layout[5] & 1u) != 0;
    ok = set_layouts(m);
  }
  return ok;
}

size_t tensor_bytes(const Tensor& t) { return t.elems * dtype_size(t.dtype); }
// What get*Size reports: the logical size (float32 for a float16-native tensor).
size_t reported_bytes(const Tensor& t) { return t.elems * (t.fp32_logical ? 4 : dtype_size(t.dtype)); }
// The caller's buffer: what get*PaddedSize reports and setInput/setOutput/IOBuffers must have.
size_t device_bytes(const Tensor& t) {
  return t.padded_cols == 0 ? tensor_bytes(t) : t.elems / t.cols * t.padded_cols * dtype_size(t.dtype);
}

// Padded tensors between the caller's device buffers and the logical buffers the math uses.
struct Unpadded {
  std::vector<std::vector<uint8_t>> in_tmp, out_tmp;
  std::vector<const void*> ins;
  std::vector<void*> outs;
};

void unpad_inputs(const Model& m, const std::vector<const void*>& dev, Unpadded* u) {
  u->in_tmp.resize(dev.size());
  u->ins.resize(dev.size());
  for (size_t i = 0; i < dev.size(); ++i) {
    const Tensor& t = m.ins[i];
    if (t.padded_cols == 0) {
      u->ins[i] = dev[i];
      continue;
    }
    const size_t es = dtype_size(t.dtype), rows = t.elems / t.cols;
    u->in_tmp[i].resize(tensor_bytes(t));
    for (size_t r = 0; r < rows; ++r) {
      std::memcpy(u->in_tmp[i].data() + r * t.cols * es, static_cast<const uint8_t*>(dev[i]) + r * t.padded_cols * es,
                  t.cols * es);
    }
    u->ins[i] = u->in_tmp[i].data();
  }
}

void prepare_outputs(const Model& m, const std::vector<void*>& dev, Unpadded* u) {
  u->out_tmp.resize(dev.size());
  u->outs.resize(dev.size());
  for (size_t i = 0; i < dev.size(); ++i) {
    if (m.outs[i].padded_cols == 0) {
      u->outs[i] = dev[i];
      continue;
    }
    u->out_tmp[i].resize(tensor_bytes(m.outs[i]));
    u->outs[i] = u->out_tmp[i].data();
  }
}

void pad_outputs(const Model& m, const std::vector<void*>& dev, const Unpadded& u) {
  for (size_t i = 0; i < dev.size(); ++i) {
    const Tensor& t = m.outs[i];
    if (t.padded_cols == 0) continue;
    const size_t es = dtype_size(t.dtype), rows = t.elems / t.cols;
    auto* d = static_cast<uint8_t*>(dev[i]);
    std::memset(d, 0xff, device_bytes(t));  // padding is not data
    for (size_t r = 0; r < rows; ++r) std::memcpy(d + r * t.padded_cols * es, u.out_tmp[i].data() + r * t.cols * es, t.cols * es);
  }
}

// ---- reference math of the version-2 kinds (float accumulation, no blocking) ----
void matvec(const Matrix& m, const float* x, float* y) {
  for (uint32_t o = 0; o < m.out; ++o) {
    const float* w = m.w.data() + static_cast<size_t>(o) * m.in;
    float acc = 0.0f;
    for (uint32_t k = 0; k < m.in; ++k) acc += w[k] * x[k];
    y[o] = acc + m.bias[o];
  }
}

void layer_norm(const Norm& n, const float* x, float* y, uint32_t d) {
  double mean = 0, var = 0;
  for (uint32_t i = 0; i < d; ++i) mean += x[i];
  mean /= d;
  for (uint32_t i = 0; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= d;
  const float inv = static_cast<float>(1.0 / std::sqrt(var + 1e-5));
  for (uint32_t i = 0; i < d; ++i) y[i] = (x[i] - static_cast<float>(mean)) * inv * n.gamma[i] + n.beta[i];
}

std::vector<float> real_tensor(const void* p, const Tensor& t) {
  std::vector<float> v(t.elems);
  for (uint64_t i = 0; i < t.elems; ++i) v[i] = read_real(p, i, t.dtype, t.scale, t.zp);
  return v;
}

void write_tensor(void* p, const Tensor& t, const std::vector<float>& v) {
  for (uint64_t i = 0; i < t.elems; ++i) write_real(p, i, v[i], t.dtype, t.scale, t.zp);
}

void execute_dense(const Model& m, const std::vector<const void*>& in, const std::vector<void*>& out) {
  const std::vector<float> x = real_tensor(in[0], m.ins[0]);
  std::vector<float> y(m.outs[0].elems);
  for (uint32_t r = 0; r < m.rows; ++r) matvec(m.dense, x.data() + static_cast<size_t>(r) * m.dense.in,
                                              y.data() + static_cast<size_t>(r) * m.dense.out);
  write_tensor(out[0], m.outs[0], y);
}

// softmax-weighted sum over `n` keys of one head; scores already scaled and masked
void attend(std::vector<float>& s, const float* const* values, uint32_t dh, float* o) {
  float mx = -INFINITY;
  for (float v : s) mx = v > mx ? v : mx;
  double sum = 0;
  for (float& v : s) {
    v = std::exp(v - mx);
    sum += v;
  }
  for (uint32_t i = 0; i < dh; ++i) o[i] = 0.0f;
  for (size_t j = 0; j < s.size(); ++j) {
    const float p = static_cast<float>(s[j] / sum);
    for (uint32_t i = 0; i < dh; ++i) o[i] += p * values[j][i];
  }
}

void execute_layer_step(const Model& m, const std::vector<const void*>& in, const std::vector<void*>& out) {
  const uint32_t B = m.rows, d = m.d, H = m.n_head, dh = d / H, C = m.n_ctx, T = m.n_audio;
  const std::vector<float> X = real_tensor(in[0], m.ins[0]), K = real_tensor(in[1], m.ins[1]),
                           V = real_tensor(in[2], m.ins[2]), CK = real_tensor(in[3], m.ins[3]),
                           CV = real_tensor(in[4], m.ins[4]), M = real_tensor(in[5], m.ins[5]);
  std::vector<float> xo(static_cast<size_t>(B) * d), ko(xo.size()), vo(xo.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  std::vector<float> x(d), h(d), qkv(3 * d), ctx(d), proj(d), hid(4 * d), s;
  std::vector<const float*> vals;
  for (uint32_t b = 0; b < B; ++b) {
    std::memcpy(x.data(), X.data() + static_cast<size_t>(b) * d, d * 4);
    layer_norm(m.attn_ln, x.data(), h.data(), d);
    matvec(m.qkv, h.data(), qkv.data());
    const float* q = qkv.data();
    const float* kn = qkv.data() + d;
    const float* vn = qkv.data() + 2 * d;
    for (uint32_t hd = 0; hd < H; ++hd) {
      s.clear();
      vals.clear();
      for (uint32_t j = 0; j < C; ++j) {
        const float mask = M[static_cast<size_t>(b) * C + j];
        if (mask <= -1e4f) continue;  // masked out: exp() would give 0
        const float* kj = K.data() + (static_cast<size_t>(b) * C + j) * d + hd * dh;
        float dot = 0.0f;
        for (uint32_t i = 0; i < dh; ++i) dot += q[hd * dh + i] * kj[i];
        s.push_back(dot * scale + mask);
        vals.push_back(V.data() + (static_cast<size_t>(b) * C + j) * d + hd * dh);
      }
      float dot = 0.0f;
      for (uint32_t i = 0; i < dh; ++i) dot += q[hd * dh + i] * kn[hd * dh + i];
      s.push_back(dot * scale);
      vals.push_back(vn + hd * dh);
      attend(s, vals.data(), dh, ctx.data() + hd * dh);
    }
    matvec(m.attn_out, ctx.data(), proj.data());
    for (uint32_t i = 0; i < d; ++i) x[i] += proj[i];
    std::memcpy(ko.data() + static_cast<size_t>(b) * d, kn, d * 4);
    std::memcpy(vo.data() + static_cast<size_t>(b) * d, vn, d * 4);

    layer_norm(m.cross_ln, x.data(), h.data(), d);
    matvec(m.cross_q, h.data(), qkv.data());
    for (uint32_t hd = 0; hd < H; ++hd) {
      s.assign(T, 0.0f);
      vals.resize(T);
      for (uint32_t t = 0; t < T; ++t) {
        const float* kt = CK.data() + static_cast<size_t>(t) * d + hd * dh;
        float dot = 0.0f;
        for (uint32_t i = 0; i < dh; ++i) dot += qkv[hd * dh + i] * kt[i];
        s[t] = dot * scale;
        vals[t] = CV.data() + static_cast<size_t>(t) * d + hd * dh;
      }
      attend(s, vals.data(), dh, ctx.data() + hd * dh);
    }
    matvec(m.cross_out, ctx.data(), proj.data());
    for (uint32_t i = 0; i < d; ++i) x[i] += proj[i];

    layer_norm(m.mlp_ln, x.data(), h.data(), d);
    matvec(m.fc1, h.data(), hid.data());
    for (float& v : hid) v = 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    matvec(m.fc2, hid.data(), proj.data());
    for (uint32_t i = 0; i < d; ++i) x[i] += proj[i];
    std::memcpy(xo.data() + static_cast<size_t>(b) * d, x.data(), d * 4);
  }
  write_tensor(out[0], m.outs[0], xo);
  write_tensor(out[1], m.outs[1], ko);
  write_tensor(out[2], m.outs[2], vo);
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

void execute_v2(const Model& m, const std::vector<const void*>& in, const std::vector<void*>& out) {
  if (m.kind == 2) {
    execute_dense(m, in, out);
  } else {
    execute_layer_step(m, in, out);
  }
}

// One inference on the caller's device buffers (padded or not), any model version.
void run_model(State& s, const Model& m, const std::vector<const void*>& in, const std::vector<void*>& out) {
  Unpadded u;
  unpad_inputs(m, in, &u);
  prepare_outputs(m, out, &u);
  if (m.version == 2) {
    execute_v2(m, u.ins, u.outs);
  } else {
    execute(s, m, u.ins[0], u.outs[0]);
  }
  pad_outputs(m, out, u);
}

bool model_v2(void* runtime) {
  auto* rt = static_cast<Runtime*>(runtime);
  return rt->loaded && rt->model.version == 2;
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
  *n = model_v2(runtime) ? static_cast<Runtime*>(runtime)->model.ins.size() : s.n_in;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntime_getOutputNumber(void* runtime, size_t* n) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntime_getOutputNumber rt=" + ptr(runtime));
  if (int rc = injected(s, "NeuronRuntime_getOutputNumber")) return rc;
  if (runtime == nullptr || n == nullptr) return kUnexpectedNull;
  *n = model_v2(runtime) ? static_cast<Runtime*>(runtime)->model.outs.size() : s.n_out;
  return kOk;
}

namespace {
int get_size(const char* fn, void* runtime, uint64_t handle, size_t* size, bool input, bool padded = false) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, std::string(fn) + " rt=" + ptr(runtime) + " handle=" + std::to_string(handle));
  if (int rc = injected(s, fn)) return rc;
  auto* rt = static_cast<Runtime*>(runtime);
  if (rt == nullptr || size == nullptr) return kUnexpectedNull;
  if (!rt->loaded) return kBadState;
  const std::vector<Tensor>& io = input ? rt->model.ins : rt->model.outs;
  if (handle >= (rt->model.version == 2 ? io.size() : 1)) return kBadData;
  *size = padded ? device_bytes(io[handle]) : reported_bytes(io[handle]);
  return kOk;
}

struct Dims {
  uint32_t d[4];
};

int get_dims(const char* fn, void* runtime, uint64_t handle, Dims* dims, bool input) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, std::string(fn) + " rt=" + ptr(runtime) + " handle=" + std::to_string(handle));
  if (int rc = injected(s, fn)) return rc;
  auto* rt = static_cast<Runtime*>(runtime);
  if (rt == nullptr || dims == nullptr) return kUnexpectedNull;
  if (!rt->loaded) return kBadState;
  const std::vector<Tensor>& io = input ? rt->model.ins : rt->model.outs;
  if (handle >= io.size()) return kBadData;
  const Tensor& t = io[handle];
  // The leading dimensions folded into one, as the stand-in knows only rows and cols.
  *dims = Dims{{1, 1, static_cast<uint32_t>(t.elems / t.cols), static_cast<uint32_t>(t.padded_cols ? t.padded_cols : t.cols)}};
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
  return get_size("NeuronRuntime_getInputPaddedSize", runtime, handle, size, true, true);
}
WG_STANDIN_EXPORT int NeuronRuntime_getOutputPaddedSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntime_getOutputPaddedSize", runtime, handle, size, false, true);
}
WG_STANDIN_EXPORT int NeuronRuntime_getInputPaddedDimensions(void* runtime, uint64_t handle, Dims* dims) {
  return get_dims("NeuronRuntime_getInputPaddedDimensions", runtime, handle, dims, true);
}
WG_STANDIN_EXPORT int NeuronRuntime_getOutputPaddedDimensions(void* runtime, uint64_t handle, Dims* dims) {
  return get_dims("NeuronRuntime_getOutputPaddedDimensions", runtime, handle, dims, false);
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
  if (rt->model.version == 2) {
    if (handle >= rt->model.ins.size() || length != device_bytes(rt->model.ins[handle])) return kBadData;
    rt->in_ptrs.resize(rt->model.ins.size(), nullptr);
    rt->in_ptrs[handle] = buffer;
    return kOk;
  }
  if (handle != 0 || length != device_bytes(rt->model.ins[0])) return kBadData;
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
  if (rt->model.version == 2) {
    if (handle >= rt->model.outs.size() || length != device_bytes(rt->model.outs[handle])) return kBadData;
    rt->out_ptrs.resize(rt->model.outs.size(), nullptr);
    rt->out_ptrs[handle] = buffer;
    return kOk;
  }
  if (handle != 0 || length != device_bytes(rt->model.outs[0])) return kBadData;
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
  if (rt->loaded && rt->model.version == 2) {
    if (rt->in_ptrs.size() != rt->model.ins.size() || rt->out_ptrs.size() != rt->model.outs.size()) return kBadState;
    for (const void* p : rt->in_ptrs) if (p == nullptr) return kBadState;
    for (void* p : rt->out_ptrs) if (p == nullptr) return kBadState;
    run_model(s, rt->model, rt->in_ptrs, rt->out_ptrs);
    return kOk;
  }
  if (!rt->loaded || rt->in_ptr == nullptr || rt->out_ptr == nullptr) return kBadState;
  const void* in = rt->in_ptr;
  if (s.latch) {  // the reported V1 behaviour: the first inference's input is kept
    if (!rt->has_latched) {
      rt->latched.assign(static_cast<const uint8_t*>(in), static_cast<const uint8_t*>(in) + rt->in_len);
      rt->has_latched = true;
    }
    in = rt->latched.data();
  }
  run_model(s, rt->model, {in}, {rt->out_ptr});
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
  *n = model_v2(runtime) ? static_cast<Runtime*>(runtime)->model.ins.size() : s.n_in;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntimeV2_getOutputNumber(void* runtime, size_t* n) {
  State& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  note(s, "NeuronRuntimeV2_getOutputNumber rt=" + ptr(runtime));
  if (int rc = injected(s, "NeuronRuntimeV2_getOutputNumber")) return rc;
  if (runtime == nullptr || n == nullptr) return kUnexpectedNull;
  *n = model_v2(runtime) ? static_cast<Runtime*>(runtime)->model.outs.size() : s.n_out;
  return kOk;
}

WG_STANDIN_EXPORT int NeuronRuntimeV2_getInputSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntimeV2_getInputSize", runtime, handle, size, true);
}
WG_STANDIN_EXPORT int NeuronRuntimeV2_getOutputSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntimeV2_getOutputSize", runtime, handle, size, false);
}
WG_STANDIN_EXPORT int NeuronRuntimeV2_getInputPaddedSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntimeV2_getInputPaddedSize", runtime, handle, size, true, true);
}
WG_STANDIN_EXPORT int NeuronRuntimeV2_getOutputPaddedSize(void* runtime, uint64_t handle, size_t* size) {
  return get_size("NeuronRuntimeV2_getOutputPaddedSize", runtime, handle, size, false, true);
}
WG_STANDIN_EXPORT int NeuronRuntimeV2_getInputPaddedDimensions(void* runtime, uint64_t handle, Dims* dims) {
  return get_dims("NeuronRuntimeV2_getInputPaddedDimensions", runtime, handle, dims, true);
}
WG_STANDIN_EXPORT int NeuronRuntimeV2_getOutputPaddedDimensions(void* runtime, uint64_t handle, Dims* dims) {
  return get_dims("NeuronRuntimeV2_getOutputPaddedDimensions", runtime, handle, dims, false);
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
  if (rt->model.version == 2) {  // one IOBuffer per input / output handle, in handle order
    std::vector<const void*> ins;
    std::vector<void*> outs;
    for (size_t i = 0; i < rt->model.ins.size(); ++i) {
      if (in[i].buffer == nullptr) return kUnexpectedNull;
      if (in[i].length != device_bytes(rt->model.ins[i]) || in[i].reserved2 != 0 || in[i].reserved3 != 0) return kBadData;
      ins.push_back(in[i].buffer);
    }
    for (size_t i = 0; i < rt->model.outs.size(); ++i) {
      if (out[i].buffer == nullptr) return kUnexpectedNull;
      if (out[i].length != device_bytes(rt->model.outs[i]) || out[i].reserved2 != 0 || out[i].reserved3 != 0) return kBadData;
      outs.push_back(out[i].buffer);
    }
    run_model(s, rt->model, ins, outs);
    return kOk;
  }
  if (in->length != device_bytes(rt->model.ins[0]) || out->length != device_bytes(rt->model.outs[0])) return kBadData;
  if (in->reserved2 != 0 || in->reserved3 != 0 || out->reserved2 != 0 || out->reserved3 != 0) return kBadData;
  run_model(s, rt->model, {in->buffer}, {out->buffer});
  return kOk;
}
#endif
