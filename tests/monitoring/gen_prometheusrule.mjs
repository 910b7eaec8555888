#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Writes deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/kvm_exit_exporter.rules.yml,
// so the Prometheus Operator gets exactly the rules that promtool tests.
//
//   node tests/monitoring/gen_prometheusrule.mjs          # rewrite the PrometheusRule
//   node tests/monitoring/gen_prometheusrule.mjs --check  # exit 1 if its groups differ
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import YAML from "yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const rulesPath = resolve(root, "deploy/prometheus/kvm_exit_exporter.rules.yml");
const outPath = resolve(root, "deploy/kubernetes/prometheusrule.yaml");

const HEADER = `# GENERATED from deploy/prometheus/kvm_exit_exporter.rules.yml by
# tests/monitoring/gen_prometheusrule.mjs: edit the rules there and regenerate.
# The Prometheus resource's ruleSelector / ruleNamespaceSelector must match
# this object (e.g. add the label your kube-prometheus release selects on).
`;

export function rulesGroups() {
  return YAML.parse(readFileSync(rulesPath, "utf8")).groups;
}

export function render(groups) {
  const doc = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: {
      name: "kvm-exit-exporter",
      namespace: "kvm-exit-exporter",
      labels: { "app.kubernetes.io/name": "kvm-exit-exporter" },
    },
    spec: { groups },
  };
  return HEADER + YAML.stringify(doc, { lineWidth: 0, blockQuote: "literal" });
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const groups = rulesGroups();
  if (process.argv.includes("--check")) {
    let current;
    try {
      current = YAML.parse(readFileSync(outPath, "utf8"));
    } catch (e) {
      console.log(`FAIL ${outPath}: ${e.message}`);
      process.exit(1);
    }
    if (!isDeepStrictEqual(current?.spec?.groups, groups)) {
      console.log("FAIL deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/" +
                  "kvm_exit_exporter.rules.yml (run: node tests/monitoring/gen_prometheusrule.mjs)");
      process.exit(1);
    }
    console.log("ok   deploy/kubernetes/prometheusrule.yaml has the same rule groups as deploy/prometheus");
  } else {
    writeFileSync(outPath, render(groups));
    console.log(`wrote ${outPath}`);
  }
}
