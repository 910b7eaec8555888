#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets (tests/fuzz, clang + ASan/UBSan, a build of
# their own) and runs each for a bounded time from its seed corpus.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 20 s, every target)
# Fails on the first crash, leak, timeout or sanitizer report, printing the
# reproducer; rerun it with: <build>/<target> <reproducer>.
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_MAX_LEN (default 4096).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-20}
shift || true
# 0 would mean "forever" to libFuzzer: a bounded run needs at least 1 s.
case "$seconds" in '' | 0 | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;; esac
build=${FUZZ_BUILD_DIR:-$repo/build-fuzz}
max_len=${FUZZ_MAX_LEN:-4096}

cmake -S "$repo" -B "$build" -DKVMEXIT_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets <"$build/fuzz_targets.txt"
fi

# New inputs found in a run go to a scratch corpus; the seeds in the
# repository stay as committed (add a finding to them by hand, with its fix).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

summary=()
for target in "${targets[@]}"; do
  seeds="$repo/tests/fuzz/corpus/$target"
  [ -d "$seeds" ] || { echo "fuzz.sh: no seed corpus $seeds" >&2; exit 1; }
  mkdir -p "$work/$target"
  log="$work/$target.log"
  echo "== $target: ${seconds}s"
  if ! "$build/$target" -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/$target-" \
    "$work/$target" "$seeds" >"$log" 2>&1; then
    tail -n 60 "$log"
    reproducer=$(grep -o "Test unit written to .*" "$log" | tail -n 1 | cut -d' ' -f5-)
    echo "fuzz.sh: $target FAILED; reproducer: ${reproducer:-none written (see the log above)}" >&2
    echo "fuzz.sh: rerun with: $build/$target ${reproducer:-}" >&2
    exit 1
  fi
  # The last status line ("#N DONE cov: ... ft: ... corp: ...") and the final stats.
  status=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  summary+=("$(printf '%-24s %8s exec/s  %s' "$target" "$rate" "$(grep -o 'cov: [0-9]* ft: [0-9]*' <<<"$status")")")
  echo "${summary[-1]}"
done
echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
