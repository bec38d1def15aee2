# Warnings, sanitizers and the per-ISA kernel flags, in one place.

# Which kernel variants this target architecture gets. Decided from the *target* processor,
# so cross builds (cmake/toolchains/*.cmake) pick the right set.
string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" WG_TARGET_ARCH)
if(WG_TARGET_ARCH MATCHES "^(x86_64|amd64|x64)$")
  set(WG_ARCH_X86_64 ON)
elseif(WG_TARGET_ARCH MATCHES "^(aarch64|arm64)$")
  set(WG_ARCH_AARCH64 ON)
endif()

function(wg_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  endif()
endfunction()

if(WG_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
