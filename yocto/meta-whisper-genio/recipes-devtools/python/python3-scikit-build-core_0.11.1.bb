SUMMARY = "Build backend for CMake based projects"
DESCRIPTION = "scikit-build-core builds Python wheels of CMake projects (PEP 517). meta-python \
ships it from walnascar on; this copy is for scarthgap and kirkstone, where it is missing."
HOMEPAGE = "https://github.com/scikit-build/scikit-build-core"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b4e748e5f102e31c9390dcd6fa66f09"

PYPI_PACKAGE = "scikit_build_core"
SRC_URI[sha256sum] = "4e5988df5cd33f0bdb9967b72663ca99f50383c9bc21d8b24fa40c0661ae72b7"

inherit pypi python_hatchling

DEPENDS += "python3-hatch-vcs-native"

# Python < 3.11 (kirkstone) needs tomli and exceptiongroup as well.
RDEPENDS:${PN} += " \
    python3-packaging \
    python3-pathspec \
    python3-json \
    python3-logging \
    ${@'python3-tomli python3-exceptiongroup' if d.getVar('PYTHON_BASEVERSION') == '3.10' else ''} \
"
# Recipes that build with it add cmake-native (and ninja-native) to their DEPENDS.
BBCLASSEXTEND = "native nativesdk"
