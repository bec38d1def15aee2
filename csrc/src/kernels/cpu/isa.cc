#include "isa.h"

#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace whisper_genio::cpu {
namespace {

[[maybe_unused]] bool cpu_has_avx2() {
#if defined(__x86_64__) && defined(WG_HAVE_AVX2_KERNELS)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

Isa detect() {
#if defined(__aarch64__)
  Isa best = Isa::kNeon;
#else
  Isa best = cpu_has_avx2() ? Isa::kAvx2 : Isa::kGeneric;
#endif
  const char* forced = std::getenv("WHISPER_GENIO_ISA");
  if (forced != nullptr) {
    if (std::strcmp(forced, "generic") == 0) return Isa::kGeneric;
    if (std::strcmp(forced, "avx2") == 0 && best == Isa::kAvx2) return Isa::kAvx2;
    if (std::strcmp(forced, "neon") == 0 && best == Isa::kNeon) return Isa::kNeon;
  }
  return best;
}

std::string features() {
  std::string f;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) f += "avx2 ";
  if (__builtin_cpu_supports("fma")) f += "fma ";
  if (__builtin_cpu_supports("f16c")) f += "f16c ";
  if (__builtin_cpu_supports("avx512f")) f += "avx512f ";
  if (__builtin_cpu_supports("avx512vnni")) f += "avx512vnni ";
#elif defined(__aarch64__)
  f += "neon ";
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
  if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) f += "dotprod ";
#endif
#if defined(__linux__) && defined(HWCAP_FPHP)
  if (getauxval(AT_HWCAP) & HWCAP_FPHP) f += "fp16 ";
#endif
#endif
  if (!f.empty()) f.pop_back();
  return f;
}

}  // namespace

Isa active_isa() {
  static const Isa isa = detect();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kGeneric: return "generic";
    case Isa::kAvx2: return "avx2";
    case Isa::kNeon: return "neon";
  }
  return "unknown";
}

const char* cpu_features() {
  static const std::string f = features();
  return f.c_str();
}

}  // namespace whisper_genio::cpu
