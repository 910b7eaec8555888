# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway Prometheus on this host's loopback, for the live checks
# (prom_live_check.sh, storm_live_check.sh): sourced, then
#
#   local_prometheus_dir NAME
#       makes a temporary directory, PROM_TMP (removed on exit unless
#       KEEP_TMP=1), for the caller's files too; NAME prefixes messages
#   local_prometheus TARGET RULES [METRICS_PATH]
#       writes a config that scrapes TARGET (HOST:PORT) every
#       PROM_SCRAPE_INTERVAL (default 1s, also the scrape's timeout: a
#       slower nested guest needs more) and evaluates the rule file RULES
#       every second, starts PROMETHEUS_BIN
#       (default Debian's /usr/bin/prometheus) on a free 127.0.0.1 port and
#       returns once its API is ready, with PROM_URL set; the EXIT trap stops it
#   local_prometheus_log_tail
#       its log's last lines (after a failure)

PROM_TMP="" PROM_URL="" PROM_PID="" PROM_NAME=local_prometheus

# shellcheck disable=SC2317 # called by the EXIT trap
local_prometheus_cleanup() {
  local rc=$?
  if [[ -n $PROM_PID ]] && kill -0 "$PROM_PID" 2>/dev/null; then
    kill "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  if [[ -n $PROM_TMP ]]; then
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "$PROM_NAME: kept $PROM_TMP" >&2; else rm -rf "$PROM_TMP"; fi
  fi
  exit "$rc"
}

local_prometheus_dir() {
  local bin=${PROMETHEUS_BIN:-/usr/bin/prometheus}
  PROM_NAME=$1
  if [[ ! -x $bin ]]; then
    echo "$PROM_NAME: $bin not found (apt-get install -y prometheus)" >&2
    exit 2
  fi
  PROM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/$PROM_NAME.XXXXXX")
  trap local_prometheus_cleanup EXIT
  trap 'exit 130' INT TERM
}

local_prometheus() {
  local target=$1 rules=$2 metrics_path=${3:-/metrics} port
  local bin=${PROMETHEUS_BIN:-/usr/bin/prometheus}
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  cat >"$PROM_TMP/prometheus.yml" <<YAML
global:
  scrape_interval: ${PROM_SCRAPE_INTERVAL:-1s}
  scrape_timeout: ${PROM_SCRAPE_INTERVAL:-1s}
  evaluation_interval: 1s
rule_files:
  - "$rules"
scrape_configs:
  - job_name: kvm_exit_exporter
    metrics_path: "$metrics_path"
    static_configs:
      - targets: ["$target"]
YAML
  "$bin" --config.file="$PROM_TMP/prometheus.yml" --storage.tsdb.path="$PROM_TMP/data" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn >"$PROM_TMP/prometheus.log" 2>&1 &
  PROM_PID=$!
  PROM_URL="http://127.0.0.1:$port"
  # The HTTP API is up within a few seconds.
  for _ in $(seq 1 50); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$PROM_URL/-/ready', timeout=1)" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$PROM_PID" 2>/dev/null; then
      echo "$PROM_NAME: Prometheus exited; its log:" >&2
      cat "$PROM_TMP/prometheus.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "$PROM_NAME: Prometheus at $PROM_URL not ready after 10 s" >&2
  exit 1
}

local_prometheus_log_tail() {
  if [[ -s $PROM_TMP/prometheus.log ]]; then
    echo "--- Prometheus log (warnings and errors) ---" >&2
    tail -n 20 "$PROM_TMP/prometheus.log" >&2
  fi
}
