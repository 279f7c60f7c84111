"""A server that answers garbage fails the pass in syncd's words; no library puts its traceback (or
the garbage) on ``syncd sync``'s stderr. exchangelib logs whole requests and answers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import fault_proxy
import pytest
from fault_scenarios import CalDavRig, ExchangeRig, Rig
from radicale_server import PASSWORD, USER, unique_name
from world import meeting

from syncd import logging as log_setup
from syncd.connectors.radicale_embedded import EmbeddedRadicale

GARBAGE = b"\x00\xff<<not xml>>\nsecond line of garbage\nthird line\n"


def sync_process(rig: Rig, log_format: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", "--config", str(rig.config_file(log_format)), "sync"],
                          capture_output=True, text=True, timeout=120, check=False)


def assert_no_library_noise(stderr: str, log_format: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "site-packages" not in stderr, stderr
    assert "second line of garbage" not in stderr, stderr
    if log_format == "json":
        for line in stderr.splitlines():
            json.loads(line)  # every line a whole record


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_caldav_garbage_leaves_no_library_traceback_on_stderr(
    radicale: EmbeddedRadicale, tmp_path: Path, log_format: str
) -> None:
    _, ctl = fault_proxy.start(radicale.url + "/")
    try:
        rig = CalDavRig(tmp_path, radicale, ctl.url, USER, PASSWORD, unique_name("garbage"))
        rig.init_store()
        rig.crm_save(meeting("g1"))
        ctl.fault("garbage", method="REPORT", times=None, data=GARBAGE)
        result = sync_process(rig, log_format)
    finally:
        ctl.stop()
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "anna: failed" in result.stdout and "the server sent malformed XML" in result.stdout
    assert_no_library_noise(result.stderr, log_format)


def test_exchange_garbage_leaves_no_library_traceback_on_stderr(tmp_path: Path) -> None:
    from ews_server import EwsServer

    with EwsServer() as server:
        proxied, ctl = fault_proxy.start(server.url)
        try:
            rig = ExchangeRig(tmp_path, server, proxied)
            rig.init_store()
            rig.crm_save(meeting("g1"))
            ctl.fault("garbage", times=None, data=GARBAGE)
            result = sync_process(rig, "json")
        finally:
            ctl.stop()
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "anna: failed" in result.stdout and "Bad SOAP response" in result.stdout
    assert_no_library_noise(result.stderr, "json")


@pytest.fixture
def log_stream():
    import io

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _raise_and_log(logger: logging.Logger) -> None:
    try:
        raise ValueError("Document is empty\nline 2 of the error")
    except ValueError:
        logger.info("Expected some valid XML from the server, but got this: \n%s", "junk\nmore junk", exc_info=True)


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_library_record_is_one_line_without_traceback_below_debug(log_stream, log_format: str) -> None:
    log_setup.configure("info", log_format, stream=log_stream)
    _raise_and_log(logging.getLogger())  # the root logger, as the caldav library uses it
    _raise_and_log(logging.getLogger("exchangelib.util"))
    text = log_stream.getvalue()
    assert "Traceback" not in text and "junk" not in text and "line 2" not in text
    lines = text.splitlines()
    assert len(lines) == 2
    assert all("Expected some valid XML from the server" in line and "ValueError: Document is empty" in line
               for line in lines)


def test_syncd_records_and_debug_level_keep_their_tracebacks(log_stream) -> None:
    log_setup.configure("debug", "json", stream=log_stream)
    _raise_and_log(logging.getLogger())
    assert "Traceback" in log_stream.getvalue() and "more junk" in log_stream.getvalue()
    log_stream.truncate(0)
    log_stream.seek(0)
    log_setup.configure("info", "json", stream=log_stream)
    try:
        raise RuntimeError("a bug")
    except RuntimeError as exc:
        log_setup.get_logger("syncd.engine").error("item failed with an internal error", exc_info=exc)
    assert "Traceback" in json.loads(log_stream.getvalue().splitlines()[-1])["exception"]
