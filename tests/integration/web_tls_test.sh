#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --web.config.file against the real daemon: certificates made with openssl at
# test time (a CA, a server, a client, an expired server certificate), curl as
# the client, then a real Prometheus scraping over TLS with basic auth, and
# openssl s_client probing which versions, cipher suites and curves are offered.
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

# --- 6. versions, cipher suites and curves (openssl s_client) ---------------
# tls_probe PORT WANT NAME S_CLIENT_ARGS...: WANT is "refused", or what the
# handshake settles on as "PROTOCOL CIPHER GROUP" in s_client's words, e.g.
# "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 X25519".
tls_probe() {
  local port=$1 want=$2 name=$3 got
  shift 3
  if echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" "$@" >"$work/s_client.out" 2>&1; then
    # TLS 1.3 has no "Protocol :" line; its suites exist in TLS 1.3 only, and
    # "New, TLSv1.3, Cipher is ..." names the suite's version.
    got=$(awk '/^New, / {split($0, n, ", "); suite_version = n[2]; c = $NF}
      /^ *Protocol *:/ {p = $3}
      /Server Temp Key:/ {sub(/.*Temp Key: /, ""); split($0, k, ", "); g = k[1] == "ECDH" ? k[2] : k[1]}
      END {print (p != "" ? p : suite_version), c, g}' "$work/s_client.out")
  else
    got=refused
  fi
  if [ "$got" = "$want" ]; then pass "$name"; else fail "$name" "openssl s_client $*: got $got, want $want"; fi
}
# tls_config FILE KEY_LINES...: a web config with the server certificate and KEY_LINES.
tls_config() {
  local file=$1
  shift
  printf '%s\n' "tls_server_config:" "  cert_file: server.crt" "  key_file: server.key" "$@" >"$file"
}
# OpenSSL 3 refuses TLS 1.0/1.1 itself below security level 0: lower it, so
# that a refusal is the exporter's (the legacy control below is accepted).
old_tls=(-cipher 'ALL:@SECLEVEL=0')

# The defaults: TLS 1.2 with forward-secret AEAD suites only, TLS 1.3 with its
# three GCM/ChaCha suites, curves X25519 and P-256/384/521.
tls_config defaults.yml
port=$(free_port)
if start_exporter "$port" defaults.yml; then
  tls_probe "$port" refused "defaults: TLS 1.0 refused" -tls1 "${old_tls[@]}"
  tls_probe "$port" refused "defaults: TLS 1.1 refused" -tls1_1 "${old_tls[@]}"
  tls_probe "$port" refused "defaults: static RSA, CBC (AES128-SHA) refused" -tls1_2 -cipher AES128-SHA
  tls_probe "$port" refused "defaults: static RSA, GCM (AES256-GCM-SHA384) refused" \
    -tls1_2 -cipher AES256-GCM-SHA384
  tls_probe "$port" refused "defaults: ECDHE with CBC (ECDHE-RSA-AES128-SHA) refused" \
    -tls1_2 -cipher ECDHE-RSA-AES128-SHA
  tls_probe "$port" refused "defaults: finite-field DHE refused" -tls1_2 -cipher DHE-RSA-AES128-GCM-SHA256
  for cipher in ECDHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-AES256-GCM-SHA384 ECDHE-RSA-CHACHA20-POLY1305; do
    tls_probe "$port" "TLSv1.2 $cipher X25519" "defaults: TLS 1.2 $cipher accepted" -tls1_2 -cipher "$cipher"
  done
  for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    tls_probe "$port" "TLSv1.3 $suite X25519" "defaults: TLS 1.3 $suite accepted" -tls1_3 -ciphersuites "$suite"
  done
  tls_probe "$port" refused "defaults: TLS 1.3 TLS_AES_128_CCM_SHA256 refused" \
    -tls1_3 -ciphersuites TLS_AES_128_CCM_SHA256
  for group in P-256:prime256v1 P-384:secp384r1 P-521:secp521r1; do
    tls_probe "$port" "TLSv1.3 TLS_AES_128_GCM_SHA256 ${group#*:}" "defaults: curve ${group%%:*} accepted" \
      -tls1_3 -groups "${group%%:*}"
  done
  # prefer_server_cipher_suites defaults to true: the server's order (AES-GCM
  # first) wins over a client that lists ChaCha20 first.
  tls_probe "$port" "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 X25519" "defaults: the server's suite order wins" \
    -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256
  tls_probe "$port" refused "defaults: curve X448 refused" -tls1_3 -groups X448
  tls_probe "$port" refused "defaults: group ffdhe2048 refused" -tls1_3 -groups ffdhe2048
else
  fail "exporter starts with the default TLS settings" "$(cat "$work/exporter-$port.log")"
fi

# Narrowed: one TLS 1.2 suite and one curve. TLS 1.3 keeps its suites (Go's
# meaning of cipher_suites), on P-384 only.
tls_config narrow.yml "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]" \
  "  curve_preferences: [CurveP384]"
port=$(free_port)
if start_exporter "$port" narrow.yml; then
  tls_probe "$port" "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 secp384r1" \
    "narrowed: the one TLS 1.2 suite accepted, on P-384" -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384
  for cipher in ECDHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-CHACHA20-POLY1305 AES256-GCM-SHA384 ECDHE-RSA-AES256-SHA; do
    tls_probe "$port" refused "narrowed: TLS 1.2 $cipher refused" -tls1_2 -cipher "$cipher"
  done
  tls_probe "$port" refused "narrowed: TLS 1.2 on X25519 refused" \
    -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384 -curves X25519
  tls_probe "$port" refused "narrowed: TLS 1.2 on P-256 refused" \
    -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384 -curves P-256
  for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    tls_probe "$port" "TLSv1.3 $suite secp384r1" "narrowed: TLS 1.3 $suite still accepted, on P-384" \
      -tls1_3 -ciphersuites "$suite"
  done
  tls_probe "$port" refused "narrowed: TLS 1.3 on X25519 refused" -tls1_3 -groups X25519
  tls_probe "$port" refused "narrowed: TLS 1.3 on P-256 refused" -tls1_3 -groups P-256
else
  fail "exporter starts with narrowed cipher_suites and curve_preferences" "$(cat "$work/exporter-$port.log")"
fi

# prefer_server_cipher_suites: false: the client's order wins.
tls_config client_order.yml "  prefer_server_cipher_suites: false"
port=$(free_port)
if start_exporter "$port" client_order.yml; then
  tls_probe "$port" "TLSv1.2 ECDHE-RSA-CHACHA20-POLY1305 X25519" \
    "prefer_server_cipher_suites false: the client's suite order wins" \
    -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256
else
  fail "exporter starts with prefer_server_cipher_suites: false" "$(cat "$work/exporter-$port.log")"
fi

# The control for the version probes: min_version TLS10 with CBC suites lets
# the same TLS 1.0 and 1.1 probes through.
tls_config legacy.yml "  min_version: TLS10" \
  "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA]"
port=$(free_port)
if start_exporter "$port" legacy.yml; then
  tls_probe "$port" "TLSv1 ECDHE-RSA-AES128-SHA X25519" "min_version TLS10: TLS 1.0 accepted" \
    -tls1 "${old_tls[@]}"
  tls_probe "$port" "TLSv1.1 ECDHE-RSA-AES128-SHA X25519" "min_version TLS10: TLS 1.1 accepted" \
    -tls1_1 "${old_tls[@]}"
  tls_probe "$port" refused "min_version TLS10, CBC only: TLS 1.2 GCM refused" \
    -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256
else
  fail "exporter starts with min_version TLS10 and CBC suites" "$(cat "$work/exporter-$port.log")"
fi

# A suite name Go does not know: a located error from --config.check, exit 1.
tls_config bad_suite.yml "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ECDHE-RSA-AES256-GCM-SHA384]"
output=$("$exporter" --web.config.file="$work/bad_suite.yml" --config.check 2>&1) && code=0 || code=$?
want="$work/bad_suite.yml:4:58: tls_server_config.cipher_suites: unknown cipher suite \"ECDHE-RSA-AES256-GCM-SHA384\""
if [ "$code" = 1 ] && grep -qF "$want" <<<"$output"; then
  pass "unknown cipher suite: located error, exit 1"
else
  fail "unknown cipher suite: located error, exit 1" "exit $code: $output"
fi
output=$("$exporter" --web.config.file="$work/narrow.yml" --config.check 2>&1) && code=0 || code=$?
if [ "$code" = 0 ]; then
  pass "--config.check accepts cipher_suites and curve_preferences"
else
  fail "--config.check accepts cipher_suites and curve_preferences" "exit $code: $output"
fi

tally web_tls_test
