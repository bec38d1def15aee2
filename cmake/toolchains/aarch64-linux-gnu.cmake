# Cross-compiling for aarch64 Linux with Debian's cross toolchain, running tests under qemu.
#
#   apt-get install g++-aarch64-linux-gnu qemu-user
#   cmake -S . -B build/aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DWG_BUILD_TESTS=ON
#   cmake --build build/aarch64 && ctest --test-dir build/aarch64 --output-on-failure
#
# CMAKE_SYSTEM_PROCESSOR selects the NEON kernels (cmake/WgCompilerFlags.cmake); NEON is part
# of the aarch64 base ISA, so no -march flag is needed (the Genio SoCs' Cortex-A55/A78 run
# plain armv8-a code). Set WG_AARCH64_TRIPLE for another Debian-style triple prefix and
# WG_AARCH64_SYSROOT if the target libraries live elsewhere than /usr/<triple>.
# For a Yocto/Genio SDK use cmake/toolchains/yocto-sdk.cmake instead.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT DEFINED WG_AARCH64_TRIPLE)
  set(WG_AARCH64_TRIPLE aarch64-linux-gnu)
endif()
if(NOT DEFINED WG_AARCH64_SYSROOT)
  # Debian's multiarch-cross layout: headers and libraries of the target under /usr/<triple>.
  set(WG_AARCH64_SYSROOT /usr/${WG_AARCH64_TRIPLE})
endif()
# try_compile projects re-read this file: pass the settings on.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES WG_AARCH64_TRIPLE WG_AARCH64_SYSROOT)

set(CMAKE_C_COMPILER ${WG_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${WG_AARCH64_TRIPLE}-g++)

# Debian's cross compilers find their own headers and libraries (they are not sysroot
# builds), so CMAKE_SYSROOT stays unset; find_* look in the target tree only.
set(CMAKE_FIND_ROOT_PATH ${WG_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# CTest (and add_custom_command with a target as command) run target binaries through qemu;
# -L points the emulator at the target's dynamic loader and libraries.
if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${WG_AARCH64_SYSROOT})
endif()
