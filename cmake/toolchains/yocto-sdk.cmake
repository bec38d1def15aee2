# Cross-compiling with a Yocto SDK (e.g. the MediaTek Genio "rity" SDK built with
# `bitbake <image> -c populate_sdk`), from the environment its setup script exports.
#
#   . /opt/rity/<version>/environment-setup-aarch64-poky-linux   # or the SDK's own path
#   cmake -S . -B build/genio -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/yocto-sdk.cmake \
#         -DCMAKE_BUILD_TYPE=Release [-DWG_BUILD_TESTS=ON]
#   cmake --build build/genio
#   ctest --test-dir build/genio     # through qemu-<arch> -L $OECORE_TARGET_SYSROOT, when found
#
# What is read from the environment (all exported by environment-setup-*):
#   OECORE_TARGET_SYSROOT  the target root: CMAKE_SYSROOT, and the only place find_* look
#   OECORE_NATIVE_SYSROOT  host tools of the SDK (compilers, qemu-<arch> when the SDK has it)
#   OECORE_TARGET_ARCH     CMAKE_SYSTEM_PROCESSOR (aarch64 -> the NEON kernels)
#   CC, CXX                compiler plus the SDK's machine flags (-mcpu=..., --sysroot=...):
#                          the first word is the compiler, the rest become initial flags
#                          (--sysroot dropped: CMAKE_SYSROOT adds it)
#   CFLAGS, CXXFLAGS, LDFLAGS  CMake itself starts CMAKE_<LANG>_FLAGS and the linker flags
#                          from these on the first configure
# Re-run the configure step in a fresh build directory after sourcing another SDK.
# The Python extension needs the target's Python headers and pybind11 in the SDK
# (python3-dev, python3-pybind11 in the image's SDK) when WG_BUILD_PYTHON=ON.

if(NOT DEFINED ENV{OECORE_TARGET_SYSROOT} OR NOT DEFINED ENV{CXX})
  message(FATAL_ERROR "yocto-sdk.cmake: no Yocto SDK environment. Source the SDK's "
                      "environment-setup-<target> script first (it exports OECORE_TARGET_SYSROOT, CC, CXX).")
endif()

set(CMAKE_SYSTEM_NAME Linux)
if(DEFINED ENV{OECORE_TARGET_ARCH} AND NOT "$ENV{OECORE_TARGET_ARCH}" STREQUAL "")
  set(CMAKE_SYSTEM_PROCESSOR $ENV{OECORE_TARGET_ARCH})
else()
  set(CMAKE_SYSTEM_PROCESSOR aarch64)
endif()

set(CMAKE_SYSROOT $ENV{OECORE_TARGET_SYSROOT})
set(CMAKE_FIND_ROOT_PATH $ENV{OECORE_TARGET_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # build tools come from the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)    # libraries, headers, packages from the target
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# $CC / $CXX: "<triple>-gcc -mcpu=... -fstack-protector-strong ... --sysroot=<dir>".
function(_wg_yocto_compiler lang var)
  separate_arguments(_words UNIX_COMMAND "$ENV{${var}}")
  list(LENGTH _words _n)
  if(_n EQUAL 0)
    message(FATAL_ERROR "yocto-sdk.cmake: \$${var} is empty")
  endif()
  list(GET _words 0 _compiler)
  list(REMOVE_AT _words 0)
  list(FILTER _words EXCLUDE REGEX "^--sysroot")
  find_program(_wg_path_${lang} NAMES ${_compiler}
               HINTS $ENV{OECORE_NATIVE_SYSROOT}/usr/bin $ENV{OECORE_NATIVE_SYSROOT}/usr/bin/$ENV{TARGET_PREFIX}
               NO_CMAKE_FIND_ROOT_PATH)
  if(_wg_path_${lang})
    set(_compiler ${_wg_path_${lang}})
  endif()
  string(JOIN " " _flags ${_words})
  set(CMAKE_${lang}_COMPILER ${_compiler} PARENT_SCOPE)
  set(_wg_yocto_${lang}_flags "${_flags}" PARENT_SCOPE)
endfunction()

_wg_yocto_compiler(C CC)
_wg_yocto_compiler(CXX CXX)
set(CMAKE_C_FLAGS_INIT "${_wg_yocto_C_flags}")
set(CMAKE_CXX_FLAGS_INIT "${_wg_yocto_CXX_flags}")

# Tests run under user-mode qemu: the SDK's own qemu-<arch> if it ships one, else the host's.
if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(WG_YOCTO_QEMU NAMES qemu-${CMAKE_SYSTEM_PROCESSOR}
               HINTS $ENV{OECORE_NATIVE_SYSROOT}/usr/bin NO_CMAKE_FIND_ROOT_PATH)
  if(WG_YOCTO_QEMU)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${WG_YOCTO_QEMU} -L $ENV{OECORE_TARGET_SYSROOT})
  endif()
endif()
