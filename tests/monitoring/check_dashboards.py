#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Static checks of the Grafana dashboards in dashboards/*.json.

Checks that each file parses, that no data source UID is hard-coded (every
datasource reference is the ${datasource} variable), that every panel and
target uses $datasource, that the variables the dashboards promise exist, that
panels do not overlap, and that every recorded series a query names is a
`record:` of deploy/prometheus/kvm_exit_exporter.rules.yml.

Prints one line per check and `N passed, N failed`; exit status 1 on failure.
Standard library only.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASH_DIR = ROOT / "dashboards"
RULES = ROOT / "deploy" / "prometheus" / "kvm_exit_exporter.rules.yml"
DS_VAR = "${datasource}"
REQUIRED_VARS = {"datasource": "datasource", "job": "query", "instance": "query",
                 "vm": "query", "reason": "query"}
MIN_SCHEMA = 39

passed = failed = 0


def check(ok: bool, what: str, detail: str = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}" + (f": {detail}" if detail else ""))


def walk(node, path="$"):
    """Yields (path, key, value) for every dict entry in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def is_ds_var(ds) -> bool:
    if isinstance(ds, str):
        return ds in (DS_VAR, "$datasource")
    return isinstance(ds, dict) and ds.get("uid") in (DS_VAR, "$datasource") \
        and ds.get("type") in (None, "prometheus")


def recorded_names() -> set[str]:
    return set(re.findall(r"^\s*-\s*record:\s*(\S+)", RULES.read_text(), re.M))


def panels_of(dash: dict) -> list[dict]:
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep their panels inside
    return out


def check_dashboard(path: Path, records: set[str], uids: dict) -> None:
    name = path.name
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        check(False, f"{name}: JSON parses", str(e))
        return
    check(True, f"{name}: JSON parses")

    uid = dash.get("uid", "")
    check(bool(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid)), f"{name}: has a valid uid", uid)
    check(uid not in uids, f"{name}: uid is unique", f"also in {uids.get(uid)}")
    uids[uid] = name
    check(dash.get("id") is None, f"{name}: no instance-specific id")
    check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= MIN_SCHEMA,
          f"{name}: schemaVersion >= {MIN_SCHEMA}", str(dash.get("schemaVersion")))

    # No hard-coded data source anywhere: every "datasource" is the variable.
    bad = [f"{p}.{k}={json.dumps(v)}" for p, k, v in walk(dash)
           if k == "datasource" and not is_ds_var(v)]
    check(not bad, f"{name}: every datasource reference is {DS_VAR}", "; ".join(bad[:5]))
    text = path.read_text()
    check("__inputs" not in dash and "DS_PROMETHEUS" not in text,
          f"{name}: no import-time data source inputs")

    # Variables.
    tvars = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    for vname, vtype in REQUIRED_VARS.items():
        v = tvars.get(vname)
        ok = v is not None and v.get("type") == vtype
        if ok and vtype == "datasource":
            ok = v.get("query") == "prometheus"
        if ok and vtype == "query":
            qtext = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query")
            ok = isinstance(qtext, str) and qtext.startswith("label_values(") \
                and is_ds_var(v.get("datasource")) and qtext == v.get("definition")
        check(ok, f"{name}: variable ${vname} ({vtype})")

    # Panels.
    panels = panels_of(dash)
    ids = [p.get("id") for p in panels]
    check(len(ids) == len(set(ids)) and None not in ids, f"{name}: panel ids unique")
    cells: dict[tuple[int, int], str] = {}
    overlap = []
    for p in panels:
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] + g["w"] > 24:
            overlap.append(f"{p.get('title')}: bad gridPos {g}")
            continue
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    overlap.append(f"{p.get('title')} overlaps {cells[(x, y)]}")
                cells[(x, y)] = p.get("title")
    check(not overlap, f"{name}: panels fit the 24-column grid without overlap",
          "; ".join(sorted(set(overlap))[:3]))

    n_targets = 0
    for p in panels:
        if p.get("type") == "row":
            continue
        title = p.get("title", "?")
        targets = p.get("targets", [])
        problems = []
        if not is_ds_var(p.get("datasource")):
            problems.append("panel datasource is not $datasource")
        if not targets:
            problems.append("no targets")
        if not p.get("description"):
            problems.append("no description (the question it answers)")
        refs = [t.get("refId") for t in targets]
        if len(refs) != len(set(refs)):
            problems.append("duplicate refId")
        for t in targets:
            n_targets += 1
            if not is_ds_var(t.get("datasource")):
                problems.append(f"target {t.get('refId')} datasource is not $datasource")
            expr = t.get("expr", "")
            if not expr.strip():
                problems.append(f"target {t.get('refId')} has no expr")
            for series in re.findall(r"[a-zA-Z_]+:[a-zA-Z0-9_:]+", expr):
                if series not in records:
                    problems.append(f"recorded series {series} is not in the rules file")
        check(not problems, f"{name}: panel '{title}'", "; ".join(problems))
    check(n_targets > 0, f"{name}: has queries", str(n_targets))

    for a in dash.get("annotations", {}).get("list", []):
        check(is_ds_var(a.get("datasource")) and bool(a.get("expr")),
              f"{name}: annotation '{a.get('name')}' queries $datasource")


def main() -> int:
    files = sorted(DASH_DIR.glob("*.json"))
    check(len(files) == 3, "dashboards/: three dashboard files", str([f.name for f in files]))
    records = recorded_names()
    check(bool(records), "rules file has recording rules", str(RULES))
    uids: dict[str, str] = {}
    for f in files:
        check_dashboard(f, records, uids)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
