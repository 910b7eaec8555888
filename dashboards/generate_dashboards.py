#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generates the Grafana dashboards in this folder and the panel list in README.md.

The dashboards are written by this script, not by hand, so that every metric
name sits in one table (METRICS below), every query gets the same datasource
and variable filters, and README.md describes exactly the panels that exist.

    python3 dashboards/generate_dashboards.py          # rewrite the files
    python3 dashboards/generate_dashboards.py --check  # exit 1 if any is stale

Edited a dashboard in Grafana? Port the change here, then regenerate.
Standard library only.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------
# Every metric and recorded series the dashboards read. Queries below refer to
# them as @name@; a rename in the exporter or the rules is one edit here.
# ---------------------------------------------------------------------------
METRICS = {
    # exporter counters and gauges
    "exits": "kvm_exits_total",
    "vm_exits": "kvm_vm_exits_total",
    "vcpu_exits": "kvm_vcpu_exits_total",
    "vm_info": "kvm_vm_info",
    # where the vCPU threads' time goes (issue 26; collector.vcpu_time, on by default)
    "vcpu_seconds": "kvm_vm_vcpu_seconds_total",  # counter per VM and mode
    "vm_start": "kvm_vm_start_time_seconds",
    "boot_exits": "kvm_vm_boot_exits",
    "boot_hist": "kvm_vm_boot_exits_count",  # histogram: _bucket, _sum, _count
    "exp_rate": "kvm_exit_rate_per_second",
    "exp_rate_all": "kvm_exit_rate_all_per_second",
    "overflow": "kvm_exit_overflow_exits_total",
    "lost": "kvm_exit_lost_exits_total",
    "build_info": "kvm_exit_exporter_build_info",
    "attached": "kvm_exit_exporter_bpf_attached",
    "map_entries": "kvm_exit_exporter_map_entries",
    "map_capacity": "kvm_exit_exporter_map_capacity",
    "scrape_duration": "kvm_exit_exporter_scrape_duration_seconds",  # histogram
    "errors": "kvm_exit_exporter_errors_total",
    "vms": "kvm_exit_exporter_vms",
    "vms_folded": "kvm_exit_exporter_vms_folded",
    "prog_runs": "kvm_exit_exporter_bpf_prog_run_count_total",
    "prog_time": "kvm_exit_exporter_bpf_prog_run_time_seconds_total",
    # exit handling time (issue 13); idle="true" marks HLT-type reasons (guest sleep)
    "handling": "kvm_exit_handling_seconds",  # histogram per isa/reason/code/idle, host level
    "vm_handling": "kvm_vm_exit_handling_seconds_total",  # counter per VM and reason
    "timing_lost": "kvm_exit_timing_lost_total",
    # drill-down per VM: @drill_<kind>@ for each row of bpf/drilldown_kinds.def,
    # added below (collector.drilldown, each kind off by default)
    "drill_lost": "kvm_drilldown_overflow_events_total",  # counter per kind
    # recording rules (deploy/prometheus/kvm_exit_exporter.rules.yml)
    "r_host": "instance:kvm_exits:rate1m",
    "r_reason": "instance_reason:kvm_exits:rate1m",
    "r_vm": "instance_vm:kvm_vm_exits:rate1m",
    "r_vm_reason": "instance_vm_reason:kvm_vm_exits:rate1m",
    "storm": "kvm_exit:storm_threshold:exits_per_second",
    "r_vm_overhead": "instance_vm:kvm_vm_exit_handling_seconds_nonidle:rate1m",
    "overhead": "kvm_exit:overhead_threshold:vcpu_seconds_per_second",
    "r_vm_mode": "instance_vm_mode:kvm_vm_vcpu_seconds:rate5m",
    "r_vm_wait": "instance_vm:kvm_vm_vcpu_waiting:ratio_rate5m",
    "r_host_wait": "instance:kvm_vm_vcpu_waiting:rate5m",
    "cpu_wait": "kvm_exit:cpu_wait_threshold:ratio",
    # known exit storms (docs/storms.md, group kvm_exit_exporter.storm_signatures)
    "sig_threshold": "kvm_exit:storm_signature_threshold:min",
    "r_sig_rate": "instance_vm_signature:kvm_vm_signature_exits:rate2m",
    "r_sig_share": "instance_vm_signature:kvm_vm_signature_exits:share2m",
}


# The drill-down kinds, one row each in bpf/drilldown_kinds.def (the table the
# exporter, its BPF programs and the e2e suites expand too).
DRILLDOWN_ROW = re.compile(
    r'^DRILLDOWN_KIND\((?P<enum>\w+),\s*(?P<name_token>\w+),\s*"(?P<kind>[^"]+)",\s*'
    r'(?P<tracepoint>\w+),\s*(?P<bits>[^"]*?),\s*"(?P<family>[^"]+)",\s*'
    r'"(?P<labels>[^"]*)",\s*"(?P<keeps>[^"]*)",\s*(?P<help>(?:"(?:[^"\\]|\\.)*"\s*)+)\)',
    re.M | re.S)


def drilldown_rows() -> list[dict]:
    text = (HERE.parent / "bpf" / "drilldown_kinds.def").read_text(encoding="utf-8")
    rows = [m.groupdict() for m in DRILLDOWN_ROW.finditer(text)]
    for row in rows:  # C string pieces, as one text
        row["help"] = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', row["help"])).replace('\\"', '"')
    if not rows:
        raise SystemExit("bpf/drilldown_kinds.def: no DRILLDOWN_KIND rows")
    return rows


DRILLDOWN_ROWS = drilldown_rows()
METRICS.update({f"drill_{row['kind']}": row["family"] for row in DRILLDOWN_ROWS})

# Label filters shared by all queries; Grafana replaces the $variables.
SELECTORS = {
    "S": 'job=~"$job", instance=~"$instance"',
    "SV": 'job=~"$job", instance=~"$instance", vm=~"$vm"',
    "SR": 'job=~"$job", instance=~"$instance", reason=~"$reason"',
    "SVR": 'job=~"$job", instance=~"$instance", vm=~"$vm", reason=~"$reason"',
}

DS = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["kvm", "kvm_exit_exporter"]
STORM_LEGEND = "storm threshold (per VM)"
OVERHEAD_LEGEND = "overhead threshold (per VM)"
WAIT_LEGEND = "CPU wait threshold (KvmVmCpuWaitHigh)"
# Exit handling time per VM is summed over its vCPUs and the exporter has no
# vCPU count to divide by: say so in the unit instead of calling it a share.
VCPU_S = "suffix: vCPU-s/s"


def q(text: str) -> str:
    """Expands @name@ placeholders from METRICS and SELECTORS."""
    def repl(m: re.Match) -> str:
        key = m.group(1)
        if key in METRICS:
            return METRICS[key]
        if key in SELECTORS:
            return SELECTORS[key]
        raise KeyError(f"unknown placeholder @{key}@ in {text!r}")
    return re.sub(r"@(\w+)@", repl, text)


# ---------------------------------------------------------------------------
# Panel builders
# ---------------------------------------------------------------------------
class Target:
    def __init__(self, expr: str, legend: str = "", instant: bool = False,
                 fmt: str = "time_series"):
        self.expr, self.legend, self.instant, self.fmt = q(expr), legend, instant, fmt

    def to_json(self, ref: str) -> dict:
        return {
            "datasource": DS,
            "editorMode": "code",
            "expr": self.expr,
            "format": self.fmt,
            "instant": self.instant,
            "legendFormat": self.legend or "__auto",
            "range": not self.instant,
            "refId": ref,
        }


def _targets(targets: list[Target]) -> list[dict]:
    return [t.to_json(chr(ord("A") + i)) for i, t in enumerate(targets)]


def _base(kind: str, title: str, desc: str, targets: list[Target], unit: str,
          w: int, h: int) -> dict:
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": _targets(targets),
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "_size": (w, h),
    }


