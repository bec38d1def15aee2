#!/bin/sh
# Build and run one native libFuzzer target: fuzz/run_native.sh <target> <seconds> [libFuzzer flags]
# Targets: fuzz_tensor_io fuzz_log_mel fuzz_checkpoint_schema fuzz_standin_model (fuzz/native).
# Needs clang++ with libFuzzer (Debian: apt-get install clang). Builds into build/fuzz
# (CMake, WG_BUILD_FUZZERS=ON; WG_JOBS build jobs), seeds fuzz/corpus/native/<target> with
# small generated inputs (WG_FUZZ_CORPUS names another folder), and runs the target there; crashes are written as crash-* files in the
# current folder (reproduce: build/fuzz/fuzz/native/<target> crash-<sha1>).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${1:?usage: fuzz/run_native.sh <target> <seconds> [libFuzzer flags]}
seconds=${2:?usage: fuzz/run_native.sh <target> <seconds> [libFuzzer flags]}
shift 2
build=${WG_FUZZ_BUILD:-$root/build/fuzz}
cxx=${CXX:-clang++}
cc=${CC:-clang}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWG_BUILD_FUZZERS=ON \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$build" --target "$target" -j "${WG_JOBS:-2}" >/dev/null
corpus=${WG_FUZZ_CORPUS:-$here/corpus/native/$target}
mkdir -p "$corpus"
if [ "$target" = fuzz_standin_model ] && [ -z "$(ls -A "$corpus")" ]; then
  # Seeds: a version-1 linear model file (header, no lookup entries) and a version-2 dense one
  # (1 x 2 -> 1 x 2, float32 weights), in the stand-in's format (neuron_standin.cc's header).
  python3 - "$corpus" <<'PY'
import struct, sys
d = sys.argv[1]
v1 = b"WGSTNDIN" + struct.pack("<IIIIQQfififfII", 1, 0, 0, 0, 4, 4, 1.0, 0, 1.0, 0, 1.0, 0.0, 0, 0)
open(d + "/seed_v1", "wb").write(v1)
t = struct.pack("<IifIQ", 0, 0, 1.0, 0, 2)
v2 = b"WGSTNDIN" + struct.pack("<II", 2, 2) + struct.pack("<II", 1, 1) + t + t + struct.pack("<4I", 1, 2, 2, 0)
v2 += struct.pack("<4f", 1, 0, 0, 1) + struct.pack("<2f", 0, 0)
open(d + "/seed_v2", "wb").write(v2)
PY
fi
# Run as a child, not with exec: Linux carries a process's peak RSS (getrusage ru_maxrss, which
# libFuzzer's -rss_limit_mb reads) across fork+exec, so a big parent (pytest) would trip the limit.
"$build/fuzz/native/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -timeout=20 -print_final_stats=1 "$@" "$corpus"
