#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Evaluates every dashboard query, variable query and rule against a real
# Prometheus that scrapes a running kvm_exit_exporter.
#
#   tests/monitoring/prom_live_check.sh HOST:PORT [SECONDS]
#
# HOST:PORT   the exporter to scrape (e.g. 127.0.0.1:9756)
# SECONDS     how long to let Prometheus scrape (every 1 s) before querying;
#             default 15. The checker also waits until the recording rules
#             have produced data (up to 90 s more).
# Environment:
#   PROMETHEUS_BIN   Prometheus binary (default /usr/bin/prometheus, Debian's)
#   METRICS_PATH     path to scrape (default /metrics)
#   KEEP_TMP=1       keep the temporary directory (config, TSDB, Prometheus log)
#
# Prometheus listens on a free 127.0.0.1 port only and is stopped on exit.
# Prints one line per expression and `N passed, N failed`; exits non-zero on failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if [[ $# -lt 1 || $# -gt 2 || ! $1 =~ ^[^:/]+:[0-9]+$ ]]; then
  echo "usage: $0 HOST:PORT [SECONDS]" >&2
  exit 2
fi
target=$1
duration=${2:-15}
prometheus_bin=${PROMETHEUS_BIN:-/usr/bin/prometheus}
metrics_path=${METRICS_PATH:-/metrics}
rules="$root/deploy/prometheus/kvm_exit_exporter.rules.yml"

if [[ ! -x $prometheus_bin ]]; then
  echo "prom_live_check: $prometheus_bin not found (apt-get install -y prometheus)" >&2
  exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/prom_live_check.XXXXXX")
prom_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local rc=$?
  if [[ -n $prom_pid ]] && kill -0 "$prom_pid" 2>/dev/null; then
    kill "$prom_pid" 2>/dev/null || true
    wait "$prom_pid" 2>/dev/null || true
  fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then
    echo "prom_live_check: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - "$rules"
scrape_configs:
  - job_name: kvm_exit_exporter
    metrics_path: "$metrics_path"
    static_configs:
      - targets: ["$target"]
YAML

"$prometheus_bin" \
  --config.file="$tmp/prometheus.yml" \
  --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$port" \
  --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!

# Wait for the HTTP API (a few seconds at most), then let it scrape.
for _ in $(seq 1 50); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/-/ready', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$prom_pid" 2>/dev/null; then
    echo "prom_live_check: Prometheus exited; its log:" >&2
    cat "$tmp/prometheus.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "prom_live_check: Prometheus on 127.0.0.1:$port scraping $target$metrics_path every 1s; waiting ${duration}s"
sleep "$duration"

status=0
python3 "$here/prom_live_check.py" --prometheus "http://127.0.0.1:$port" || status=$?
if [[ $status -ne 0 && -s $tmp/prometheus.log ]]; then
  echo "--- Prometheus log (warnings and errors) ---" >&2
  tail -n 20 "$tmp/prometheus.log" >&2
fi
exit "$status"
