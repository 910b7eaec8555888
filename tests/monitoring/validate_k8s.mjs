#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Validates deploy/kubernetes/*.yaml.
//
// 1. Every YAML document is loaded (npm `yaml`) and validated against its
//    Kubernetes / Prometheus Operator schema with the models' validate()
//    (npm kubernetes-models, @kubernetes-models/prometheus-operator).
// 2. validate() ignores unknown fields, so a typo such as `allowPrivilegeEscalaton`
//    would pass silently; every document is therefore also type-checked with
//    TypeScript against the same models' types, whose excess-property check
//    rejects unknown fields.
// 3. Cross-object checks: Service -> DaemonSet pods -> container port, the
//    ServiceMonitor -> Service, job label == the one the alerts use, the
//    PrometheusRule == deploy/prometheus rules, ConfigMap keys known to the
//    exporter, and the DaemonSet's privileges are exactly the ones documented.
//
// Prints one line per check and `N passed, N failed`; exit 1 on failure.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import YAML from "yaml";
import { ALLOWED_CAPS, check, finish } from "./tally.mjs";
import ts from "typescript";
import * as coreV1 from "kubernetes-models/v1";
import * as appsV1 from "kubernetes-models/apps/v1";
import * as monV1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { rulesGroups } from "./gen_prometheusrule.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const k8sDir = resolve(root, "deploy/kubernetes");

