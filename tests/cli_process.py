"""``syncd`` as a process for output tests: a config file as a user writes it, a port where nothing
listens, and the fork server of the crash-safety tests (tests/faults/fork_server.py), whose children
run exactly what ``python -m syncd ARGS`` runs, without paying the imports each time."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "faults"))

from fork_server import Child, ForkServer

OWNER = "anna@example.com"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was free a moment ago; nothing here takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, store_url: str, remote: dict[str, Any], log_format: str = "json",
                 level: str = "info") -> Path:
    lines = [f"[store]\nurl = {json.dumps(store_url)}\n", "[daemon]", 'listen = ""',
             f'\n[logging]\nlevel = "{level}"\nformat = "{log_format}"\n',
             "[[bindings]]", 'name = "anna"', f"owner = {json.dumps(OWNER)}", "[bindings.remote]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in remote.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def sqlite_store(forks: ForkServer, root: Path) -> str:
    """A SQLite store with the binding's owner as a CRM user (a pass of an unknown owner fails
    before it reaches the calendar)."""
    url = f"sqlite:///{root / 'crm.sqlite3'}"
    config = write_config(root / "users.toml", url, {"type": "caldav", "url": "http://127.0.0.1:9/"})
    child = forks.run(["--config", str(config), "users", "add", OWNER, "--name", "Anna",
                       "--timezone", "Europe/Amsterdam"])
    assert child.returncode == 0, (child.stdout, child.stderr)
    return url


def sync(forks: ForkServer, config: Path, *extra: str) -> Child:
    return forks.run(["--config", str(config), *extra, "sync"], timeout=120)


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    with ForkServer() as server:
        yield server
