"""No secret reaches anything ``syncd sync`` prints, on stdout or stderr, in any log format, at
debug and at info level: not the password, nor its URL-encoded forms, nor the Basic credential
(base64 of ``user:password``). The failures that print the most: a connection refused, a server
that refuses the password (a real Radicale), a store that cannot be reached (its URL carries the
password), and a bug inside a connector while the password is in a local of the failing frame.

And the other side: a short secret equal to an ordinary word (a database password ``syncd``) is
redacted where it stands as a secret, but leaves the word elsewhere alone ("syncd running", paths).
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from cli_process import ForkServer, closed_port, forks, sqlite_store, sync, write_config  # noqa: F401
from radicale_server import USER, radicale, unique_name  # noqa: F401

from syncd.connectors.radicale_embedded import EmbeddedRadicale

#: Distinctive, with characters that URL-encoding changes.
SECRET = "Zq7/unusual+Secret@42!"
FORMATS = ["json", "console"]
LEVELS = ["debug", "info"]


def secret_forms(secret: str, user: str = USER) -> dict[str, str]:
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"plain": secret, "url-encoded": quote(secret, safe=""), "path-encoded": quote(secret),
            "form-encoded": quote_plus(secret), "basic": basic, "basic unpadded": basic.rstrip("=")}


def assert_no_secret(stdout: str, stderr: str, secret: str = SECRET, user: str = USER) -> None:
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        for form, value in secret_forms(secret, user).items():
            assert value not in text, f"the secret ({form}) on {stream}:\n{text}"


@pytest.fixture(scope="module")
def store(forks: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    return sqlite_store(forks, tmp_path_factory.mktemp("store"))


def caldav(url: str, password: str = SECRET) -> dict[str, object]:
    return {"type": "caldav", "url": url, "username": USER, "password": password, "timeout": 2}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("log_format", FORMATS)
def test_a_refused_connection(forks: ForkServer, tmp_path: Path, store: str, log_format: str, level: str) -> None:  # noqa: F811
    url = f"http://127.0.0.1:{closed_port()}/{USER}/calendar/"
    child = sync(forks, write_config(tmp_path / "c.toml", store, caldav(url), log_format, level))
    assert child.returncode == 1, (child.stdout, child.stderr)
    assert "cannot connect to the server" in child.stdout
    assert_no_secret(child.stdout, child.stderr)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("log_format", FORMATS)
def test_a_url_with_the_password_in_it(
    forks: ForkServer, tmp_path: Path, store: str, log_format: str, level: str  # noqa: F811
) -> None:
    """A user who writes the credentials into the calendar URL, as many CalDAV clients accept."""
    url = f"http://{USER}:{quote(SECRET, safe='')}@127.0.0.1:{closed_port()}/{USER}/calendar/"
    child = sync(forks, write_config(tmp_path / "c.toml", store, caldav(url), log_format, level))
    assert child.returncode == 1, (child.stdout, child.stderr)
    assert_no_secret(child.stdout, child.stderr)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("log_format", FORMATS)
def test_a_server_that_refuses_the_password(
    forks: ForkServer, tmp_path: Path, store: str, radicale: EmbeddedRadicale, log_format: str, level: str  # noqa: F811
) -> None:
    name = unique_name("secret")
    radicale.make_calendar(USER, name)
    url = f"{radicale.url}/{USER}/{name}/"
    child = sync(forks, write_config(tmp_path / "c.toml", store, caldav(url), log_format, level))
    assert child.returncode == 1, (child.stdout, child.stderr)
    assert "refused the credentials" in child.stdout
    assert_no_secret(child.stdout, child.stderr)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("log_format", FORMATS)
def test_a_store_that_cannot_be_reached(
    forks: ForkServer, tmp_path: Path, log_format: str, level: str  # noqa: F811
) -> None:
    store_url = f"postgresql+psycopg://syncd:{quote(SECRET, safe='')}@127.0.0.1:{closed_port()}/x"
    calendar = f"http://127.0.0.1:{closed_port()}/{USER}/calendar/"
    child = sync(forks, write_config(tmp_path / "c.toml", store_url, caldav(calendar), log_format, level))
    assert child.returncode == 75, (child.stdout, child.stderr)
    assert "cannot be reached" in child.stderr
    assert_no_secret(child.stdout, child.stderr, user="syncd")
    assert_no_secret(child.stdout, child.stderr)


# A bug inside a connector: its method raises while the password sits in its frame's locals (and
# in the connector's HTTP transport, which a bad traceback formatter would print). The driver runs the
# real command, `syncd --config X sync`, with that one method replaced.
_DRIVER = r'''
import base64, logging, sys
from syncd.cli import main
from syncd.connectors import caldav as connector_module


def changes(self, state, known):
    password = self._transport._password
    credential = base64.b64encode(f"{self._transport._username}:{password}".encode()).decode()
    headers = {"Authorization": f"Basic {credential}", "Depth": "1"}
    try:
        raise ConnectionResetError("the server went away")
    except ConnectionResetError:
        # What a library logs: its request's headers and the exception, from the same frame.
        logging.getLogger("caldav").warning("request failed, headers %r", headers, exc_info=True)
    return {"known": known}["state"]  # the bug: a KeyError


connector_module.CalDavConnector.listing = changes  # what the engine calls for the feed
main(sys.argv[1:], prog_name="syncd")
'''


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("log_format", FORMATS)
def test_a_bug_in_a_connector(tmp_path: Path, store: str, log_format: str, level: str) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    url = f"http://127.0.0.1:{closed_port()}/{USER}/calendar/"
    config = write_config(tmp_path / "c.toml", store, caldav(url), log_format, level)
    result = subprocess.run([sys.executable, str(driver), "--config", str(config), "sync"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "internal error: KeyError" in result.stdout
    assert "pass failed with an internal error" in result.stderr
    assert "Traceback" in result.stderr and "in changes" in result.stderr  # the bug's traceback is kept
    assert "request failed, headers" in result.stderr and "Authorization" in result.stderr
    assert_no_secret(result.stdout, result.stderr)


# -- a short secret that is also a word ------------------------------------------------------------


@pytest.mark.parametrize("log_format", FORMATS)
def test_a_short_secret_leaves_words_and_paths_alone(
    forks: ForkServer, tmp_path: Path, store: str, log_format: str  # noqa: F811
) -> None:
    """The password ``syncd`` of a binding whose calendar is /syncd/...: the path in syncd's
    message stays whole, the password in its places (userinfo, Basic credential) never shows."""
    url = f"http://syncd:syncd@127.0.0.1:{closed_port()}/syncd/calendar/"
    child = sync(forks, write_config(tmp_path / "c.toml", store, caldav(url, password="syncd"), log_format, "debug"))
    assert child.returncode == 1, (child.stdout, child.stderr)
    assert "/syncd/calendar/" in child.stdout and "/syncd/calendar/" in child.stderr
    assert "[redacted]" not in child.stdout + child.stderr
    assert ":syncd@" not in child.stdout + child.stderr
    assert base64.b64encode(b"syncd:syncd").decode() not in child.stdout + child.stderr


def test_a_bug_whose_message_names_the_password(tmp_path: Path, store: str) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER.replace('return {"known": known}["state"]  # the bug: a KeyError',
                                      'raise ValueError(f"cannot log in with {password}")'))
    url = f"http://127.0.0.1:{closed_port()}/{USER}/calendar/"
    config = write_config(tmp_path / "c.toml", store, caldav(url), "json", "info")
    result = subprocess.run([sys.executable, str(driver), "--config", str(config), "sync"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert "internal error: ValueError: cannot log in with" in result.stdout
    assert_no_secret(result.stdout, result.stderr)
