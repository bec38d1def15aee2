#!/usr/bin/env bash
# Configure, build and run the C++ unit tests (tests/cpp) in one of three set-ups:
#
#   tools/run_cpp_tests.sh native    host compiler, Release                     -> build/native
#   tools/run_cpp_tests.sh asan      host compiler, Debug, ASan + UBSan         -> build/asan
#   tools/run_cpp_tests.sh aarch64   aarch64-linux-gnu-g++, Release, NEON kernels,
#                                    tests run under qemu-aarch64               -> build/aarch64
#
# The tests are GoogleTest tests, built from Debian's sources with each toolchain (apt-get
# install googletest, or WG_CMAKE_ARGS=-DWG_GTEST_SOURCE_DIR=<a googletest checkout>). CTest
# runs each TEST() as a test of its own (Suite.Name, discovered when ctest starts) in
# `native`, and each suite as one test (Suite) in `asan` and `aarch64`, where every process
# costs more start-up time; WG_CMAKE_ARGS=-DWG_CTEST_PER_TEST=ON|OFF overrides that. The
# re-run on the portable kernels is prefixed generic_isa.
#
# Extra arguments go to ctest (e.g. `-R Kernels`, `-V`). Builds are incremental (Ninja): a
# second run with nothing changed only re-runs the tests. Exit status: 0 when every test
# passed, non-zero otherwise; `aarch64` alone exits 0 with a SKIP line when the cross
# compiler or qemu-aarch64 is not installed (apt-get install g++-aarch64-linux-gnu qemu-user).
#
# Environment: WG_JOBS (parallel build and test jobs, default: number of CPUs),
# WG_CMAKE_ARGS (extra configure arguments).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-}
[ $# -gt 0 ] && shift

usage() {  # the comment block at the top of this file
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

jobs=${WG_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
cmake_args=(-DWG_BUILD_TESTS=ON)

case "$mode" in
  native)
    cmake_args+=(-DCMAKE_BUILD_TYPE=Release)
    ;;
  asan)
    # Leaks are errors; UBSan findings abort (-fno-sanitize-recover) with a stack trace.
    # tests/cpp/CMakeLists.txt sets the same for plain `ctest` runs.
    cmake_args+=(-DCMAKE_BUILD_TYPE=Debug -DWG_SANITIZE=ON)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
  aarch64)
    missing=()
    for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64; do
      command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      echo "SKIP: aarch64 cross build not possible here: missing ${missing[*]}" \
           "(apt-get install g++-aarch64-linux-gnu qemu-user)"
      exit 0
    fi
    cmake_args+=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_TOOLCHAIN_FILE=$root/cmake/toolchains/aarch64-linux-gnu.cmake")
    ;;
  -h|--help|help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

for tool in cmake ninja ctest; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found (pip install cmake ninja, or apt-get install cmake ninja-build)" >&2
    exit 1
  fi
done

build="$root/build/$mode"
mkdir -p "$build"

# One run per build directory at a time (parallel pytest workers, a developer's shell).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$build/.run_cpp_tests.lock"
  flock 9
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
# Re-configuring an existing tree with the same arguments is quick and rebuilds nothing.
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja "${cmake_args[@]}" ${WG_CMAKE_ARGS:-} >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log"
  echo "error: configure failed ($mode)" >&2
  exit 1
}
t_configure=$(elapsed "$t0")

t1=$(now)
cmake --build "$build" --parallel "$jobs"
t_build=$(elapsed "$t1")

t2=$(now)
status=0
(cd "$build" && ctest --output-on-failure --parallel "$jobs" "$@") || status=$?
t_test=$(elapsed "$t2")

echo "run_cpp_tests.sh $mode: configure ${t_configure}s, build ${t_build}s, tests ${t_test}s," \
     "total $(elapsed "$t0")s -> $([ $status -eq 0 ] && echo PASSED || echo "FAILED (ctest exit $status)")"
exit $status
