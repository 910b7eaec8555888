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
`DEFAULTS <where>: <absent names>` per such line, `REAL <line>` per other
failure; exits 1 when there is a REAL one.
"""
import re
import sys


def main() -> int:
    log_path, metrics_path = sys.argv[1], sys.argv[2]
    served = set()
    with open(metrics_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
            if m and not line.startswith("#"):
                served.add(m.group(1))

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
            if absent:
                print(f"DEFAULTS {m.group(1)}: {' '.join(absent)}")
            else:
                print(f"REAL {line}")
                real += 1
    return 1 if real else 0


if __name__ == "__main__":
    sys.exit(main())
