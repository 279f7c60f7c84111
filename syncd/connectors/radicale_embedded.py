"""A throw-away Radicale server on loopback, for tests and ``syncd demo``.

Radicale runs as a subprocess (``python -m radicale``) with a generated config: htpasswd users in plain
text, ``owner_only`` rights and storage under ``storage_dir``. Nothing here is meant for production.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote
from xml.sax.saxutils import escape

_MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>{name}</D:displayname>
    <C:supported-calendar-component-set>{components}</C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRadicale:
    """Radicale on ``127.0.0.1:port`` with its collections, users and log under ``storage_dir``."""

    def __init__(self, storage_dir: str | os.PathLike[str], port: int | None = None) -> None:
        self.storage_dir = Path(storage_dir)
        self.port = port or free_port()
        self._users: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.storage_dir / "radicale.log"

    def collection_url(self, user: str, name: str) -> str:
        return f"{self.url}/{quote(user)}/{quote(name)}/"

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers HTTP."""
        if self._process is not None:
            return
        self._write_users()
        config = self.storage_dir / "radicale.conf"
        config.write_text(self._config_text(), encoding="utf-8")
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._close_log()
                self._process = None
                raise RuntimeError(f"Radicale exited at start; see {self.log_path}")
            try:
                self._request("OPTIONS", "/", None)
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Radicale did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._close_log()

    def __enter__(self) -> EmbeddedRadicale:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add_user(self, name: str, password: str) -> None:
        """Add or replace a user; Radicale re-reads the htpasswd file on each login."""
        if ":" in name or "\n" in name or "\n" in password:
            raise ValueError("user names may not contain ':' and neither part a newline")
        self._users[name] = password
        self._write_users()

    def make_calendar(
        self, user: str, name: str, components: Sequence[str] = ("VEVENT", "VTODO")
    ) -> str:
        """Create a calendar collection (MKCALENDAR) for ``user``; returns its URL."""
        comps = "".join(f'<C:comp name="{escape(c)}"/>' for c in components)
        body = _MKCALENDAR.format(name=escape(name), components=comps).encode()
        status = self._request("MKCALENDAR", f"/{quote(user)}/{quote(name)}/", body, user=user)
        if status != 201:
            raise RuntimeError(f"MKCALENDAR {user}/{name} answered HTTP {status}")
        return self.collection_url(user, name)

    def _request(self, method: str, path: str, body: bytes | None, user: str | None = None) -> int:
        headers = {"Content-Type": "application/xml; charset=utf-8"} if body else {}
        if user is not None:
            token = base64.b64encode(f"{user}:{self._users[user]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def _write_users(self) -> None:
        lines = "".join(f"{name}:{password}\n" for name, password in self._users.items())
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        path = self.storage_dir / "users"
        path.write_text(lines, encoding="utf-8")
        path.chmod(0o600)

    def _config_text(self) -> str:
        return f"""\
[server]
hosts = 127.0.0.1:{self.port}
delay_on_error = 0

[auth]
type = htpasswd
htpasswd_filename = {self.storage_dir / "users"}
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {self.storage_dir / "collections"}

[web]
type = none

[logging]
level = info
mask_passwords = True
"""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
