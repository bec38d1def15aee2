# What a build of the extension is: the kernel ISA levels compiled in, the target, the compiler,
# the C and C++ runtimes it was compiled against and how libstdc++ is linked. `whisper-genio
# doctor` shows these beside what the machine has (whisper_genio._core.build_info()).
#
# WG_STATIC_CXX_RUNTIME=ON links libstdc++ and libgcc into the extension (their symbols kept
# private), so a wheel built with a newer GCC imports on a board whose libstdc++ is older
# (kirkstone: GCC 11). tools/build_aarch64_wheels.sh turns it on; a Yocto recipe leaves it off
# and links the image's own libstdc++.
option(WG_STATIC_CXX_RUNTIME "Link libstdc++/libgcc statically into the Python extension" OFF)

function(wg_build_info target)
  if(WG_ARCH_X86_64)
    set(levels "generic avx2")
  elseif(WG_ARCH_AARCH64)
    set(levels "generic neon neon_dotprod")
  else()
    set(levels "generic")
  endif()
  set(WG_BUILD_ISA_LEVELS "${levels}")
  set(WG_BUILD_TARGET "${CMAKE_SYSTEM_NAME} ${CMAKE_SYSTEM_PROCESSOR}")
  set(WG_BUILD_COMPILER "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
  if(CMAKE_CROSSCOMPILING)
    set(WG_BUILD_CROSS 1)
  else()
    set(WG_BUILD_CROSS 0)
  endif()
  if(CMAKE_TOOLCHAIN_FILE)
    get_filename_component(WG_BUILD_TOOLCHAIN "${CMAKE_TOOLCHAIN_FILE}" NAME)
  else()
    set(WG_BUILD_TOOLCHAIN "")
  endif()
  if(WG_STATIC_CXX_RUNTIME)
    if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      message(FATAL_ERROR "WG_STATIC_CXX_RUNTIME needs GCC (libstdc++), got ${CMAKE_CXX_COMPILER_ID}")
    endif()
    # --exclude-libs: the static runtime's symbols stay local to the extension. --gc-sections:
    # unused parts of libstdc++.a stay out, and with them the newest glibc symbols they name
    # (GCC 12's std::random_device calls arc4random, GLIBC_2.36, which Whisper never uses).
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc LINKER:--exclude-libs,ALL
                        LINKER:--gc-sections)
    set(WG_BUILD_STATIC_CXX_RUNTIME 1)
  else()
    set(WG_BUILD_STATIC_CXX_RUNTIME 0)
  endif()
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/wg_generated")
  configure_file("${PROJECT_SOURCE_DIR}/cmake/wg_build_info.h.in" "${dir}/wg_build_info.h" @ONLY)
  target_include_directories(${target} PRIVATE "${dir}")
endfunction()
