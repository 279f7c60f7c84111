"""What ops meet from a shell and from systemd: a store that cannot be reached, secrets only the
service can read, a relative SQLite path, no config, a taken port, exit codes. Real processes, a
real PostgreSQL port with nothing behind it, real files."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.cli import (
    EXIT_FAILED,
    EXIT_ITEM_ERRORS,
    EXIT_OK,
    EXIT_STORE_UNREACHABLE,
    EXIT_USAGE,
)
from syncd.config import DEFAULT_PATH

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "syncd.service"


def syncd(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
          drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in drop and k not in ("SYNCD_CONFIG", "SYNCD_STORE_URL")}
    return subprocess.run([sys.executable, "-m", "syncd", *args], check=False, capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**environ, **(env or {})})


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure as the user sees it: exactly one line on standard error, no traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("syncd: ")
    return lines[0]


def binding_toml(password_line: str = 'password = "pw"') -> str:
    # A calendar nothing serves: these tests never need an answer from it.
    return ('[[bindings]]\nname = "anna"\nowner = "anna@example.com"\n[bindings.remote]\ntype = "caldav"\n'
            f'url = "http://127.0.0.1:9/cal/"\nusername = "anna"\n{password_line}\n')


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port on 127.0.0.1 bound but never listening: a connection is refused, as by a host whose
    PostgreSQL is down, and nothing else can take the port while the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def no_default_config() -> None:
    if DEFAULT_PATH.exists():
        pytest.skip(f"{DEFAULT_PATH} exists on this machine")


# -- the store cannot be reached -------------------------------------------------------------------


def test_every_command_says_an_unreachable_store_is_temporary_and_exits_75(tmp_path: Path, dead_port: int) -> None:
    """PostgreSQL down: one line naming the store (not its password), exit 75, which the unit
    restarts on; never "run syncd db upgrade", never a traceback."""
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nurl = "postgresql+psycopg://syncd:hunter2-pw@127.0.0.1:{dead_port}/crm"\n'
                      '[daemon]\nlisten = ""\n' + binding_toml())
    for command in (["db", "upgrade"], ["status"], ["users", "list"], ["conflicts", "list"], ["check"],
                    ["sync"], ["run"]):
        result = syncd("--config", str(config), *command)
        assert result.returncode == EXIT_STORE_UNREACHABLE, (command, result.stderr)
        line = one_line(result)
        assert f"the store postgresql+psycopg://syncd:***@127.0.0.1:{dead_port}/crm cannot be reached" in line
        assert "Connection refused" in line and "temporary" in line
        assert "hunter2-pw" not in result.stderr + result.stdout
        assert "db upgrade" not in line


def test_syncd_run_tells_systemd_why_it_did_not_start(tmp_path: Path, dead_port: int) -> None:
    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0)
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nurl = "postgresql+psycopg://syncd@127.0.0.1:{dead_port}/crm"\n' + binding_toml())
    try:
        result = syncd("--config", str(config), "run", env={"NOTIFY_SOCKET": str(notify)})
        messages = []
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except BlockingIOError:
                break
    finally:
        sock.close()
    assert result.returncode == EXIT_STORE_UNREACHABLE
    assert not any("READY=1" in m for m in messages)
    assert any(m.startswith("STATUS=not started: the store postgresql+psycopg://syncd@127.0.0.1:") for m in messages)


@pytest.mark.postgres
def test_a_server_without_the_database_is_an_unreachable_store_too(tmp_path: Path) -> None:
    """The server answers, the database is not there (yet): the same temporary failure, with the
    server's reason in the line."""
    from pg import pg_admin_url
    from sqlalchemy.engine import make_url

    url = make_url(pg_admin_url()).set(database="syncd_no_such_database").render_as_string(hide_password=False)
    config = tmp_path / "config.toml"
    config.write_text(f"[store]\nurl = {json.dumps(url)}\n")
    result = syncd("--config", str(config), "db", "upgrade")
    assert result.returncode == EXIT_STORE_UNREACHABLE
    assert 'database "syncd_no_such_database" does not exist' in one_line(result)


def test_a_sqlite_store_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/no/such/folder/crm.sqlite3"\n')
    result = syncd("--config", str(config), "db", "upgrade")
    assert result.returncode == EXIT_USAGE
    assert "cannot be opened" in one_line(result)


