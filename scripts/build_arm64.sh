#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Cross-builds the exporter for arm64 (aarch64) on an amd64 Debian 12 machine
# and makes its Debian package with the same CPack setup as the amd64 one
# (cmake/packaging.cmake):
#   scripts/build_arm64.sh [BUILD_DIR]     (default build/arm64; as root when packages are missing)
# prints the time of each step and, last, the path of
# BUILD_DIR/kvm-exit-exporter_<version>-<release>_arm64.deb. Steps:
#   packages   scripts/install_deps.sh build (cmake, clang, bpftool, libcli11-dev,
#              dpkg-dev ...: they run here or are the same for every architecture),
#              then g++-aarch64-linux-gnu and Debian's arm64 libraries beside the
#              amd64 ones (multiarch: dpkg --add-architecture arm64). Nothing
#              when all are there.
#   dev files  the arm64 files of the two -dev packages multiarch cannot
#              install beside their amd64 versions (below), unpacked into
#              BUILD_DIR/arm64-dev. Nothing when they are there.
#   configure  cmake with cmake/aarch64-linux-gnu.cmake, the daemon alone
#              (no tests, no benchmarks).
#   build      the target kvm_exit_exporter only.
#   cpack      cpack -G DEB in BUILD_DIR.
# Run again with nothing changed, it installs and builds nothing.
# tests/package (ctest package_deb_arm64) runs it and checks the package.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build/arm64}
arch=arm64
tuple=aarch64-linux-gnu
toolchain=$repo/cmake/aarch64-linux-gnu.cmake

# The :arm64 packages of scripts/install_deps.sh's build list whose files
# differ by architecture (libcli11-dev is headers only, Architecture: all; the
# tools run on this machine). All are Multi-Arch: same, installed beside the
# amd64 ones, except two that Debian 12 cannot co-install:
#   libyaml-cpp-dev      Multi-Arch: none: the arm64 one would replace the amd64 one;
#   prometheus-cpp-dev   Multi-Arch: same, but it depends on civetweb (a
#                        program, Multi-Arch: none), whose arm64 version would
#                        replace the amd64 one and with it prometheus-cpp-dev:amd64.
# For those two, their libraries and the other packages they depend on are
# installed as :arm64 packages (co-installable, known to dpkg, so that
# dpkg-shlibdeps computes the package's Depends from them), and the -dev
# packages' own files (headers, CMake package configuration, the .so links)
# are unpacked, not installed, into BUILD_DIR/arm64-dev (apt-get download,
# dpkg-deb -x), which the configure step puts in CMAKE_PREFIX_PATH.
arm64_packages=(
  libbpf-dev libelf-dev zlib1g-dev linux-libc-dev libmicrohttpd-dev
  libre2-dev libcap-dev libsystemd-dev libgnutls28-dev libcrypt-dev
  # prometheus-cpp-dev's dependencies but civetweb; libyaml-cpp-dev's.
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprometheus-cpp-push1.0
  libcivetweb-dev libcurl4-openssl-dev
  libyaml-cpp0.7
)
native_packages=(g++-aarch64-linux-gnu)
# -dev package unpacked into arm64-dev : its library package (same source
# version), whose installed arm64 files the unpacked configuration points at.
unpacked_dev=(
  prometheus-cpp-dev:libprometheus-cpp-core1.0:libprometheus-cpp-pull1.0:libprometheus-cpp-push1.0
  libyaml-cpp-dev:libyaml-cpp0.7
)

log_dir=$build/build_arm64-logs
mkdir -p "$log_dir"
now() { date +%s.%N; }
total_start=$(now)
step_start=$total_start
step_done() { # step_done NAME [NOTE]: prints the step's time
  local end
  end=$(now)
  awk -v n="$1" -v s="$step_start" -v e="$end" -v note="${2:-}" \
    'BEGIN { printf "build_arm64: %-10s %6.1f s%s\n", n, e - s, (note == "" ? "" : "  (" note ")") }'
  step_start=$end
}
run_logged() { # run_logged LOG COMMAND...: output to LOG, shown when the command fails
  local log=$1 rc=0
  shift
  "$@" >"$log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    sed 's/^/  | /' "$log" >&2
    echo "build_arm64: failed (exit $rc): $* (log: $log)" >&2
    exit "$rc"
  fi
}
installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }
need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "build_arm64: $1: run as root (apt-get needs it), e.g. sudo $0 ${build}" >&2
    exit 1
  fi
}
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }

