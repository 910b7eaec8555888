#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Serves testdata/sample_metrics.txt as a fake kvm_exit_exporter whose counters move.

A static file makes every rate() 0 and every histogram_quantile() NaN, so the
live check could not tell a working quantile or ratio from a broken one. Here
each counter and histogram sample (_bucket, _sum, _count) is served as
    value * (1 + seconds since start / UPTIME)
as if the file's counts had accumulated at a constant rate over UPTIME
seconds (3 days) and kept going: rates are value / UPTIME, histogram buckets
stay cumulative and +Inf stays equal to _count. Gauges are served as they are.

    fake_exporter.py PORT [FILE]    # serves FILE (default testdata/sample_metrics.txt) at /<name>

Standard library only; prom_live_check_fake.sh starts and stops it.
"""
from __future__ import annotations

import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

UPTIME = 3 * 86400.0
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)\s*$")


def growing_names(text: str) -> set[str]:
    """Sample names of the counter and histogram families declared in text."""
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (counter|histogram)\s*$", text, re.M):
        name, kind = m.group(1), m.group(2)
        if kind == "counter":
            names.add(name)
        else:
            names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def render(text: str, names: set[str], factor: float) -> str:
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#") and m.group(1) in names:
            value = float(m.group(3)) * factor
            line = f"{m.group(1)}{m.group(2) or ''} {value!r}"
        out.append(line)
    return "\n".join(out) + "\n"


def main() -> int:
    port = int(sys.argv[1])
    path = Path(sys.argv[2]) if len(sys.argv) > 2 else \
        Path(__file__).resolve().parent / "testdata" / "sample_metrics.txt"
    text = path.read_text()
    names = growing_names(text)
    start = time.monotonic()
    served = "/" + path.name

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path != served:
                self.send_error(404)
                return
            body = render(text, names, 1 + (time.monotonic() - start) / UPTIME).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
