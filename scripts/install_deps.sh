#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages needed to build, run and test kvm_exit_exporter.
# Usage: scripts/install_deps.sh [runtime|build|test]   (each level includes the previous)
set -euo pipefail

level=${1:-test}
build_packages=(
  cmake make g++ pkg-config git
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev linux-libc-dev
  prometheus-cpp-dev libmicrohttpd-dev libyaml-cpp-dev libcli11-dev
  libre2-dev # vms.naming_rules regexes
  libcap-dev # exporter/app/privileges.cpp: drop capabilities after attaching
  libsystemd-dev # exporter/source/systemd_fd_store.cpp: the BPF state in systemd's fd store
  libgnutls28-dev libcrypt-dev # --web.config.file: client certificates (GnuTLS), bcrypt (libxcrypt)
  dpkg-dev file # the Debian package: cpack -G DEB computes Depends with dpkg-shlibdeps (and file)
)
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev
  curl python3 prometheus
  openssl apache2-utils # tests/integration/web_tls_test.sh: certificates, htpasswd -B
  qemu-system-x86 busybox-static cpio xz-utils zstd kmod
  mmdebstrap e2fsprogs # tests/host/build_image.sh: the Debian 12 system image of the host suite
  bochs bochsbios vgabios isolinux syslinux-common xorriso # tests/e2e/run_e2e_vmx.sh (Intel VMX suite)
  lintian systemd # tests/package/check_deb.sh: lintian, systemd-analyze verify
  clang-14 libclang-rt-14-dev # scripts/fuzz.sh: libFuzzer, ASan and UBSan runtimes
)
case "$level" in
  runtime | build) packages=("${build_packages[@]}") ;;
  test) packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: $0 [runtime|build|test]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps.sh: run as root (apt-get needs it), e.g. sudo $0 $level" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
# Node.js validates the Kubernetes manifests. Some images ship a Node.js build
# that bundles npm and conflicts with Debian's npm package: add only what is absent.
if [ "$level" = test ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
