"""Running one contender's phase as its own process: wall time from the parent, peak RSS of that child
(``os.wait4``: its largest process, itself or a worker it started), the peak of its processes' RSS
summed (sampled from /proc, for syncd's parse workers), and the requests Radicale saw meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.requestlog import RequestLog, Requests


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mb: float
    requests: Requests | None
    output: str
    tree_mb: float = 0.0
    """Peak of the RSS summed over the process and its descendants (sampled every 50 ms)."""


class PhaseFailed(RuntimeError):
    pass


def run(argv: Sequence[str], *, log: RequestLog | None, timeout: float,
        env: Mapping[str, str] | None = None, stdin: bytes | None = None, cwd: Path | None = None) -> Run:
    """Run ``argv`` to the end (killed after ``timeout`` seconds); a non-zero exit raises PhaseFailed."""
    mark = log.mark() if log else 0
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}-{time.monotonic_ns()}.out"
    with out_path.open("w+b") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, cwd=cwd)
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        tree = _TreeRss(proc.pid)
        try:
            status, usage = _wait(proc, timeout)
        finally:
            tree.stop()
        seconds = time.perf_counter() - started
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    out_path.unlink(missing_ok=True)
    if status != 0:
        # The head names the error; the tail shows where it ended (a SQL error's parameters can fill it).
        shown = output if len(output) <= 4000 else f"{output[:2000]}\n[...]\n{output[-2000:]}"
        raise PhaseFailed(f"{' '.join(argv[:4])}... exited {status}:\n{shown}")
    return Run(seconds, usage.ru_maxrss / 1024, log.since(mark) if log else None, output,
               max(tree.peak_mb, usage.ru_maxrss / 1024))


class _TreeRss:
    """The peak summed RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._done.wait(0.05):
            total = sum(_rss_pages(pid) for pid in _tree(self.pid)) * page / 2**20
            self.peak_mb = max(self.peak_mb, total)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                todo.extend(int(c) for c in children)
        except OSError:
            continue  # gone meanwhile
    return found


def _rss_pages(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, os.struct_rusage]:
    """Block in wait4 (no polling delay in the wall time); a timer kills a child that overruns."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode == -signal.SIGKILL:
        raise PhaseFailed(f"{proc.args!r:.200} did not finish within {timeout:.0f} s")
    return proc.returncode, usage


def best_of(argv: Sequence[str], times: int, timeout: float = 30) -> float:
    """The fastest wall time of ``times`` runs (start-up figures: the noise is all upward)."""
    return min(run(argv, log=None, timeout=timeout).seconds for _ in range(times))
