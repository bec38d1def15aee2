SUMMARY = "OpenAI Whisper on MediaTek Genio boards: C++ core, NPU (Neuron) and CPU encoder backends"
DESCRIPTION = "whisper_genio: a Python package over a C++ core (log-mel, NEON kernels, decoder), \
encoders on the CPU, on the MDLA through MediaTek's Neuron runtime (loaded at run time with \
dlopen) or through ONNX Runtime."
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://pyproject.toml;beginline=11;endline=11;md5=29c91c89ee62891477a1476375143bef"

# Where the sources come from: set WHISPER_GENIO_GIT_URI (and _BRANCH / SRCREV) in local.conf,
# or build a checkout with externalsrc (README, "On a Genio board").
WHISPER_GENIO_GIT_URI ??= ""
WHISPER_GENIO_GIT_BRANCH ??= "main"
SRC_URI = "${WHISPER_GENIO_GIT_URI};branch=${WHISPER_GENIO_GIT_BRANCH}"
SRCREV ??= "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

python () {
    if not d.getVar("WHISPER_GENIO_GIT_URI") and not d.getVar("EXTERNALSRC"):
        raise bb.parse.SkipRecipe("set WHISPER_GENIO_GIT_URI (git://...;protocol=...) or EXTERNALSRC for python3-whisper-genio")
}

# scikit-build-core drives CMake; pybind11's CMake files come from the native sysroot
# (header-only: csrc/CMakeLists.txt may take the build host's copy). cmake first: the class
# inherited last provides do_compile/do_install, and those must be the PEP 517 build's.
inherit cmake python_setuptools_build_meta

DEPENDS += " \
    python3-scikit-build-core-native \
    python3-pybind11-native \
    python3-pybind11 \
    python3 \
"

# The toolchain file is the one bitbake writes for every cmake recipe (cmake_do_generate_toolchain_file):
# it names the cross compiler, the target sysroot and CMAKE_SYSTEM_PROCESSOR (aarch64 -> NEON
# kernels). The image's own libstdc++ is linked (WG_STATIC_CXX_RUNTIME off): the Debian-built
# wheels link it statically instead. tests/python/test_aarch64_wheel.py runs these exact options
# (${WORKDIR}/toolchain.cmake replaced by cmake/toolchains/aarch64-linux-gnu.cmake, ${B} by a
# build folder) with Debian's cross compiler and imports the result under qemu.
PEP517_BUILD_OPTS = "--skip-dependency-check \
    -Ccmake.define.CMAKE_TOOLCHAIN_FILE=${WORKDIR}/toolchain.cmake \
    -Cbuild-dir=${B} \
    -Ccmake.build-type=Release \
    -Ccmake.define.WG_BUILD_PYTHON=ON \
    -Ccmake.define.WG_STATIC_CXX_RUNTIME=OFF \
    -Ccmake.python-hints=false \
    -Ccmake.define.Python_INCLUDE_DIR=${STAGING_INCDIR}/python${PYTHON_BASEVERSION} \
    -Ccmake.define.Python_SOABI=${WHISPER_GENIO_SOABI} \
    -Ccmake.define.PYBIND11_USE_CROSSCOMPILING=ON \
"
# The extension's file name (target SOABI), for scikit-build-core and pybind11 alike.
WHISPER_GENIO_SOABI = "cpython-${@d.getVar('PYTHON_BASEVERSION').replace('.', '')}-${HOST_ARCH}-linux-gnu"
export SETUPTOOLS_EXT_SUFFIX = ".${WHISPER_GENIO_SOABI}.so"

# python_setuptools_build_meta builds the wheel in do_compile; cmake.bbclass's own configure and
# compile steps would run CMake a second time without scikit-build-core.
do_configure[noexec] = "1"
do_compile:prepend() {
    cmake_do_generate_toolchain_file
}

# Runtime: the wheel's dependencies (pyproject.toml). soundfile loads libsndfile from the image
# (its Linux aarch64 wheels ship it; a Yocto-built soundfile does not).
RDEPENDS:${PN} += " \
    python3-core \
    python3-ctypes \
    python3-json \
    python3-numpy \
    python3-tokenizers \
    python3-soundfile \
    python3-soxr \
    python3-tqdm \
    libsndfile1 \
"
# Encoder on the NPU: the Neuron runtime (libneuron_runtime / libneuronusdk_runtime) comes from
# MediaTek's IoT Yocto layers (packagegroup-rity-mtk-neuropilot, as doctor suggests); whisper_genio dlopen()s it, so it is only
# recommended: a board without it transcribes on the CPU and `whisper-genio doctor` says why.
# onnxruntime (meta-neuropilot's build carries the NeuronExecutionProvider) is optional too.
RRECOMMENDS:${PN} += "${WHISPER_GENIO_NEURON_RUNTIME}"
WHISPER_GENIO_NEURON_RUNTIME ??= "packagegroup-rity-mtk-neuropilot"
RSUGGESTS:${PN} += "onnxruntime python3-onnxruntime"
