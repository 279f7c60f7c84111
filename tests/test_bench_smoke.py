"""The benchmark still runs end to end (``python -m bench``), on a tiny size and without peers.

Not a performance test: it checks that a developer gets the table, with every syncd phase measured
and syncd's own counts as the bench expects (a bench that silently measured failing passes would
print misleading figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_prints_the_table_for_a_tiny_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--items", "20", "--no-peers", "--no-exchange", "--no-startup"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = {line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("20 ")}
    for measure in ("initial push", "no-change sync (process)", "daemon no-change pass", "1% changed (1+1)",
                    "initial pull", "peak RSS (syncd phases)"):
        assert measure in table, result.stdout
    assert "expected" not in result.stdout, result.stdout  # a phase did something else than the bench asked
