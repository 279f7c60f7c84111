"""Start-up figures: ``syncd --version`` wall time, and what ``syncd sync`` imports and what that costs."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.measure import best_of, run
from bench.scenario import python_env

#: A line of ``python -X importtime``: self and cumulative microseconds, the name indented by depth.
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass(frozen=True)
class Startup:
    version_seconds: float
    sync_loaded: tuple[str, ...]
    import_seconds: float
    """Everything a CalDAV ``syncd sync`` imported, in seconds (the sum of ``-X importtime``'s self times)."""
    import_top: tuple[tuple[str, float], ...]
    """The costliest imports a package makes of its own (those of depth one), with their cumulative seconds."""


def imports(text: str, top: int = 8) -> tuple[float, tuple[tuple[str, float], ...]]:
    total = 0
    heads: list[tuple[str, float]] = []
    for self_us, cumulative_us, indent, name in _IMPORT_LINE.findall(text):
        total += int(self_us)
        if len(indent) == 1:
            heads.append((name, int(cumulative_us) / 1e6))
    return total / 1e6, tuple(sorted(heads, key=lambda h: -h[1])[:top])


def measure(config: Path, times: int = 3) -> Startup:
    """``times`` probes, the cheapest kept: the first may compile bytecode, and the machine is shared."""
    version = best_of([sys.executable, "-m", "syncd", "--version"], times=5)
    probes = [run([sys.executable, "-X", "importtime", "-m", "bench.modules_probe", str(config)], log=None,
                  timeout=120, env=python_env()).output for _ in range(times)]
    output = min(probes, key=lambda text: imports(text)[0])
    result = next(line for line in reversed(output.splitlines()) if line.startswith("{"))
    seconds, top = imports(output)
    return Startup(version, tuple(json.loads(result)["loaded"]), seconds, top)
