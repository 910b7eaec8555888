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
metrics_path=${METRICS_PATH:-/metrics}

# shellcheck source-path=SCRIPTDIR source=lib/local_prometheus.sh
. "$here/lib/local_prometheus.sh"
local_prometheus_dir prom_live_check
local_prometheus "$target" "$root/deploy/prometheus/kvm_exit_exporter.rules.yml" "$metrics_path"
echo "prom_live_check: Prometheus at $PROM_URL scraping $target$metrics_path every 1s; waiting ${duration}s"
sleep "$duration"

status=0
python3 "$here/prom_live_check.py" --prometheus "$PROM_URL" || status=$?
[[ $status == 0 ]] || local_prometheus_log_tail
exit "$status"
