#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Configures and builds into build/ (or $BUILD_DIR).
# Usage: scripts/build.sh [--exporter-only]
#   (default)        everything: the daemon, the tests and the benchmarks
#                    (scripts/test.sh; needs scripts/install_deps.sh test)
#   --exporter-only  the daemon alone, tests and benchmarks left unconfigured
#                    (scripts/run.sh; needs only scripts/install_deps.sh build)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$repo/build}
case "${1:-}" in
  '') with_tests=ON target=all ;;
  --exporter-only) with_tests=OFF target=kvm_exit_exporter ;;
  *) echo "usage: $0 [--exporter-only]" >&2; exit 2 ;;
esac
# Stated every time: one build dir serves both scripts, and a cached OFF left
# by --exporter-only must not hide the tests from the next full build.
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DKVMEXIT_BUILD_TESTS="$with_tests" -DKVMEXIT_BUILD_BENCH="$with_tests" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target "$target"
