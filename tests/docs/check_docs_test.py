#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Proves that check_docs.py fails on planted contradictions.

Each case copies the files the checker reads into a temporary directory,
plants one contradiction, runs the checker there and requires a non-zero exit
and the expected message; the unplanted copy must pass. Run by ctest
(docs_check_selftest); standard library only.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKER = REPO / "tests/docs/check_docs.py"
# What check_docs.py reads.
FILES = ["README.md", "CHANGELOG.md", "CMakeLists.txt", "dashboards/README.md",
         "exporter/config/default_config.yaml", "exporter/util/build_info.h.in", "cmake/packaging.cmake",
         "deploy/systemd/kvm_exit_exporter.service", "tests/e2e/CMakeLists.txt",
         "tests/e2e/build_image.sh", "tests/integration/CMakeLists.txt",
         "exporter/config/config_reload.cpp"]
DIRS = [("docs", "*.md"), ("exporter", "*/*.cpp"), ("tests/docs", "*")]


class PlantedContradictions(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="check_docs_test."))
        for name in FILES:
            (self.tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, self.tmp / name)
        for directory, pattern in DIRS:
            (self.tmp / directory).mkdir(parents=True, exist_ok=True)
            for path in (REPO / directory).glob(pattern):
                if path.is_file():
                    copy = self.tmp / path.relative_to(REPO)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, copy)

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp)

    def run_checker(self) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(CHECKER), "--root", str(self.tmp)],
                              capture_output=True, text=True, check=False)

    def edit(self, name: str, old: str, new: str, count: int = 1) -> None:
        path = self.tmp / name
        text = path.read_text(encoding="utf-8")
        self.assertIn(old, text, f"{name} no longer contains {old!r}: update this test")
        path.write_text(text.replace(old, new, count), encoding="utf-8")

    def assert_fails(self, expected: str) -> None:
        result = self.run_checker()
        self.assertNotEqual(result.returncode, 0, "the checker passed a planted contradiction:\n"
                            + result.stdout)
        self.assertRegex(result.stdout, expected)

    def test_clean_copy_passes(self) -> None:
        result = self.run_checker()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_wrong_version_in_a_page(self) -> None:
        self.edit("docs/deploy.md", "`kvm-exit-exporter_<version>-1_<arch>.deb`",
                  "`kvm-exit-exporter_<version>-1_<arch>.deb` (e.g. kvm-exit-exporter_0.1.0-1_amd64.deb)")
        self.assert_fails(r"docs/deploy.md:\d+: version 0.1.0, but CMakeLists.txt says")

    def test_version_bumped_without_the_docs(self) -> None:
        self.edit("CMakeLists.txt", "VERSION 0.2.0", "VERSION 0.3.0")
        self.assert_fails(r"README.md: does not name the current version \(0.3.0\)")

    def test_figure_not_in_benchmarks(self) -> None:
        self.edit("docs/metrics.md", "## Cardinality\n",
                  "## Cardinality\n\nA scrape at 1,000 VMs takes 13 ms.\n")
        self.assert_fails(r"docs/metrics.md:\d+: figure '13 ms' is not in docs/benchmarks.md")

    def test_ratio_not_in_benchmarks(self) -> None:
        self.edit("README.md", "2.41× what a bcc-style", "0.98× what a bcc-style")
        self.assert_fails(r"README.md:\d+: figure '0.98x' is not in docs/benchmarks.md")

    def test_fourth_capability(self) -> None:
        self.edit("docs/deploy.md", "the three capabilities listed above",
                  "the four capabilities listed above")
        self.assert_fails(r"docs/deploy.md:\d+: 'four capabilit…' but the unit grants 3")

    def test_readme_names_another_capability_set(self) -> None:
        self.edit("README.md", "The systemd unit grants exactly `CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH`",
                  "The systemd unit grants exactly `CAP_BPF CAP_PERFMON CAP_SYS_PTRACE CAP_DAC_READ_SEARCH`")
        self.assert_fails(r"README.md:\d+: the unit grants CAP_BPF CAP_DAC_READ_SEARCH CAP_PERFMON "
                          r"CAP_SYS_PTRACE, but its")

    def test_unit_gains_a_capability(self) -> None:
        self.edit("deploy/systemd/kvm_exit_exporter.service",
                  "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH",
                  "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH CAP_SYS_ADMIN")
        self.assert_fails(r"cmake/packaging.cmake: the package description names")

    def test_stale_dependency(self) -> None:
        self.edit("docs/deploy.md", "`libc6`, `libcap2`", "`libc6`, `libcivetweb1`, `libcap2`")
        self.assert_fails(r"docs/deploy.md:\d+: names 'libcivetweb1' as a dependency")

    def test_missing_dependency(self) -> None:
        self.edit("docs/deploy.md", "`libre2-9`, ", "")
        self.assert_fails(r"docs/deploy.md:\d+: lists package dependencies without libre2-9")

    def test_undocumented_metric(self) -> None:
        path = self.tmp / "exporter/render/self_metrics.cpp"
        path.write_text(path.read_text(encoding="utf-8")
                        + '\n// "kvm_exit_exporter_planted_total"\n', encoding="utf-8")
        self.assert_fails(r"metric family kvm_exit_exporter_planted_total")

    def test_undocumented_config_key(self) -> None:
        self.edit("exporter/config/default_config.yaml", "\nrates:\n", "\nrates:\n  planted_key: 1\n")
        self.assert_fails(r"config key rates.planted_key")

    def test_key_said_to_reload_live(self) -> None:
        self.edit("README.md", "`rates.sample_interval`, `collector.exit_handling_buckets` |",
                  "`rates.sample_interval`, `collector.exit_handling_buckets`, `kernel.hook` |")
        self.assert_fails(r"README.md: the live-on-SIGHUP keys are")

    def test_stale_tested_matrix(self) -> None:
        self.edit("tests/docs/tested_matrix.json", "nested guest under Bochs",
                  "nested guest under Bochs 2.8")
        self.assert_fails(r"README.md: the tested-kernels table is stale")

    def test_suite_removed(self) -> None:
        text = (self.tmp / "tests/e2e/CMakeLists.txt").read_text(encoding="utf-8")
        (self.tmp / "tests/e2e/CMakeLists.txt").write_text(
            re.sub(r"add_test\(NAME e2e_vmx_real_exits", "add_test(NAME e2e_vmx_gone", text),
            encoding="utf-8")
        self.assert_fails(r"no test e2e_vmx_real_exits in tests/e2e/CMakeLists.txt")


if __name__ == "__main__":
    unittest.main(verbosity=2)
