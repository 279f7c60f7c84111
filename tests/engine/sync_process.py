"""``syncd sync`` run as the console script runs it, in a process of its own, reporting which of some
watched modules it loaded: how the tests see what a whole process imports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable

from world import World

# The command as the console script runs it, with the watched modules it loaded printed at exit.
_DRIVER = (
    "import atexit, json, sys\n"
    "watched = {watched!r}\n"
    "atexit.register(lambda: print('LOADED', json.dumps(sorted(\n"
    "    m for m, module in sys.modules.items()\n"
    "    if module is not None and any(m == w or m.startswith(w + '.') for w in watched)))))\n"
    "from syncd.cli import main\n"
    "main(prog_name='syncd')\n"
)


def sync_process(world: World, watched: Iterable[str]) -> tuple[str, list[str]]:
    """What a ``syncd sync`` process of ``world``'s config printed, and which of the ``watched``
    modules (or their submodules) it loaded; the process must succeed."""
    driver = _DRIVER.format(watched=tuple(watched))
    result = subprocess.run([sys.executable, "-c", driver, "--config", str(world.config_file()), "sync"],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.stdout, result.stderr)
    summary, _, loaded = result.stdout.rpartition("LOADED ")
    return summary, json.loads(loaded)
