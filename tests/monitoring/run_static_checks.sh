#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks dashboards/, deploy/ and tests/monitoring/ with real tools:
#   promtool (rules, rule unit tests, configs, sample exposition), the storm
#   signatures' cross-check (rules, docs/storms.md, tests), the dashboard
#   generator and checker, kubernetes-models + TypeScript for the manifests, the
#   Compose Specification schema and dockerfile-utils for deploy/docker, apt for
#   the Dockerfile's package names, systemd-analyze for the unit, and the live
#   PromQL check against a fake exporter (skip it with SKIP_LIVE=1).
#
#   tests/monitoring/run_static_checks.sh
#
# Installs what is missing (Debian's prometheus, nodejs, npm; `npm ci` here).
# Ends with `N passed, N failed` alone on a line; exits 1 when any check failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/monitoring_checks.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- tools --------------------------------------------------------------------
apt_updated=0
apt_install() {
  if [[ $apt_updated == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt_install "${missing[@]}"
fi
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# --- runner -------------------------------------------------------------------
passed=0
failed=0
failures=()
step() { # step NAME COMMAND...: runs it, shows its output indented, counts it
  local name=$1
  shift
  echo "== $name"
  local rc=0
  "$@" >"$tmp/out" 2>&1 || rc=$?
  sed 's/^/  | /' "$tmp/out"
  if [[ $rc == 0 ]]; then
    passed=$((passed + 1))
    echo "PASS $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name (exit $rc)"
  fi
}

rules=deploy/prometheus/kvm_exit_exporter.rules.yml

# --- Prometheus -----------------------------------------------------------------
step "promtool check rules ($rules)" promtool check rules "$rules"
step "promtool test rules (tests/monitoring/rules_test.yml)" \
  promtool test rules tests/monitoring/rules_test.yml
step "promtool test rules (tests/monitoring/storms_test.yml: storm signatures)" \
  promtool test rules tests/monitoring/storms_test.yml
step "storm signatures agree across rules, docs/storms.md and their tests" \
  node tests/monitoring/check_storms.mjs
step "promtool check config (deploy/prometheus/prometheus.yml)" \
  promtool check config deploy/prometheus/prometheus.yml

compose_prometheus() { # laid out as compose.yml mounts it: the rules beside the config
  mkdir -p "$tmp/compose-prom"
  cp deploy/docker/prometheus.yml "$tmp/compose-prom/prometheus.yml"
  cp "$rules" "$tmp/compose-prom/"
  promtool check config "$tmp/compose-prom/prometheus.yml"
}
step "promtool check config (deploy/docker/prometheus.yml with the rules beside it)" compose_prometheus

prometheusrule_rules() { # the PrometheusRule's groups as a rules file
  (cd "$here" && node --input-type=module -e '
    import { readFileSync, writeFileSync } from "node:fs";
    import YAML from "yaml";
    const pr = YAML.parse(readFileSync(process.argv[1], "utf8"));
    writeFileSync(process.argv[2], YAML.stringify({ groups: pr.spec.groups }));
  ' "$root/deploy/kubernetes/prometheusrule.yaml" "$tmp/prometheusrule.rules.yml")
  promtool check rules "$tmp/prometheusrule.rules.yml"
}
step "promtool check rules (deploy/kubernetes/prometheusrule.yaml spec.groups)" prometheusrule_rules

sample_metrics_lint() { # promtool prints nothing for a clean exposition
  local out
  out=$(promtool check metrics <tests/monitoring/testdata/sample_metrics.txt 2>&1) || true
  if [[ -n $out ]]; then
    echo "$out"
    return 1
  fi
  echo "no lint problems"
}
step "promtool check metrics (tests/monitoring/testdata/sample_metrics.txt)" sample_metrics_lint

# --- Grafana --------------------------------------------------------------------
step "dashboards generated from dashboards/generate_dashboards.py are up to date" \
  python3 dashboards/generate_dashboards.py --check
step "dashboards: JSON, \$datasource everywhere, no hard-coded uid, variables, layout" \
  python3 tests/monitoring/check_dashboards.py

# --- Kubernetes -------------------------------------------------------------------
step "Kubernetes manifests (kubernetes-models validate(), TypeScript, cross-checks)" \
  node tests/monitoring/validate_k8s.mjs

# --- Docker -----------------------------------------------------------------------
step "compose.yml, Dockerfile and Grafana provisioning (schema, lint, paths)" \
  node tests/monitoring/validate_docker.mjs

dockerfile_packages() { # every apt package the Dockerfile installs exists in bookworm
  if ! grep -q '^12\.' /etc/debian_version 2>/dev/null; then
    echo "not Debian 12 (bookworm): package names cannot be checked against the image's release"
    return 1
  fi
  local pkgs
  pkgs=$(cd "$here" && node validate_docker.mjs --print-apt-packages)
  if [[ -z $(apt-cache policy libc6 | awk '/Candidate:/ && $2 != "(none)"') ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
  fi
  # One apt-cache call: "name candidate" for every package apt knows.
  local known bad=0 p v
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  known=$(apt-cache policy $pkgs | awk '/^[^ ]/ {sub(":$", "", $1); p = $1} /Candidate:/ {print p, $2}')
  for p in $pkgs; do
    v=$(awk -v p="$p" '$1 == p {print $2}' <<<"$known")
    if [[ -n $v && $v != "(none)" ]]; then
      echo "found $p $v"
    else
      echo "MISSING $p"
      bad=1
    fi
  done
  return "$bad"
}
step "Dockerfile apt packages exist in Debian bookworm" dockerfile_packages

# --- systemd ----------------------------------------------------------------------
systemd_unit() {
  local unit=deploy/systemd/kvm_exit_exporter.service dir="$tmp/systemd"
  mkdir -p "$dir"
  # verify wants the ExecStart binary to exist: point it at a stub.
  printf '#!/bin/sh\nexit 0\n' >"$dir/kvm_exit_exporter"
  chmod +x "$dir/kvm_exit_exporter"
  sed "s#/usr/local/bin/kvm_exit_exporter#$dir/kvm_exit_exporter#" "$unit" >"$dir/kvm_exit_exporter.service"
  local out
  out=$(systemd-analyze verify "$dir/kvm_exit_exporter.service" 2>&1) || { echo "$out"; return 1; }
  # verify exits 0 on unknown keys; any message is a failure.
  if [[ -n $out ]]; then
    echo "$out"
    return 1
  fi
  echo "systemd-analyze verify: clean"
  # systemd also accepts unknown capability names silently: check them against the kernel's list.
  local caps bad=0 c
  caps=$(sed -n 's/^\(CapabilityBoundingSet\|AmbientCapabilities\)=//p' "$unit" | tr ' ' '\n' | sort -u)
  if [[ -f /usr/include/linux/capability.h ]]; then
    for c in $caps; do
      grep -q "#define ${c}[[:space:]]" /usr/include/linux/capability.h || { echo "unknown capability $c"; bad=1; }
    done
    echo "capabilities known to the kernel headers: $(tr '\n' ' ' <<<"$caps")"
  fi
  local exposure
  exposure=$(systemd-analyze security --offline=true "$dir/kvm_exit_exporter.service" 2>&1 |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  echo "systemd-analyze security --offline: exposure ${exposure:-?} (must be <= 3.0)"
  [[ -n $exposure ]] && awk -v e="$exposure" 'BEGIN { exit !(e <= 3.0) }' || bad=1
  return "$bad"
}
step "systemd unit (systemd-analyze verify and security)" systemd_unit

# --- shell scripts ----------------------------------------------------------------
if command -v shellcheck >/dev/null || apt_install shellcheck; then
  step "shellcheck tests/monitoring/*.sh lib/*.sh" shellcheck -x "$here"/*.sh "$here"/lib/*.sh
else
  echo "== shellcheck: not installable here, skipped"
fi

# --- live PromQL ------------------------------------------------------------------
if [[ ${SKIP_LIVE:-0} != 1 ]]; then
  step "every dashboard/rule expression against Prometheus scraping a fake exporter" \
    tests/monitoring/prom_live_check_fake.sh
fi

echo
if ((failed)); then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
