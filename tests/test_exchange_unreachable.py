"""An Exchange endpoint that cannot be reached is one short line in syncd's words, said once: not
exchangelib's ~1,000 characters of nested reprs ("No valid version headers found in response
(ErrorTimeoutExpired('Reraised from ConnectionError(HTTPConnectionPool(...)...")."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import (  # noqa: F401
    OWNER,
    ForkServer,
    closed_port,
    forks,
    sqlite_store,
    sync,
    write_config,
)

PASSWORD = "Exch-s3cret-Pa55"
#: Generous: a pass reports the failure in one line, the log in two, each line ~200 characters.
SHORT = 900


def remote(endpoint: str, **changes: object) -> dict[str, object]:
    settings = {"type": "exchange", "service_endpoint": endpoint, "auth_type": "basic", "username": OWNER,
                "password": PASSWORD, "primary_smtp_address": OWNER, "timeout": 2, "max_backoff": 1}
    settings.update(changes)
    return settings


@pytest.fixture(scope="module")
def store(forks: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    return sqlite_store(forks, tmp_path_factory.mktemp("store"))


def run_sync(forks: ForkServer, tmp_path: Path, store: str, endpoint: str, log_format: str = "json",  # noqa: F811
             **changes: object):
    config = write_config(tmp_path / "config.toml", store, remote(endpoint, **changes), log_format)
    child = sync(forks, config)
    assert child.returncode == 1, (child.stdout, child.stderr)
    return child


def assert_short_and_once(child, line: str) -> None:
    out, err = child.stdout, child.stderr
    assert len(out) + len(err) < SHORT, (out, err)
    for text in (out, err):
        assert "No valid version headers" not in text and "Reraised" not in text and "HTTPConnectionPool" not in text
        assert "Traceback" not in text
        assert text.count(line) == 1, text  # the pass's summary on stdout, its log record on stderr
    assert PASSWORD not in out + err


@pytest.mark.parametrize("version", [None, "15.1"])
@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_refused_connection_is_one_line(
    forks: ForkServer, tmp_path: Path, store: str, log_format: str, version: str | None  # noqa: F811
) -> None:
    """Without a version exchangelib first guesses it (the "version headers" text); with one it
    fails on the first request: either way the same line."""
    endpoint = f"http://127.0.0.1:{closed_port()}/EWS/Exchange.asmx"
    extra = {"version": version} if version else {}
    child = run_sync(forks, tmp_path, store, endpoint, log_format, **extra)
    line = f"cannot connect to {endpoint}: connection refused"
    assert "anna: failed" in child.stdout and f"error: {line}" in child.stdout
    assert_short_and_once(child, line)
    if log_format == "json":
        [failed] = [json.loads(x) for x in child.stderr.splitlines() if '"pass failed"' in x]
        assert failed["error"] == line and failed["level"] == "error"


def test_check_says_it_once(forks: ForkServer, tmp_path: Path, store: str) -> None:  # noqa: F811
    """`check` probes the Calendar and the Tasks folder; a refused connection fails both alike."""
    endpoint = f"http://127.0.0.1:{closed_port()}/EWS/Exchange.asmx"
    config = write_config(tmp_path / "config.toml", store, remote(endpoint))
    child = forks.run(["--config", str(config), "check"])
    assert child.returncode == 1, (child.stdout, child.stderr)
    line = f"cannot connect to {endpoint}: connection refused"
    assert f"anna: FAILING: {line}\n" in child.stdout
    assert (child.stdout + child.stderr).count("cannot connect") == 1
    assert len(child.stdout) + len(child.stderr) < SHORT


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_an_endpoint_that_never_answers_is_a_timeout(
    forks: ForkServer, tmp_path: Path, store: str, silent_port: int  # noqa: F811
) -> None:
    endpoint = f"http://127.0.0.1:{silent_port}/EWS/Exchange.asmx"
    child = run_sync(forks, tmp_path, store, endpoint, version="15.1", timeout=1)
    line = f"cannot connect to {endpoint}: timed out waiting for an answer"
    assert f"error: {line}" in child.stdout
    assert_short_and_once(child, line)


def test_an_untrusted_certificate_is_a_tls_failure(
    forks: ForkServer, tmp_path: Path, store: str  # noqa: F811
) -> None:
    from ews_server import EwsServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with EwsServer(tls=context) as server:
        server.add_mailbox(OWNER, PASSWORD)
        endpoint = server.url
        child = run_sync(forks, tmp_path, store, endpoint)
    # The rest of the line is OpenSSL's wording ("self-signed certificate"), which varies by version.
    line = f"cannot connect to {endpoint}: TLS certificate verify failed: "
    assert f"error: {line}" in child.stdout, child.stdout
    assert_short_and_once(child, line)


def test_a_timeout_the_server_reports_is_not_a_failure_to_connect() -> None:
    """ErrorTimeoutExpired is also an answer of a busy Exchange ("The request timed out"): that
    stays Exchange's word, not "cannot connect"."""
    from exchangelib.errors import ErrorTimeoutExpired

    from syncd.connectors.exchange_session import Who, translate
    from syncd.errors import RemoteError

    names = Who("anna", OWNER, "https://mail.example.com/EWS/Exchange.asmx", "delegate", 5)
    with pytest.raises(RemoteError) as caught, translate(names):
        raise ErrorTimeoutExpired("The request timed out.")
    assert str(caught.value) == ("Exchange at https://mail.example.com/EWS/Exchange.asmx failed: "
                                 "ErrorTimeoutExpired: The request timed out.")


def test_autodiscover_names_the_endpoint_it_tried() -> None:
    import requests

    from syncd.connectors.exchange_session import Who, translate
    from syncd.errors import RemoteError

    names = Who("anna", OWNER, "(autodiscover)", "delegate", 5)
    url = f"http://127.0.0.1:{closed_port()}/autodiscover/autodiscover.svc"
    with pytest.raises(RemoteError, match=f"^cannot connect to {url}: connection refused$"), translate(names):
        requests.post(url, timeout=2)
