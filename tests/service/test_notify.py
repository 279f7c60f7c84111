"""sd_notify over a real unix datagram socket: what systemd would receive from ``syncd run``."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import SyncdProcess, wait_for, write_config
from world import World

from syncd.service.notify import Notifier, watchdog_period


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()


def drain(sock: socket.socket, into: list[dict[str, str]]) -> list[dict[str, str]]:
    while True:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return into
        into.append(dict(line.split("=", 1) for line in data.decode().splitlines()))


def test_syncd_run_tells_systemd_ready_reloading_watchdog_and_stopping(
    world: World, tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    """READY=1 once the bindings are scheduled, WATCHDOG=1 every half WatchdogSec, RELOADING=1 then
    READY=1 around a SIGHUP, STOPPING=1 on SIGTERM; STATUS says how many bindings this worker holds."""
    sock, path = notify_socket
    world.bind("anna")
    config = write_config(tmp_path / "config.toml", world.store_url, world.bindings, interval=5, listen="")
    syncd = SyncdProcess(config, tmp_path / "syncd.log", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    got: list[dict[str, str]] = []
    try:
        wait_for("READY=1", lambda: any(m.get("READY") == "1" for m in drain(sock, got)), 15)
        ready = next(m for m in got if m.get("READY") == "1")
        assert ready["STATUS"].startswith("1 of 1 bindings held, 1 workers live, 0 failing")
        started = len(got)
        time.sleep(1.0)
        pings = sum(1 for m in drain(sock, got)[started:] if m.get("WATCHDOG") == "1")
        assert 3 <= pings <= 7  # every 0.2 s

        syncd.signal(signal.SIGHUP)

        def reloaded() -> bool:
            states = [key for m in drain(sock, got) for key in ("RELOADING", "READY") if key in m]
            return states[-2:] == ["RELOADING", "READY"]

        wait_for("RELOADING=1 then READY=1", reloaded, 10)
        assert syncd.stop() == 0
    finally:
        syncd.kill()
    assert drain(sock, got)[-1] == {"STOPPING": "1", "STATUS": "stopping"}


def test_an_abstract_socket_address_is_reached(tmp_path: Path) -> None:
    """A NOTIFY_SOCKET starting with "@" names the abstract namespace (no file on disk)."""
    name = f"syncd-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert Notifier("@" + name).status("syncing")
        assert sock.recv(100) == b"STATUS=syncing"


def test_without_a_socket_nothing_is_sent_and_no_watchdog_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside systemd (no NOTIFY_SOCKET) notifying is a no-op; a watchdog meant for another process
    (WATCHDOG_PID) is not this one's."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier().ready("x") is False
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_period() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_period() is None
