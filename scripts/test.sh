#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds and runs every test: unit, integration (real BPF program and daemon),
# monitoring (dashboards, rules, deploy files) and the nested-VM suite that
# produces real kvm:kvm_exit events. Needs root. Extra arguments go to ctest,
# e.g. scripts/test.sh -L e2e   or   scripts/test.sh -LE e2e
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/install_deps.sh" test
"$repo/scripts/build.sh"
cd "${BUILD_DIR:-$repo/build}"
# -j2 runs the x86 nested and host suites, each one emulator thread, two at
# a time; every other test runs alone (tests/CMakeLists.txt,
# KVMEXIT_ONE_CORE_SUITES, KVMEXIT_TEST_ALONE).
ctest -j2 --output-on-failure --timeout 1200 "$@"
