#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Per-exit cost of the kvm_exit program, measured where kvm:kvm_exit really
# fires: inside the nested guest of the e2e suite (QEMU TCG, AMD SVM,
# Debian's kernel with kvm_amd). One boot runs the same exit-heavy test_vmm
# scenario several times with no program, with ours and with the reference
# (bcc-style kvmexit), interleaved; see README.md.
#
# usage: run_exit_cost.sh BUILD_DIR
#   BUILD_DIR  the CMake build folder holding
#              bench/exit_cost/exit_cost_loader and tests/e2e/kvmexit_test_vmm
#              (cmake --build BUILD_DIR --target exit_cost_loader kvmexit_test_vmm)
# Environment (defaults in brackets):
#   EXIT_COST_RUNS [5]        timed runs per mode and scenario
#   EXIT_COST_CPUID [200000]  CPUID exits per run (handled inside KVM); 0 skips
#   EXIT_COST_IO [100000]     IO exits per run (round trip to test_vmm); 0 skips
#   EXIT_COST_MSR [0]         RDMSR exits per run (handled in KVM); 0 skips
#   EXIT_COST_HYPERCALL [0]   hypercall exits per run (handled in KVM); 0 skips
#   EXIT_COST_MMIO [0]        MMIO reads per run (a page-fault exit each, out
#                             to test_vmm as KVM_EXIT_MMIO); 0 skips
#   EXIT_COST_ALTERNATE [0]   IO exits per vCPU of two vCPU threads taking
#                             turns on one CPU (the per-CPU index cache's
#                             miss path); 0 skips
#   EXIT_COST_MODES [none,ours,reference]  `none` first; other names are
#                             programs exit_cost_loader knows (`ours_tp`: ours
#                             on the classic tracepoint, variants.bpf.c's)
#   EXIT_COST_STATS [1]       kernel.bpf_stats_enabled in the guest
#   EXIT_COST_TIMEOUT [900]   seconds before QEMU (or Bochs) is killed
#   EXIT_COST_POSSIBLE_CPUS [empty]  possible_cpus=N on the guest kernel's
#                             command line: per-CPU maps sized as on an
#                             N-thread host (the reference's does not fit 1 GiB
#                             at 384), the exporter's counter shards with it
#   EXIT_COST_VMX [empty]     1: Intel VMX instead, under Bochs (kvm_intel):
#                             tests/e2e/run_e2e_vmx.sh boots it with the
#                             benchmark in place of its checks; Bochs's guest
#                             clock counts instructions (clock: sync=none,
#                             ips=50000000: 1 ms = 50,000 instructions)
#   EXIT_COST_ARM64 [empty]   1: arm64 instead (qemu-system-aarch64, -M
#                             virt,virtualization=on -cpu max, the arm64 e2e
#                             image with KVM built in); BUILD_DIR is then a
#                             cross build (cmake/aarch64-linux-gnu.cmake) with
#                             exit_cost_loader only: test_vmm is arm64_vmm,
#                             built by tests/e2e/build_image.sh; scenarios
#                             hvc and sysreg instead of cpuid and io
#   EXIT_COST_HVC [200000]    arm64: `hvc #0` exits per run (in KVM); 0 skips
#   EXIT_COST_SYSREG [200000] arm64: ID register reads per run (in KVM); 0 skips
# Writes BUILD_DIR/exit_cost/ (exit_cost_vmx/ with EXIT_COST_VMX=1,
# exit_cost_arm64/ with EXIT_COST_ARM64=1): image/
# (base e2e image), bench.cpio.gz, serial.log (raw guest console), results.txt
# (BENCH lines), report.txt (the table printed at the end).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
readonly SCRIPT_DIR REPO_DIR

die() { printf 'run_exit_cost: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'run_exit_cost: %s\n' "$*" >&2; }

usage() {
  echo "usage: run_exit_cost.sh BUILD_DIR" >&2
  exit 2
}

ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} == 0 ]] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

# Copies $1 and every shared library ldd finds for it (dynamic loader
# included) into the root $3, the binary as $2.
add_dynamic_binary() {
  local bin=$1 dest=$2 root=$3 lib
  if [[ ${EXIT_COST_ARM64:-} == 1 ]]; then
    add_aarch64_binary "$@"
    return
  fi
  ldd "$bin" >/dev/null 2>&1 || die "ldd $bin failed (not a dynamic executable?)"
  if ldd "$bin" | grep -q 'not found'; then
    die "ldd $bin: missing libraries: $(ldd "$bin" | grep 'not found' | tr -s ' \t' ' ')"
  fi
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$bin" "$root$dest"
  chmod 0755 "$root$dest"
  while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
}

