// _core.build_info(): how this extension was built (cmake/WgBuildInfo.cmake), for doctor.
#include <pybind11/pybind11.h>

#include <cstdio>
#include <string>

#include "wg_build_info.h"

namespace py = pybind11;

namespace whisper_genio::python {

void register_build_info(py::module_& m) {
  m.def("build_info", [] {
    py::dict d;
    d["isa_levels"] = std::string(WG_BUILD_ISA_LEVELS);
    d["target"] = std::string(WG_BUILD_TARGET);
    d["compiler"] = std::string(WG_BUILD_COMPILER);
    d["cross_compiled"] = static_cast<bool>(WG_BUILD_CROSS);
    d["toolchain_file"] = std::string(WG_BUILD_TOOLCHAIN);
    d["static_cxx_runtime"] = static_cast<bool>(WG_BUILD_STATIC_CXX_RUNTIME);
    // The C library headers compiled against (not the oldest glibc needed: doctor reads
    // that from the extension's ELF symbol versions).
#if defined(__GLIBC__)
    d["glibc_headers"] = std::to_string(__GLIBC__) + "." + std::to_string(__GLIBC_MINOR__);
#else
    d["glibc_headers"] = py::none();
#endif
#if defined(_GLIBCXX_RELEASE)
    d["libstdcxx_release"] = _GLIBCXX_RELEASE;  // the GCC major version of the libstdc++ headers
#else
    d["libstdcxx_release"] = py::none();
#endif
    return d;
  }, "How this extension was built: ISA levels compiled in, target, compiler, C/C++ runtimes.");
}

}  // namespace whisper_genio::python
