"""Injected failures: answers the service gives under load or trouble, and answers it never gives
(a request carried out whose connection then drops)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from .errors import FAULT_CODES, GraphError


@dataclass
class Fault:
    method: str | None
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: Any
    remaining: int
    lose_answer: bool

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and bool(self.pattern.search(path))

    def answer(self) -> tuple[int, bytes, dict[str, str]]:
        if self.body is None:
            code = FAULT_CODES.get(self.status, "UnknownError")
            payload: Any = GraphError(self.status, code, f"Injected {self.status} {code}.").body()
        else:
            payload = self.body
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.status, raw, {"Content-Type": "application/json", **self.headers}


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault for this request, used up once its count is reached."""
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._pending.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
