#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs every dashboard query and every rule against a live Prometheus.

Started by prom_live_check.sh, which runs a Prometheus that scrapes one
kvm_exit_exporter with the rules of deploy/prometheus loaded. This script:

  1. waits until the target has been scraped a few times and the recording
     rules have produced data;
  2. evaluates, through the HTTP API, every PromQL expression of every panel
     target and annotation of dashboards/*.json (instant query, plus a range
     query for range targets), every variable query (label_values through
     /api/v1/label/<name>/values), and every recording and alerting rule that
     Prometheus loaded (/api/v1/rules), and checks that each rule's last
     evaluation was healthy;
  3. requires a non-empty result from the panels listed in expect_data.json
     ("must have data when exits happen") and from every recording rule.

Grafana variables are replaced before sending: $job/$instance/$vm/$reason and
$datasource by `.*`, $__rate_interval by 15s, $__range by 1m, $__interval by 5s.

Prints one line per expression and `N passed, N failed`; exit 1 on failure.
Standard library only (json, urllib).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

SUBSTITUTIONS = [
    (r"\$__rate_interval\b|\$\{__rate_interval\}", "15s"),
    (r"\$__range\b|\$\{__range\}", "1m"),
    (r"\$__interval\b|\$\{__interval\}", "5s"),
    (r"\$\{(job|instance|vm|reason|datasource)\}", ".*"),
    (r"\$(job|instance|vm|reason|datasource)\b", ".*"),
]


def substitute(expr: str) -> str:
    for pattern, value in SUBSTITUTIONS:
        expr = re.sub(pattern, value, expr)
    return expr


class Prom:
    def __init__(self, base: str, timeout: float = 10.0):
        self.base = base.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> dict:
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:  # 400/422 carry a JSON error body
            try:
                return json.load(e)
            except json.JSONDecodeError:
                return {"status": "error", "errorType": "http", "error": f"HTTP {e.code}"}
        except (urllib.error.URLError, OSError) as e:
            return {"status": "error", "errorType": "connection", "error": str(e)}

    def query(self, expr: str) -> dict:
        return self.get("/api/v1/query", [("query", expr)])

    def query_range(self, expr: str, seconds: int = 60, step: str = "5s") -> dict:
        end = time.time()
        return self.get("/api/v1/query_range", [("query", expr), ("start", f"{end - seconds:.3f}"),
                                                ("end", f"{end:.3f}"), ("step", step)])


def result_size(resp: dict) -> int:
    data = resp.get("data")
    if isinstance(data, list):  # label values
        return len(data)
    if not isinstance(data, dict):
        return 0
    res = data.get("result")
    if data.get("resultType") in ("scalar", "string"):
        return 1 if res else 0
    return len(res or [])


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def line(self, ok: bool, what: str, detail: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}", flush=True)


def wait_ready(prom: Prom, job: str, min_scrapes: int, timeout: float) -> str:
    """Waits for min_scrapes successful scrapes and for recorded data. Returns a problem or ''."""
    deadline = time.time() + timeout
    problem = "Prometheus did not answer"
    while time.time() < deadline:
        up = prom.query(f'count_over_time(up{{job="{job}"}}[5m])')
        ok = prom.query(f'sum_over_time(up{{job="{job}"}}[5m])')
        rec = prom.query("instance:kvm_exits:rate1m")
        if up.get("status") == "success" and result_size(up):
            scrapes = float(up["data"]["result"][0]["value"][1])
            good = float(ok["data"]["result"][0]["value"][1]) if result_size(ok) else 0
            if good >= min_scrapes and result_size(rec):
                return ""
            problem = (f"{good:.0f} successful of {scrapes:.0f} scrapes so far, "
                       f"recorded series {'present' if result_size(rec) else 'absent'}")
        time.sleep(1)
    return problem


def dashboard_exprs(path: Path):
    """Yields (where, expr, is_range, panel_title) for targets and annotations of a dashboard."""
    dash = json.loads(path.read_text())
    uid = dash.get("uid", path.stem)
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    for p in panels:
        for t in p.get("targets", []):
            if t.get("expr"):
                yield (f"{uid} / {p.get('title')} / {t.get('refId')}", t["expr"],
                       not t.get("instant", False), p.get("title"))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            yield f"{uid} / annotation {a.get('name')}", a["expr"], True, None


def dashboard_variables(path: Path):
    dash = json.loads(path.read_text())
    uid = dash.get("uid", path.stem)
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        qtext = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        yield f"{uid} / variable ${v.get('name')}", qtext


def check_variable(prom: Prom, rep: Report, where: str, qtext: str) -> None:
    m = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*",
                     qtext)
    if not m:
        rep.line(False, where, f"unsupported variable query {qtext!r}")
        return
    selector, label = m.group(1), m.group(2)
    params = [("match[]", substitute(selector))] if selector else []
    resp = prom.get(f"/api/v1/label/{label}/values", params)
    if resp.get("status") != "success":
        rep.line(False, where, f"{resp.get('errorType')}: {resp.get('error')} in {qtext}")
        return
    values = resp.get("data") or []
    rep.line(bool(values), where,
             f"{len(values)} values {values[:4]}" if values else f"no values for {qtext}")


def check_expr(prom: Prom, rep: Report, where: str, expr: str, is_range: bool,
               need_data: bool) -> None:
    sent = substitute(expr)
    resp = prom.query(sent)
    if resp.get("status") != "success":
        rep.line(False, where, f"{resp.get('errorType')}: {resp.get('error')}  [{sent}]")
        return
    n = result_size(resp)
    if is_range:
        rresp = prom.query_range(sent)
        if rresp.get("status") != "success":
            rep.line(False, where, f"range query: {rresp.get('errorType')}: {rresp.get('error')}")
            return
        n = max(n, result_size(rresp))
    if need_data and n == 0:
        rep.line(False, where, f"no data, but this panel must have data  [{sent}]")
        return
    rep.line(True, where, f"{n} series" if n else "no data (not required)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9099")
    ap.add_argument("--job", default="kvm_exit_exporter")
    ap.add_argument("--min-scrapes", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=90.0,
                    help="seconds to wait for scrapes and recorded data")
    ap.add_argument("--dashboards", default=str(ROOT / "dashboards"))
    ap.add_argument("--expect", default=str(HERE / "expect_data.json"),
                    help="JSON: dashboard uid -> titles of panels that must return data")
    args = ap.parse_args()

    prom = Prom(args.prometheus)
    rep = Report()

    problem = wait_ready(prom, args.job, args.min_scrapes, args.timeout)
    rep.line(not problem, f"target scraped {args.min_scrapes}+ times and rules evaluated",
             problem or "ready")
    if problem:
        print(f"{rep.passed} passed, {rep.failed} failed")
        return 1

    expect = json.loads(Path(args.expect).read_text())
    dash_files = sorted(Path(args.dashboards).glob("*.json"))
    seen_titles: dict[str, set[str]] = {}

    for path in dash_files:
        uid = json.loads(path.read_text()).get("uid", path.stem)
        must = set(expect.get(uid, []))
        seen = seen_titles.setdefault(uid, set())
        for where, expr, is_range, title in dashboard_exprs(path):
            if title:
                seen.add(title)
            check_expr(prom, rep, where, expr, is_range, need_data=title in must)
        for where, qtext in dashboard_variables(path):
            check_variable(prom, rep, where, qtext)

    # Every panel named in expect_data.json must exist (catches renamed panels).
    for uid, titles in expect.items():
        missing = sorted(set(titles) - seen_titles.get(uid, set()))
        rep.line(not missing, f"expect_data.json names existing panels of {uid}",
                 f"missing: {missing}" if missing else f"{len(titles)} panels")

    # Rules, as Prometheus loaded them.
    rules = prom.get("/api/v1/rules")
    groups = rules.get("data", {}).get("groups", []) if rules.get("status") == "success" else []
    n_rules = sum(len(g.get("rules", [])) for g in groups)
    rep.line(n_rules > 0, "rules loaded by Prometheus", f"{len(groups)} groups, {n_rules} rules")
    for g in groups:
        for r in g.get("rules", []):
            kind = "record" if r.get("type") == "recording" else "alert"
            where = f"rule {g.get('name')} / {kind} {r.get('name')}"
            rep.line(r.get("health") == "ok", where + " health",
                     r.get("health", "?") + (f" ({r.get('lastError')})" if r.get("lastError")
                                             else ""))
            check_expr(prom, rep, where, r.get("query", ""), False,
                       need_data=(kind == "record"))

    print(f"{rep.passed} passed, {rep.failed} failed")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
