#!/usr/bin/env bash
# Cross-compile whisper_genio wheels for aarch64 Linux (Genio boards) on an x86_64 machine.
#
#   tools/build_aarch64_wheels.sh [--out DIR] [--shared-libstdc++] [3.10 3.11 3.12 3.13]
#       Debian's cross toolchain (apt-get install g++-aarch64-linux-gnu), through
#       scikit-build-core with cmake/toolchains/aarch64-linux-gnu.cmake. Default: all four.
#   tools/build_aarch64_wheels.sh --yocto [--out DIR]
#       After `. <sdk>/environment-setup-aarch64-poky-linux`: the SDK's compiler and sysroot
#       (cmake/toolchains/yocto-sdk.cmake), for the SDK's own Python (its python3-dev headers),
#       linking the image's own libstdc++ (the wheel is for that image).
#   tools/build_aarch64_wheels.sh debian-root [DIR] [bookworm|trixie]
#       Only fetch a Debian release's arm64 CPython (runtime and headers: bookworm's 3.11, the
#       default, or trixie's 3.13) into DIR (default build/aarch64-sysroot/root, or
#       build/aarch64-sysroot-trixie/root): the aarch64 Pythons that tests run under qemu.
#
# Python headers of the target (the extension links to no libpython; it needs the headers and
# the target's extension suffix): CPython 3.11 and 3.13 from Debian's arm64 libpython3.X-dev
# (bookworm, trixie: exact); 3.10 and 3.12 from the host interpreter of that version (python3.X on PATH or
# ~/.pyenv/versions/3.X.*), whose headers are architecture-independent except pyconfig.h:
# its x86-only HAVE_GCC_ASM_FOR_X64/X87 are dropped (used only inside CPython) and every
# SIZEOF_/ALIGNOF_ it states is checked against the aarch64 compiler before the build.
#
# Debian builds link libstdc++/libgcc statically (WG_STATIC_CXX_RUNTIME): Debian's GCC 12
# libstdc++ would need GLIBCXX_3.4.30 (std::condition_variable::wait), which kirkstone's GCC 11
# lacks; linked in, the wheel needs no GLIBCXX_ at all and at most GLIBC_2.35 (libgcc's
# unwinder: _dl_find_object), i.e. kirkstone's glibc 2.35 and newer. --shared-libstdc++ links
# the board's libstdc++ instead (then GCC >= 12 images only). The GLIBC_/GLIBCXX_ versions
# needed are printed and auditwheel decides the platform tag (manylinux_2_NN_aarch64 when it
# agrees, else linux_aarch64). No Neuron or onnxruntime library goes into the wheel: both are
# found on the board at run time.
#
# Environment: WG_JOBS (parallel compile jobs, default: number of CPUs), PYTHON (the build frontend's interpreter, default python3), WG_BUILD_ROOT
# (default build/aarch64-wheels), WG_NO_BUILD_ISOLATION=1 (use the frontend's installed
# scikit-build-core and pybind11 instead of fetching them), WG_PEP517_OPTS (extra -C options,
# replacing the defaults below: what the Yocto recipe passes; see tests/python/test_aarch64_wheel.py).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-python3}
work=${WG_BUILD_ROOT:-$root/build/aarch64-wheels}
out=$root/dist/aarch64
mode=debian
static_runtime=ON
versions=()

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "build_aarch64_wheels.sh: $*" >&2; exit 1; }

