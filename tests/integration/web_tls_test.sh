#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --web.config.file against the real daemon: certificates made with openssl at
# test time (a CA, a server, a client, an expired server certificate), curl as
# the client, then a real Prometheus scraping over TLS with basic auth.
# Prints one line per check and a closing tally.
set -euo pipefail

exporter=${1:?usage: web_tls_test.sh PATH_TO_kvm_exit_exporter}
# shellcheck source-path=SCRIPTDIR source=test_lib.sh
source "$(dirname "$0")/test_lib.sh"

for tool in openssl curl htpasswd prometheus python3; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run scripts/install_deps.sh"; exit 1; }
done

# --- certificates -----------------------------------------------------------
cd "$work"
quiet() { "$@" >/dev/null 2>&1 || { echo "failed: $*"; exit 1; }; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca
# sign NAME CN DAYS: NAME.key and NAME.crt for CN, signed by the CA, valid DAYS days
# (0: expires the second it is made).
sign() {
  quiet openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
  quiet openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
    -days "$3" -copy_extensions copy
}
sign server localhost 2
sign client prometheus 2
sign expired localhost 0
# A client certificate that no CA of the exporter signed.
quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.crt -days 2 -subj /CN=rogue
hash=$(htpasswd -nbB -C 10 prometheus scrape-secret | cut -d: -f2)

# Writes a web config to $1 with client_auth_type $2 (and the CA when it verifies).
web_config() {
  {
    echo "tls_server_config:"
    echo "  cert_file: ${3:-server}.crt"
    echo "  key_file: ${3:-server}.key"
    echo "  client_auth_type: $2"
    if [ "$2" = RequireAndVerifyClientCert ]; then
      echo "  client_ca_file: ca.crt"
      echo "  min_version: TLS13"
    fi
    echo "basic_auth_users:"
    echo "  prometheus: '$hash'"
    echo "http_server_config:"
    echo "  headers: {X-Frame-Options: deny, Strict-Transport-Security: max-age=31536000}"
  } >"$1"
}

# Starts the exporter on port $1 with web config $2; waits for its TLS port.
start_exporter() {
  "$exporter" --web.listen-address=127.0.0.1:"$1" --web.config.file="$2" >"$work/exporter-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null --cacert ca.crt --cert client.crt --key client.key \
      "https://localhost:$1/-/healthy" && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# HTTP status of a request (000 when there was no HTTP answer); extra curl args follow.
status() {
  local url=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt "$@" "$url" || true
}

check_status() {  # NAME EXPECTED URL CURL_ARGS...
  local name=$1 expected=$2
  shift 2
  local got
  got=$(status "$@")
  if [ "$got" = "$expected" ]; then pass "$name"; else fail "$name" "HTTP $got, want $expected"; fi
}

# --- 1. TLS + basic auth ----------------------------------------------------
web_config auth.yml NoClientCert
port=$(free_port)
if start_exporter "$port" auth.yml; then
  url="https://localhost:$port/metrics"
  check_status "good credentials: 200" 200 "$url" -u prometheus:scrape-secret
  check_status "wrong password: 401" 401 "$url" -u prometheus:wrong
  check_status "unknown user: 401" 401 "$url" -u nobody:scrape-secret
  check_status "no credentials: 401" 401 "$url"
  if curl -s -D - -o /dev/null --cacert ca.crt "$url" | grep -qi '^WWW-Authenticate: Basic realm="kvm_exit_exporter"'; then
    pass "401 carries WWW-Authenticate: Basic realm"
  else
    fail "401 carries WWW-Authenticate: Basic realm" "header missing"
  fi
  headers=$(curl -s -D - -o /dev/null --cacert ca.crt -u prometheus:scrape-secret "$url")
  if grep -qi '^X-Frame-Options: deny' <<<"$headers" &&
    grep -qi '^Strict-Transport-Security: max-age=31536000' <<<"$headers"; then
    pass "http_server_config.headers are sent"
  else
    fail "http_server_config.headers are sent" "$headers"
  fi
  if curl -s -o /dev/null "http://127.0.0.1:$port/metrics"; then
    fail "plain HTTP is refused on the TLS port" "curl got an HTTP answer"
  else
    pass "plain HTTP is refused on the TLS port"
  fi
else
  fail "exporter starts with TLS and basic auth" "$(cat "$work/exporter-$port.log")"
fi

# --- 2. an expired server certificate is rejected by the client -------------
while openssl x509 -in expired.crt -noout -checkend 0 >/dev/null; do sleep 0.2; done
web_config expired.yml NoClientCert expired
port=$(free_port)
"$exporter" --web.listen-address=127.0.0.1:"$port" --web.config.file=expired.yml >"$work/expired.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sk -o /dev/null "https://localhost:$port/-/healthy" && break
  sleep 0.1
done
error=$(curl -sS -o /dev/null -u prometheus:scrape-secret --cacert ca.crt "https://localhost:$port/metrics" 2>&1) && code=0 || code=$?
if [ "$code" = 60 ] && grep -qi expired <<<"$error"; then
  pass "expired server certificate rejected by curl"
else
  fail "expired server certificate rejected by curl" "curl exit $code: $error"
fi

# --- 3. client certificates (RequireAndVerifyClientCert), min_version TLS13 --
web_config mtls.yml RequireAndVerifyClientCert
port=$(free_port)
if start_exporter "$port" mtls.yml; then
  url="https://localhost:$port/metrics"
  if curl -s -o /dev/null -u prometheus:scrape-secret --cacert ca.crt "$url"; then
    fail "no client certificate: TLS handshake fails" "curl got an HTTP answer"
  else
    pass "no client certificate: TLS handshake fails"
  fi
  if curl -s -o /dev/null -u prometheus:scrape-secret --cacert ca.crt --cert rogue.crt --key rogue.key "$url"; then
    fail "client certificate of another CA: TLS handshake fails" "curl got an HTTP answer"
  else
    pass "client certificate of another CA: TLS handshake fails"
  fi
  check_status "client certificate and credentials: 200" 200 "$url" -u prometheus:scrape-secret \
    --cert client.crt --key client.key
  check_status "client certificate without credentials: 401" 401 "$url" --cert client.crt --key client.key
  if curl -s -o /dev/null -u prometheus:scrape-secret --cacert ca.crt --cert client.crt \
    --key client.key --tls-max 1.2 "$url"; then
    fail "min_version TLS13: a TLS 1.2 client is refused" "curl got an HTTP answer"
  else
    pass "min_version TLS13: a TLS 1.2 client is refused"
  fi
else
  fail "exporter starts with RequireAndVerifyClientCert" "$(cat "$work/exporter-$port.log")"
fi

# --- 4. a real Prometheus scrapes over mTLS with basic auth -----------------
prom_port=$(free_port)
scrape_job() {  # JOB PASSWORD
  cat <<EOF
  - job_name: $1
    scheme: https
    tls_config: {ca_file: $work/ca.crt, cert_file: $work/client.crt, key_file: $work/client.key}
    basic_auth: {username: prometheus, password: $2}
    static_configs: [{targets: ['localhost:$port']}]
EOF
}
{
  echo "global: {scrape_interval: 1s, scrape_timeout: 1s}"
  echo "scrape_configs:"
  scrape_job good scrape-secret
  scrape_job wrong not-the-password
} >prometheus.yml
prometheus --config.file=prometheus.yml --storage.tsdb.path="$work/tsdb" \
  --web.listen-address=127.0.0.1:"$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
up_of() {
  curl -s "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=up{job=\"$1\"}" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
good="" wrong=""
for _ in $(seq 60); do
  good=$(up_of good)
  wrong=$(up_of wrong)
  [ "$good" = 1 ] && [ "$wrong" = 0 ] && break
  sleep 0.5
done
if [ "$good" = 1 ]; then pass "Prometheus: up is 1 with good credentials"; else
  fail "Prometheus: up is 1 with good credentials" "up=$good; $(tail -3 "$work/prometheus.log")"
fi
if [ "$wrong" = 0 ]; then pass "Prometheus: up is 0 with a wrong password"; else
  fail "Prometheus: up is 0 with a wrong password" "up=$wrong"
fi

# --- 5. bad web config: located error, exit 1 -------------------------------
printf 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS1.2\n' >bad.yml
output=$("$exporter" --web.config.file="$work/bad.yml" --config.check 2>&1) && code=0 || code=$?
want="$work/bad.yml:4:16: tls_server_config.min_version: unknown TLS version \"TLS1.2\""
if [ "$code" = 1 ] && grep -qF "$want" <<<"$output"; then
  pass "bad web config: located error, exit 1"
else
  fail "bad web config: located error, exit 1" "exit $code: $output"
fi
output=$("$exporter" --web.config.file="$work/mtls.yml" --config.check 2>&1) && code=0 || code=$?
if [ "$code" = 0 ] && grep -q "over TLS with basic auth" <<<"$output"; then
  pass "--config.check accepts a good web config"
else
  fail "--config.check accepts a good web config" "exit $code: $output"
fi

tally web_tls_test
