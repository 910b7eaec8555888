#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The real daemon on loopback under hostile and bursty clients (http_load):
#   1,000 connections trickling a request (500 from 127.0.0.1, 500 from
#     127.0.0.2-11) while 127.0.0.200 scrapes: every scrape answers in < 1 s;
#   500 scrapes, 50 in parallel: all succeed;
#   8 POSTs announcing a 100 GB body: 405 in < 1 s, a scrape meanwhile in < 1 s;
# and after each load the daemon's fds return to their baseline. civetweb, the
# server before libmicrohttpd, failed the first and the last (docs/benchmarks.md).
# Loopback targets only; every loop is bounded; about 25 s.
set -euo pipefail

exporter=${1:?usage: slow_clients_test.sh PATH_TO_kvm_exit_exporter PATH_TO_http_load}
load=${2:?usage: slow_clients_test.sh PATH_TO_kvm_exit_exporter PATH_TO_http_load}
log=$(mktemp /tmp/kvmexit-slow-clients.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -f "$log"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$exporter" --web.listen-address=127.0.0.1:"$port" >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/-/healthy" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "exporter exited:"; cat "$log"; exit 1; }
  sleep 0.1
done

# http_load prints every figure and exits 1 if a bound is exceeded.
"$load" "$port" "$pid" --slow 1000 --hold 10 --burst 500 --parallel 50 --huge-posts 8 --assert