def test_the_unit_restarts_on_an_unreachable_store_and_not_on_a_config_error() -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).extend(value.split())
    assert settings["Restart"] == ["on-failure"]  # every non-zero exit, 75 among them
    assert settings["RestartPreventExitStatus"] == [str(EXIT_USAGE)]
    assert str(EXIT_STORE_UNREACHABLE) not in settings.get("SuccessExitStatus", [])


# -- secrets only the service can read -------------------------------------------------------------


def test_admin_commands_need_no_remote_secret_and_those_that_talk_to_the_remote_say_why(tmp_path: Path) -> None:
    """The README's way: password_file in $CREDENTIALS_DIRECTORY, which only the service has."""
    config = tmp_path / "config.toml"
    config.write_text('[store]\nurl = "sqlite:///crm.sqlite3"\n'
                      + binding_toml('password_file = "$CREDENTIALS_DIRECTORY/anna-caldav"'))
    shell = {"drop": ("CREDENTIALS_DIRECTORY",)}
    for command in (["db", "upgrade"], ["users", "add", "anna@example.com"], ["users", "list"], ["status"],
                    ["status", "--binding", "anna"], ["conflicts", "list"], ["db", "prune"]):
        result = syncd("--config", str(config), *command, **shell)
        assert result.returncode == EXIT_OK, (command, result.stderr)
    checked = syncd("--config", str(config), "check", **shell)
    assert checked.returncode == EXIT_FAILED
    assert ("anna: FAILING: binding 'anna': password_file '$CREDENTIALS_DIRECTORY/anna-caldav' names "
            "$CREDENTIALS_DIRECTORY, which is not set") in checked.stdout
    synced = syncd("--config", str(config), "sync", **shell)
    assert synced.returncode == EXIT_FAILED and "$CREDENTIALS_DIRECTORY, which is not set" in synced.stdout
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    missing = syncd("--config", str(config), "check", env={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert f"password_file '{credentials}/anna-caldav' cannot be read: No such file or directory" in missing.stdout


# -- where the store is ------------------------------------------------------------------------------


def test_a_relative_sqlite_path_is_taken_from_the_config_files_folder(tmp_path: Path) -> None:
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    etc.mkdir()
    elsewhere.mkdir()
    config = etc / "config.toml"
    config.write_text('[store]\nurl = "sqlite:///crm.sqlite3"\n' + binding_toml())
    assert syncd("--config", str(config), "users", "add", "anna@example.com", cwd=elsewhere).returncode == 0
    assert (etc / "crm.sqlite3").exists()
    listed = syncd("--config", str(config), "users", "list", cwd=tmp_path)
    assert listed.stdout.startswith("anna@example.com")
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "crm.sqlite3").exists()


def test_reading_commands_never_create_an_empty_store(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[store]\nurl = "sqlite:///crm.sqlite3"\n' + binding_toml())
    for command in (["status"], ["check"], ["users", "list"], ["conflicts", "list"], ["activities", "export"]):
        result = syncd("--config", str(config), *command)
        assert result.returncode == EXIT_USAGE, command
        assert f"there is no store at {tmp_path / 'crm.sqlite3'} ([store] url in {config}" in one_line(result)
    assert not (tmp_path / "crm.sqlite3").exists()


def test_without_a_config_file_the_default_store_is_in_the_working_directory(
    tmp_path: Path, no_default_config: None
) -> None:
    assert syncd("users", "add", "anna@example.com", cwd=tmp_path).returncode == 0
    assert (tmp_path / "syncd.sqlite3").exists()


# -- no config, no bindings ------------------------------------------------------------------------


def test_no_config_file_is_said_with_the_paths_tried(tmp_path: Path, no_default_config: None) -> None:
    for command in (["check"], ["status"], ["sync"], ["run"]):
        result = syncd(*command, cwd=tmp_path)
        assert result.returncode == EXIT_USAGE, command
        assert f"no config file found: tried {DEFAULT_PATH}" in one_line(result)
        assert "SYNCD_CONFIG" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_and_check_without_bindings_refuse_to_start(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/crm.sqlite3"\n')
    for command in ("run", "check"):
        result = syncd("--config", str(config), command)
        assert result.returncode == EXIT_USAGE
        assert f"no bindings in {config}: add a [[bindings]] table" in one_line(result)


# -- the listener ----------------------------------------------------------------------------------


def test_a_taken_listen_port_is_one_line_and_a_config_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(f'[store]\nurl = "sqlite:///crm.sqlite3"\n[daemon]\nlisten = "127.0.0.1:{port}"\n'
                          '[logging]\nlevel = "info"\nformat = "json"\n' + binding_toml())
        result = syncd("--config", str(config), "run")
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("syncd: ")]
    assert errors == [(f"syncd: [daemon] listen = '127.0.0.1:{port}': cannot listen there: Address already in use "
                       "(another process listens there, perhaps another syncd run: stop it, choose another port, "
                       'or set listen = "" to turn the listener off)')]


# -- users -----------------------------------------------------------------------------------------


def test_users_add_refuses_an_unknown_time_zone_and_updates_an_existing_user(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[store]\nurl = "sqlite:///crm.sqlite3"\n')

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return syncd("--config", str(config), "users", *args)

    bad = run("add", "anna@example.com", "--timezone", "Europe/Amsterdm")
    assert bad.returncode == EXIT_USAGE and "'Europe/Amsterdm' is not an IANA time zone name" in bad.stderr
    assert run("add", "anna@example.com", "--name", "Anna", "--timezone", "Europe/Amsterdam").stdout == (
        "user anna@example.com added\n")
    updated = run("add", "ANNA@example.com", "--timezone", "America/New_York")
    assert updated.returncode == 0 and updated.stdout == "user anna@example.com updated\n"
    assert run("list").stdout == "anna@example.com\tAnna\tAmerica/New_York\n"  # the name not given is kept


# -- options and output ----------------------------------------------------------------------------


def test_db_upgrade_says_what_it_did_in_one_line_and_each_step_with_v(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[store]\nurl = "sqlite:///crm.sqlite3"\n')
    first = syncd("db", "upgrade", "--config", str(config))
    assert first.returncode == 0 and first.stderr == ""
    assert re.fullmatch(rf"store sqlite:///{tmp_path}/crm.sqlite3: upgraded from schema revision none \(a new "
                        r"store\) to \d+\n", first.stdout)
    again = syncd("db", "upgrade", "--config", str(config), "-v")
    assert "up to date" in again.stdout
    fresh = tmp_path / "fresh.toml"
    fresh.write_text('[store]\nurl = "sqlite:///fresh.sqlite3"\n')
    verbose = syncd("-v", "db", "upgrade", "--config", str(fresh))
    assert "Running upgrade" in verbose.stderr
    both = syncd("-v", "status", "-q", "--config", str(config))
    assert both.returncode == EXIT_USAGE and "give -v or -q, not both" in both.stderr


def test_check_and_sync_speak_json(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[store]\nurl = "sqlite:///crm.sqlite3"\n' + binding_toml()
                      + binding_toml().replace('"anna"', '"bob"', 1))
    syncd("--config", str(config), "users", "add", "anna@example.com")
    checked = syncd("check", "--json", "--binding", "bob", "--config", str(config))
    assert checked.returncode == EXIT_FAILED
    doc = json.loads(checked.stdout)
    assert doc["ok"] is False and doc["store"]["url"] == f"sqlite:///{tmp_path}/crm.sqlite3"
    assert [b["binding"] for b in doc["bindings"]] == ["bob"]
    synced = syncd("sync", "--json", "--config", str(config))
    assert synced.returncode == EXIT_FAILED
    reports = json.loads(synced.stdout)
    assert [(r["binding"], r["result"]) for r in reports] == [("anna", "failed"), ("bob", "failed")]
    assert all(r["error"] for r in reports)


def test_the_readme_documents_every_exit_code() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ITEM_ERRORS, EXIT_STORE_UNREACHABLE):
        assert f"| **{code}** |" in section
    assert "## Troubleshooting" in readme


def test_a_secret_read_at_use_is_scrubbed_from_the_logs_from_then_on(tmp_path: Path) -> None:
    from syncd import config as config_module
    from syncd import logging as log_setup

    (tmp_path / "pw").write_text("read-late-secret\n")
    parsed = config_module.parse({"bindings": [{"name": "a", "owner": "a@example.com", "remote": {
        "type": "caldav", "url": "https://dav.example.com/", "password_file": str(tmp_path / "pw")}}]})
    assert parsed.secrets() == []  # nothing read while the config is read
    assert parsed.bindings[0].remote.password.get_secret_value() == "read-late-secret"
    event = log_setup.scrub_secrets(None, "info", {"event": "login with read-late-secret failed"})
    assert event["event"] == f"login with {log_setup.REDACTED} failed"