def timeseries(title, desc, targets, unit="short", stack=False, w=12, h=9,
               legend_calcs=("mean", "max", "lastNotNull"), storm_line=False,
               overhead_line=False, wait_line=False):
    p = _base("timeseries", title, desc, targets, unit, w, h)
    p["fieldConfig"]["defaults"].update({
        "min": 0,
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 25 if stack else 5,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
    })
    p["options"] = {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                   "calcs": list(legend_calcs), "sortBy": "Mean", "sortDesc": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    lines = ([("@storm@", STORM_LEGEND)] if storm_line else []) + \
        ([("@overhead@", OVERHEAD_LEGEND)] if overhead_line else []) + \
        ([("@cpu_wait@", WAIT_LEGEND)] if wait_line else [])
    for series, legend in lines:  # a dashed red threshold line, never stacked
        p["targets"].append(
            Target(series, legend).to_json(chr(ord("A") + len(p["targets"]))))
        p["fieldConfig"]["overrides"].append({
            "matcher": {"id": "byName", "options": legend},
            "properties": [
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                {"id": "custom.fillOpacity", "value": 0},
                {"id": "custom.stacking", "value": {"mode": "none", "group": "A"}},
            ],
        })
    return p


def stat(title, desc, targets, unit="short", w=4, h=5, mappings=None, thresholds=None,
         decimals=None):
    p = _base("stat", title, desc, targets, unit, w, h)
    d = p["fieldConfig"]["defaults"]
    d["thresholds"] = {"mode": "absolute",
                       "steps": thresholds or [{"color": "green", "value": None}]}
    d["color"] = {"mode": "thresholds"}
    if mappings:
        d["mappings"] = mappings
    if decimals is not None:
        d["decimals"] = decimals
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
        "orientation": "auto", "textMode": "auto",
    }
    return p


def table(title, desc, targets, w=12, h=9, rename=None, units=None, sort_by=None,
          hide=("Time",), links=None):
    """Instant-query table; several targets are merged on their labels. links maps a
    (renamed) column to the data links of its cells."""
    for t in targets:
        t.instant, t.fmt = True, "table"
    p = _base("table", title, desc, targets, "short", w, h)
    renames = dict(rename or {})
    p["transformations"] = []
    if len(targets) > 1:
        p["transformations"].append({"id": "merge", "options": {}})
    p["transformations"].append({"id": "organize", "options": {
        "excludeByName": {name: True for name in hide},
        "indexByName": {},
        "renameByName": renames,
    }})
    p["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": name},
         "properties": [{"id": "unit", "value": unit}]}
        for name, unit in (units or {}).items()
    ] + [
        {"matcher": {"id": "byName", "options": name},
         "properties": [{"id": "links", "value": value}]}
        for name, value in (links or {}).items()
    ]
    p["options"] = {"showHeader": True, "cellHeight": "sm",
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort_by:
        p["options"]["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return p


def bargauge(title, desc, targets, unit="short", w=12, h=9, instant=True, fmt="time_series"):
    for t in targets:
        t.instant, t.fmt = instant, fmt
    p = _base("bargauge", title, desc, targets, unit, w, h)
    p["fieldConfig"]["defaults"].update({
        "min": 0,
        "color": {"mode": "continuous-GrYlRd"},
        "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
    })
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
        "valueMode": "color", "namePlacement": "auto", "minVizHeight": 10,
        "minVizWidth": 0, "sizing": "auto",
    }
    return p


def heatmap(title, desc, targets, w=12, h=9, y_unit="short", cells="VMs"):
    for t in targets:
        t.fmt = "heatmap"
    p = _base("heatmap", title, desc, targets, "short", w, h)
    p["options"] = {
        "calculate": False,
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential",
                  "exponent": 0.5, "fill": "dark-orange", "reverse": False, "steps": 64},
        "yAxis": {"axisPlacement": "left", "unit": y_unit, "reverse": False},
        "rowsFrame": {"layout": "auto", "value": cells},
        "cellValues": {"unit": "short"},
        "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
        "legend": {"show": True},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
    }
    return p


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


# ---------------------------------------------------------------------------
# Dashboard assembly
# ---------------------------------------------------------------------------
def datasource_var() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "includeAll": False,
            "multi": False, "options": [], "refresh": 1, "regex": "", "skipUrlSync": False}


def query_var(name: str, label: str, query: str, multi=True, include_all=True) -> dict:
    query = q(query)
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "definition": query,
        "query": {"qryType": 1, "query": query,
                  "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {}, "hide": 0, "includeAll": include_all, "multi": multi,
        "allValue": ".*" if include_all else None, "options": [], "refresh": 2,
        "regex": "", "skipUrlSync": False, "sort": 1,
    }


def textbox_var(name: str, label: str, default: str, desc: str) -> dict:
    return {"name": name, "label": label, "type": "textbox", "description": desc,
            "query": default, "current": {"text": default, "value": default},
            "options": [{"selected": True, "text": default, "value": default}],
            "hide": 0, "skipUrlSync": False}


def variables(vm_multi=True, storms=False) -> list[dict]:
    out = [
        datasource_var(),
        query_var("job", "Job", "label_values(@build_info@, job)"),
        query_var("instance", "Instance", 'label_values(@build_info@{job=~"$job"}, instance)'),
        query_var("vm", "VM", "label_values(@vm_info@{@S@}, vm)",
                  multi=vm_multi, include_all=vm_multi),
        query_var("reason", "Exit reason", "label_values(@exits@{@S@}, reason)"),
    ]
    if storms:
        out.append(textbox_var("storms_doc", "Storm catalogue URL", STORMS_DOC,
                               "Where docs/storms.md of kvm_exit_exporter is served (e.g. its "
                               "page in your copy of the repository): the Known causes tables "
                               "link each signature to its section there."))
    return out


def vm_start_annotation() -> dict:
    return {
        "name": "VM starts", "datasource": DS, "enable": True, "hide": False,
        "iconColor": "orange",
        "expr": q("@vm_start@{@SV@} * 1000"),
        "step": "60s", "useValueForTime": True,
        "titleFormat": "VM start", "textFormat": "{{vm}} (pid {{pid}}) on {{instance}}",
        "tagKeys": "vm",
    }


def layout(panels: list[dict]) -> list[dict]:
    """Places panels left to right, wrapping at 24 columns; ids in order."""
    x = y = row_h = 0
    out = []
    for pid, p in enumerate(panels, start=1):
        w, h = p.pop("_size")
        if x + w > 24 or p["type"] == "row":
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        p["id"] = pid
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
        out.append(p)
    return out


def dashboard(uid, title, desc, panels, time_from, vm_multi=True, annotations=(), storms=False):
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": TAGS,
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "id": None,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "weekStart": "",
        "links": [{"title": "KVM exit dashboards", "type": "dashboards", "tags": ["kvm"],
                   "asDropdown": True, "includeVars": True, "keepTime": True,
                   "icon": "external link", "targetBlank": False, "tooltip": "", "url": ""}],
        "annotations": {"list": list(annotations)},
        "templating": {"list": variables(vm_multi, storms)},
        "panels": layout(panels),
    }


ATTACHED_MAPPINGS = [{"type": "value", "options": {
    "0": {"text": "DETACHED", "color": "red", "index": 0},
    "1": {"text": "attached", "color": "green", "index": 1}}}]

# ---------------------------------------------------------------------------
# "Where the time goes": exit handling time (kvm_exit_handling_seconds,
# kvm_vm_exit_handling_seconds_total). Idle reasons (idle="true": HLT and the
# other wait reasons) are time the guest chose to sleep: they are kept out of
# every overhead figure and shown only in panels labelled as guest sleep.
# ---------------------------------------------------------------------------
UNIT_NOTE = ("vCPU-seconds per second, summed over the VM's vCPUs: 1 is one whole vCPU's time "
             "(the exporter has no vCPU count to turn it into a share).")
WAIT_NOTE = ("Needs collector.vcpu_time (on by default) and a kernel that charges guest "
             "time; VMs beyond vms.max_vms have none.")
SLEEP_NOTE = ("Time the guest chose to sleep in idle exits (HLT and the other wait reasons): "
              "an idle guest shows up here, and it is not overhead, so it is in no overhead "
              "panel or alert.")


def handling_heatmap(title: str, desc: str, sel: str, w: int, h: int) -> dict:
    return heatmap(title, desc,
                   [Target(f"sum by (le) (increase(@handling@_bucket{{@SR@, idle=\"false\"}}"
                           f"[$__rate_interval]){sel})", "{{le}}")],
                   w=w, h=h, y_unit="s", cells="exits")


def slowest_reasons(title: str, desc: str, sel: str, w: int, h: int) -> dict:
    return bargauge(title, desc,
                    # ">= 0" drops the NaN of reasons without exits in the range
                    [Target("sort_desc(topk(15, histogram_quantile(0.99, sum by (le, reason) "
                            f"(rate(@handling@_bucket{{@SR@, idle=\"false\"}}[$__range]){sel}))"
                            " >= 0))", "{{reason}}")],
                    unit="s", w=w, h=h)


