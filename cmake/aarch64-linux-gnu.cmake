# SPDX-License-Identifier: Apache-2.0
# CMake toolchain file: cross build for arm64 (aarch64) on an amd64 Debian 12
# machine, with Debian's cross compiler and Debian's arm64 libraries installed
# beside the amd64 ones (multiarch). scripts/build_arm64.sh installs both and
# uses this file:
#   cmake -S . -B build/arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#
# Multiarch has no separate root: the :arm64 packages install their libraries,
# pkg-config files and CMake package configs under /usr/lib/aarch64-linux-gnu
# of this machine, their headers (the same for every architecture) under
# /usr/include. What keeps the amd64 libraries out is CMAKE_LIBRARY_ARCHITECTURE
# (find_* look in lib/aarch64-linux-gnu, never lib/x86_64-linux-gnu),
# CMAKE_IGNORE_PATH (belt and braces) and PKG_CONFIG_LIBDIR.
#
# Two -dev packages cannot be installed for arm64 beside their amd64 versions
# (libyaml-cpp-dev is Multi-Arch: none; prometheus-cpp-dev:arm64 needs civetweb:arm64,
# which is): scripts/build_arm64.sh unpacks them into a directory of the build
# it names with -DCMAKE_PREFIX_PATH=<dir>/usr; their libraries themselves are
# installed :arm64 packages.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# g++-aarch64-linux-gnu (binutils-aarch64-linux-gnu: ar, strip, objdump; CMake
# finds them by the compiler's prefix).
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# find_* roots: the target's files are this machine's, so the root is / and
# libraries, headers and packages are searched there only; programs run on
# this machine (clang and bpftool build the BPF objects, which are the same
# for any host) are this machine's.
set(CMAKE_FIND_ROOT_PATH /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
set(CMAKE_FIND_USE_PACKAGE_REGISTRY OFF)

# pkg-config: the arm64 .pc files only (and the architecture-independent ones).
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})
