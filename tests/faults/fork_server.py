"""``syncd`` commands as real processes that start in milliseconds: a helper process imports syncd
(CLI, engine, both connectors) once, then forks one child per command. A child runs exactly what
``python -m syncd ARGS`` runs (``syncd.cli.main``) with its own pid, stdout and stderr, and can be
SIGKILLed like any process; only the interpreter start and the imports (~1.5 s) are shared.

    with ForkServer() as forks:
        child = forks.start(["--config", path, "sync"], env={...})
        ...                      # child.pid is a real process; os.kill(child.pid, SIGKILL) kills it
        code = child.wait()      # the exit status as subprocess reports it (-9 after SIGKILL)
        child.stdout, child.stderr

The helper reaps each child as soon as it ends, so a dead child never lingers as a zombie (a lease
holder check by pid sees it gone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

_HELPER = r"""
import json, os, sys
import importlib
for name in ("syncd.cli", "syncd.app", "syncd.config", "syncd.logging", "syncd.engine.runner",
             "syncd.engine.crm_store", "syncd.engine.sqlstate", "syncd.service.leases", "syncd.store.db",
             "syncd.store.repository", "syncd.connectors.caldav", "syncd.connectors.exchange"):
    importlib.import_module(name)
import syncd.cli
from sqlalchemy.orm import configure_mappers
configure_mappers()  # what the first query of every process would do


def child(job):
    os.setpgrp()
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.environ.update(job["env"])
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = ["syncd", *job["args"]]
    try:
        syncd.cli.main(job["args"], prog_name="syncd")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


control = os.fdopen(int(sys.argv[1]), "w", buffering=1)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            control.close()
            code = child(job)
        finally:
            os._exit(code)
    control.write(json.dumps({"started": pid}) + "\n")
    _, status = os.waitpid(pid, 0)
    control.write(json.dumps({"ended": pid, "status": status}) + "\n")
"""


@dataclass
class Child:
    pid: int
    stdout_path: Path
    stderr_path: Path
    _ended: threading.Event = field(default_factory=threading.Event)
    returncode: int | None = None

    def wait(self, timeout: float = 120) -> int:
        if not self._ended.wait(timeout):
            raise TimeoutError(f"syncd child {self.pid} still runs after {timeout} s")
        assert self.returncode is not None
        return self.returncode

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


class ForkServer:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="syncd-forks-"))
        read_fd, write_fd = os.pipe()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _HELPER, str(write_fd)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=None, pass_fds=(write_fd,),
            env={**os.environ, **(env or {})}, text=True,
        )
        os.close(write_fd)
        self._control = os.fdopen(read_fd, "r")
        self._lock = threading.Lock()
        self._count = 0
        self._current: Child | None = None

    def start(self, args: list[str], env: dict[str, str] | None = None) -> Child:
        """Fork a child running ``syncd ARGS``; returns once it runs (its pid is known)."""
        with self._lock:
            if self._current is not None:
                self._current.wait()  # one child at a time: the helper waits for each
            self._count += 1
            child = Child(0, self._dir / f"{self._count}.out", self._dir / f"{self._count}.err")
            job = {"args": args, "env": env or {}, "stdout": str(child.stdout_path), "stderr": str(child.stderr_path)}
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(job) + "\n")
            self._proc.stdin.flush()
            started = json.loads(self._control.readline())
            child.pid = started["started"]
            self._current = child
            waiter = threading.Thread(target=self._await_end, args=(child,), daemon=True)
            waiter.start()
            return child

    def _await_end(self, child: Child) -> None:
        line = self._control.readline()
        if line:
            status = json.loads(line)["status"]
            child.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        child._ended.set()

    def run(self, args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> Child:
        child = self.start(args, env)
        child.wait(timeout)
        return child

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._control.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
