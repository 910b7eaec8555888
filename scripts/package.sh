#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian package kvm-exit-exporter: installs the build packages,
# builds the daemon into build/ (or $BUILD_DIR), runs CPack (cmake/packaging.cmake) and
# prints the path of the .deb. Install it with: apt install ./build/kvm-exit-exporter_*.deb
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$repo/build}
"$repo/scripts/install_deps.sh" build
"$repo/scripts/build.sh" --exporter-only
out=$(cmake --build "$build_dir" --target package 2>&1) || {
  echo "$out" >&2
  exit 1
}
# CPack's last words: "CPack: - package: /path/to/file.deb generated."
sed -n 's/^CPack: - package: \(.*\) generated\.$/\1/p' <<<"$out"
