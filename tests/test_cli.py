"""The ``syncd`` command as a user runs it: real processes, a real store, real files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncd import __version__

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "activities.jsonl"


def syncd(*args: str, config: Path | None = None, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "syncd"]
    if config is not None:
        command += ["--config", str(config)]
    import os

    return subprocess.run(command + list(args), check=False, capture_output=True, text=True, timeout=120,
                          input=stdin, env={**os.environ, **(env or {})})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "crm.sqlite3"}"\n')
    return path


def test_version_and_help() -> None:
    assert syncd("--version").stdout.strip() == f"syncd, version {__version__}"
    helped = syncd("--help").stdout
    for command in ("activities", "check", "conflicts", "db", "demo", "status", "sync", "users"):
        assert command in helped


def test_version_does_not_load_the_heavy_libraries() -> None:
    probe = ("import sys, syncd.cli\n"
             "sys.argv = ['syncd', '--version']\n"
             "try:\n    syncd.cli.main()\nexcept SystemExit:\n    pass\n"
             "heavy = [m for m in ('exchangelib', 'caldav', 'sqlalchemy', 'icalendar') if m in sys.modules]\n"
             "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True,
                         timeout=60).stdout
    assert "HEAVY []" in out


def test_import_then_export_is_lossless(config: Path, tmp_path: Path) -> None:
    assert syncd("db", "upgrade", config=config).returncode == 0
    imported = syncd("activities", "import", str(EXAMPLES), config=config)
    assert imported.returncode == 0, imported.stderr
    exported = syncd("activities", "export", config=config)
    assert exported.returncode == 0
    given = sorted((json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()),
                   key=lambda a: a["id"])
    back = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [a["id"] for a in back] == [a["id"] for a in given]
    from syncd.activity_json import activity_from_json

    for before, after in zip(given, back, strict=True):
        # Same activity (defaults filled in, instants in the activity's zone); updated_at is the store's.
        assert activity_from_json(after).replace(updated_at=None) == activity_from_json(before).replace(updated_at=None)
        assert after["subject"] == before["subject"] and after.get("description") == before.get("description")
    # Exporting again, after importing the export, gives the same text.
    again = tmp_path / "again.jsonl"
    again.write_text(exported.stdout, encoding="utf-8")
    assert syncd("activities", "import", str(again), config=config).returncode == 0
    assert syncd("activities", "export", config=config).stdout == exported.stdout


def test_a_bad_import_file_names_line_and_field_and_changes_nothing(config: Path, tmp_path: Path) -> None:
    syncd("activities", "import", str(EXAMPLES), config=config)
    before = syncd("activities", "export", config=config).stdout
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[0])
    broken["subject"] = "changed, but the file is rejected"
    bad = json.loads(lines[1])
    bad["all_day"] = "yes"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([json.dumps(broken), json.dumps(bad)]) + "\n", encoding="utf-8")
    result = syncd("activities", "import", str(path), config=config)
    assert result.returncode != 0
    assert "line 2" in result.stderr and "all_day" in result.stderr
    assert "Traceback" not in result.stderr
    assert syncd("activities", "export", config=config).stdout == before


def test_a_wrong_config_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[bindings]]\nname = "x"\nowner = "anna@example.com"\ndirection = "sideways"\n'
                    '[bindings.remote]\ntype = "caldav"\nurl = "https://dav.example.com/cal/"\n'
                    'username = "anna"\npassword = "hunter2-secret"\n')
    result = syncd("status", config=path)
    assert result.returncode == 2
    assert "bindings.0.direction" in result.stderr
    assert "hunter2-secret" not in result.stderr
    missing = syncd("status", config=tmp_path / "nope.toml")
    assert missing.returncode == 2 and "no such config file" in missing.stderr


def test_a_wrong_mapping_table_is_refused_naming_the_key() -> None:
    from syncd import config as config_module
    from syncd.errors import ConfigError

    wrong = [
        ({"call_categroy": "Call"}, "mapping.call_categroy"),
        ({"status": {"open": {"ical_event": "MAYBE"}}}, "mapping.status.open.ical_event"),
        ({"status_inbound": {"ical_event": {"X": "open"}, "outlook": {}}}, "mapping.status_inbound.outlook"),
        ({"priority_inbound": {"first": "high"}}, "mapping.priority_inbound.first"),
    ]
    for table, key in wrong:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            config_module.parse({"mapping": table})
    # TOML keys are text: PRIORITY levels are read as the numbers a calendar sends.
    read = config_module.parse({"mapping": {"priority_inbound": {"2": "urgent"}, "status": {"x": {}}}}).mapping
    assert read.priority_inbound == {2: "urgent"} and read.status_target("x").ical_event == "CONFIRMED"


def test_secrets_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    from syncd import config as config_module
    from syncd.errors import ConfigError

    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    base = {"name": "a", "owner": "a@example.com"}
    remote = {"type": "caldav", "url": "https://dav.example.com/"}
    parsed = config_module.parse({"bindings": [{**base, "remote": {**remote, "password_file": str(secret)}}]})
    assert parsed.bindings[0].remote.password.get_secret_value() == "from-a-file"
    assert "from-a-file" not in repr(parsed)
    # Read when used, not when the config is read: the error comes from the binding that needs it.
    unset = config_module.parse({"bindings": [{**base, "remote": {**remote, "password_env": "SYNCD_NOPE"}}]})
    with pytest.raises(ConfigError, match="binding 'a': password_env names the environment variable 'SYNCD_NOPE'"):
        unset.bindings[0].remote.password.get_secret_value()
    with pytest.raises(ConfigError, match="give only one of password, password_file, password_env"):
        config_module.parse({"bindings": [{**base, "remote": {**remote, "password": "x", "password_env": "X"}}]})


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    from syncd import config as config_module

    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    (tmp_path / "anna-caldav").write_text("pw")
    (tmp_path / "exchange").write_text("pw")
    import os

    os.environ["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    try:
        parsed = config_module.load(example)
    finally:
        del os.environ["CREDENTIALS_DIRECTORY"]
    assert [b.name for b in parsed.bindings] == ["anna-caldav", "bob-exchange"]
    assert parsed.bindings[1].remote.access_type == "impersonation"


def test_deleting_a_completed_activity_is_refused(config: Path) -> None:
    from syncd import config as config_module
    from syncd.app import App
    from syncd.errors import RuleViolation
    from syncd.store import repository

    syncd("activities", "import", str(EXAMPLES), config=config)
    app = App(config_module.load(config))
    with app.session() as session:
        done = [a for a in repository.iter_activities(session) if a.completed_at or a.status == "done"]
        assert done, "examples/activities.jsonl should hold a completed activity"
        with pytest.raises(RuleViolation, match="completed"):
            repository.delete_activity(session, done[0].id)


def test_sync_without_bindings_says_what_to_do(config: Path) -> None:
    result = syncd("sync", config=config)
    assert result.returncode == 2 and "config.example.toml" in result.stderr


def test_the_demo_runs_the_main_job_end_to_end() -> None:
    started = time.monotonic()
    result = syncd("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "5 created" in out
    assert "moved on the phone" in out
    assert "new appointment 'Lunch with a prospect'" in out
    assert out.strip().splitlines()[-1].endswith(tuple("0123456789)"))
    assert "4. Sync again" in out
    assert time.monotonic() - started < 60