# --- packages ----------------------------------------------------------------------
"$repo/scripts/install_deps.sh" build
missing=()
for package in "${native_packages[@]}"; do installed "$package" || missing+=("$package"); done
for package in "${arm64_packages[@]}"; do installed "$package:$arch" || missing+=("$package:$arch"); done
note="all installed"
if [[ ${#missing[@]} -gt 0 ]]; then
  need_root "install ${missing[*]}"
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    dpkg --add-architecture "$arch"
  fi
  run_logged "$log_dir/apt-update.log" apt_get update -qq
  # Multi-Arch: same packages must have the amd64 version's version: apt may
  # upgrade amd64 packages to match, but must remove none.
  run_logged "$log_dir/apt-simulate.log" apt_get install --simulate --no-install-recommends "${missing[@]}"
  if grep '^Remv ' "$log_dir/apt-simulate.log" >&2; then
    echo "build_arm64: installing ${missing[*]} would remove the packages above; not done" >&2
    exit 1
  fi
  # "Inst name [installed version] (new version ...)": an upgrade.
  upgraded=$(grep -cE '^Inst [^ ]+ \[' "$log_dir/apt-simulate.log" || true)
  run_logged "$log_dir/apt-install.log" apt_get install -y -qq --no-install-recommends "${missing[@]}"
  note="installed ${#missing[@]} named, $(grep -c '^Inst ' "$log_dir/apt-simulate.log") in all, $upgraded of them upgrades"
fi
step_done packages "$note"

# --- the -dev files multiarch cannot install ------------------------------------------
dev_root=$build/arm64-dev
wanted=() # package:arm64=version, the version of its installed library
for entry in "${unpacked_dev[@]}"; do
  IFS=: read -r dev libs <<<"$entry"
  wanted+=("$dev:$arch=$(dpkg-query -W -f='${Version}' "${libs%%:*}:$arch")")
done
note="already unpacked"
if [[ $(cat "$dev_root/.unpacked" 2>/dev/null) != "${wanted[*]}" ]]; then
  rm -rf "$dev_root"
  mkdir -p "$dev_root/.debs"
  (cd "$dev_root/.debs" && run_logged "$log_dir/apt-download.log" apt-get download "${wanted[@]}")
  for deb in "$dev_root"/.debs/*.deb; do dpkg-deb -x "$deb" "$dev_root"; done
  # The configurations name the libraries next to themselves: link those to
  # the installed arm64 libraries.
  for entry in "${unpacked_dev[@]}"; do
    IFS=: read -r -a names <<<"$entry"
    for lib in "${names[@]:1}"; do
      dpkg -L "$lib:$arch" | grep "^/usr/lib/$tuple/[^/]*\.so\.[0-9.]*$" |
        while read -r file; do ln -sfn "$file" "$dev_root$file"; done
    done
  done
  echo "${wanted[*]}" >"$dev_root/.unpacked"
  note="unpacked ${wanted[*]}"
fi
step_done "dev files" "$note"

# --- configure ------------------------------------------------------------------------
if [[ -f $build/CMakeCache.txt ]]; then
  configured=$(sed -n 's/^CMAKE_TOOLCHAIN_FILE:[A-Z]*=//p' "$build/CMakeCache.txt")
  if [[ $configured != "$toolchain" ]]; then
    echo "build_arm64: $build is configured without $toolchain ('$configured'): use another directory" >&2
    exit 1
  fi
fi
run_logged "$log_dir/configure.log" cmake -S "$repo" -B "$build" \
  -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DCMAKE_PREFIX_PATH="$dev_root/usr" \
  -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DKVMEXIT_BUILD_TESTS=OFF -DKVMEXIT_BUILD_BENCH=OFF
step_done configure

# --- build ------------------------------------------------------------------------------
run_logged "$log_dir/build.log" cmake --build "$build" --target kvm_exit_exporter -j"$(nproc)"
step_done build

# --- package ----------------------------------------------------------------------------
cpack_in_build() { cd "$build" && cpack -G DEB; }
run_logged "$log_dir/cpack.log" cpack_in_build
# CPack's last words: "CPack: - package: /path/to/file.deb generated."
deb=$(sed -n 's/^CPack: - package: \(.*\) generated\.$/\1/p' "$log_dir/cpack.log")
step_done cpack "$(stat -c %s "$deb") bytes"
step_start=$total_start
step_done total
echo "$deb"
