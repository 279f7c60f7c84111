"""Logs: JSON lines off a terminal, and no secret in any line, from syncd or from a library."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncd import logging as log_setup


@pytest.fixture(autouse=True)
def no_secrets_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers its own secrets; none stays for the next (the registry is global)."""
    monkeypatch.setattr(log_setup, "_secrets", frozenset())
    monkeypatch.setattr(log_setup, "_everywhere", ())


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    log_setup.configure("debug", "auto", stream=out)
    log_setup.register_secrets(["s3cr3t-Passw0rd"])
    yield out
    logging.getLogger().handlers.clear()


def test_json_lines_when_not_on_a_terminal(stream: io.StringIO) -> None:
    log_setup.get_logger("syncd.test").info("pass finished", binding="anna", pass_id="p1", remote_created=3)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["event"] == "pass finished" and line["binding"] == "anna" and line["remote_created"] == 3
    assert line["level"] == "info" and "timestamp" in line


def test_secrets_are_scrubbed_from_syncd_and_library_logs(stream: io.StringIO) -> None:
    log_setup.get_logger("syncd.test").warning("login failed with s3cr3t-Passw0rd", password="s3cr3t-Passw0rd",
                                                 headers={"Authorization": "Basic YW5uYTpzM2NyM3Q="})
    logging.getLogger("exchangelib.protocol").info(
        "request headers: {'Authorization': 'Basic YW5uYTpzM2NyM3Q=', 'X-AnchorMailbox': 'a@b'} body s3cr3t-Passw0rd")
    text = stream.getvalue()
    assert "s3cr3t-Passw0rd" not in text
    assert "YW5uYTpzM2NyM3Q=" not in text
    assert text.count("[redacted]") >= 4
    assert "X-AnchorMailbox" in text  # the rest of the line is kept


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_traceback_shows_no_secret_in_any_format(fmt: str) -> None:
    """A bug's traceback is logged with its frames, never with their local variables (a password in
    a connector's frame) nor an unscrubbed message."""
    stream = _Terminal()
    log_setup.configure("info", fmt, stream)
    log_setup.register_secrets(["s3cret-Pa55word"])

    def connect(password: str = "s3cret-Pa55word") -> None:
        raise RuntimeError(f"login failed for {password}")

    try:
        connect()
    except RuntimeError as exc:
        log_setup.get_logger("syncd.engine").error("item failed with an internal error", exc_info=exc)
    out = stream.getvalue()
    assert "Traceback" in out and "in connect" in out
    assert "s3cret-Pa55word" not in out


# -- what is redacted: secrets where they stand as secrets; a long, unusual secret everywhere ------


def scrubbed(**event: object) -> dict[str, object]:
    return log_setup.scrub_secrets(None, "info", dict(event))


def test_a_short_secret_leaves_words_and_paths_alone() -> None:
    """A database password 'syncd' once turned "syncd running" into "[redacted] running"."""
    log_setup.register_secrets(["syncd"])
    event = scrubbed(event="syncd running", path="/var/lib/syncd/state.db", command="/usr/bin/syncd run",
                     user="syncd", store="sqlite:////var/lib/syncd/crm.sqlite3")
    assert event == {"event": "syncd running", "path": "/var/lib/syncd/state.db", "command": "/usr/bin/syncd run",
                     "user": "syncd", "store": "sqlite:////var/lib/syncd/crm.sqlite3"}


def test_a_short_secret_is_redacted_where_it_stands_as_a_secret() -> None:
    log_setup.register_secrets(["syncd"])
    basic = base64.b64encode(b"syncd:syncd").decode()
    event = scrubbed(
        event="connecting to postgresql+psycopg://syncd:syncd@db/syncd",
        password="syncd",
        headers={"Authorization": f"Basic {basic}", "Accept": "text/xml"},
        request=f"headers {{'Authorization': 'Basic {basic}', 'Cookie': 'session=syncd'}}",
        dsn="host=db user=syncd password=syncd dbname=syncd",
        body=f'{{"password": "syncd", "user": "syncd"}} and a bare credential {basic}.',
    )
    assert event["event"] == "connecting to postgresql+psycopg://syncd:[redacted]@db/syncd"
    assert event["password"] == "[redacted]"
    assert event["headers"] == {"Authorization": "[redacted]", "Accept": "text/xml"}
    assert event["request"] == "headers {'Authorization': 'Basic [redacted]', 'Cookie': '[redacted]'}"
    assert event["dsn"] == "host=db user=syncd password=[redacted] dbname=syncd"
    assert event["body"] == '{"password": "[redacted]", "user": "syncd"} and a bare credential [redacted].'


def test_a_long_unusual_secret_is_redacted_everywhere_in_every_form() -> None:
    secret = "Zq7/unusual+Secret@42!"
    log_setup.register_secrets([secret])
    for form in (secret, "Zq7%2Funusual%2BSecret%4042%21", "Zq7%2Funusual%2BSecret%4042%21"):
        assert log_setup.scrub_text(f"login failed: {form} is wrong") == "login failed: [redacted] is wrong"
    assert log_setup.scrub_text(f"token {secret}{secret}") == "token [redacted][redacted]"


