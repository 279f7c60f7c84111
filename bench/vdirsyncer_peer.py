"""vdirsyncer as the peer: a private virtualenv (``bench/.venv-vdirsyncer``, made on first use with
``python -m venv`` and pip, since its dependencies need not agree with syncd's), one pair between the
Radicale calendar and a local folder (filesystem storage)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv-vdirsyncer"
REQUIREMENT = "vdirsyncer>=0.19,<0.22"


def executable() -> Path:
    """The vdirsyncer command, installing it first if its virtualenv is missing."""
    exe = VENV / "bin" / "vdirsyncer"
    if not exe.exists():
        print(f"installing {REQUIREMENT} into {VENV} (first use only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", REQUIREMENT], check=True, timeout=600)
    return exe


def version() -> str:
    out = subprocess.run([str(executable()), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().rsplit(" ", 1)[-1]


def write_config(root: Path, calendar_url: str, user: str, password: str) -> Path:
    """A pair with ``collections = null``: the storages are the calendar and the folder themselves."""
    (root / "events").mkdir(parents=True, exist_ok=True)
    (root / "status").mkdir(parents=True, exist_ok=True)
    path = root / "config"
    path.write_text(
        f"""[general]
status_path = {json.dumps(str(root / "status"))}

[pair bench]
a = "bench_calendar"
b = "bench_folder"
collections = null
conflict_resolution = "a wins"

[storage bench_calendar]
type = "caldav"
url = {json.dumps(calendar_url)}
username = {json.dumps(user)}
password = {json.dumps(password)}

[storage bench_folder]
type = "filesystem"
path = {json.dumps(str(root / "events"))}
fileext = ".ics"
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path
