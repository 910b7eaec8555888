#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets (tests/fuzz, clang + ASan/UBSan, a build of
# their own) and runs them in one of two modes:
#
#   scripts/fuzz.sh --regress [TARGET...]
#       The test suite's gate (ctest `fuzz`): replays every input of the
#       committed corpus (tests/fuzz/corpus/<target>/, the regression seeds
#       included) and every file of the tree that seeds the target as it is
#       now (SEEDS in tests/fuzz/CMakeLists.txt, copied to
#       <build>/fuzz-seeds/<target>/ at configure) one by one, then explores
#       a fixed number of runs (FUZZ_REGRESS_RUNS, default 20000) from a
#       fixed seed. The same tree gives the same inputs on every machine and
#       every run: a red gate means this tree has a bug, never that this run
#       was unlucky.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 20 s, every target)
#       Exploration from a random seed for a bounded time, to find new bugs.
#       A finding is fixed where the shared mechanism is, and its reproducer
#       joins the corpus with the fix (then --regress replays it forever).
#
# Fails on the first crash, leak, timeout or sanitizer report, printing the
# reproducer; rerun it with: <build>/<target> <reproducer>.
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_MAX_LEN (default 4096).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 [--regress | SECONDS_PER_TARGET] [TARGET...]"
mode=explore
seconds=20
if [ "${1:-}" = --regress ]; then
  mode=regress
  shift
elif [ "$#" -gt 0 ]; then
  seconds=$1
  shift
  # 0 would mean "forever" to libFuzzer: a bounded run needs at least 1 s.
  case "$seconds" in '' | 0 | *[!0-9]*) echo "$usage" >&2; exit 2 ;; esac
fi
regress_runs=${FUZZ_REGRESS_RUNS:-20000}
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

# fail TARGET LOG: prints the end of the log and how to rerun the reproducer, then exits 1.
fail() {
  local target=$1 log=$2 reproducer
  tail -n 60 "$log"
  reproducer=$(grep -o "Test unit written to .*" "$log" | tail -n 1 | cut -d' ' -f5-)
  echo "fuzz.sh: $target FAILED; reproducer: ${reproducer:-none written (see the log above)}" >&2
  echo "fuzz.sh: rerun with: $build/$target ${reproducer:-}" >&2
  exit 1
}

summary=()
for target in "${targets[@]}"; do
  seeds=("$repo/tests/fuzz/corpus/$target")
  [ -d "${seeds[0]}" ] || { echo "fuzz.sh: no seed corpus ${seeds[0]}" >&2; exit 1; }
  # Files of the tree that seed the target as they are now (SEEDS in tests/fuzz/CMakeLists.txt).
  [ -d "$build/fuzz-seeds/$target" ] && seeds+=("$build/fuzz-seeds/$target")
  mkdir -p "$work/$target"
  log="$work/$target.log"
  options=(-max_len="$max_len" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
    -artifact_prefix="$artifacts/$target-")
  if [ "$mode" = regress ]; then
    # Each committed input alone first, so a regression names its file.
    mapfile -t inputs < <(find "${seeds[@]}" -type f | sort)
    echo "== $target: replaying ${#inputs[@]} corpus inputs, then $regress_runs runs from seed 1"
    "$build/$target" "${options[@]}" "${inputs[@]}" >"$log" 2>&1 || fail "$target" "$log"
    # Address randomisation off: compared pointer values steer libFuzzer's
    # mutations, so with it on the same seed explored different inputs.
    # -reload=0: libFuzzer rereads its corpus directories once a second by
    # default and runs what it finds there again; when that falls depends on
    # the clock, so on a loaded machine the same seed explored differently.
    setarch "$(uname -m)" -R "$build/$target" "${options[@]}" -reload=0 -seed=1 \
      -runs="$regress_runs" \
      "$work/$target" "${seeds[@]}" >"$log" 2>&1 || fail "$target" "$log"
  else
    echo "== $target: ${seconds}s"
    "$build/$target" "${options[@]}" -max_total_time="$seconds" "$work/$target" "${seeds[@]}" \
      >"$log" 2>&1 || fail "$target" "$log"
  fi
  # The last status line ("#N DONE cov: ... ft: ... corp: ...") and the final stats.
  status=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  summary+=("$(printf '%-24s %8s exec/s  %s' "$target" "$rate" "$(grep -o 'cov: [0-9]* ft: [0-9]*' <<<"$status")")")
  echo "${summary[-1]}"
done
[ "$mode" = regress ] && what="corpus + $regress_runs runs from seed 1" || what="${seconds}s"
echo "== fuzz summary ($what per target)"
printf '%s\n' "${summary[@]}"