// apiVersion/kind -> [model class, TypeScript import module]
const MODELS = {
  "v1/Namespace": [coreV1.Namespace, "kubernetes-models/v1"],
  "v1/ConfigMap": [coreV1.ConfigMap, "kubernetes-models/v1"],
  "v1/Service": [coreV1.Service, "kubernetes-models/v1"],
  "v1/ServiceAccount": [coreV1.ServiceAccount, "kubernetes-models/v1"],
  "apps/v1/DaemonSet": [appsV1.DaemonSet, "kubernetes-models/apps/v1"],
  "monitoring.coreos.com/v1/ServiceMonitor":
    [monV1.ServiceMonitor, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"],
  "monitoring.coreos.com/v1/PrometheusRule":
    [monV1.PrometheusRule, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"],
};

const REQUIRED_HOST_MOUNTS = ["/sys/kernel/tracing", "/sys/kernel/btf"];


// --- 1. load and validate() -------------------------------------------------
const docs = []; // {file, index, obj, key}
for (const file of readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  const text = readFileSync(join(k8sDir, file), "utf8");
  const parsed = YAML.parseAllDocuments(text);
  parsed.forEach((d, index) => {
    const where = `${file}#${index}`;
    if (d.errors.length) {
      check(false, `${where}: YAML parses`, d.errors.map((e) => e.message).join("; "));
      return;
    }
    const obj = d.toJS();
    if (obj === null) return; // empty document after a trailing ---
    const key = `${obj.apiVersion}/${obj.kind}`;
    const model = MODELS[key];
    if (!model) {
      check(false, `${where}: known kind`, `no model for ${key}`);
      return;
    }
    try {
      new model[0](obj).validate();
      check(true, `${where}: ${obj.kind} ${obj.metadata?.name} passes ${key} validate()`);
    } catch (e) {
      check(false, `${where}: ${obj.kind} ${obj.metadata?.name} passes ${key} validate()`,
            e.message);
    }
    docs.push({ file, where, obj, key });
  });
}

// --- 2. TypeScript excess-property check --------------------------------------
{
  const dir = join(here, "node_modules", ".cache", "k8s-typecheck");
  mkdirSync(dir, { recursive: true });
  const imports = new Map();
  const lines = [];
  docs.forEach(({ obj, key, where }, i) => {
    const [cls, mod] = MODELS[key];
    const alias = `${cls.name}_${[...imports.keys()].length}`;
    if (![...imports.values()].some((v) => v.mod === mod && v.name === cls.name)) {
      imports.set(alias, { mod, name: cls.name });
    }
    const use = [...imports.entries()].find(([, v]) => v.mod === mod && v.name === cls.name)[0];
    const { apiVersion, kind, ...rest } = obj; // the constructors add these themselves
    lines.push(`// ${where}\nexport const doc${i} = new ${use}(${JSON.stringify(rest, null, 2)});`);
  });
  const header = [...imports.entries()]
    .map(([alias, v]) => `import { ${v.name} as ${alias} } from "${v.mod}";`).join("\n");
  const file = join(dir, "manifests.ts");
  writeFileSync(file, `${header}\n\n${lines.join("\n\n")}\n`);
  const program = ts.createProgram([file], {
    strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
  });
  const diags = ts.getPreEmitDiagnostics(program).map((d) => {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (!d.file) return msg;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    // Name the manifest: the nearest "// file#n" comment above the error.
    const src = d.file.text.split("\n").slice(0, line + 1).reverse().find((l) => l.startsWith("// "));
    return `${src ? src.slice(3) : d.file.fileName}: ${msg}`;
  });
  check(diags.length === 0, `all manifests type-check against the models (no unknown fields)`,
        diags.slice(0, 5).join(" | "));
  rmSync(dir, { recursive: true, force: true });
}

// --- 3. cross-object checks ---------------------------------------------------
const byKind = (kind) => docs.filter((d) => d.obj.kind === kind).map((d) => d.obj);
const [ns] = byKind("Namespace");
const [ds] = byKind("DaemonSet");
const [svc] = byKind("Service");
const [sm] = byKind("ServiceMonitor");
const [pr] = byKind("PrometheusRule");
const [cm] = byKind("ConfigMap");
check(Boolean(ns && ds && svc && sm && pr && cm),
      "one each of Namespace, ConfigMap, DaemonSet, Service, ServiceMonitor, PrometheusRule");
if (!(ns && ds && svc && sm && pr && cm)) finish();

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

check(docs.every((d) => d.obj.kind === "Namespace" || d.obj.metadata?.namespace === ns.metadata.name),
      `every namespaced object is in namespace ${ns.metadata.name}`);
check(ns.metadata.labels?.["pod-security.kubernetes.io/enforce"] === "privileged",
      "namespace allows the privileged Pod Security level the DaemonSet needs");

// DaemonSet
const pod = ds.spec.template.spec;
const podLabels = ds.spec.template.metadata.labels;
check(matches(ds.spec.selector.matchLabels, podLabels), "DaemonSet selector matches its pod labels");
check(pod.hostPID === true, "DaemonSet: hostPID is true (VMM processes are in the host PID namespace)");
check(!pod.hostNetwork && !pod.hostIPC, "DaemonSet: no hostNetwork, no hostIPC");
check(pod.automountServiceAccountToken === false, "DaemonSet: no service account token");
check(pod.containers.length === 1, "DaemonSet: one container");
const c = pod.containers[0];
const sc = c.securityContext ?? {};
const added = sc.capabilities?.add ?? [];
check(!sc.privileged, "container: not privileged");
check(sc.allowPrivilegeEscalation === false, "container: allowPrivilegeEscalation false");
check(sc.readOnlyRootFilesystem === true, "container: read-only root file system");
check(isDeepStrictEqual(sc.capabilities?.drop, ["ALL"]), "container: drops ALL capabilities");
check(added.length > 0 && added.every((cap) => ALLOWED_CAPS.has(cap)),
      "container: adds only BPF/PERFMON/SYS_RESOURCE",
      added.filter((cap) => !ALLOWED_CAPS.has(cap)).join(","));
check(added.includes("BPF") && added.includes("PERFMON"), "container: has BPF and PERFMON");
check(Boolean(c.resources?.limits?.cpu && c.resources?.limits?.memory &&
              c.resources?.requests?.cpu && c.resources?.requests?.memory),
      "container: cpu and memory requests and limits");
const metricsPort = (c.ports ?? []).find((p) => p.name === "metrics");
check(Boolean(metricsPort), "container: has a port named metrics");
for (const probe of ["readinessProbe", "livenessProbe"]) {
  const p = c[probe]?.httpGet;
  check(Boolean(p) && p.path === "/metrics" &&
        (p.port === "metrics" || p.port === metricsPort?.containerPort),
        `container: ${probe} GETs /metrics on the metrics port`);
}
const hostPaths = (pod.volumes ?? []).filter((v) => v.hostPath).map((v) => v.hostPath.path).sort();
check(isDeepStrictEqual(hostPaths, [...REQUIRED_HOST_MOUNTS].sort()),
      "pod: hostPath volumes are exactly /sys/kernel/tracing and /sys/kernel/btf", hostPaths.join(","));
for (const path of REQUIRED_HOST_MOUNTS) {
  const vol = (pod.volumes ?? []).find((v) => v.hostPath?.path === path);
  const mount = (c.volumeMounts ?? []).find((m) => m.name === vol?.name);
  check(Boolean(mount) && mount.mountPath === path && mount.readOnly === true,
        `container: mounts ${path} read-only at the same path`);
}
const argValue = (flag) => (c.args ?? []).find((a) => a.startsWith(`${flag}=`))?.split("=")[1];
const listenPort = Number(argValue("--web.listen-address")?.split(":").pop());
check(listenPort === metricsPort?.containerPort,
      "container: --web.listen-address port == metrics containerPort", String(listenPort));

// ConfigMap: mounted where --config.file points, keys known to the exporter.
const cfgFile = argValue("--config.file");
const cfgVol = (pod.volumes ?? []).find((v) => v.configMap?.name === cm.metadata.name);
const cfgMount = (c.volumeMounts ?? []).find((m) => m.name === cfgVol?.name);
check(Boolean(cfgMount) && cfgFile === `${cfgMount.mountPath}/config.yml` &&
      cm.data?.["config.yml"] !== undefined,
      "ConfigMap config.yml is mounted at the --config.file path", cfgFile);
{
  const defaults = YAML.parse(readFileSync(resolve(root, "exporter/config/default_config.yaml"), "utf8"));
  const cfg = YAML.parse(cm.data["config.yml"]);
  const unknown = [];
  const walk = (obj, ref, path) => {
    for (const [k, v] of Object.entries(obj ?? {})) {
      if (!ref || typeof ref !== "object" || !(k in ref)) unknown.push(path + k);
      else if (v && typeof v === "object" && !Array.isArray(v)) walk(v, ref[k], `${path}${k}.`);
    }
  };
  walk(cfg, defaults, "");
  check(unknown.length === 0, "ConfigMap config.yml uses only keys of exporter/config/default_config.yaml",
        unknown.join(", "));
  const cfgPort = Number(String(cfg?.web?.listen_address ?? "").split(":").pop());
  check(!cfg?.web?.listen_address || cfgPort === metricsPort?.containerPort,
        "ConfigMap web.listen_address port == metrics containerPort");
}

// Service -> pods
check(matches(svc.spec.selector, podLabels) && Object.keys(svc.spec.selector ?? {}).length > 0,
      "Service selects the DaemonSet's pods");
const svcPort = (svc.spec.ports ?? []).find((p) => p.name === "metrics");
check(Boolean(svcPort) && (svcPort.targetPort === "metrics" ||
                           svcPort.targetPort === metricsPort?.containerPort),
      "Service port metrics targets the container's metrics port");

// ServiceMonitor -> Service
check(matches(sm.spec.selector?.matchLabels, svc.metadata.labels),
      "ServiceMonitor selects the Service");
check((sm.spec.namespaceSelector?.matchNames ?? [svc.metadata.namespace]).includes(svc.metadata.namespace),
      "ServiceMonitor looks in the Service's namespace");
check(sm.spec.endpoints.every((e) => (svc.spec.ports ?? []).some((p) => p.name === e.port)),
      "ServiceMonitor endpoints name a Service port");
{
  const rulesText = readFileSync(resolve(root, "deploy/prometheus/kvm_exit_exporter.rules.yml"), "utf8");
  const alertJob = /up\{job="([^"]+)"\}/.exec(rulesText)?.[1];
  const jobRelabel = sm.spec.endpoints.flatMap((e) => e.relabelings ?? [])
    .find((r) => r.targetLabel === "job");
  check(Boolean(alertJob) && jobRelabel?.replacement === alertJob,
        `ServiceMonitor sets job="${alertJob}" as KvmExitExporterDown expects`,
        String(jobRelabel?.replacement));
}

// PrometheusRule == deploy/prometheus rules
check(isDeepStrictEqual(pr.spec.groups, rulesGroups()),
      "PrometheusRule groups == deploy/prometheus/kvm_exit_exporter.rules.yml " +
      "(regenerate: node tests/monitoring/gen_prometheusrule.mjs)");

finish();