# ---------------------------------------------------------------------------
# "Which port": the port IO drill-down (kvm_vm_io_port_exits_total). Served
# only with collector.drilldown: [io]; per VM at most drilldown_max_keys
# (port, direction) pairs have their own series, the rest are summed into
# port="other" per direction. "other" is a different set of ports in every
# VM, so it is never summed with real ports across VMs: the host-wide panels
# leave it out and show its share on its own.
# ---------------------------------------------------------------------------
def followed_kinds() -> set[str]:
    """The drill-down kinds the default configuration attaches during storms:
    the keys of collector.drilldown_auto.kinds in exporter/config/default_config.yaml."""
    text = (HERE.parent / "exporter" / "config" / "default_config.yaml").read_text(encoding="utf-8")
    block = re.search(r"^  drilldown_auto:\n(?:(?:    .*|\s*#.*)?\n)*?    kinds:\n((?:      .*\n)+)",
                      text, re.M)
    if not block:
        raise SystemExit("default_config.yaml: no collector.drilldown_auto.kinds")
    return set(re.findall(r"^      (\w+):", block.group(1), re.M))


FOLLOWED_KINDS = followed_kinds()


def drill_needs(kind: str) -> str:
    """What a drill-down panel needs, for its description."""
    if kind in FOLLOWED_KINDS:
        return (f"Needs the {kind} drill-down: attached during storms by default "
                f"(collector.drilldown_auto), always with collector.drilldown: [{kind}]; "
                "no data while the VMs are calm.")
    return f"Needs collector.drilldown: [{kind}] (off by default); empty without it."


def drill_row_note(kind: str) -> str:
    """What a drill-down row's title says it needs."""
    if kind in FOLLOWED_KINDS:
        return f"(drill-down {kind}: during storms by default)"
    return f"(needs collector.drilldown: [{kind}])"


DRILL_NOTE = drill_needs("io")
OTHER_NOTE = ("port=\"other\" sums, exactly, the port IO of (port, direction) pairs beyond "
              "collector.drilldown_max_keys per VM: a different set of ports in each VM.")


def other_share(title: str, desc: str, sel: str, w: int, h: int, metric: str = "@drill_io@",
                item: str = "port") -> dict:
    """Share of a drill-down family in item="other" (port="other" by default):
    now and over the range. 0 when no VM folded any item; empty when the family
    did not grow at all."""
    def share(window: str) -> str:
        return (f"(sum(rate({metric}{{{sel}, {item}=\"other\"}}[{window}])) or vector(0)) / "
                f"(sum(rate({metric}{{{sel}}}[{window}])) > 0)")
    return stat(title, desc, [Target(share("$__rate_interval"), "now"),
                              Target(share("$__range"), "over the range")],
                unit="percentunit", w=w, h=h, decimals=1,
                thresholds=[{"color": "green", "value": None},
                            {"color": "orange", "value": 0.1}])


# ---------------------------------------------------------------------------
# The other drill-down kinds (issue 14): which MSR, which MMIO page, which
# hypercall, and what the VMM was handed. Each is served only when its kind is
# in collector.drilldown, and bounded like port IO: per VM at most
# drilldown_max_keys items get a series, the rest are summed exactly into an
# "other" series (item label "other", the other labels as noted). The VM
# drill-down shows "other" like any item, plus its share; host-wide panels
# leave it out (a different set of items in every VM).
# ---------------------------------------------------------------------------
class DrillKind:
    """One drill-down kind: its family, item label and grouping labels from its
    row in bpf/drilldown_kinds.def, and the texts of its panels.
    noun: what is counted ("MSR accesses"); per: the item as a title says it
    ("MSR"); items: the table title ("MSRs"); question: what the graph answers;
    legend: the series legend (default: every label's value)."""
    def __init__(self, row: dict, noun: str, unit: str, per: str, items: str, question: str,
                 other: str, row_title: str, explain: str, legend: str = ""):
        labels = row["labels"].split()
        self.kind, self.metric, self.item = row["kind"], f"@drill_{row['kind']}@", labels[0]
        self.by = ", ".join(labels)
        self.legend = legend or " ".join(f"{{{{{label}}}}}" for label in labels)
        self.noun, self.unit, self.per, self.items, self.question = noun, unit, per, items, question
        self.needs = drill_needs(self.kind)
        self.other = other
        self.row_title = f"{row_title} {drill_row_note(self.kind)}"
        self.explain = explain

    def sel(self, extra: str = "") -> str:
        return f"{self.metric}{{@SV@{extra}}}"


def generic_prose(row: dict) -> dict:
    """Texts for a kind without its own below: from its row's help and labels."""
    item = row["labels"].split()[0]
    keeps = row["keeps"].split()
    kept = f", {' and '.join(keeps)} kept" if keeps else ""
    return dict(noun=f"{row['kind']} events", unit="events/s", per=item, items=f"{item[:1].upper()}{item[1:]}s",
                question=f"Which {item} is this VM's {row['kind']} drill-down about, and since when?",
                other=f"{item}=\"other\" sums, exactly, the events of items beyond "
                      f"collector.drilldown_max_keys per VM{kept}.",
                row_title=f"Which {item}", explain=f"{row['help']}")


# The panels' texts of each kind but io (which has panels of its own above);
# a kind not listed here gets generic_prose.
DRILL_PROSE = {
    "msr": dict(
        noun='MSR accesses',
        unit='accesses/s',
        per='MSR',
        items='MSRs',
        question='Which MSRs is this VM reading and writing, does KVM fault any access, and since when?',
        other='msr="other" (name "") sums, exactly, the accesses of (MSR, direction, fault) items beyond collector.drilldown_max_keys per VM, direction and fault kept: a different set of MSRs in each VM.',
        row_title='Which MSR',
        explain='One count per RDMSR/WRMSR that exits (kvm:kvm_msr): msr is the index (8 hex digits), name the kernel\'s macro name ("" when not in the exporter\'s table), direction read (RDMSR) or write (WRMSR), fault=true when KVM injected #GP (an MSR KVM does not emulate).',
        legend='{{msr}} {{name}} {{direction}} fault={{fault}}',
    ),
    "mmio": dict(
        noun='MMIO accesses',
        unit='accesses/s',
        per='page',
        items='MMIO pages',
        question='Which MMIO pages is this VM accessing (a device register polled in a loop, the local APIC), reading or writing, and since when?',
        other='page="other" sums, exactly, the accesses of (page, direction) pairs beyond collector.drilldown_max_keys per VM, direction kept: a different set of pages in each VM.',
        row_title='Which MMIO page',
        explain="One count per MMIO read or write KVM emulates (kvm:kvm_mmio), by its 4 KiB guest-physical page (0xfee00000 is the local APIC, 0xfec00000 the IOAPIC, others usually a device's BAR), whether an in-kernel device or the VMM (KVM_EXIT_MMIO) handles it.",
    ),
    "hypercall": dict(
        noun='hypercalls',
        unit='hypercalls/s',
        per='number',
        items='Hypercalls',
        question='Which hypercalls is this VM making, and since when?',
        other='nr="other" (name "") sums, exactly, the hypercalls of numbers beyond collector.drilldown_max_keys per VM: a different set in each VM.',
        row_title='Which hypercall',
        explain='One count per VMCALL/VMMCALL KVM handles as a hypercall (kvm:kvm_hypercall): nr is the number in RAX, name its KVM_HC_* name from linux/kvm_para.h ("" for a number the exporter does not know).',
    ),
    "userspace": dict(
        noun='exits to the VMM',
        unit='exits/s',
        per='exit reason',
        items='Exits to the VMM',
        question="Why does this VM's VMM process get control back from KVM_RUN (which KVM_EXIT_* it has to handle, or a signal), and since when?",
        other='exit_reason="other" sums, exactly, the exits of (exit_reason, error) pairs beyond collector.drilldown_max_keys per VM, error kept.',
        row_title='Exits to the VMM',
        explain='One count per return of KVM_RUN to the VMM process (kvm:kvm_userspace_exit): exit_reason is the KVM_EXIT_* the VMM has to handle (KVM_EXIT_IO, KVM_EXIT_MMIO, ...); error is "none" when KVM_RUN returned 0, else its errno name (KVM_EXIT_INTR with EINTR: a signal interrupted KVM_RUN, e.g. the VMM kicking the vCPU).',
    ),
    "hvc": dict(
        noun='HVCs',
        unit='calls/s',
        per='function',
        items='HVC functions',
        question='Which hypervisor calls (PSCI, SMCCC) is this arm64 VM making, and since when?',
        other='function="other" (name "") sums, exactly, the HVCs of function IDs beyond collector.drilldown_max_keys per VM: a different set in each VM.',
        row_title='Which HVC function (arm64)',
        explain='One count per HVC KVM handles (kvm:kvm_hvc_arm64, arm64 only): function is the SMCCC function ID in w0 (8 hex digits), name its PSCI name from linux/psci.h or its SMCCC name ("" for a function the exporter does not know, e.g. a SiP call).',
    ),
    "sysreg": dict(
        noun='system register accesses',
        unit='accesses/s',
        per='register',
        items='System registers',
        question='Which system registers does KVM trap and emulate for this arm64 VM (timers, GIC SGIs for IPIs, PMU, ID registers), reading or writing, and since when?',
        other='sysreg="other" (name "") sums, exactly, the accesses of (register, direction) pairs beyond collector.drilldown_max_keys per VM, direction kept.',
        row_title='Which system register (arm64)',
        explain='One count per MRS/MSR KVM emulates from its register table (kvm:kvm_sys_access, arm64 only): sysreg is the register as S<op0>_<op1>_C<n>_C<m>_<op2>, name its architectural name when the exporter knows it ("" otherwise), direction read (MRS) or write (MSR).',
    ),
}
DRILL_KINDS = tuple(
    DrillKind(row, **(DRILL_PROSE[row["kind"]] if row["kind"] in DRILL_PROSE
                      else generic_prose(row)))
    for row in DRILLDOWN_ROWS if row["kind"] != "io")
