#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Which folder of exporter/ may include which: the data path's stages, lowest
first. A file may include headers of its own stage and of any stage below it,
the kernel/user contract (bpf/kvm_exit.h and its drilldown_kinds.def) and the build's generated headers;
never a header of a stage above it. File-level include cycles fail too, within
a stage as well. bpf/ has the same rule in small: lib/ headers include only
lib/ headers and the contract.

  check_layers.py [REPO]    check the tree (ctest: layering)
  check_layers.py --selftest  prove that an upward include and a cycle fail
"""
import os
import re
import sys
import tempfile

# Lowest first; docs/architecture.md draws the same order.
STAGES = ["util", "source", "identity", "model", "render", "http", "config", "app"]
# Headers the build generates (in build/gen), with the stages allowed to include them.
GENERATED = {
    "kvm_exit.skel.h": "source",
    "kvm_uapi_names.inc": "render",
    "build_info.h": "util",
}
CONTRACT = "kvm_exit.h"
# The contract and the rows it expands (one per drill-down kind).
CONTRACT_FILES = {CONTRACT, "drilldown_kinds.def"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INCLUDE.findall(f.read())


def check_exporter(repo, problems):
    root = os.path.join(repo, "exporter")
    graph = {}
    for stage in sorted(os.listdir(root)):
        folder = os.path.join(root, stage)
        if not os.path.isdir(folder):
            continue
        if stage not in STAGES:
            problems.append(f"exporter/{stage}/: not a stage; add it to STAGES in {__file__}")
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".h", ".cpp", ".in")):
                continue
            me = f"{stage}/{name}"
            graph[me] = []
            for target in includes(os.path.join(folder, name)):
                where = f"exporter/{me}: #include \"{target}\""
                if target in CONTRACT_FILES:
                    continue
                if target in GENERATED:
                    if STAGES.index(stage) < STAGES.index(GENERATED[target]):
                        problems.append(f"{where}: a generated header of stage {GENERATED[target]}")
                    continue
                if "/" not in target:
                    problems.append(f"{where}: name the stage (\"<stage>/{target}\")")
                    continue
                their_stage = target.split("/", 1)[0]
                if their_stage not in STAGES:
                    problems.append(f"{where}: no stage {their_stage}")
                elif not os.path.exists(os.path.join(root, target)):
                    problems.append(f"{where}: no such file")
                elif STAGES.index(their_stage) > STAGES.index(stage):
                    problems.append(f"{where}: {stage} is below {their_stage}; move the type "
                                    f"it needs down, or the code up")
                else:
                    graph[me].append(target)
    find_cycles(graph, "exporter/", problems)


def check_bpf(repo, problems):
    root = os.path.join(repo, "bpf")
    graph = {}
    for dirpath, _, names in os.walk(root):
        for name in sorted(names):
            if not name.endswith((".h", ".c")):
                continue
            path = os.path.join(dirpath, name)
            me = os.path.relpath(path, root)
            graph[me] = []
            for target in includes(path):
                resolved = os.path.normpath(os.path.join(os.path.dirname(me), target))
                if not os.path.exists(os.path.join(root, resolved)):
                    resolved = target  # found through -I bpf/
                if not os.path.exists(os.path.join(root, resolved)):
                    continue  # vmlinux.h and libbpf's headers
                if me.startswith("lib/") and not (resolved.startswith("lib/") or resolved in CONTRACT_FILES):
                    problems.append(f"bpf/{me}: #include \"{target}\": lib/ headers include "
                                    f"only lib/ headers and {CONTRACT}")
                if me == CONTRACT and resolved not in CONTRACT_FILES:
                    problems.append(f"bpf/{me}: the contract includes nothing of ours")
                graph[me].append(resolved)
    find_cycles(graph, "bpf/", problems)


def find_cycles(graph, prefix, problems):
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph.get(node, []):
            if state.get(nxt) == "open":
                cycle = trail[trail.index(nxt):] + [nxt]
                problems.append("include cycle: " + " -> ".join(prefix + c for c in cycle))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def check(repo):
    problems = []
    check_exporter(repo, problems)
    check_bpf(repo, problems)
    return problems


def selftest():
    cases = {
        "upward include": {"util/a.h": '#include "app/b.h"\n', "app/b.h": ""},
        "unnamed stage": {"util/a.h": '#include "b.h"\n', "util/b.h": ""},
        "cycle": {"model/a.h": '#include "model/b.h"\n', "model/b.h": '#include "model/a.h"\n'},
        "unknown folder": {"misc/a.h": ""},
        "lib includes a program": {"../bpf/lib/x.bpf.h": '#include "../count.bpf.c"\n',
                                   "../bpf/count.bpf.c": ""},
    }
    failed = 0
    for label, files in cases.items():
        with tempfile.TemporaryDirectory() as repo:
            os.makedirs(os.path.join(repo, "exporter"))
            os.makedirs(os.path.join(repo, "bpf"))
            for rel, text in files.items():
                path = os.path.normpath(os.path.join(repo, "exporter", rel))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            if not check(repo):
                print(f"selftest: {label} was not caught")
                failed += 1
    with tempfile.TemporaryDirectory() as repo:  # and a clean tree passes
        os.makedirs(os.path.join(repo, "exporter", "app"))
        os.makedirs(os.path.join(repo, "exporter", "util"))
        with open(os.path.join(repo, "exporter", "app", "a.cpp"), "w", encoding="utf-8") as f:
            f.write('#include "util/b.h"\n#include "kvm_exit.h"\n')
        open(os.path.join(repo, "exporter", "util", "b.h"), "w").close()
        os.makedirs(os.path.join(repo, "bpf"))
        if check(repo):
            print("selftest: a clean tree failed:", check(repo))
            failed += 1
    print("selftest:", "FAILED" if failed else f"{len(cases) + 1} cases ok")
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--selftest"]:
        return selftest()
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    problems = check(repo)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} layering problem(s); the stages, lowest first: {' < '.join(STAGES)}")
        return 1
    print(f"layers ok: {' < '.join(STAGES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
