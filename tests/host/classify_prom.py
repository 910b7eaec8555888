#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Splits prom_live_check.py's failures into "needs a non-default setting"
and real failures, for the host suite, which runs the exporter at its
packaged defaults (no exit_handling_time, no drill-down).

    classify_prom.py PROM_LIVE_CHECK_LOG METRICS_FILE

A failure counts as "not served at the defaults" only when it is a
"no data, but this panel must have data  [EXPR]" line and EXPR names a
kvm_* series that METRICS_FILE (a scrape of the same exporter) does not have
at all: the family is not served, so no query of it can have data. Prints
`DEFAULTS <where>: <absent names>` per such line.

A drill-down family whose kind follows storms (METRICS_FILE has
kvm_exit_exporter_drilldown_attached{kind=K, mode="auto"}, the default
collector.drilldown_auto) is served once a storm attached the kind, but
grows only during storms: a panel of rates or increases over such families
alone has no data while the VMs are calm. Printed as `STORMS <where>: <kinds>`.

`REAL <line>` per other failure; exits 1 when there is a REAL one.
"""
import re
import sys
from pathlib import Path


DRILLDOWN_DEF = Path(__file__).resolve().parents[2] / "bpf" / "drilldown_kinds.def"


def drilldown_families() -> dict[str, str]:
    """family -> kind, from the rows of bpf/drilldown_kinds.def."""
    text = DRILLDOWN_DEF.read_text(encoding="utf-8")
    rows = re.findall(r'^DRILLDOWN_KIND\(\w+,\s*\w+,\s*"([^"]+)",\s*\w+,[^"]*"([^"]+)"', text, re.M)
    if not rows:
        raise SystemExit(f"{DRILLDOWN_DEF}: no DRILLDOWN_KIND rows")
    return {family: kind for kind, family in rows}


def main() -> int:
    log_path, metrics_path = sys.argv[1], sys.argv[2]
    served = set()
    auto_kinds = set()
    with open(metrics_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
            if m and not line.startswith("#"):
                served.add(m.group(1))
            m = re.match(r'kvm_exit_exporter_drilldown_attached\{(.*)\}', line)
            if m and 'mode="auto"' in m.group(1):
                auto_kinds.update(re.findall(r'kind="([^"]+)"', m.group(1)))
    families = drilldown_families()

    def is_served(token: str) -> bool:
        return any(name == token or name.startswith(token + "_") for name in served)

    real = 0
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.startswith("FAIL "):
                continue
            m = re.match(r"FAIL (.*): no data, but this panel must have data  \[(.*)\]$", line)
            absent = []
            if m:
                # Names inside recorded series (instance_vm:kvm_vm_exits:rate1m) too.
                absent = sorted({t for t in re.findall(r"kvm_[a-z0-9_]+", m.group(2)) if not is_served(t)})
            names = set(re.findall(r"kvm_[a-z0-9_]+", m.group(2))) if m else set()
            storm_kinds = sorted({families[n] for n in names if n in families})
            if absent:
                print(f"DEFAULTS {m.group(1)}: {' '.join(absent)}")
            elif storm_kinds and names <= set(families) and set(storm_kinds) <= auto_kinds:
                print(f"STORMS {m.group(1)}: {' '.join(storm_kinds)} (collector.drilldown_auto: "
                      "grows only during storms)")
            else:
                print(f"REAL {line}")
                real += 1
    return 1 if real else 0


if __name__ == "__main__":
    sys.exit(main())