MSR = next(k for k in DRILL_KINDS if k.kind == "msr")  # the overview's host-wide MSR panels
# Host-wide top MSRs: "other" left out, faulting and not summed.
TOP_MSRS = ("topk({n}, sum by (msr, name, direction) ({fn}(@drill_msr@{{@SV@, msr!=\"other\"}}"
            "[{window}])))")
LOST_NOTE = ("kvm_drilldown_overflow_events_total has one series per kind in "
             "collector.drilldown (io: port IO, msr, mmio, hypercall, userspace: exits to the "
             "VMM; arm64: hvc, sysreg): events of that kind not counted because the drill-down map was full (one "
             "map for all kinds, collector.vm_map_capacity entries per kind that is on). "
             "Should be 0; while it grows that kind's figures are low: raise "
             "collector.vm_map_capacity. "
             "Empty while no kind is on.")
LABEL_TITLES = {"msr": "MSR", "name": "Name", "direction": "Direction", "fault": "Fault (#GP)",
                "page": "Page", "nr": "Nr", "exit_reason": "Exit reason", "error": "Error"}


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


def drill_vm_row(k: DrillKind) -> list[dict]:
    """VM drill-down: rate of the top items, items over the range, share of "other"."""
    return [
        row(k.row_title),
        timeseries(f"{cap(k.noun)} by {k.per} ({k.unit}, top 10)",
                   f"{k.question} Top 10 ({k.by}) at each step. {k.explain} {k.other} "
                   f"{k.needs}",
                   [Target(f"topk(10, sum by ({k.by}) "
                           f"(rate({k.sel()}[$__rate_interval])))", k.legend)],
                   w=10, h=10),
        table(f"{k.items} over the time range",
              f"How many {k.noun} went to each item in the selected range, what share of this "
              f"VM's {k.noun} is that, and how many since the exporter started tracking the VM? "
              f"At most collector.drilldown_max_keys items plus {k.item}=\"other\". "
              f"{k.other} {k.needs}",
              [Target(f"sum by ({k.by}) (increase({k.sel()}[$__range]))"),
               Target(f"sum by ({k.by}) (increase({k.sel()}[$__range])) "
                      f"/ on () group_left () sum(increase({k.sel()}[$__range]))"),
               Target(f"sum by ({k.by}) ({k.sel()})")],
              rename={"Value #A": f"{cap(k.noun)} in range", "Value #B": "Share in range",
                      "Value #C": "Since tracked",
                      **{label: LABEL_TITLES.get(label, cap(label)) for label in k.by.split(", ")}},
              units={"Share in range": "percentunit"},
              sort_by=f"{cap(k.noun)} in range", w=8, h=10),
        other_share(f"{cap(k.noun)} in {k.item}=\"other\" (share)",
                    f"How much of this VM's {k.noun} went to items without their own series, "
                    f"now and over the range? {k.other} 0 while the VM uses at most that many "
                    f"items; a high share means the per-item figures miss much of it (raise "
                    f"collector.drilldown_max_keys). {k.needs}",
                    "@SV@", 6, 10, metric=k.metric, item=k.item),
    ]


# ---------------------------------------------------------------------------
# "Known causes": the storm signatures of docs/storms.md a VM matches now. The
# rules (group kvm_exit_exporter.storm_signatures) record per VM and signature
# the matching events per second and their share of the VM's exits; a
# signature is active while both are above its thresholds, the condition of
# KvmVmKnownExitStorm without its 5 minutes. Signatures on a drill-down family
# need that collector.drilldown kind. vmm_device_emulation is the exception:
# its alert leaves out, with `unless on (job, instance, vm, pid) (...)`, the VMs
# that match a more specific device signature (acpi_pm_timer, rtc_cmos, ...),
# whose accesses are exits to the VMM too. The tables read that clause from the
# alert in the rules file, so that they name the same signatures as the alert.
# ---------------------------------------------------------------------------
STORMS_DOC = "docs/storms.md"
RULES = HERE.parent / "deploy" / "prometheus" / "kvm_exit_exporter.rules.yml"
UNLESS_VM = "unless on (job, instance, vm, pid)"


def alert_unless(signature: str) -> str:
    """What follows `unless on (job, instance, vm, pid)` in the expr of the
    KvmVmKnownExitStorm rule of `signature` in the rules file, on one line."""
    text = RULES.read_text(encoding="utf-8")
    for rule in re.split(r"^ *- (?=alert:|record:)", text, flags=re.M):
        if not rule.startswith("alert: KvmVmKnownExitStorm\n") or \
                not re.search(rf"^ +signature: {signature}$", rule, re.M):
            continue
        m = re.search(r"^ +expr: \|\n(.*?)^ +for:", rule, re.M | re.S)
        expr = " ".join(m.group(1).split()) if m else ""
        _, found, clause = expr.partition(f" {UNLESS_VM} ")
        if found:
            return clause
    raise SystemExit(f"{RULES}: no KvmVmKnownExitStorm rule for {signature} with "
                     f"'{UNLESS_VM} (...)' in its expr")


def storms_match(selector: str) -> str:  # above both thresholds, as in every alert
    return (f"(@r_sig_rate@{{{selector}}} > on (signature) group_left () "
            "@sig_threshold@{bound=\"rate\"}) and on (job, instance, vm, pid, signature) "
            "(@r_sig_share@{@SV@} > on (signature) group_left () "
            "@sig_threshold@{bound=\"share\"})")


STORMS_CATCH_ALL = "vmm_device_emulation"
STORMS_ACTIVE = ("(" + storms_match(f'@SV@, signature!="{STORMS_CATCH_ALL}"') + ") or ("
                 + storms_match(f'@SV@, signature="{STORMS_CATCH_ALL}"')
                 + f" {UNLESS_VM} {alert_unless(STORMS_CATCH_ALL)})")
STORMS_NOTE = ("A signature is listed while the VM is above both its thresholds "
               "(kvm_exit:storm_signature_threshold:min: events per second and share of the "
               "VM's exits), the condition of the KvmVmKnownExitStorm alert without its 5 "
               "minutes, so a boot burst shows here for a while without alerting. Signatures "
               "on port, MSR, MMIO page or VMM-exit items need that drill-down kind "
               "(io, msr, mmio, userspace: collector.drilldown_auto attaches each during storms "
               "by default) and stay absent without it. As in the alert, "
               "vmm_device_emulation is left out while the VM matches a more specific device "
               "signature (acpi_pm_timer, rtc_cmos, pit, legacy_ide, hpet). Click a signature for "
               "its cause and fix in the storm catalogue (docs/storms.md; set the Storm "
               "catalogue URL variable to where you serve it).")


