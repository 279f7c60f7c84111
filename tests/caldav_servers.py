"""Real CalDAV servers besides Radicale, started by the tests on 127.0.0.1, and a world to sync with them.

The world (:class:`ServerWorld`) is tests/engine/world.py's on any of these servers.

* **Xandikos** (PyPI, the test extra): a git-backed CalDAV server in Python. It does no authentication
  (it expects a proxy in front); syncd still sends its credentials, which it ignores.
* **Cyrus IMAP's CalDAV** (Debian ``cyrus-imapd`` + ``cyrus-caldav``, installed by ``.ci/run``): a
  server with RFC 6638 implicit scheduling. A user's calendar address is ``user@example.com``
  (``defaultdomain``), so the user ``anna`` is the owner :data:`world.OWNER`, and the server mails an
  iMIP invitation to every external attendee of her items unless told not to. Its ``sendmail`` is a
  script (below) that speaks SMTP on stdin/stdout (Cyrus runs ``sendmail -bs``) and keeps each message
  as a file, so tests read every mail the server "sent" and nothing leaves the machine.

A test that needs a server that is not installed skips, naming what to install; on CI
(``CI=true``) it fails instead, so a missing install step in ``.ci/run`` cannot hide.
"""

from __future__ import annotations

import base64
import email
import email.message
import http.client
import imaplib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import icalendar
import pytest
from radicale_server import FaultProxy, unique_name

# world.py lives with the engine tests; the scheduling tests in tests/connectors use it too.
sys.path.insert(0, str(Path(__file__).parent / "engine"))
from world import OWNER, Phone, World

from syncd.connectors.radicale_embedded import free_port

PASSWORD = "wonderland"
CYRUS_BIN = Path("/usr/lib/cyrus/bin")

_MKCALENDAR = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
    "<D:displayname>{name}</D:displayname>"
    "<C:supported-calendar-component-set>{components}</C:supported-calendar-component-set>"
    "</D:prop></D:set></C:mkcalendar>"
)


