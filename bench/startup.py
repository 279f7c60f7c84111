"""Start-up figures: ``syncd --version`` wall time, and what ``syncd sync`` imports."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.measure import best_of, run
from bench.scenario import python_env


@dataclass(frozen=True)
class Startup:
    version_seconds: float
    sync_loaded: tuple[str, ...]


def measure(config: Path) -> Startup:
    version = best_of([sys.executable, "-m", "syncd", "--version"], times=5)
    probe = run([sys.executable, "-m", "bench.modules_probe", str(config)], log=None, timeout=120,
                env=python_env())
    loaded = json.loads(probe.output.strip().splitlines()[-1])["loaded"]
    return Startup(version, tuple(loaded))