def known_causes(title: str, desc: str, w: int, h: int) -> dict:
    def anchored(expr: str) -> str:  # adds the catalogue section as a label
        return f'label_replace({expr}, "runbook", "{STORMS_DOC}#$1", "signature", "(.*)")'
    return table(title, desc + " " + STORMS_NOTE,
                 [Target(anchored(STORMS_ACTIVE)),
                  Target(anchored(f"@r_sig_share@{{@SV@}} and on (job, instance, vm, pid, "
                                  f"signature) ({STORMS_ACTIVE})"))],
                 rename={"Value #A": "Events/s", "Value #B": "Share of the VM's exits",
                         "vm": "VM", "pid": "PID", "instance": "Instance",
                         "signature": "Signature", "runbook": "Runbook"},
                 units={"Share of the VM's exits": "percentunit", "Events/s": "short"},
                 links={"Signature": [{"title": "Cause and fix of ${__value.raw}",
                                       "url": "${storms_doc}#${__value.raw}",
                                       "targetBlank": True}]},
                 hide=("Time", "job", "__name__"), sort_by="Events/s", w=w, h=h)


# ---------------------------------------------------------------------------
# The three dashboards
# ---------------------------------------------------------------------------


def overview() -> dict:
    p = [
        row("Now"),
        stat("Exit rate (exits/s)",
             "How many VM exits per second is this host (or fleet selection) taking right now? "
             "Sum of the 1-minute recorded rate.",
             [Target("sum(@r_host@{@S@})")]),
        stat("Exits since exporter start",
             "How many exits has the exporter counted since it started (all VMs, all reasons)? "
             "Resets when the exporter restarts.",
             [Target("sum(@exits@{@S@})")]),
        stat("VMs tracked",
             "How many VMs does the exporter see? VMs beyond vms.max_vms are folded into "
             "vm=\"other\" and counted in the second value.",
             [Target("sum(@vms@{@S@})", "tracked"), Target("sum(@vms_folded@{@S@})", "folded")]),
        stat("BPF program",
             "Is the BPF program attached to kvm:kvm_exit on every selected host? "
             "DETACHED means the counters are frozen (alert KvmExitBpfDetached).",
             [Target("min(@attached@{@S@})")], unit="none", mappings=ATTACHED_MAPPINGS,
             thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}]),
        stat("Exporters up",
             "How many of the selected exporters did Prometheus scrape successfully last time?",
             [Target('sum(up{@S@})', "up"), Target('count(up{@S@})', "targets")],
             unit="none"),
        stat("Lost exits in range",
             "Were any exits lost (neither per-VM map nor overflow table had room) during the "
             "selected time range? Should be 0 (alert KvmExitLostExits).",
             [Target("sum(increase(@lost@{@S@}[$__range]))")],
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]),
        row("Exit rates"),
        timeseries("Total exit rate per host (exits/s)",
                   "Is any host taking far more exits than usual, and since when? "
                   "One line per exporter instance.",
                   [Target("sum by (instance) (@r_host@{@S@})", "{{instance}}")]),
        timeseries("Exit rate by reason (exits/s, stacked)",
                   "Which exit reasons make up the exit rate, and which one changed? "
                   "Stacked, so the top edge is the total.",
                   [Target("sum by (isa, reason) (@r_reason@{@SR@})", "{{reason}} ({{isa}})")],
                   stack=True),
        table("Top exit reasons over the time range",
              "Which reasons caused the most exits in the selected time range "
              "(increase over $__range), and how many since the exporter started?",
              [Target("topk(20, sum by (isa, reason) (increase(@exits@{@SR@}[$__range])))"),
               Target("sum by (isa, reason) (@exits@{@SR@})")],
              rename={"Value #A": "Exits in range", "Value #B": "Exits since start",
                      "isa": "ISA", "reason": "Reason"},
              sort_by="Exits in range"),
        timeseries("Exit rate per VM (exits/s, top 20)",
                   "Which VMs cause the exits, and is any close to the storm threshold? "
                   "The dashed red line is the KvmExitStorm threshold.",
                   [Target("topk(20, sum by (vm) (@r_vm@{@SV@}))", "{{vm}}")],
                   storm_line=True),
        table("Exits per VM",
              "Which VMs exited most in the selected range, and in total since the exporter "
              "started tracking them?",
              [Target("topk(50, sum by (vm) (increase(@vm_exits@{@SV@}[$__range])))"),
               Target("sum by (vm) (@vm_exits@{@SV@})")],
              rename={"Value #A": "Exits in range", "Value #B": "Exits since start",
                      "vm": "VM"},
              sort_by="Exits in range"),
        timeseries("Exporter-side exit rate (exits/s)",
                   "What does the exporter's own rate window (rates.window) say? It should "
                   "track the Prometheus rate above; a gap points at lost scrapes.",
                   [Target("sum by (instance) (@exp_rate_all@{@S@})", "{{instance}}")], w=24,
                   h=7),
        row("Known causes (storm signatures, docs/storms.md)"),
        known_causes("Known causes per VM",
                     "Which known exit storms are the selected VMs in right now, and how many "
                     "exits per second does each cause?", 24, 8),
        row("Where the vCPU time goes (collector.vcpu_time)"),
        timeseries("VMs waiting most for a CPU (share of vCPU time, top 10)",
                   "Which VMs wait longest for a host CPU? The share of each VM's vCPU time "
                   "spent runnable but not running (CPU Ready; the guest's steal time), over 5 "
                   "minutes. " + WAIT_NOTE + " The dashed red line is the KvmVmCpuWaitHigh "
                   "threshold.",
                   [Target("topk(10, @r_vm_wait@{@SV@})", "{{vm}} on {{instance}}")],
                   unit="percentunit", wait_line=True, w=14),
        timeseries("Host CPU overcommit (vCPUs waiting)",
                   "How overcommitted is each host's CPU? The vCPU time its VMs spent waiting "
                   "for a CPU, summed: 1 is one vCPU's worth always runnable and never running. "
                   "Above 0 on every VM of a host means more runnable vCPUs than CPUs; on a few "
                   "VMs, a noisy neighbour or pinning (docs/deploy.md, KvmVmCpuWaitHigh).",
                   [Target("sum by (instance) (@r_host_wait@{@S@})", "{{instance}}")],
                   unit="suffix: vCPUs", w=10),
        row("Where the time goes (exit handling time)"),
        timeseries("Time lost to non-idle exits per VM (vCPU-s/s, top 20)",
                   "Which VMs lose the most vCPU time to exit handling, idle reasons (HLT) left "
                   "out? Time their vCPUs spent out of guest mode handling exits, in "
                   + UNIT_NOTE + " The dashed red line is the KvmVmExitOverheadHigh threshold.",
                   [Target("topk(20, sum by (vm) (@r_vm_overhead@{@SV@}))", "{{vm}}")],
                   unit=VCPU_S, overhead_line=True),
        timeseries("Time lost to non-idle exits by reason (host, vCPU-s/s, stacked)",
                   "Which exit reasons cost the host's VMs the most time, idle reasons (HLT) "
                   "left out? Handling time per second from the host histogram (all VMs, also "
                   "those beyond the per-VM map); stacked, so the top edge is the total in "
                   "vCPU-seconds per second.",
                   [Target("sum by (reason) (rate(@handling@_sum{@SR@, idle=\"false\"}"
                           "[$__rate_interval]))", "{{reason}}")],
                   unit=VCPU_S, stack=True),
        handling_heatmap("Exit handling time, non-idle reasons (host heatmap)",
                         "How long do exits keep vCPUs out of their guests, and is the "
                         "distribution shifting? Each column counts the exits of the selected "
                         "reasons ($reason) that ended in that interval, by bucket of handling "
                         "time (exit to next entry). Idle reasons (HLT) are left out: their "
                         "time is guest sleep. IO and MMIO exits that go out to the VMM include "
                         "the VMM's own handling time.", "", 12, 9),
        slowest_reasons("Slowest exit reasons (p99 handling time, non-idle)",
                        "Which exit reasons take longest to handle? 99th percentile of handling "
                        "time per reason over the selected range, from the host histogram; "
                        "idle reasons (HLT) left out, and reasons without exits in the range. "
                        "A slow IO or MMIO reason points at the VMM's device model.", "", 12, 9),
        timeseries("Guest sleep in idle exits per VM (HLT, vCPU-s/s, top 20)",
                   "How long do the VMs' vCPUs sleep in idle exits? " + SLEEP_NOTE + " In "
                   + UNIT_NOTE,
                   [Target("topk(20, sum by (vm) (rate(@vm_handling@{@SV@, idle=\"true\"}"
                           "[$__rate_interval])))", "{{vm}}")],
                   unit=VCPU_S, w=16, h=8),
        stat("Untimed exit intervals in range",
             "How many exit intervals could not be timed in the selected range "
             "(kvm_exit_timing_lost_total)? They are counted as exits but missing from the "
             "handling-time figures, so a growing number makes those figures too low.",
             [Target("sum(increase(@timing_lost@{@S@}[$__range]))")], w=8, h=8, decimals=0,
             thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}]),
        row("Port IO: which port " + drill_row_note("io")),
        timeseries("Top ports, all selected VMs (port IO/s, top 10)",
                   "Which IO ports take the most port IO exits across the selected VMs and "
                   "hosts, and since when? Sum by port and direction over VMs, top 10 at each "
                   "step. port=\"other\" is left out, because " + OTHER_NOTE + " A port folded into "
                   "\"other\" in some VM is missing from its line here, so a line is a lower "
                   "bound; the share panel beside shows how much is folded. " + DRILL_NOTE,
                   [Target("topk(10, sum by (port, direction) (rate(@drill_io@{@SV@, "
                           "port!=\"other\"}[$__rate_interval])))", "{{port}} {{direction}}")],
                   w=12, h=9),
        table("Top ports over the time range, all selected VMs",
              "Which IO ports took the most port IO in the selected range, and in how many "
              "VMs? Top 20 (port, direction) by port IO in range, summed over the selected VMs; "
              "port=\"other\" left out (see the share panel). " + DRILL_NOTE,
              [Target("topk(20, sum by (port, direction) (increase(@drill_io@{@SV@, "
                      "port!=\"other\"}[$__range])))"),
               Target("count by (port, direction) (increase(@drill_io@{@SV@, "
                      "port!=\"other\"}[$__range]) > 0) and on (port, direction) "
                      "topk(20, sum by (port, direction) (increase(@drill_io@{@SV@, "
                      "port!=\"other\"}[$__range])))")],
              rename={"Value #A": "Port IO in range", "Value #B": "VMs",
                      "port": "Port", "direction": "Direction"},
              sort_by="Port IO in range", w=6, h=9),
        other_share("Port IO in port=\"other\" (share)",
                    "How much of the selected VMs' port IO is folded into port=\"other\", "
                    "now and over the range? " + OTHER_NOTE + " A high share means the top "
                    "ports miss much of the port IO: raise collector.drilldown_max_keys or "
                    "open the VM drill-down. 0 when no VM folded a port. " + DRILL_NOTE,
                    "@SV@", 6, 9),
        row(MSR.row_title.replace("Which MSR", "MSRs: which MSR")),
        timeseries("Top MSRs, all selected VMs (accesses/s, top 10)",
                   "Which MSRs do the selected VMs read and write the most, across hosts, and "
                   "since when? Sum by (msr, name, direction) over VMs (faulting and not), "
                   "top 10 at each step. msr=\"other\" is left out, because " + MSR.other +
                   " An MSR folded into \"other\" in some VM is missing from its line here, "
                   "so a line is a lower bound; the share panel beside shows how much is "
                   "folded. " + MSR.explain + " " + MSR.needs,
                   [Target(TOP_MSRS.format(fn="rate", window="$__rate_interval", n=10),
                           "{{msr}} {{name}} {{direction}}")],
                   w=12, h=9),
        table("Top MSRs over the time range, all selected VMs",
              "Which MSRs took the most accesses in the selected range, how many of those "
              "faulted (KVM injected #GP), and in how many VMs? Top 20 (msr, name, direction) "
              "by accesses in range, summed over the selected VMs; msr=\"other\" left out "
              "(see the share panel). " + MSR.needs,
              [Target(TOP_MSRS.format(fn="increase", window="$__range", n=20)),
               # 0, not a blank cell, for the top MSRs that did not fault
               Target("(sum by (msr, name, direction) (increase(@drill_msr@{@SV@, msr!=\"other\", "
                      "fault=\"true\"}[$__range])) and on (msr, name, direction) "
                      + TOP_MSRS.format(fn="increase", window="$__range", n=20) + ") or 0 * "
                      + TOP_MSRS.format(fn="increase", window="$__range", n=20)),
               Target("count by (msr, name, direction) (sum by (job, instance, vm, pid, msr, "
                      "name, direction) (increase(@drill_msr@{@SV@, msr!=\"other\"}[$__range])) "
                      "> 0) and on (msr, name, direction) "
                      + TOP_MSRS.format(fn="increase", window="$__range", n=20))],
              rename={"Value #A": "MSR accesses in range", "Value #B": "Faulted (#GP)",
                      "Value #C": "VMs", "msr": "MSR", "name": "Name",
                      "direction": "Direction"},
              sort_by="MSR accesses in range", w=6, h=9),
        other_share("MSR accesses in msr=\"other\" (share)",
                    "How much of the selected VMs' MSR accesses are folded into msr=\"other\", "
                    "now and over the range? " + MSR.other + " A high share means the top MSRs "
                    "miss many accesses: raise collector.drilldown_max_keys or open the VM "
                    "drill-down. 0 when no VM folded an MSR. " + MSR.needs,
                    "@SV@", 6, 9, metric=MSR.metric, item=MSR.item),
        row("Drill-down health (any collector.drilldown kind)"),
        timeseries("Drill-down events lost by kind (events/s)",
                   "Since when are drill-down events not counted at all, and of which kind? "
                   + LOST_NOTE,
                   [Target("sum by (kind) (rate(@drill_lost@{@S@}[$__rate_interval]))",
                           "{{kind}}")], w=16, h=6),
        stat("Drill-down events lost in range",
             "Were any drill-down events not counted in the selected range, and of which "
             "kind? " + LOST_NOTE,
             [Target("sum by (kind) (increase(@drill_lost@{@S@}[$__range]))", "{{kind}}")],
             w=8, h=6, decimals=0,
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]),
        row("Exporter health"),
        timeseries("BPF map fill",
                   "How full are the BPF maps? vm_exits near 100 % means new VMs' exits go to "
                   "the host overflow table (alert KvmExitPerVmMapOverflowing).",
                   [Target("@map_entries@{@S@} / on (job, instance, map) @map_capacity@{@S@}",
                           "{{instance}} {{map}}")], unit="percentunit", w=8, h=8),
        timeseries("Overflow and lost exits (exits/s)",
                   "Are exits being counted only per host (overflow) or not at all (lost)?",
                   [Target("sum by (instance) (rate(@overflow@{@S@}[$__rate_interval]))",
                           "{{instance}} overflow"),
                    Target("sum by (instance) (rate(@lost@{@S@}[$__rate_interval]))",
                           "{{instance}} lost")], w=8, h=8),
        timeseries("Exporter errors (per second)",
                   "Is the exporter hitting errors, and of which kind?",
                   [Target("sum by (instance, kind) (rate(@errors@{@S@}[$__rate_interval]))",
                           "{{instance}} {{kind}}")], w=8, h=8),
        timeseries("BPF program CPU (share of one core)",
                   "What does counting cost? Time the kernel spent in the BPF program per second "
                   "(needs kernel.bpf_stats_enabled=1, else 0).",
                   [Target("sum by (instance) (rate(@prog_time@{@S@}[$__rate_interval]))",
                           "{{instance}}")], unit="percentunit", w=8, h=8),
        timeseries("BPF program time per exit",
                   "How long does one run of the BPF program take on average?",
                   [Target("sum by (instance) (rate(@prog_time@{@S@}[$__rate_interval])) / "
                           "sum by (instance) (rate(@prog_runs@{@S@}[$__rate_interval]))",
                           "{{instance}}")], unit="s", w=8, h=8),
        timeseries("Scrape duration",
                   "How long does the exporter take to build one scrape (reading the maps and "
                   "/proc)? The slowest 1% of scrapes (p99) and the mean.",
                   [Target("histogram_quantile(0.99, sum by (instance, le) "
                           "(rate(@scrape_duration@_bucket{@S@}[$__rate_interval])))",
                           "p99 {{instance}}"),
                    Target("sum by (instance) (rate(@scrape_duration@_sum{@S@}[$__rate_interval])) / "
                           "sum by (instance) (rate(@scrape_duration@_count{@S@}[$__rate_interval]))",
                           "mean {{instance}}")], unit="s", w=8, h=8),
        table("Exporter versions",
              "Which exporter version and revision runs on each host?",
              [Target("@build_info@{@S@}")],
              hide=("Time", "Value", "__name__"), w=24, h=6),
    ]
    return dashboard("kvm-exits-overview", "KVM exits / Overview",
                     "Host and fleet view of KVM VM exits counted by kvm_exit_exporter.",
                     p, "now-6h", annotations=[vm_start_annotation()], storms=True)


