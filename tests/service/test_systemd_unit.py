"""The unit file in systemd/ is valid for systemd, and consistent with syncd's own defaults."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.config import DaemonSection

UNIT = Path(__file__).parents[2] / "systemd" / "syncd.service"


def settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` reports nothing (it exits 0 even on unknown keys, so its output is
    what counts). ExecStart points at this virtualenv's syncd, as an installation would."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    syncd = Path(sys.executable).parent / "syncd"
    unit = tmp_path / "syncd.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/syncd", str(syncd)))
    result = subprocess.run([analyze, "verify", str(unit)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert str(unit) not in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_unit_waits_for_readiness_and_outlasts_the_stop_timeout() -> None:
    unit = settings(UNIT.read_text())
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert seconds(unit["TimeoutStopSec"][0]) > DaemonSection().stop_timeout
    assert unit["ExecStart"] == ["/usr/bin/syncd --config /etc/syncd/config.toml run"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