# ldd cannot run an aarch64 binary: its interpreter and NEEDED libraries,
# recursively, from the multiarch and cross toolchain folders (as
# tests/e2e/build_image.sh does for the arm64 exporter), go in at the
# interpreter's path and /lib/aarch64-linux-gnu/NAME.
add_aarch64_binary() {
  local bin=$1 dest=$2 root=$3 interp queue=() seen=" " name dir path
  local dirs="/lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib"
  mkdir -p "$root$(dirname "$dest")" "$root/lib/aarch64-linux-gnu"
  cp -L "$bin" "$root$dest"
  chmod 0755 "$root$dest"
  interp=$(aarch64-linux-gnu-readelf -l "$bin" | awk '/Requesting program interpreter:/ { sub(/\]$/, "", $NF); print $NF }')
  [[ -n $interp ]] || die "$bin: no program interpreter"
  queue=("${interp##*/}")
  mapfile -t -O 1 queue < <(aarch64-linux-gnu-readelf -d "$bin" | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }')
  while ((${#queue[@]} > 0)); do
    name=${queue[0]}
    queue=("${queue[@]:1}")
    [[ $seen != *" $name "* ]] || continue
    seen+="$name "
    path=
    for dir in $dirs; do
      [[ -e $dir/$name ]] && { path=$dir/$name; break; }
    done
    [[ -n $path ]] || die "$bin needs $name, which is in none of $dirs"
    if [[ $name == "${interp##*/}" ]]; then
      mkdir -p "$root$(dirname "$interp")"
      cp -L "$path" "$root$interp"
      continue
    fi
    cp -L "$path" "$root/lib/aarch64-linux-gnu/$name"
    mapfile -t -O "${#queue[@]}" queue < <(aarch64-linux-gnu-readelf -d "$path" | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }')
  done
}

# The archive laid over the e2e image: the loader and its libraries, and the
# benchmark as /e2e/checks.sh (the script the e2e /init runs).
build_extra_cpio() {
  local loader=$1 out=$2 root
  root="$out/extra-rootfs"
  rm -rf "$root"
  mkdir -p "$root/e2e" "$root/bin"
  add_dynamic_binary "$loader" /bin/exit_cost_loader "$root"
  cp "$SCRIPT_DIR/guest_bench.sh" "$root/e2e/checks.sh"
  chmod 0755 "$root/e2e/checks.sh"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet) \
    | gzip -1 >"$out/extra.cpio.gz"
  rm -rf "$root"
}

boot_guest() {
  local image=$1 initrd=$2 serial=$3 qemu_log=$4 append
  append="console=ttyS0 panic=-1 quiet loglevel=3"
  append+=" bench.runs=${EXIT_COST_RUNS:-5} bench.cpuid=${EXIT_COST_CPUID:-200000}"
  append+=" bench.io=${EXIT_COST_IO:-100000} bench.msr=${EXIT_COST_MSR:-0} bench.hypercall=${EXIT_COST_HYPERCALL:-0} bench.mmio=${EXIT_COST_MMIO:-0} bench.alternate=${EXIT_COST_ALTERNATE:-0} bench.modes=${EXIT_COST_MODES:-none,ours,reference}"
  append+=" bench.stats=${EXIT_COST_STATS:-1}"
  # The host width per-CPU maps are sized for (issue 29): possible, not online, CPUs.
  append+="${EXIT_COST_POSSIBLE_CPUS:+ possible_cpus=$EXIT_COST_POSSIBLE_CPUS}"
  : >"$serial"
  # As run_e2e.sh boots the e2e guest (one TCG thread: see there), but with
  # no NIC: the benchmark needs no network, and a NIC only adds interrupts.
  QEMU_STATUS=0
  local icount=() smp=${EXIT_COST_QEMU_SMP:-2}
  if [[ -n ${EXIT_COST_ICOUNT:-} ]]; then
    # Guest time = instructions executed; the secondary CPU never comes up
    # under -icount here, so one CPU.
    icount=(-icount "$EXIT_COST_ICOUNT")
    smp=${EXIT_COST_QEMU_SMP:-1}
  fi
  timeout -k 10 "${EXIT_COST_TIMEOUT:-900}" qemu-system-x86_64 \
    -accel tcg,thread=single "${icount[@]}" -cpu qemu64,+svm -m 1G -smp "$smp" \
    -nodefaults -display none -no-reboot \
    -serial "file:$serial" \
    -kernel "$image/vmlinuz" -initrd "$initrd" \
    -append "$append" \
    </dev/null >"$qemu_log" 2>&1 || QEMU_STATUS=$?
}

# The report: per scenario and mode, wall time per exit (median, min-max over
# runs); per program, the added cost per exit against `none` of the same run
# and the kernel's ns per program run; then the ratios, per run, of ours to
# none and to every other program.
report() {
  awk -v unit="$2" '
    function field(k,   i) {
      for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2)
      return ""
    }
    # stats(key, a): sorts a[1..n[key]] and sets MED, MIN, MAX
    function stats(cnt, a,   i, j, t) {
      for (i = 2; i <= cnt; i++) {
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
      }
      MIN = a[1]; MAX = a[cnt]
      MED = (cnt % 2) ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
    }
    # summary(prefix, key): "median (min-max)" of the values vals[key, 1..]
    function summary(key, fmt,   i, a) {
      if (!(key in cnt) || cnt[key] == 0) return "-"
      for (i = 1; i <= cnt[key]; i++) a[i] = vals[key, i]
      stats(cnt[key], a)
      return sprintf(fmt " (" fmt "-" fmt ")", MED, MIN, MAX)
    }
    function add(key, v) { vals[key, ++cnt[key]] = v }
    $1 == "BENCH" && $2 ~ /^scenario=/ {
      s = field("scenario"); m = field("mode"); r = field("run")
      if (!(s in seen_s)) { seen_s[s] = 1; scen[++ns] = s }
      if (!(m in seen_m)) { seen_m[m] = 1; mode[++nm] = m }
      if (r > nr) nr = r
      ex[s, r, m] = field("exits"); t[s, r, m] = field("seconds")
      rc[s, r, m] = field("run_cnt"); rt[s, r, m] = field("run_time_ns")
      top[s, r, m] = field("top"); counted[s, r, m] = field("counted")
      prc[s, r, m] = field("pio_run_cnt"); prt[s, r, m] = field("pio_run_time_ns")
      pcounted[s, r, m] = field("pio_counted"); pitems[s, r, m] = field("pio_items")
    }
    END {
      if (ns == 0) { print "no BENCH lines"; exit 1 }
      for (i = 1; i <= ns; i++) {
        s = scen[i]
        printf "\nscenario %s (%d runs; median (min-max) over runs)\n", s, nr
        printf "%-13s %7s %24s %26s %24s\n", "mode", "exits", unit "/exit", "added " unit "/exit", "BPF " unit "/run (kernel)"
        for (j = 1; j <= nm; j++) {
          m = mode[j]; exits = ""
          for (r = 1; r <= nr; r++) {
            if (!((s, r, m) in t)) continue
            exits = ex[s, r, m]
            add(s SUBSEP m SUBSEP "wall", t[s, r, m] * 1e9 / ex[s, r, m])
            if (m != "none" && (s, r, "none") in t)
              add(s SUBSEP m SUBSEP "added", (t[s, r, m] - t[s, r, "none"]) * 1e9 / ex[s, r, m])
            if (rc[s, r, m] > 0) add(s SUBSEP m SUBSEP "bpf", rt[s, r, m] / rc[s, r, m])
            # run_cnt is 0 with kernel.bpf_stats_enabled=0; counted is there for counting programs.
            if (m != "none" && rc[s, r, m] > 0 && rc[s, r, m] < ex[s, r, m])
              warn = warn sprintf("WARNING: %s %s run %d: the program ran %d times for %d exits\n", s, m, r, rc[s, r, m], ex[s, r, m])
            if (counted[s, r, m] != "" && counted[s, r, m] < ex[s, r, m])
              warn = warn sprintf("WARNING: %s %s run %d: the map counted %d exits of %d\n", s, m, r, counted[s, r, m], ex[s, r, m])
          }
          printf "%-13s %7s %24s %26s %24s\n", m, exits, summary(s SUBSEP m SUBSEP "wall", "%.0f"),
            (m == "none") ? "-" : summary(s SUBSEP m SUBSEP "added", "%.0f"),
            (m == "none") ? "-" : summary(s SUBSEP m SUBSEP "bpf", "%.0f")
        }
        # What each program counted: its map top reason and count, per run.
        for (j = 1; j <= nm; j++) {
          m = mode[j]; line = ""
          for (r = 1; r <= nr; r++) if (top[s, r, m] != "") line = line " " top[s, r, m] "/" counted[s, r, m]
          if (line != "") printf "  %s counted (top reason:count/all counts, per run):%s\n", m, line
        }
        # ours_drilldown: its kvm_pio program (the drill-down alone), per run.
        for (j = 1; j <= nm; j++) {
          m = mode[j]; line = ""
          for (r = 1; r <= nr; r++) if (prc[s, r, m] != "")
            line = line sprintf(" %d runs, %.0f %s/run, %d counted in %d items;", prc[s, r, m],
              (prc[s, r, m] > 0) ? prt[s, r, m] / prc[s, r, m] : 0, unit, pcounted[s, r, m], pitems[s, r, m])
          if (line != "") printf "  %s kvm_pio program (BPF, kernel), per run:%s\n", m, line
        }
        printf "%s", warn; warn = ""
        for (r = 1; r <= nr; r++) if ((s, r, "ours") in t && (s, r, "none") in t)
          add(s SUBSEP "ratio_none", t[s, r, "ours"] / t[s, r, "none"])
        if ((s SUBSEP "ratio_none") in cnt)
          printf "ours/none %s per exit: %s\n", unit, summary(s SUBSEP "ratio_none", "%.3f")
        for (j = 1; j <= nm; j++) {
          m = mode[j]
          if (m == "none" || m == "ours") continue
          for (r = 1; r <= nr; r++) {
            if (!((s, r, m) in t && (s, r, "ours") in t && (s, r, "none") in t)) continue
            d = t[s, r, m] - t[s, r, "none"]
            if (d > 0) add(s SUBSEP m SUBSEP "ratio", (t[s, r, "ours"] - t[s, r, "none"]) / d)
            if (rc[s, r, m] > 0 && rc[s, r, "ours"] > 0)
              add(s SUBSEP m SUBSEP "bpfratio", (rt[s, r, "ours"] / rc[s, r, "ours"]) / (rt[s, r, m] / rc[s, r, m]))
          }
          printf "ours/%s added %s per exit, per run: %s\n", m, unit, summary(s SUBSEP m SUBSEP "ratio", "%.2f")
          printf "ours/%s kernel BPF %s per program run, per run: %s\n", m, unit, summary(s SUBSEP m SUBSEP "bpfratio", "%.2f")
        }
      }
    }' "$1"
}

# The VMX variant: run_e2e_vmx.sh builds the image (with kvm-intel) and the
# ISO and boots Bochs; guest_bench.sh replaces its checks, the loader comes
# in an extra archive and the settings on the ISO's kernel command line.
# Leaves the console in $1/serial.txt.
boot_guest_vmx() {
  local out=$1 vmm=$2 append
  append="bench.runs=${EXIT_COST_RUNS:-5} bench.cpuid=${EXIT_COST_CPUID:-200000}"
  append+=" bench.io=${EXIT_COST_IO:-100000} bench.msr=${EXIT_COST_MSR:-0} bench.hypercall=${EXIT_COST_HYPERCALL:-0} bench.mmio=${EXIT_COST_MMIO:-0} bench.alternate=${EXIT_COST_ALTERNATE:-0} bench.modes=${EXIT_COST_MODES:-none,ours,reference}"
  append+=" bench.stats=${EXIT_COST_STATS:-1}"
  # Its status says whether E2E checks passed: there are none here.
  E2E_VMX_CHECKS="$SCRIPT_DIR/guest_bench.sh" E2E_VMX_EXTRA_INITRD="$out/extra.cpio.gz" \
    E2E_VMX_APPEND="$append" E2E_VMX_TIMEOUT="${EXIT_COST_TIMEOUT:-900}" \
    "$REPO_DIR/tests/e2e/run_e2e_vmx.sh" '' "$vmm" "$out" >"$out/run_e2e_vmx.log" 2>&1 || true
  grep -E '^run_e2e_vmx: ' "$out/run_e2e_vmx.log" >&2 || true
  cp "$out/serial.log.txt" "$out/serial.txt" || die "no serial log from run_e2e_vmx.sh (see $out/run_e2e_vmx.log)"
}

main_vmx() {
  local build=$1 loader=$2 vmm=$3 out start
  start=$(date +%s.%N)
  ensure_packages busybox-static cpio gzip libc-bin
  out="$build/exit_cost_vmx"
  mkdir -p "$out"
  log "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  build_extra_cpio "$loader" "$out"
  log "booting Bochs through tests/e2e/run_e2e_vmx.sh (timeout ${EXIT_COST_TIMEOUT:-900} s, log $out/run_e2e_vmx.log)"
  boot_guest_vmx "$out" "$vmm"
  grep -a '^BENCH ' "$out/serial.txt" >"$out/results.txt" || true
  grep -a -v -E '^BENCH scenario=|^$' "$out/serial.txt" | sed 's/^/  | /' >&2 || true
  {
    echo "exit_cost (VMX): $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(dpkg-query -W -f='bochs ${Version}' bochs 2>/dev/null)"
    grep -a '^BENCH begin' "$out/results.txt" || true
    echo "clock: Bochs sync=none, ips=50000000: guest ns are 0.05 guest instructions (L1 + L2); ns/exit x 0.05 = instructions/exit"
    report "$out/results.txt" "ns" || true
  } >"$out/report.txt"
  cat "$out/report.txt"
  log "wall time $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }') s; raw log $out/serial.txt, BENCH lines $out/results.txt"
  if ! grep -q '^BENCH end status=0' "$out/results.txt" || ! grep -aq '^E2E DONE' "$out/serial.txt"; then
    die "the guest did not finish the benchmark (see $out/serial.txt)"
  fi
}

# The arm64 variant: the arm64 e2e image (E2E_VENDOR=arm64, its own
# arm64_vmm, no exporter) with the extra archive, booted as
# tests/e2e/arm64/boot.sh boots it but without the NIC; settings on the
# kernel command line, scenarios hvc and sysreg.
main_arm64() {
  local build=$1 loader=$2 out image start append smp icount=() unit=ns clock
  start=$(date +%s.%N)
  out="$build/exit_cost_arm64"
  mkdir -p "$out"
  ensure_packages qemu-system-arm binutils-aarch64-linux-gnu cpio gzip
  log "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  image=$(E2E_VENDOR=arm64 "$REPO_DIR/tests/e2e/build_image.sh" "$out" '') || die "tests/e2e/build_image.sh failed"
  build_extra_cpio "$loader" "$out"
  cat "$image/initramfs.cpio.gz" "$out/extra.cpio.gz" >"$out/bench.cpio.gz"
  append="console=ttyAMA0 panic=-1 quiet loglevel=3"
  # x86 test_vmm's scenarios off (arm64_vmm has other options).
  append+=" bench.runs=${EXIT_COST_RUNS:-5} bench.cpuid=0 bench.io=0"
  append+=" bench.hvc=${EXIT_COST_HVC:-200000} bench.sysreg=${EXIT_COST_SYSREG:-200000} bench.mmio=0"
  append+=" bench.modes=${EXIT_COST_MODES:-none,ours,reference} bench.stats=${EXIT_COST_STATS:-1}"
  append+="${EXIT_COST_POSSIBLE_CPUS:+ possible_cpus=$EXIT_COST_POSSIBLE_CPUS}"
  smp=${EXIT_COST_QEMU_SMP:-2}
  clock="wall (TCG guest clock follows the host's)"
  if [[ -n ${EXIT_COST_ICOUNT:-} ]]; then
    icount=(-icount "$EXIT_COST_ICOUNT")
    smp=${EXIT_COST_QEMU_SMP:-1}
    unit=instr
    clock="-icount $EXIT_COST_ICOUNT: guest ns are guest instructions (L1 + L2)"
  fi
  log "booting qemu-system-aarch64 (timeout ${EXIT_COST_TIMEOUT:-900} s, serial log $out/serial.log)"
  : >"$out/serial.log"
  QEMU_STATUS=0
  timeout -k 10 "${EXIT_COST_TIMEOUT:-900}" qemu-system-aarch64 \
    -M virt,virtualization=on -cpu max -accel tcg "${icount[@]}" -m 1G -smp "$smp" \
    -nodefaults -display none -no-reboot \
    -serial "file:$out/serial.log" \
    -kernel "$image/vmlinuz" -initrd "$out/bench.cpio.gz" \
    -append "$append" \
    </dev/null >"$out/qemu.log" 2>&1 || QEMU_STATUS=$?
  tr -d '\r' <"$out/serial.log" >"$out/serial.txt"
  grep -a '^BENCH ' "$out/serial.txt" >"$out/results.txt" || true
  grep -a -v -E '^BENCH scenario=|^$' "$out/serial.txt" | sed 's/^/  | /' >&2 || true
  [[ $QEMU_STATUS == 0 ]] || log "QEMU exited with status $QEMU_STATUS (124: timed out): $(tail -n 5 "$out/qemu.log" | tr '\n' ' ')"
  {
    echo "exit_cost (arm64): $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), QEMU $(qemu-system-aarch64 --version | head -n1 | awk '{ print $4 }'), -smp $smp"
    grep -a '^BENCH begin' "$out/results.txt" || true
    echo "clock: $clock"
    report "$out/results.txt" "$unit" || true
  } >"$out/report.txt"
  cat "$out/report.txt"
  log "wall time $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }') s; raw log $out/serial.log, BENCH lines $out/results.txt"
  if ! grep -q '^BENCH end status=0' "$out/results.txt" || ! grep -aq '^E2E DONE' "$out/serial.txt"; then
    die "the guest did not finish the benchmark (see $out/serial.txt)"
  fi
}

main() {
  [[ $# == 1 ]] || usage
  local build=$1 out loader vmm image start
  [[ -d $build ]] || die "build folder '$build' does not exist"
  build=$(cd "$build" && pwd)
  loader="$build/bench/exit_cost/exit_cost_loader"
  vmm="$build/tests/e2e/kvmexit_test_vmm"
  if [[ ${EXIT_COST_ARM64:-} == 1 ]]; then
    [[ -x $loader ]] || die "$loader missing: cmake --build $build --target exit_cost_loader (a cross build)"
    main_arm64 "$build" "$loader"
    return
  fi
  [[ -x $loader ]] || die "$loader missing: cmake --build $build --target exit_cost_loader kvmexit_test_vmm"
  [[ -x $vmm ]] || die "$vmm missing: cmake --build $build --target exit_cost_loader kvmexit_test_vmm"
  if [[ ${EXIT_COST_VMX:-} == 1 ]]; then
    main_vmx "$build" "$loader" "$vmm"
    return
  fi
  start=$(date +%s.%N)
  ensure_packages qemu-system-x86 busybox-static cpio gzip libc-bin
  out="$build/exit_cost"
  mkdir -p "$out"

  log "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  image=$("$REPO_DIR/tests/e2e/build_image.sh" "$out" "$vmm") || die "tests/e2e/build_image.sh failed"
  build_extra_cpio "$loader" "$out"
  cat "$image/initramfs.cpio.gz" "$out/extra.cpio.gz" >"$out/bench.cpio.gz"

  log "booting the nested guest (timeout ${EXIT_COST_TIMEOUT:-900} s, serial log $out/serial.log)"
  boot_guest "$image" "$out/bench.cpio.gz" "$out/serial.log" "$out/qemu.log"
  tr -d '\r' <"$out/serial.log" >"$out/serial.txt"
  grep -a '^BENCH ' "$out/serial.txt" >"$out/results.txt" || true
  grep -a -v -E '^BENCH scenario=|^$' "$out/serial.txt" | sed 's/^/  | /' >&2 || true
  [[ $QEMU_STATUS == 0 ]] || log "QEMU exited with status $QEMU_STATUS (124: timed out): $(tail -n 5 "$out/qemu.log" | tr '\n' ' ')"
  {
    echo "exit_cost: $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), QEMU $(qemu-system-x86_64 --version | head -n1 | awk '{ print $4 }')"
    grep -a '^BENCH begin' "$out/results.txt" || true
    if [[ -n ${EXIT_COST_ICOUNT:-} ]]; then
      echo "clock: -icount $EXIT_COST_ICOUNT: guest ns are guest instructions (L1 + L2)"
      report "$out/results.txt" "instr" || true
    else
      echo "clock: wall (TCG guest clock follows the host's)"
      report "$out/results.txt" "ns" || true
    fi
  } >"$out/report.txt"
  cat "$out/report.txt"
  log "wall time $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }') s; raw log $out/serial.log, BENCH lines $out/results.txt"
  if ! grep -q '^BENCH end status=0' "$out/results.txt" || ! grep -aq '^E2E DONE' "$out/serial.txt"; then
    die "the guest did not finish the benchmark (see $out/serial.txt)"
  fi
}

main "$@"
