// Which instruction-set variant of the CPU kernels this machine runs.
//
// Kernels for every variant are compiled into the library (per-file ISA flags) and chosen
// once at run time, so one x86_64 wheel runs everywhere and uses AVX2 where present; on
// aarch64 NEON is the baseline and the dot-product extension is detected.
#pragma once

namespace whisper_genio::cpu {

enum class Isa { kGeneric, kAvx2, kNeon };

// The best variant this CPU and this build support. WHISPER_GENIO_ISA=generic|avx2|neon
// forces a variant (ignored if the CPU lacks it): used by tests to check every path.
Isa active_isa();
const char* isa_name(Isa isa);
// Extra features, for reports (doctor, bench): "avx2 fma f16c", "neon dotprod", ...
const char* cpu_features();

}  // namespace whisper_genio::cpu