@pytest.mark.parametrize(("secret", "everywhere"), [
    ("syncd", False),                           # short
    ("Pa55", False),
    ("wonderland", False),                      # a word
    ("correct-horse", False),                   # words
    ("20240101", False),                        # digits: dates, ids, counts
    ("wonderland1", True),                      # 8 or more, not a plain word
    ("s3cr3t-Passw0rd", True),
    ("correct-horse-battery-staple", True),     # 16 or more: no ordinary text repeats it by chance
])
def test_which_secrets_are_replaced_everywhere(secret: str, everywhere: bool) -> None:
    assert log_setup.safe_everywhere(secret) is everywhere


def test_keys_that_name_secrets_and_keys_that_do_not() -> None:
    event = scrubbed(pass_id="p1", password_file="/etc/syncd/pw", password_env="SYNCD_PW", client_secret="abc",
                     api_key="k", access_token="t", Authorization="Bearer x", cookie="c", passes=3)
    assert event == {"pass_id": "p1", "password_file": "/etc/syncd/pw", "password_env": "SYNCD_PW",
                     "client_secret": "[redacted]", "api_key": "[redacted]", "access_token": "[redacted]",
                     "Authorization": "[redacted]", "cookie": "[redacted]", "passes": 3}


@pytest.mark.parametrize("text", [
    "binding 'anna': the server refused the password: check it",
    "Basic authentication failed for anna@example.com",
    "the Bearer token expired",
    "https://127.0.0.1:9/EWS/Exchange.asmx and mailto:anna@example.com",
    "pass_id=p1 passes=3 password_file=/etc/syncd/pw",
])
def test_prose_about_secrets_stays_readable(text: str) -> None:
    assert log_setup.scrub_text(text) == text


# -- the journal: priority prefixes --------------------------------------------------------------


def journal_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = os.stat(path)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")


@pytest.fixture
def root_saved():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_on_the_journal_every_line_carries_its_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       root_saved: None) -> None:
    path = tmp_path / "journal"
    with path.open("w") as stream:
        journal_of(path, monkeypatch)
        log_setup.configure("debug", "json", stream=stream)
        log = log_setup.get_logger("syncd.test")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        logging.getLogger("exchangelib.protocol").warning("a library's warning")
    lines = path.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<4>"]
    assert [json.loads(line[3:])["event"] for line in lines] == ["d", "i", "w", "e", "a library's warning"]


def test_on_the_journal_a_traceback_is_at_its_error_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            root_saved: None) -> None:
    """journald reads every line as an entry: each line of a console traceback needs the prefix."""
    path = tmp_path / "journal"
    with path.open("w") as stream:
        journal_of(path, monkeypatch)
        log_setup.configure("info", "console", stream=stream)
        try:
            raise RuntimeError("a bug")
        except RuntimeError:
            log_setup.get_logger("syncd.engine").exception("pass failed with an internal error")
    lines = path.read_text().splitlines()
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines), lines
    assert "Traceback" in lines[1] and "RuntimeError: a bug" in lines[-1]


def test_no_prefix_off_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_saved: None) -> None:
    """$JOURNAL_STREAM is inherited: a stream redirected elsewhere (a file, a pipe) is not the journal."""
    other, path = tmp_path / "other", tmp_path / "log"
    other.touch()
    journal_of(other, monkeypatch)
    with path.open("w") as stream:
        log_setup.configure("info", "json", stream=stream)
        log_setup.get_logger("syncd.test").error("e")
    buffer = io.StringIO()
    log_setup.configure("info", "json", stream=buffer)
    log_setup.get_logger("syncd.test").error("e")
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    log_setup.configure("info", "json", stream=buffer)
    log_setup.get_logger("syncd.test").error("e")
    for text in (path.read_text(), buffer.getvalue()):
        assert text.startswith("{") and "<3>" not in text


def test_syncd_sync_on_the_journal(tmp_path: Path) -> None:
    """As systemd runs it: standard error is the journal's stream, named by $JOURNAL_STREAM."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/crm.sqlite3"\n[daemon]\nlisten = ""\n'
        '[[bindings]]\nname = "anna"\nowner = "anna@example.com"\n'
        '[bindings.remote]\ntype = "caldav"\nurl = "http://127.0.0.1:9/anna/calendar/"\n'
    )
    subprocess.run([sys.executable, "-m", "syncd", "--config", str(config), "users", "add", "anna@example.com"],
                   capture_output=True, timeout=120, check=True)
    journal = tmp_path / "journal"
    with journal.open("w") as stderr:
        st = os.fstat(stderr.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        result = subprocess.run([sys.executable, "-m", "syncd", "--config", str(config), "sync"], stdout=subprocess.PIPE,
                                stderr=stderr, text=True, timeout=120, check=False, env=env)
    assert result.returncode == 1, result.stdout
    records = {json.loads(line[3:])["event"]: line[:3] for line in journal.read_text().splitlines() if line}
    assert records["pass failed"] == "<3>" and records["pass finished"] == "<6>"