# A Debian release's arm64 packages into $1 with a private apt state (no root, no change to the
# host's apt configuration): its CPython ($2: bookworm 3.11, trixie 3.13) and what it depends on,
# libpython3.X-dev, libstdc++6.
debian_python() { case "$1" in bookworm) echo 3.11 ;; trixie) echo 3.13 ;; *) die "no Debian release $1 here (bookworm, trixie)" ;; esac; }
debian_sysroot() { if [ "$1" = bookworm ]; then echo "$root/build/aarch64-sysroot/root"; else echo "$root/build/aarch64-sysroot-$1/root"; fi; }
debian_root() {
  local dest=$1 suite=${2:-bookworm} base apt pyver
  pyver=$(debian_python "$suite")
  base=$(dirname "$dest")
  apt=$base/apt
  [ -f "$dest/.complete" ] && return 0
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "debian-root needs apt-get and dpkg-deb"
  mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial" "$apt/etc/sources.list.d" "$apt/etc/preferences.d"
  : >"$apt/status"
  local key=/usr/share/keyrings/debian-archive-keyring.gpg
  cat >"$apt/etc/sources.list" <<EOF
deb [arch=arm64 signed-by=$key] http://deb.debian.org/debian $suite main
deb [arch=arm64 signed-by=$key] http://deb.debian.org/debian-security $suite-security main
EOF
  local opts=(-qq -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Dir::State="$apt/state"
              -o Dir::State::status="$apt/status" -o Dir::Cache="$apt/cache"
              -o Dir::Etc::SourceList="$apt/etc/sources.list" -o Dir::Etc::SourceParts="$apt/etc/sources.list.d"
              -o Dir::Etc::Preferences="$apt/etc/preferences" -o Dir::Etc::PreferencesParts="$apt/etc/preferences.d"
              -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update
  apt-get "${opts[@]}" install --download-only --no-install-recommends -y "python$pyver" libstdc++6 >/dev/null
  (cd "$apt/cache/archives" && apt-get "${opts[@]}" download "libpython$pyver-dev")
  rm -rf "$dest"
  mkdir -p "$dest"
  local deb
  for deb in "$apt/cache/archives"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
  # Merged /usr (trixie): /lib is base-files' symlink, not in these packages; qemu -L needs
  # /lib/ld-linux-aarch64.so.1.
  local d
  for d in lib bin sbin; do
    [ -e "$dest/$d" ] || [ ! -d "$dest/usr/$d" ] || ln -s "usr/$d" "$dest/$d"
  done
  touch "$dest/.complete"
}

# Headers for CPython $1 (3.X) into $work/include/python$1; prints the include directory.
python_headers() {
  local ver=$1 final=$work/include/python$1 src="" pyconfig=""
  local dest=$final.new
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  if [ "$mode" = yocto ]; then
    src=$OECORE_TARGET_SYSROOT/usr/include/python$ver
    [ -f "$src/Python.h" ] || die "no $src/Python.h: add python3-dev to the SDK (TOOLCHAIN_TARGET_TASK:append = \" python3-dev\")"
    cp -rp "$src" "$dest"
  elif [ "$ver" = 3.11 ] || [ "$ver" = 3.13 ]; then
    local suite=bookworm sysroot
    [ "$ver" = 3.13 ] && suite=trixie
    sysroot=$(debian_sysroot "$suite")
    debian_root "$sysroot" "$suite" >&2
    local d=$sysroot/usr/include
    cp -rp "$d/python$ver" "$dest"
    cp -p "$d/aarch64-linux-gnu/python$ver/pyconfig.h" "$dest/pyconfig.h"
    src="Debian $suite arm64 libpython$ver-dev"
  else
    local host="" c
    # (pyenv's shims answer `command -v` for versions they cannot run: try each candidate)
    for c in $(command -v "python$ver" || true) $(ls -d "$HOME"/.pyenv/versions/"$ver".*/bin/python"$ver" 2>/dev/null | sort -rV); do
      if "$c" -c 'import sys; assert sys.version_info[:2] == tuple(map(int, sys.argv[1].split(".")))' "$ver" 2>/dev/null; then
        host=$c
        break
      fi
    done
    [ -n "$host" ] || die "no host CPython $ver for its headers (pyenv install $ver, or apt-get install python$ver-dev)"
    src=$("$host" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    [ -f "$src/Python.h" ] || die "$host has no headers in $src"
    cp -rp "$src" "$dest"
    sed -i -E '/^#define HAVE_GCC_ASM_FOR_(X64|X87) /d' "$dest/pyconfig.h"
    pyconfig="(pyconfig.h of $host, x86-only defines dropped)"
  fi
  check_pyconfig "$dest" >&2
  # Unchanged headers keep their files (and times): a rebuild recompiles nothing.
  if [ -d "$final" ] && diff -rq "$dest" "$final" >/dev/null; then
    rm -rf "$dest"
  else
    rm -rf "$final"
    mv "$dest" "$final"
  fi
  echo "CPython $ver headers: $src ${pyconfig}" >&2
  echo "$final"
}

# Every size/alignment pyconfig.h states must hold for the target compiler.
check_pyconfig() {
  local inc=$1 cxx=aarch64-linux-gnu-g++
  [ "$mode" = yocto ] && cxx=$CXX
  local src=$work/pyconfig_check.cc
  {
    echo '#include <pyconfig.h>'
    echo '#include <pthread.h>'
    echo '#include <stdint.h>'
    echo '#include <stdio.h>'
    echo '#include <sys/types.h>'
    echo '#include <time.h>'
    echo '#include <wchar.h>'
    echo '#ifdef WORDS_BIGENDIAN'
    echo '#error "pyconfig.h says big-endian"'
    echo '#endif'
    local name type
    while read -r name type; do
      printf '#ifdef %s\nstatic_assert(%s == sizeof(%s), "%s");\n#endif\n' "$name" "$name" "$type" "$name"
    done <<'EOF'
SIZEOF_DOUBLE double
SIZEOF_FLOAT float
SIZEOF_FPOS_T fpos_t
SIZEOF_INT int
SIZEOF_LONG long
SIZEOF_LONG_DOUBLE long double
SIZEOF_LONG_LONG long long
SIZEOF_OFF_T off_t
SIZEOF_PID_T pid_t
SIZEOF_PTHREAD_KEY_T pthread_key_t
SIZEOF_PTHREAD_T pthread_t
SIZEOF_SHORT short
SIZEOF_SIZE_T size_t
SIZEOF_TIME_T time_t
SIZEOF_UINTPTR_T uintptr_t
SIZEOF_VOID_P void*
SIZEOF_WCHAR_T wchar_t
SIZEOF__BOOL bool
EOF
    echo '#ifdef ALIGNOF_LONG'
    echo 'static_assert(ALIGNOF_LONG == alignof(long), "ALIGNOF_LONG");'
    echo '#endif'
    echo '#ifdef ALIGNOF_SIZE_T'
    echo 'static_assert(ALIGNOF_SIZE_T == alignof(size_t), "ALIGNOF_SIZE_T");'
    echo '#endif'
  } >"$src"
  # shellcheck disable=SC2086
  $cxx -std=c++17 -fsyntax-only -I"$inc" "$src" || die "pyconfig.h in $inc does not describe the target (see above)"
}

build_one() {
  local ver=$1 nodot=${1/./} inc toolchain opts=() tag
  inc=$(python_headers "$ver")
  tag=cp$nodot-cp$nodot-linux_aarch64
  if [ "$mode" = yocto ]; then
    toolchain=$root/cmake/toolchains/yocto-sdk.cmake
  else
    toolchain=$root/cmake/toolchains/aarch64-linux-gnu.cmake
  fi
  if [ -n "${WG_PEP517_OPTS:-}" ]; then
    # shellcheck disable=SC2206
    opts=($WG_PEP517_OPTS)
  else
    opts=(-Ccmake.toolchain-file="$toolchain" -Cbuild-dir="$work/build/$tag")
    opts+=(-Ccmake.define.WG_STATIC_CXX_RUNTIME=$static_runtime)
  fi
  # The target's Python; options already given (WG_PEP517_OPTS) are not repeated.
  local o
  for o in -Ccmake.python-hints=false -Cwheel.tags="$tag" -Ccmake.define.Python_INCLUDE_DIR="$inc" \
           -Ccmake.define.Python_SOABI="cpython-$nodot-aarch64-linux-gnu" -Ccmake.define.PYBIND11_USE_CROSSCOMPILING=ON; do
    case " ${opts[*]} " in *" ${o%%=*}="*) ;; *) opts+=("$o") ;; esac
  done
  local raw=$work/raw/$tag
  rm -rf "$raw"
  mkdir -p "$raw" "$out"
  local iso=()
  [ "${WG_NO_BUILD_ISOLATION:-0}" = 1 ] && iso=(--no-build-isolation)
  echo "== CPython $ver ($tag)"
  (cd "$root" && CMAKE_BUILD_PARALLEL_LEVEL=${WG_JOBS:-$(nproc)} SETUPTOOLS_EXT_SUFFIX=".cpython-$nodot-aarch64-linux-gnu.so" _PYTHON_HOST_PLATFORM=linux-aarch64 \
     "$py" -m pip wheel . --no-deps "${iso[@]}" -w "$raw" "${opts[@]}")
  local whl
  whl=$(ls "$raw"/*.whl)
  inspect_and_tag "$whl"
}

# auditwheel (reads the symbol versions; its `repair` only offers the host's architecture, so
# the tag it reports is applied with `wheel tags`), installed beside the build when missing.
pytools() {
  local dir=$work/pytools
  if ! PYTHONPATH=$dir "$py" -c 'import auditwheel, wheel' 2>/dev/null; then
    "$py" -m pip install -q --target "$dir" 'auditwheel>=6' 'wheel>=0.40' >&2
  fi
  echo "env PYTHONPATH=$dir $py -m"
}

# The GLIBC_/GLIBCXX_ versions the extension needs, what the wheel holds, and its final tag.
inspect_and_tag() {
  local whl=$1 tmp so
  tmp=$(mktemp -d)
  "$py" -m zipfile -e "$whl" "$tmp"
  so=$(ls "$tmp"/whisper_genio/_core*.so)
  local readelf=aarch64-linux-gnu-readelf
  command -v "$readelf" >/dev/null || readelf=readelf
  echo "   $(basename "$so"): $(file -b "$so" | cut -d, -f1-2)"
  echo "   needs: $("$readelf" -d "$so" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
  local glibc glibcxx
  glibc=$("$readelf" -V "$so" | { grep -o 'GLIBC_[0-9.]*' || true; } | sort -uV | tr '\n' ' ')
  glibcxx=$("$readelf" -V "$so" | { grep -oE '(GLIBCXX|CXXABI)_[0-9.]*' || true; } | sort -uV | tr '\n' ' ')
  echo "   GLIBC_ versions: ${glibc:-none}"
  echo "   GLIBCXX_/CXXABI_ versions: ${glibcxx:-none (libstdc++ linked statically)}"
  if find "$tmp" -name '*.so*' ! -name '_core*.so' | grep -q .; then
    die "unexpected shared libraries in $whl: $(find "$tmp" -name '*.so*' ! -name '_core*.so')"
  fi
  if find "$tmp" -iname '*neuron*' -o -iname '*onnxruntime*' | grep -q '\.so'; then
    die "$whl carries a Neuron/onnxruntime library"
  fi
  rm -rf "$tmp"
  local run show plat
  run=$(pytools)
  show=$($run auditwheel show "$whl" 2>&1 || true)
  plat=$(printf '%s\n' "$show" | grep -oE 'manylinux_2_[0-9]+_aarch64' | head -1 || true)
  if [ -n "$plat" ]; then
    local tagged
    tagged=$($run wheel tags --platform-tag "$plat" "$whl")
    rm -f "$out/$tagged"
    mv "$(dirname "$whl")/$tagged" "$out/"
    echo "   auditwheel: $plat -> $out/$tagged"
  else
    cp "$whl" "$out/"
    echo "   auditwheel gives no manylinux tag; kept linux_aarch64:"
    printf '%s\n' "$show" | sed 's/^/     /'
  fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --out) out=$(realpath -m "$2"); shift 2 ;;
    --yocto) mode=yocto; static_runtime=OFF; shift ;;   # the SDK's libstdc++ is the image's
    --shared-libstdc++) static_runtime=OFF; shift ;;
    debian-root)
      suite=${3:-bookworm}
      debian_root "$(realpath -m "${2:-$(debian_sysroot "$suite")}")" "$suite"; exit 0 ;;
    3.*) versions+=("$1"); shift ;;
    *) usage >&2; exit 2 ;;
  esac
done

mkdir -p "$work"
if [ "$mode" = yocto ]; then
  [ -n "${OECORE_TARGET_SYSROOT:-}" ] || die "--yocto: source the SDK's environment-setup-<target> script first"
  sdk_py=$(ls -d "$OECORE_TARGET_SYSROOT"/usr/include/python3.* 2>/dev/null | head -1 || true)
  [ -n "$sdk_py" ] || die "the SDK has no Python headers (python3-dev): add it to the SDK"
  versions=("${sdk_py##*/python}")
else
  command -v aarch64-linux-gnu-g++ >/dev/null || die "no aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)"
  [ ${#versions[@]} -gt 0 ] || versions=(3.10 3.11 3.12 3.13)
fi
for v in "${versions[@]}"; do build_one "$v"; done
echo "wheels in $out:"
ls -l "$out"
