#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs prom_live_check.sh against a fake exporter: fake_exporter.py on
# 127.0.0.1 serving testdata/sample_metrics.txt with its counters and
# histograms growing at a constant rate (so rate() and histogram_quantile()
# see real numbers). Checks the queries and rules without a KVM host or the
# real exporter.
#
#   tests/monitoring/prom_live_check_fake.sh [SECONDS]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
duration=${1:-8}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
python3 "$here/fake_exporter.py" "$port" "$here/testdata/sample_metrics.txt" >/dev/null 2>&1 &
server_pid=$!
cleanup() {
  local rc=$?
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 50); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/sample_metrics.txt', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

METRICS_PATH=/sample_metrics.txt "$here/prom_live_check.sh" "127.0.0.1:$port" "$duration"
