#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures the README's quick start as a newcomer meets it: seconds from
# `scripts/run.sh` to the first HTTP 200 on /metrics.
#   fresh machine: a new Debian 12 system (mmdebstrap minbase, so every build
#                  package is downloaded and installed by run.sh itself),
#                  chrooted with the host's /proc, /sys and /dev, and a fresh
#                  clone of this repository's HEAD;
#   packages present: the same, on this machine, in a fresh clone (the build
#                  and start alone).
# Usage (root): bench/quickstart/time_to_serve.sh [WORKDIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d /var/tmp/kvmexit-quickstart.XXXXXX)}
mkdir -p "$work"
port=19756
[ "$(id -u)" -eq 0 ] || { echo "time_to_serve.sh: run as root (mmdebstrap, chroot)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || apt-get install -y -qq mmdebstrap >/dev/null
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list

wait_for_metrics() { # $1 = start time (epoch seconds with fraction), $2 = pid to watch
  while ! curl -fsS -o /dev/null "http://127.0.0.1:$port/metrics" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || { echo "run.sh ended before serving" >&2; return 1; }
    sleep 0.2
  done
  awk -v now="$(date +%s.%N)" -v start="$1" 'BEGIN { print now - start }'
}

stop_tree() { pkill -TERM -f "kvm_exit_exporter --web.listen-address=127.0.0.1:$port" || true; wait "$1" 2>/dev/null || true; }

cleanup() {
  for m in dev/pts dev sys proc; do umount -l "$work/root/$m" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== fresh machine (minbase Debian 12, every package installed by run.sh)"
mmdebstrap --variant=minbase --include=ca-certificates,git,curl bookworm "$work/root" "$sources" >"$work/mmdebstrap.log" 2>&1 ||
  { tail -20 "$work/mmdebstrap.log"; exit 1; }
git clone -q "$repo" "$work/root/src"
for m in proc sys dev dev/pts; do mount --rbind "/$m" "$work/root/$m"; done
cp /etc/resolv.conf "$work/root/etc/resolv.conf"
start=$(date +%s.%N)
chroot "$work/root" /src/scripts/run.sh --web.listen-address=127.0.0.1:$port >"$work/fresh.log" 2>&1 &
pid=$!
fresh=$(wait_for_metrics "$start" "$pid") || { tail -20 "$work/fresh.log"; exit 1; }
stop_tree "$pid"
cleanup
printf 'fresh machine: %.0f s\n' "$fresh"

echo "== packages present (this machine, fresh clone)"
git clone -q "$repo" "$work/clone"
start=$(date +%s.%N)
"$work/clone/scripts/run.sh" --web.listen-address=127.0.0.1:$port >"$work/present.log" 2>&1 &
pid=$!
present=$(wait_for_metrics "$start" "$pid") || { tail -20 "$work/present.log"; exit 1; }
stop_tree "$pid"
printf 'fresh machine: %.0f s to serving\npackages present: %.0f s to serving\ncores: %s\n' "$fresh" "$present" "$(nproc)"