def boot() -> dict:
    p = [
        row("Exit rate around VM starts"),
        timeseries("Exit rate per VM, VM starts annotated (exits/s, top 20)",
                   "Does a VM's exit rate spike when it boots, and how long until it settles? "
                   "Orange markers are VM starts (kvm_vm_start_time_seconds).",
                   [Target("topk(20, sum by (vm) (@r_vm@{@SV@}))", "{{vm}}")],
                   w=16, h=10, storm_line=True),
        table("VM starts",
              "When did each VM start, and how long has it been running?",
              [Target("max by (vm, pid) (@vm_start@{@SV@}) * 1000"),
               Target("time() - max by (vm, pid) (@vm_start@{@SV@})")],
              rename={"Value #A": "Started", "Value #B": "Uptime", "vm": "VM", "pid": "PID"},
              units={"Started": "dateTimeAsIso", "Uptime": "dtdurations"},
              sort_by="Started", w=8, h=10),
        row("Boot window (first vms.boot_window of each VM)"),
        bargauge("Boot-window exits per VM",
                 "Which VMs took the most exits while booting? Counts exits in each VM's first "
                 "boot_window; frozen once the window closes.",
                 [Target("sort_desc(sum by (vm, pid) (@boot_exits@{@SV@}))",
                         "{{vm}} ({{pid}})")]),
        timeseries("Boot-window exits per VM over time",
                   "How fast does each VM's boot-window count grow, and when does it stop "
                   "(window closed)?",
                   [Target("sum by (vm) (@boot_exits@{@SV@})", "{{vm}}")],
                   legend_calcs=("max",)),
        table("Boot-window exits by reason",
              "Which exit reasons dominate booting, summed over the selected VMs?",
              [Target("topk(20, sum by (isa, reason) (@boot_exits@{@SVR@}))")],
              rename={"Value": "Boot-window exits", "isa": "ISA", "reason": "Reason"},
              sort_by="Boot-window exits", w=24, h=8),
        row("Boot exits across VMs (histogram)"),
        stat("Boot exits per VM: quantiles",
             "How many exits does a typical VM boot take (p50), and a bad one (p90, p99)? "
             "Over every boot window that closed since the exporter started.",
             [Target("histogram_quantile(0.5, sum by (le) (@boot_hist@_bucket{@S@}))", "p50"),
              Target("histogram_quantile(0.9, sum by (le) (@boot_hist@_bucket{@S@}))", "p90"),
              Target("histogram_quantile(0.99, sum by (le) (@boot_hist@_bucket{@S@}))", "p99"),
              Target("sum(@boot_hist@_sum{@S@}) / sum(@boot_hist@_count{@S@})", "mean")],
             w=8, h=8, decimals=0),
        bargauge("Boot exits per VM: distribution",
                 "How are VMs spread over boot-exit buckets? Number of closed boot windows per "
                 "bucket since the exporter started.",
                 [Target("sum by (le) (@boot_hist@_bucket{@S@})", "{{le}}")],
                 fmt="heatmap", w=8, h=8),
        stat("VMs booted in range",
             "How many VMs finished their boot window in the selected time range?",
             [Target("sum(increase(@boot_hist@_count{@S@}[$__range]))")], w=8, h=8, decimals=0),
        heatmap("Boot exits of VMs whose window closed, over time",
                "When did VMs with heavy boots finish booting? Each column counts boot windows "
                "that closed in that interval, by bucket of boot exits.",
                [Target("sum by (le) (increase(@boot_hist@_bucket{@S@}[$__rate_interval]))",
                        "{{le}}")], w=24, h=9),
    ]
    return dashboard("kvm-exits-boot", "KVM exits / Boot spikes",
                     "Exit spikes while VMs boot: per-VM rates with start markers, boot-window "
                     "counts and their distribution across VMs.",
                     p, "now-3h", annotations=[vm_start_annotation()])