def need(available: bool, what: str) -> None:
    """Skip a test whose server is missing; on CI fail, since ``.ci/run`` should have installed it."""
    if available:
        return
    message = f"{what} is not installed (.ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
             timeout: float = 10) -> tuple[int, bytes, dict[str, str]]:
    sent = dict(headers or {})
    if body and "Content-Type" not in sent:
        # Cyrus answers 415 to a PROPFIND/REPORT/MKCALENDAR body without a media type.
        sent["Content-Type"] = "application/xml; charset=utf-8"
    if auth is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def _wait_until_up(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} at start")
        try:
            _request(port, "OPTIONS", "/", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


@dataclass
class CalDavServer:
    """What the tests need of a server: its root URL, users, calendars, and how to stop it."""

    name: str
    port: int
    version: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calendar_path(self, user: str, name: str) -> str:
        return f"/{quote(user)}/{quote(name)}/"

    def add_user(self, user: str) -> None:
        """Make ``user`` (password :data:`PASSWORD`) exist with a calendar home."""

    def make_calendar(self, user: str, name: str, components: Sequence[str] = ("VEVENT", "VTODO")) -> str:
        """A new calendar collection of ``user``; returns its (direct) URL."""
        comps = "".join(f'<C:comp name="{escape(c)}"/>' for c in components)
        path = self.calendar_path(user, name)
        status, body, _ = _request(self.port, "MKCALENDAR", path,
                                   _MKCALENDAR.format(name=escape(name), components=comps).encode(),
                                   auth=(user, PASSWORD))
        if status != 201:
            raise RuntimeError(f"{self.name}: MKCALENDAR {path} answered HTTP {status}: {body[:300]!r}")
        return self.url + path

    def mails(self) -> list[email.message.Message]:
        """The mail the server sent (only a scheduling server sends any)."""
        return []

    def clear_mail(self) -> None:
        pass

    def stop(self) -> None:
        pass


def xandikos_installed() -> bool:
    return importlib.util.find_spec("xandikos") is not None


@dataclass
class XandikosServer(CalDavServer):
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, root: Path) -> XandikosServer:
        need(xandikos_installed(), "Xandikos (pip install xandikos, in the test extra)")
        port = free_port()
        log = (root / "xandikos.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "xandikos", "serve", "-d", str(root / "data"), "-l", "127.0.0.1",
             "-p", str(port), "--autocreate", "--current-user-principal", "/alice/", "--no-detect-systemd"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        server = cls("Xandikos", port, importlib.metadata.version("xandikos"), process=process)
        try:
            _wait_until_up(port, process, "xandikos")
        except BaseException:
            server.stop()
            raise
        return server

    def add_user(self, user: str) -> None:
        # Collections are directories; a user's "home" is a plain collection at /user/.
        status, body, _ = _request(self.port, "MKCOL", f"/{quote(user)}/")
        if status not in (201, 405):  # 405: exists already
            raise RuntimeError(f"xandikos: MKCOL /{user}/ answered HTTP {status}: {body[:200]!r}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cyrus_installed() -> bool:
    # master and imapd come with cyrus-imapd, httpd (the CalDAV server) with cyrus-caldav.
    return all((CYRUS_BIN / name).exists() for name in ("master", "imapd", "httpd"))


# Cyrus runs `sendmail -bs`: an SMTP session on stdin/stdout. This one accepts every message and keeps
# it in ``mail/`` beside the script, the envelope as two headers. POSIX sh, so it runs as the cyrus user
# wherever the tests' Python lives.
_SENDMAIL = r"""#!/bin/sh
dir=$(dirname "$0")/mail
cr=$(printf '\r')
n=0
from=
rcpts=
printf '220 localhost ESMTP test sink\r\n'
while IFS= read -r line; do
  line=${line%"$cr"}
  case $line in
    [Ee][Hh][Ll][Oo]*|[Hh][Ee][Ll][Oo]*) printf '250 localhost\r\n' ;;
    [Mm][Aa][Ii][Ll]*) from=${line#*:}; rcpts=; printf '250 OK\r\n' ;;
    [Rr][Cc][Pp][Tt]*) rcpts=${rcpts:+$rcpts,}${line#*:}; printf '250 OK\r\n' ;;
    [Dd][Aa][Tt][Aa])
      printf '354 go ahead\r\n'
      n=$((n + 1))
      file=$dir/$(date +%s%N)-$$-$n.eml
      {
        printf 'X-Envelope-From: %s\nX-Envelope-To: %s\n' "$from" "$rcpts"
        while IFS= read -r body; do
          body=${body%"$cr"}
          [ "$body" = "." ] && break
          case $body in ..*) body=${body#.} ;; esac
          printf '%s\n' "$body"
        done
      } > "$file.part"
      mv "$file.part" "$file"
      printf '250 queued\r\n' ;;
    [Qq][Uu][Ii][Tt]) printf '221 bye\r\n'; exit 0 ;;
    *) printf '250 OK\r\n' ;;
  esac
done
"""


@dataclass
class CyrusServer(CalDavServer):
    root: Path = field(default_factory=Path)
    imap_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, _root: Path) -> CyrusServer:
        need(cyrus_installed(), "Cyrus IMAP with CalDAV (apt-get install cyrus-imapd cyrus-caldav)")
        # Cyrus's processes run as the cyrus user, which cannot enter pytest's private tmp dirs.
        root = Path(tempfile.mkdtemp(prefix="syncd-cyrus-"))
        http_port = imap_port = free_port()
        while imap_port == http_port:
            imap_port = free_port()
        for sub in ("conf", "spool", "sieve", "run", "mail"):
            (root / sub).mkdir()
        (root / "imapd.conf").write_text(
            f"configdirectory: {root}/conf\n"
            f"partition-default: {root}/spool\n"
            f"sievedir: {root}/sieve\n"
            "servername: localhost\n"
            # Calendar user addresses are user@example.com, the domain of the tests' CRM users.
            "defaultdomain: example.com\n"
            "admins: cyrus\n"
            # Any password is accepted: the fixture is about CalDAV, not SASL.
            "sasl_pwcheck_method: alwaystrue\n"
            "sasl_mech_list: PLAIN\n"
            "allowplaintext: yes\n"
            "httpmodules: caldav\n"
            "caldav_allowscheduling: on\n"
            f"sendmail: {root}/sendmail\n"
            f"lmtpsocket: {root}/run/lmtp\n"
            f"idlesocket: {root}/run/idle\n"
            f"notifysocket: {root}/run/notify\n"
            f"syslog_prefix: syncd-test-cyrus-{http_port}\n"
        )
        (root / "cyrus.conf").write_text(
            "START {\n"
            f'  recover cmd="ctl_cyrusdb -r -C {root}/imapd.conf"\n'
            "}\nSERVICES {\n"
            f'  http cmd="httpd -C {root}/imapd.conf" listen="127.0.0.1:{http_port}" prefork=0\n'
            f'  imap cmd="imapd -C {root}/imapd.conf" listen="127.0.0.1:{imap_port}" prefork=0\n'
            "}\nEVENTS {\n}\n"
        )
        sendmail = root / "sendmail"
        sendmail.write_text(_SENDMAIL)
        sendmail.chmod(0o755)
        root.chmod(0o755)
        if os.geteuid() == 0:
            cyrus = pwd.getpwnam("cyrus")
            for path in [root, *root.rglob("*")]:
                os.chown(path, cyrus.pw_uid, cyrus.pw_gid)
        log = (root / "master.log").open("wb")
        process = subprocess.Popen(
            [str(CYRUS_BIN / "master"), "-C", f"{root}/imapd.conf", "-M", f"{root}/cyrus.conf",
             "-p", f"{root}/run/master.pid"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        server = cls("Cyrus", http_port, root=root, imap_port=imap_port, process=process)
        try:
            _wait_until_up(http_port, process, "cyrus master")
            server.version = server._version()
        except BaseException:
            server.stop()
            raise
        return server

    def _version(self) -> str:
        _, _, headers = _request(self.port, "OPTIONS", "/dav/")
        product = headers.get("server", "").split()[0] if headers.get("server") else "Cyrus-HTTP/?"
        return product.partition("/")[2]

    def calendar_path(self, user: str, name: str) -> str:
        return f"/dav/calendars/user/{quote(user)}/{quote(name)}/"

    def add_user(self, user: str) -> None:
        # A user's calendar home exists once their mailbox does; the admin creates it over IMAP.
        imap = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        try:
            imap.login("cyrus", "any")
            status, detail = imap.create(f"user/{user}")
            if status != "OK" and b"exists" not in b" ".join(d or b"" for d in detail).lower():
                raise RuntimeError(f"cyrus: cannot create user {user}: {detail!r}")
        finally:
            imap.logout()

    def mails(self) -> list[email.message.Message]:
        """Every message the server handed to its sendmail since the last :meth:`clear_mail`, oldest first."""
        return [email.message_from_bytes(p.read_bytes()) for p in sorted((self.root / "mail").glob("*.eml"))]

    def clear_mail(self) -> None:
        for path in (self.root / "mail").glob("*.eml"):
            path.unlink()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


#: The servers besides Radicale (which tests/engine/test_sync_caldav.py uses) the scenarios run on.
SERVERS = {"xandikos": XandikosServer.start, "cyrus": CyrusServer.start}


@pytest.fixture(scope="session")
def caldav_server_pool() -> Iterator[dict[str, CalDavServer]]:
    """Servers started on first use and stopped at the end of the session."""
    started: dict[str, CalDavServer] = {}
    yield started
    for server in started.values():
        server.stop()


def server_named(pool: dict[str, CalDavServer], name: str, tmp_path_factory: pytest.TempPathFactory) -> CalDavServer:
    if name not in pool:
        server = SERVERS[name](tmp_path_factory.mktemp(name))
        for user in ("alice", "anna", "bob"):
            server.add_user(user)
        pool[name] = server
    return pool[name]


@pytest.fixture(params=sorted(SERVERS))
def caldav_server(request: pytest.FixtureRequest, caldav_server_pool: dict[str, CalDavServer],
                  tmp_path_factory: pytest.TempPathFactory) -> CalDavServer:
    """Each real CalDAV server in turn (a test using it runs once per server)."""
    return server_named(caldav_server_pool, request.param, tmp_path_factory)


@pytest.fixture
def cyrus(caldav_server_pool: dict[str, CalDavServer], tmp_path_factory: pytest.TempPathFactory) -> CalDavServer:
    """The scheduling server, with its outbox emptied."""
    server = server_named(caldav_server_pool, "cyrus", tmp_path_factory)
    server.clear_mail()
    return server


@dataclass
class ServerPhone(Phone):
    """A plain CalDAV client of one user on any server: finds items by UID wherever the server put them."""

    port: int = 0
    user: str = "alice"

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        return _request(self.port, method, path, body, headers, auth=(self.user, PASSWORD))

    def path(self, uid: str) -> str:
        for href in self.hrefs():
            status, data, _ = self._request("GET", href)
            if status == 200 and f"UID:{uid}".encode() in data.replace(b"\r\n ", b""):
                return href
        return urlsplit(self.calendar_url).path + quote(uid, safe="") + ".ics"


@dataclass
class ServerWorld(World):
    """:class:`world.World` on any :class:`CalDavServer`; bindings log in as :attr:`user`."""

    server: CalDavServer = field(default_factory=lambda: CalDavServer("none", 0))
    user: str = "alice"

    def calendar(self, name: str | None = None, components: tuple[str, ...] = ("VEVENT", "VTODO"),
                 user: str | None = None) -> str:
        name = name or unique_name()
        direct = self.server.make_calendar(user or self.user, name, components)
        self.calendars[name] = direct
        return direct.replace(self.server.url, self.proxy.url)

    def bind(self, name: str = "anna", owner: str = "", user: str | None = None, **settings: Any) -> ServerPhone:
        """A binding to a new calendar of ``user`` (default :attr:`user`), who is also the phone's user."""
        user = user or self.user
        url = self.calendar(user=user)
        remote = {"type": "caldav", "url": url, "username": user, "password": PASSWORD, "timeout": 5}
        remote.update(settings.pop("remote", {}))
        self.bindings.append({"name": name, "owner": owner or OWNER, "remote": remote, **settings})
        return ServerPhone(url.replace(self.proxy.url, self.server.url), port=self.server.port, user=user)

    def phone(self, user: str, path: str) -> ServerPhone:
        """A phone of ``user`` on one of their collections (by path on the server)."""
        return ServerPhone(self.server.url + path, port=self.server.port, user=user)


def server_world(root: Path, server: CalDavServer, user: str = "alice", store_url: str = "") -> Iterator[ServerWorld]:
    proxy = FaultProxy(server.port).start()
    try:
        # World's radicale field is only used by World.calendar/bind, which ServerWorld replaces.
        yield ServerWorld(root, None, proxy, store_url=store_url, server=server, user=user)  # type: ignore[arg-type]
    finally:
        proxy.stop()


def ical_of(mail: email.message.Message) -> icalendar.Calendar:
    """The iTIP body of an iMIP message."""
    for part in mail.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return icalendar.Calendar.from_ical(payload)
    raise AssertionError(f"no text/calendar part in mail {mail['Subject']!r}")
