"""``syncd run`` as a real process: a config file written from a test world, the process's JSON log,
its HTTP listener, and the ``sync_passes`` table it writes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from syncd.connectors.radicale_embedded import free_port
from syncd.store.types import UtcDateTime

SYNCD = [sys.executable, "-m", "syncd"]


def write_config(path: Path, store_url: str, bindings: list[dict[str, Any]], **daemon: Any) -> Path:
    """The TOML a user would write: [store], [daemon], [logging] and one [[bindings]] table each."""
    lines = [f"[store]\nurl = {json.dumps(store_url)}\n", "[daemon]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in daemon.items()]
    lines.append('\n[logging]\nlevel = "info"\nformat = "json"\n')
    for b in bindings:
        lines.append("[[bindings]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in b.items() if k != "remote"]
        lines.append("[bindings.remote]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in b["remote"].items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


@dataclass
class Pass:
    binding: str
    worker: str
    started_at: datetime
    finished_at: datetime | None
    result: str | None
    error: str | None


def passes(store_url: str) -> list[Pass]:
    engine = create_engine(store_url)
    kind = UtcDateTime()
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT binding, worker, started_at, finished_at, result, error FROM sync_passes ORDER BY id"
            ))
            convert = lambda v: kind.process_result_value(v, engine.dialect)
            return [Pass(r[0], r[1], convert(r[2]), convert(r[3]), r[4], r[5]) for r in rows]
    finally:
        engine.dispose()


def by_binding(all_passes: list[Pass]) -> dict[str, list[Pass]]:
    found: dict[str, list[Pass]] = {}
    for p in all_passes:
        found.setdefault(p.binding, []).append(p)
    return found


class SyncdProcess:
    """``python -m syncd --config PATH run`` with its log in a file (JSON lines)."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [*SYNCD, "--config", str(config), "run"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    @property
    def worker_suffix(self) -> str:
        return f":{self.proc.pid}"

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def http_get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def metric(body: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None if absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        sample, value = line.rsplit(" ", 1)
        sample_name, _, rest = sample.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if sample_name == name and got == want:
            return float(value)
    return None


__all__ = ["SyncdProcess", "by_binding", "free_port", "http_get", "metric", "passes", "wait_for", "write_config"]
