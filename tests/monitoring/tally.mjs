// SPDX-License-Identifier: Apache-2.0
// Shared by the deployment validators: the one list of capabilities the
// exporter may be granted (docs/deploy.md says why each), and a pass/fail tally
// that ends with the plain "N passed, N failed" line.
// What attaching needs (docs/security.md); SYS_RESOURCE only lifts the memlock
// limit of kernels < 5.11. SYS_PTRACE and DAC_READ_SEARCH were measured unneeded.
export const ALLOWED_CAPS = new Set(["BPF", "PERFMON", "SYS_RESOURCE"]);

let passed = 0;
let failed = 0;

export function check(ok, what, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok   ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}${detail ? ": " + detail : ""}`);
  }
}

// Prints the closing tally and exits non-zero when anything failed.
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