def vm_drilldown() -> dict:
    p = [
        row("VM"),
        table("VM identity",
              "Which VMM process is this VM, what is its UUID and platform, and when did it "
              "start?",
              [Target("@vm_info@{@SV@}"), Target("max by (job, instance, vm, pid) "
                                                  "(@vm_start@{@SV@}) * 1000")],
              rename={"Value #B": "Started", "vm": "VM", "pid": "PID", "vm_uuid": "UUID",
                      "platform": "Platform"},
              units={"Started": "dateTimeAsIso"},
              hide=("Time", "Value #A", "__name__"), w=24, h=5),
        stat("Exit rate (exits/s)", "How many exits per second is this VM taking now?",
             [Target("sum(@r_vm@{@SV@})")], w=6),
        stat("Exits since tracked", "How many exits has this VM taken since the exporter "
             "started tracking it?", [Target("sum(@vm_exits@{@SV@})")], w=6),
        stat("Boot-window exits", "How many exits did this VM take during its boot window?",
             [Target("sum(@boot_exits@{@SV@})")], w=6),
        stat("Uptime", "How long has this VM's VMM process been running?",
             [Target("time() - max(@vm_start@{@SV@})")], unit="dtdurations", w=6),
        row("Exit reasons"),
        timeseries("Exit rate by reason (exits/s, stacked)",
                   "Which exit reasons make up this VM's exit rate, and which one changed?",
                   [Target("sum by (isa, reason) (@r_vm_reason@{@SVR@})", "{{reason}}")],
                   stack=True, w=14, h=10),
        table("Top exit reasons over the time range",
              "Which reasons (and raw codes) caused this VM's exits in the selected range?",
              [Target("topk(20, sum by (isa, reason, code) "
                      "(increase(@vm_exits@{@SVR@}[$__range])))")],
              rename={"Value": "Exits in range", "isa": "ISA", "reason": "Reason",
                      "code": "Code"},
              sort_by="Exits in range", w=10, h=10),
        row("Where the vCPU time goes (collector.vcpu_time)"),
        timeseries("Where the vCPU time goes (share of one vCPU-second, stacked)",
                   "Where does each second of this VM's vCPUs go? guest: running the guest; "
                   "host: on a CPU outside guest mode, handling exits in KVM and the VMM; "
                   "waiting: runnable, waiting for a host CPU (steal time); sleeping: halted "
                   "or blocked in the VMM. Shares of the VM's vCPU time over 5 minutes: the "
                   "stack tops out at 1. " + WAIT_NOTE,
                   [Target("sum by (mode) (@r_vm_mode@{@SV@}) / ignoring (mode) group_left "
                           "sum(@r_vm_mode@{@SV@})", "{{mode}}")],
                   unit="percentunit", stack=True, w=10, h=10),
        timeseries("Host mode by exit reason (vCPU-s/s, needs collector.exit_handling_time)",
                   "Which exits make up the time beside it in host mode? Handling time per "
                   "second by reason, idle reasons (HLT, which is sleeping) left out, in "
                   + UNIT_NOTE + " Empty unless exit handling time is on.",
                   [Target("sum by (reason) (rate(@vm_handling@{@SVR@, idle=\"false\"}"
                           "[$__rate_interval]))", "{{reason}}")],
                   unit=VCPU_S, stack=True, w=8, h=10),
        timeseries("Waiting for a CPU (share of vCPU time)",
                   "How much of this VM's vCPU time is spent waiting for a host CPU? The "
                   "dashed red line is the KvmVmCpuWaitHigh threshold; the runbook "
                   "(docs/deploy.md) covers overcommit, pinning and noisy neighbours.",
                   [Target("sum(@r_vm_wait@{@SV@})", "waiting")],
                   unit="percentunit", wait_line=True, w=6, h=10),
        row("Known causes (storm signatures, docs/storms.md)"),
        known_causes("Known causes",
                     "Which known exit storm is this VM in right now, and how many exits per "
                     "second does it cause?", 24, 6),
        row("Which port " + drill_row_note("io")),
        timeseries("Port IO by port (port IO/s, top 10)",
                   "Which IO ports is this VM's port IO going to (a serial console polled in a "
                   "loop, a PIT, a legacy virtio notify), and since when? Top 10 (port, "
                   "direction) at each step; direction read is IN, write is OUT. " + OTHER_NOTE
                   + " " + DRILL_NOTE,
                   [Target("topk(10, sum by (port, direction) "
                           "(rate(@drill_io@{@SV@}[$__rate_interval])))", "{{port}} {{direction}}")],
                   w=10, h=10),
        table("Ports over the time range",
              "How much port IO did each port take in the selected range, what share of this "
              "VM's port IO is that, and how much since the exporter started tracking the VM? "
              "At most collector.drilldown_max_keys ports plus port=\"other\" per direction. "
              + OTHER_NOTE + " " + DRILL_NOTE,
              [Target("sum by (port, direction) (increase(@drill_io@{@SV@}[$__range]))"),
               Target("sum by (port, direction) (increase(@drill_io@{@SV@}[$__range])) "
                      "/ on () group_left () sum(increase(@drill_io@{@SV@}[$__range]))"),
               Target("sum by (port, direction) (@drill_io@{@SV@})")],
              rename={"Value #A": "Port IO in range", "Value #B": "Share in range",
                      "Value #C": "Since tracked", "port": "Port", "direction": "Direction"},
              units={"Share in range": "percentunit"},
              sort_by="Port IO in range", w=8, h=10),
        other_share("Port IO in port=\"other\" (share)",
                    "How much of this VM's port IO went to ports without their own series, now "
                    "and over the range? " + OTHER_NOTE + " 0 while the VM uses at most that "
                    "many pairs; a high share means the per-port figures miss much of its port "
                    "IO (raise collector.drilldown_max_keys). " + DRILL_NOTE,
                    "@SV@", 6, 10),
        *[panel for k in DRILL_KINDS for panel in drill_vm_row(k)],
        row("Drill-down health (any collector.drilldown kind)"),
        stat("Drill-down events lost on this VM's host in range",
             "Were drill-down events of any kind not counted on the host this VM runs on, in "
             "the selected range? If so, the drill-down panels above are low for that kind "
             "(the map is per host, so the VM cannot be told apart). " + LOST_NOTE,
             [Target("sum by (kind) (increase(@drill_lost@{@S@}[$__range]) "
                     "and on (job, instance) @vm_info@{@SV@})", "{{kind}}")],
             w=24, h=4, decimals=0,
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]),
        row("Where the time goes (exit handling time)"),
        timeseries("Time lost to non-idle exits by reason (vCPU-s/s, stacked)",
                   "Which exit reasons cost this VM its vCPU time, idle reasons (HLT) left out? "
                   "Stacked, so the top edge is the VM's overhead, in " + UNIT_NOTE +
                   " The dashed red line is the KvmVmExitOverheadHigh threshold.",
                   [Target("sum by (reason) (rate(@vm_handling@{@SVR@, idle=\"false\"}"
                           "[$__rate_interval]))", "{{reason}}")],
                   unit=VCPU_S, stack=True, overhead_line=True, w=14, h=10),
        table("Handling time by reason over the time range",
              "How much time did each reason cost this VM in the selected range, and how long "
              "did one exit take on average (handling time / exits counted)? Rows with idle = "
              "true are guest sleep (HLT), not overhead.",
              [Target("sum by (reason, idle) (increase(@vm_handling@{@SVR@}[$__range]))"),
               Target("sum by (reason, idle) (increase(@vm_handling@{@SVR@}[$__range])) "
                      "/ on (reason) group_left "
                      "sum by (reason) (increase(@vm_exits@{@SVR@}[$__range]))")],
              rename={"Value #A": "Handling time in range", "Value #B": "Mean per exit",
                      "reason": "Reason", "idle": "Idle (guest sleep)"},
              units={"Handling time in range": "s", "Mean per exit": "s"},
              sort_by="Handling time in range", w=10, h=10),
        stat("Time lost to non-idle exits (vCPU-s/s)",
             "How much vCPU time does this VM lose to exit handling now, idle reasons (HLT) "
             "left out? In " + UNIT_NOTE,
             [Target("sum(@r_vm_overhead@{@SV@})")], unit=VCPU_S, w=6, h=8, decimals=3),
        stat("Guest sleep in idle exits (HLT, vCPU-s/s)",
             "How long do this VM's vCPUs sleep in idle exits now? " + SLEEP_NOTE,
             [Target("sum(rate(@vm_handling@{@SV@, idle=\"true\"}[$__rate_interval]))")],
             unit=VCPU_S, w=6, h=8, decimals=3),
        handling_heatmap("Exit handling time on this VM's host, non-idle (all VMs)",
                         "How long do exits take on the host this VM runs on? Host histogram "
                         "(all VMs on it; there is no per-VM histogram), by bucket of handling "
                         "time, idle reasons (HLT) left out.",
                         " and on (job, instance) @vm_info@{@SV@}", 6, 8),
        slowest_reasons("Slowest reasons on this VM's host (p99, non-idle)",
                        "Which exit reasons take longest on this VM's host? 99th percentile of "
                        "handling time per reason over the selected range, host histogram (all "
                        "VMs), idle reasons (HLT) left out.",
                        " and on (job, instance) @vm_info@{@SV@}", 6, 8),
        row("vCPUs (needs collector.per_vcpu: true)"),
        timeseries("Exit rate per vCPU (exits/s)",
                   "Is one vCPU exiting far more than the others (a spinning or interrupt-bound "
                   "vCPU)? Empty unless per-vCPU counting is on.",
                   [Target("sum by (vcpu) "
                           "(rate(@vcpu_exits@{@SVR@}[$__rate_interval]))", "vCPU {{vcpu}}")],
                   w=14, h=10),
        table("Exits per vCPU and reason over the time range",
              "Which reason drives each vCPU's exits in the selected range?",
              [Target("topk(50, sum by (vcpu, reason) "
                      "(increase(@vcpu_exits@{@SVR@}[$__range])))")],
              rename={"Value": "Exits in range", "vcpu": "vCPU", "reason": "Reason"},
              sort_by="Exits in range", w=10, h=10),
    ]
    return dashboard("kvm-exits-vm", "KVM exits / VM drill-down",
                     "One VM's exits: by reason and the known storm they match; by IO port, "
                     "MSR, MMIO page, hypercall and exit to the VMM (drill-down); by vCPU; and "
                     "its identity.",
                     p, "now-1h", vm_multi=False, annotations=[vm_start_annotation()],
                     storms=True)


