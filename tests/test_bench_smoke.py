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
        [sys.executable, "-m", "bench", "--items", "20", "--rounds", "1", "--large", "0", "--fleet", "3",
         "--no-peers", "--no-exchange", "--no-startup"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cells = [[c.strip() for c in line.split("|")] for line in result.stdout.splitlines() if "|" in line]
    table = {(row[0], row[1]) for row in cells}
    for measure in ("initial push", "no-change sync (process)", "daemon no-change pass", "changed (5+5)",
                    "initial pull", "pass after the pull", "peak RSS (syncd phases)"):
        assert ("20", measure) in table, result.stdout
    for measure in ("daemon cycle, sqlite, no change", "daemon cycle, sqlite, after mass 1st sync"):
        assert ("3", measure) in table, result.stdout
    # the pass after a pull reads nothing again: one sync REPORT
    [after] = [row for row in cells if row[1] == "pass after the pull"]
    assert after[3] == "1", result.stdout
    assert "expected" not in result.stdout, result.stdout  # a phase did something else than the bench asked
