#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Quick start: installs what is missing, builds the daemon alone (no tests, no
# benchmarks), and runs it with its embedded default configuration
# (http://0.0.0.0:9756/metrics). Extra arguments are passed to the exporter,
# e.g. scripts/run.sh --web.listen-address=127.0.0.1:9756
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/install_deps.sh" build
"$repo/scripts/build.sh" --exporter-only
exec "${BUILD_DIR:-$repo/build}/kvm_exit_exporter" "$@"