DASHBOARDS = {
    "kvm-exits-overview.json": overview,
    "kvm-exits-boot.json": boot,
    "kvm-exits-vm.json": vm_drilldown,
}

README_BEGIN = "<!-- BEGIN GENERATED PANEL LIST (dashboards/generate_dashboards.py) -->"
README_END = "<!-- END GENERATED PANEL LIST -->"


def panel_list(dashes: dict[str, dict]) -> str:
    lines = [README_BEGIN, ""]
    for fname, d in dashes.items():
        lines += [f"### {d['title']} (`{fname}`, uid `{d['uid']}`)", "", d["description"], "",
                  "| Panel | Question it answers | Queries |", "| --- | --- | --- |"]
        for p in d["panels"]:
            if p["type"] == "row":
                lines.append(f"| **{p['title']}** | | |")
                continue
            exprs = "<br>".join("`" + t["expr"].replace("|", "\\|") + "`" for t in p["targets"])
            desc = p["description"].replace("|", "\\|")
            lines.append(f"| {p['title']} | {desc} | {exprs} |")
        lines.append("")
    lines.append(README_END)
    return "\n".join(lines)


def render() -> dict[Path, str]:
    dashes = {name: build() for name, build in DASHBOARDS.items()}
    out = {HERE / name: json.dumps(d, indent=2, sort_keys=False) + "\n"
           for name, d in dashes.items()}
    readme_path = HERE / "README.md"
    readme = readme_path.read_text() if readme_path.exists() else ""
    if README_BEGIN in readme and README_END in readme:
        head, rest = readme.split(README_BEGIN, 1)
        _, tail = rest.split(README_END, 1)
        out[readme_path] = head + panel_list(dashes) + tail
    else:
        raise SystemExit(f"{readme_path}: missing the generated-section markers")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 when a generated file is out of date")
    args = ap.parse_args()
    stale = []
    for path, text in render().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
    rel = [str(p.relative_to(HERE.parent)) for p in stale]
    if args.check:
        if rel:
            print("out of date (run python3 dashboards/generate_dashboards.py): " + ", ".join(rel))
            return 1
        print("dashboards are up to date")
        return 0
    print("wrote: " + (", ".join(rel) if rel else "nothing (already up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
