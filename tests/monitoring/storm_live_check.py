#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks that a live Prometheus names exactly the expected storm of each VM.

Started by storm_live_check.sh, which runs a Prometheus that scrapes one
kvm_exit_exporter whose VMs each reproduce one known exit storm, with the
rules of deploy/prometheus loaded (their rate thresholds scaled, see there).
This script waits until every expected (vm, signature) is an active
KvmVmKnownExitStorm alert (pending: its condition holds; `for: 5m` is
promtool's to test), then, a few evaluations later, checks that:

  1. the active KvmVmKnownExitStorm alerts are exactly the expected
     (vm, signature) pairs: each VM its own signature and no other;
  2. each dashboard's "Known causes" table (its queries as Grafana would send
     them, every variable at .*) lists the same pairs.

  storm_live_check.py --prometheus URL --expect vm1=sig1,vm2=sig2 [--timeout S]

Prints one line per check and `N passed, N failed`; exit 1 on failure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from prom_live_check import Prom, Report, substitute

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ALERT = "KvmVmKnownExitStorm"


def active_alerts(prom: Prom) -> set[tuple[str, str]]:
    resp = prom.query(f'ALERTS{{alertname="{ALERT}"}}')
    if resp.get("status") != "success":
        return set()
    return {(r["metric"].get("vm", ""), r["metric"].get("signature", ""))
            for r in resp["data"]["result"]}


def known_causes_queries() -> list[tuple[str, str]]:
    """(where, expr) of every target of every "Known causes" table."""
    found = []
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        stack = list(json.loads(path.read_text(encoding="utf-8")).get("panels", []))
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            if panel.get("type") == "table" and "Known causes" in panel.get("title", ""):
                for target in panel.get("targets", []):
                    found.append((f"{path.name}: {panel['title']} ({target.get('refId')})",
                                  substitute(target["expr"])))
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--expect", required=True, help="vm=signature,...")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    expected = {tuple(pair.split("=", 1)) for pair in args.expect.split(",") if pair}
    prom = Prom(args.prometheus)
    report = Report()

    start = time.time()
    deadline = start + args.timeout
    seen: dict[tuple[str, str], float] = {}
    alerts: set[tuple[str, str]] = set()
    while time.time() < deadline:
        alerts = active_alerts(prom)
        for pair in alerts:
            seen.setdefault(pair, time.time() - start)
        if expected <= alerts:
            break
        time.sleep(1)
    for vm, signature in sorted(expected):
        when = seen.get((vm, signature))
        report.line(when is not None, f"alert {ALERT}{{vm={vm}, signature={signature}}}",
                    f"active after {when:.0f} s" if when is not None
                    else f"not active within {args.timeout:.0f} s; active: {sorted(alerts)}")
    # What the rate thresholds were scaled to fit: each storm VM's exit rate
    # between its last two scrapes (information, not a check; this
    # Prometheus has scraped for less than the rules' ranges).
    resp = prom.query("sum by (vm) (irate(kvm_vm_exits_total[1m]))")
    if resp.get("status") == "success":
        rates = {r["metric"].get("vm", ""): float(r["value"][1]) for r in resp["data"]["result"]}
        print("info exit rates between the last two scrapes: " +
              ", ".join(f"{vm} {rates.get(vm, 0.0):.0f}/s" for vm, _ in sorted(expected)))
    # A few more evaluations (every 1 s): a signature that matches late is caught too.
    time.sleep(3)
    alerts = active_alerts(prom)
    report.line(alerts == expected, "active alerts are exactly the expected",
                f"active {sorted(alerts)}, expected {sorted(expected)}")

    for where, expr in known_causes_queries():
        resp = prom.query(expr)
        if resp.get("status") != "success":
            report.line(False, where, f"query failed: {resp.get('error')}")
            continue
        listed = {(r["metric"].get("vm", ""), r["metric"].get("signature", ""))
                  for r in resp["data"]["result"]}
        report.line(listed == expected, where,
                    f"lists {sorted(listed)}, expected {sorted(expected)}")

    print(f"{report.passed} passed, {report.failed} failed")
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
