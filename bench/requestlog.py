"""Counting HTTP requests from Radicale's own log: every request is logged at INFO as
``<METHOD> request for '<path>' received from ...``. Reading the log adds no hop between a client and
the server, so the timings of syncd, vdirsyncer and the plain client are not skewed by a proxy."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"\] (?P<method>[A-Z]+) request for '")


@dataclass(frozen=True)
class Requests:
    by_method: Counter[str]

    @property
    def total(self) -> int:
        return sum(self.by_method.values())

    def describe(self) -> str:
        return " ".join(f"{m}:{n}" for m, n in sorted(self.by_method.items()))


class RequestLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size

    def since(self, offset: int) -> Requests:
        with self.path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
        return Requests(Counter(m.group("method") for m in _LINE.finditer(text)))
