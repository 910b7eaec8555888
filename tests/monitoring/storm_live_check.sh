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
# Environment: RATE_DIVISOR, PROM_SCRAPE_INTERVAL (default 1s:
# lib/local_prometheus.sh), PROMETHEUS_BIN (default /usr/bin/prometheus),
# KEEP_TMP=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if [[ $# -lt 2 || $# -gt 3 || ! $1 =~ ^[^:/]+:[0-9]+$ ]]; then
  echo "usage: $0 HOST:PORT VM=SIGNATURE[,...] [TIMEOUT]" >&2
  exit 2
fi
target=$1 expect=$2 timeout=${3:-120}
divisor=${RATE_DIVISOR:-20}
# shellcheck source-path=SCRIPTDIR source=lib/local_prometheus.sh
. "$here/lib/local_prometheus.sh"
local_prometheus_dir storm_live_check
tmp=$PROM_TMP

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

local_prometheus "$target" "$tmp/rules.yml"
echo "storm_live_check: Prometheus at $PROM_URL scraping $target every ${PROM_SCRAPE_INTERVAL:-1s}; expecting $expect"
status=0
python3 "$here/storm_live_check.py" --prometheus "$PROM_URL" --expect "$expect" \
  --timeout "$timeout" || status=$?
[[ $status == 0 ]] || local_prometheus_log_tail
exit "$status"
