"""Logs: JSON lines off a terminal, and no secret in any line, from syncd or from a library."""

from __future__ import annotations

import io
import json
import logging

import pytest

from syncd import logging as log_setup


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
