#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Cross-checks the storm signatures (issue 27) where they are written down
// more than once:
//
//   deploy/prometheus/kvm_exit_exporter.rules.yml  thresholds, rate rule, alerts
//   docs/storms.md                                 a section and a table row each
//   tests/monitoring/storms_test.yml               a firing case each
//
// For every signature: both thresholds (rate, share) exist and the docs' table
// states the same numbers; the rate rule matches it on the family its
// drill-down kind serves; exactly one KvmVmKnownExitStorm rule fires for it,
// with its drill-down kind as the `drilldown` label and docs/storms.md#NAME as
// its runbook; docs/storms.md has a "### NAME" section saying which kind it
// needs; the unit tests expect it to fire at least once.
//
// Prints one line per check and `N passed, N failed`; exit 1 on failure.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { check, finish } from "./tally.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const read = (p) => readFileSync(resolve(root, p), "utf8");

const GROUP = "kvm_exit_exporter.storm_signatures";
const ALERT = "KvmVmKnownExitStorm";
const THRESHOLDS = "kvm_exit:storm_signature_threshold:min";
const RATES = "instance_vm_signature:kvm_vm_signature_exits:rate2m";
// drill-down kind -> the family its signatures match on ("" = exit reasons)
const FAMILY = {
  io: "kvm_vm_io_port_exits_total",
  msr: "kvm_vm_msr_exits_total",
  mmio: "kvm_vm_mmio_exits_total",
  userspace: "kvm_vm_userspace_exits_total",
  "": "kvm_vm_exits_total",
};

const groups = YAML.parse(read("deploy/prometheus/kvm_exit_exporter.rules.yml")).groups;
const group = groups.find((g) => g.name === GROUP);
check(Boolean(group), `rules file has the group ${GROUP}`);
if (!group) finish();

// Thresholds: label_replace(label_replace(vector(N), "signature", "S", ...), "bound", "B", ...)
const thresholdRule = group.rules.find((r) => r.record === THRESHOLDS);
const thresholds = {}; // signature -> {rate, share}
for (const m of (thresholdRule?.expr ?? "").matchAll(
  /vector\(([0-9.e+-]+)\),\s*"signature",\s*"([a-z0-9_]+)"[^)]*\),\s*"bound",\s*"(rate|share)"/g)) {
  const [, value, sig, bound] = m;
  thresholds[sig] ??= {};
  check(thresholds[sig][bound] === undefined, `${sig}: one ${bound} threshold`);
  thresholds[sig][bound] = Number(value);
}
const signatures = Object.keys(thresholds);
check(signatures.length >= 8, `at least 8 signatures have thresholds`, `${signatures.length}`);

// Rate rule: label_replace(sum by (...) (rate(FAMILY{...}[2m])), "signature", "S", "", "")
const rateRule = group.rules.find((r) => r.record === RATES);
const rateFamily = {};
for (const m of (rateRule?.expr ?? "").matchAll(
  /rate\(([a-z_]+)\{[^}]*\}\[[^\]]+\]\)\),\s*"signature",\s*"([a-z0-9_]+)"/g)) {
  rateFamily[m[2]] = m[1];
}

const alerts = group.rules.filter((r) => r.alert === ALERT);
const docs = read("docs/storms.md");
const tests = YAML.parse(read("tests/monitoring/storms_test.yml")).tests;
const firing = new Set();
for (const t of tests) {
  for (const a of t.alert_rule_test ?? []) {
    for (const e of a.exp_alerts ?? []) firing.add(e.exp_labels?.signature);
  }
}
const silent = tests.some((t) => (t.alert_rule_test ?? []).length > 0 &&
  t.alert_rule_test.every((a) => (a.exp_alerts ?? []).length === 0) &&
  /normal|idl/i.test(t.name));
check(silent, "storms_test.yml has a normal (idle/boot) profile on which no signature fires");

for (const sig of signatures) {
  const th = thresholds[sig];
  check(th.rate > 0 && th.share > 0 && th.share <= 1, `${sig}: rate and share thresholds`,
        JSON.stringify(th));
  const mine = alerts.filter((r) => r.labels?.signature === sig);
  check(mine.length === 1, `${sig}: exactly one ${ALERT} rule`, `${mine.length}`);
  const rule = mine[0];
  const kind = rule?.labels?.drilldown ?? "";
  check(rateFamily[sig] === FAMILY[kind],
        `${sig}: rate rule reads ${FAMILY[kind] ?? "?"} (drilldown label "${kind}")`,
        `reads ${rateFamily[sig]}`);
  check(rule?.expr?.includes(`${RATES}{signature="${sig}"}`), `${sig}: alert selects its signature`);
  check(rule?.annotations?.runbook === `docs/storms.md#${sig}`, `${sig}: runbook docs/storms.md#${sig}`,
        rule?.annotations?.runbook);
  check(["summary", "description", "fix"].every((k) => rule?.annotations?.[k]),
        `${sig}: summary, description (cause) and fix annotations`);
  if (kind) {
    check(/Needs the\s+(\w+)\s+drill-down/.exec(rule?.annotations?.description ?? "")?.[1] === kind,
          `${sig}: description says it needs the ${kind} drill-down`);
  }
  // docs: a section, the kind it needs, and the table row with the same numbers
  const section = docs.split(/^### /m).find((s) => s.startsWith(`${sig}\n`));
  check(Boolean(section), `docs/storms.md: section "### ${sig}"`);
  if (section) {
    check(kind ? section.includes(`Needs the \`${kind}\` drill-down`) : section.includes("No drill-down needed"),
          `docs/storms.md#${sig}: says which drill-down kind it needs`);
    for (const field of ["**Pattern.**", "**Cause.**", "**Confirm.**", "**Fix.**", "**Where.**", "**Sources.**"]) {
      check(section.includes(field), `docs/storms.md#${sig}: ${field}`);
    }
  }
  const row = docs.split("\n").find((l) => l.startsWith(`| [${sig}](#${sig}) |`));
  const cells = row?.split("|").map((c) => c.trim());
  check(Boolean(row) && Number(cells?.at(-3)) === th.rate && Number(cells?.at(-2)) === th.share,
        `docs/storms.md thresholds table: ${sig} ${th.rate}/s, share ${th.share}`,
        row ?? "no row");
  check(firing.has(sig), `storms_test.yml: ${sig} fires in some case`);
}
check(alerts.every((r) => signatures.includes(r.labels?.signature)),
      `every ${ALERT} rule has a signature with thresholds`);
check(Object.keys(rateFamily).every((s) => signatures.includes(s)),
      "every signature in the rate rule has thresholds");
finish();
