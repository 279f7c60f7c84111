"""systemd's ``sd_notify`` protocol, spoken directly: one datagram of ``KEY=value`` lines to the unix
socket named by ``$NOTIFY_SOCKET`` (see sd_notify(3)). Outside systemd there is no socket and every
call is a no-op."""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Tells the service manager about readiness, reloads, stops and liveness."""

    __slots__ = ("_address",)

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        # A leading "@" names a socket in the abstract namespace, written with a NUL byte.
        self._address = "\0" + address[1:] if address.startswith("@") else address

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines (keys as given, e.g. ``READY=1``); False when nobody listens."""
        if not self._address:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.sendto(message, self._address)
            except OSError:
                return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets Type=notify-reload match this message to the SIGHUP it sent.
        return self.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)

    def stopping(self) -> bool:
        return self.send(STOPPING=1, STATUS="stopping")

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)


def watchdog_period() -> float | None:
    """How often to send ``WATCHDOG=1``: half of ``WatchdogSec``, or None when no watchdog is asked
    for this process (``$WATCHDOG_PID``, when set, names the process the watchdog watches)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None
