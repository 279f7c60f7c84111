"""The first code a parse worker (:mod:`syncd.connectors.parse_pool`) runs, from a module that
imports nothing: structlog, which the worker's logging and the mapping load, imports rich when it is
installed, and syncd keeps rich out of its workers as out of its own process (``syncd.cli``'s
``_without_rich``): about 5 MB of each worker's memory and a tenth of a second of its start."""

from __future__ import annotations

import sys


def start() -> None:
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    from syncd.connectors.parse_pool import worker_start

    worker_start()
