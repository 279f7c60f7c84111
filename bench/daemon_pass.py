"""``python -m bench.daemon_pass CONFIG REPEATS``: what a daemon pass costs once the process is warm.

The daemon (``syncd run``) keeps one process and its imports; so this runs App.run_pass once to warm
up, then REPEATS no-change passes, and prints one JSON line with each pass's seconds."""

from __future__ import annotations

import json
import sys
import time

from syncd import config as config_module
from syncd import logging as log_setup
from syncd.app import App


def main(path: str, repeats: int) -> None:
    config = config_module.load(path)
    log_setup.configure("warning")
    app = App(config)
    app.ensure_schema()
    binding = config.bindings[0]
    app.run_pass(binding)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        report = app.run_pass(binding)
        seconds.append(time.perf_counter() - started)
        if report.failed:
            raise SystemExit(f"pass failed: {report.error}")
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
