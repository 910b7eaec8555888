#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A real Prometheus evaluates the shipped rules against a running
# kvm_exit_exporter whose VMs reproduce known exit storms, and must name
# exactly the expected signature of each VM (storm_live_check.py).
#
#   tests/monitoring/storm_live_check.sh HOST:PORT VM=SIGNATURE[,VM=SIGNATURE...] [TIMEOUT]
#
# The rules are deploy/prometheus/kvm_exit_exporter.rules.yml with one
# change, made the way docs/storms.md ("Thresholds") tells users to tune
# them: every signature's rate threshold (events per second, bound="rate")
# divided by RATE_DIVISOR (default 20). A nested guest under QEMU's TCG
# makes a few thousand exits per second in all, and rate2m needs two
# minutes of a storm to reach its full rate; the share thresholds, the
# expressions, the alerts and the dashboards' queries are the shipped ones.
# TIMEOUT: seconds to wait for the expected alerts (default 120).
# Environment: PROMETHEUS_BIN (default /usr/bin/prometheus), KEEP_TMP=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if [[ $# -lt 2 || $# -gt 3 || ! $1 =~ ^[^:/]+:[0-9]+$ ]]; then
  echo "usage: $0 HOST:PORT VM=SIGNATURE[,...] [TIMEOUT]" >&2
  exit 2
fi
target=$1 expect=$2 timeout=${3:-120}
prometheus_bin=${PROMETHEUS_BIN:-/usr/bin/prometheus}
divisor=${RATE_DIVISOR:-20}
[[ -x $prometheus_bin ]] || { echo "storm_live_check: $prometheus_bin not found (apt-get install -y prometheus)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/storm_live_check.XXXXXX")
prom_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local rc=$?
  if [[ -n $prom_pid ]] && kill -0 "$prom_pid" 2>/dev/null; then
    kill "$prom_pid" 2>/dev/null || true
    wait "$prom_pid" 2>/dev/null || true
  fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "storm_live_check: kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The shipped rules, rate thresholds divided; the script fails when it
# finds none to divide (a renamed rule would otherwise test nothing).
python3 - "$root/deploy/prometheus/kvm_exit_exporter.rules.yml" "$tmp/rules.yml" "$divisor" <<'PY'
import re, sys
src, dst, divisor = sys.argv[1], sys.argv[2], float(sys.argv[3])
text = open(src, encoding="utf-8").read()
pattern = re.compile(r'vector\(([0-9.]+)\)(, "signature", "\w+", "", ""\), "bound", "rate")')
text, n = pattern.subn(lambda m: f"vector({float(m.group(1)) / divisor:g}){m.group(2)}", text)
if n < 8:
    sys.exit(f"storm_live_check: only {n} rate thresholds found in {src}")
open(dst, "w", encoding="utf-8").write(text)
print(f"storm_live_check: {n} signature rate thresholds divided by {divisor:g}")
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - "$tmp/rules.yml"
scrape_configs:
  - job_name: kvm_exit_exporter
    static_configs:
      - targets: ["$target"]
YAML
"$prometheus_bin" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 50); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/-/ready', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$prom_pid" 2>/dev/null; then
    echo "storm_live_check: Prometheus exited; its log:" >&2
    cat "$tmp/prometheus.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "storm_live_check: Prometheus on 127.0.0.1:$port scraping $target every 1s; expecting $expect"
status=0
python3 "$here/storm_live_check.py" --prometheus "http://127.0.0.1:$port" --expect "$expect" \
  --timeout "$timeout" || status=$?
if [[ $status -ne 0 && -s $tmp/prometheus.log ]]; then
  echo "--- Prometheus log (warnings and errors) ---" >&2
  tail -n 20 "$tmp/prometheus.log" >&2
fi
exit "$status"
