"""HTTP for the CalDAV connector: one keep-alive ``http.client`` connection per server, Basic or Digest
auth (configured, or learnt from the server's first 401 challenge), TLS verified by default, answers
and failures mapped to syncd's errors. Request bodies and multistatus parsing are syncd's own
(:mod:`syncd.connectors.caldav_protocol`).

The standard library rather than an HTTP library, because a no-change ``syncd sync`` is mostly
start-up and the caldav library's DAVClient (on niquests) was its second costliest import. Measured
2026-11-29 on the 2-core bench machine (loaded), CPU to import, median of 9 fresh processes:
caldav.davclient 363 ms, niquests 249 ms, requests 193 ms, urllib3 137 ms (urllib3-future, which
niquests installs in urllib3's place), http.client + ssl 34 ms. Per request (PROPFIND Depth 0 to
Radicale on loopback, kept-alive, Basic auth; client CPU, median of 5 runs of 200): this transport
0.84 ms (bare http.client 0.60), niquests 2.1 ms, caldav's DAVClient 2.4 ms, requests 2.6 ms. What
http.client lacks here (auth, redirects, proxies from the environment, gzip) is a few pages of
standard code, here and in :mod:`syncd.connectors.http_auth`.
"""

from __future__ import annotations

import http.client
import os
import select
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from lxml import etree

from syncd import __version__
from syncd.connectors.caldav_protocol import error_conditions
from syncd.connectors.http_auth import SCHEMES, Challenge, Digest, basic_header, parse_challenges
from syncd.errors import AuthError, ConfigError, RemoteError

AUTH_SCHEMES = SCHEMES
#: Methods on one item: a refusal (403 with or without a DAV condition) is that item's answer.
ITEM_METHODS = frozenset({"PUT", "DELETE"})
#: Redirects followed for one request (the number niquests, syncd's earlier HTTP library, allowed).
MAX_REDIRECTS = 30
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_XML_TYPES = ("text/xml", "application/xml")
_NOT_XML_TYPES = ("text/plain", "text/calendar", "application/octet-stream")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Headers(Mapping[str, str]):
    """An answer's header fields, by name in any case; repeated fields joined by ", " (RFC 9110 5.3)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        fields: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            fields[key] = f"{fields[key]}, {value}" if key in fields else value
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    tree: etree._Element | None = field(default=None, repr=False)
    """The body parsed as XML, when it was XML."""
    reason: str = ""
    """The status line's reason phrase."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def conditions(self) -> set[str]:
        """DAV:error pre-/postconditions in the body (RFC 4918 16)."""
        return error_conditions(self.body)


class TruncatedReply(RemoteError):
    """The answer's body is shorter than the Content-Length the server announced (the connection was
    cut mid-body): what arrived is not what the server holds.

    A :class:`RemoteError`, so a caller that does not look closer stops as for any transport failure;
    ``reason`` says it without the request line, for an item error.
    """

    def __init__(self, where: str, received: int | None, expected: int | None) -> None:
        self.received = received
        self.expected = expected
        size = f" ({received} of {expected} bytes)" if received is not None and expected is not None else ""
        self.reason = f"the server's answer was cut short{size}"
        super().__init__(f"{where}: {self.reason}")


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@``, so no URL syncd prints or logs carries a secret."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    reason: str
    headers: _Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class EarlyTaken:
    """A reply to a request sent early, handed to the same request of this transport."""

    reply: HttpReply
    scheme: str | None
    """The auth scheme the early transport answered with once it had this reply: what this transport
    would have learnt from the server's 401 to this request had it sent the request itself."""


class EarlyAnswer(Protocol):
    """Replies to requests sent before this transport's first one (``syncd.connectors.caldav_early``),
    offered in the order they were sent."""

    def answer(self, signature: tuple[object, ...]) -> EarlyTaken | None:
        """The next early reply if it answered the request of this :meth:`DavTransport.signature`;
        ``None`` otherwise, and from then on: every later early reply is dropped."""
        ...


class _RateLimited(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        self.status = status
        self.retry_after = retry_after


class DavTransport:
    """One authenticated HTTP session to a CalDAV server.

    Raises :class:`RemoteError` for 5xx answers (but 501), refused connections and timeouts and
    :class:`AuthError` for 401 and for a 403 that names no DAV precondition (a 403 with one, such as
    ``DAV:valid-sync-token``, is a protocol answer and comes back as a reply, as does any 403 to a
    PUT or DELETE: one item refused is not the account refused). 429, and 503 with Retry-After, are
    waited out while the waits add up to at most ``max_backoff`` seconds.

    Connections are kept alive between requests and passes (one per server, and per proxy), and
    opened again when the server has closed one. Redirects are followed with the method and body
    (a 303 becomes a GET, RFC 9110 15.4); credentials go only to the server a request was addressed
    to, not to another one a redirect names. ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and
    ``NO_PROXY`` are honoured (HTTP proxies; HTTPS through CONNECT).

    One request at a time: a pull reads its next page in another thread
    (:mod:`syncd.connectors.read_ahead`) while the pass may write, and a connection, a Digest nonce
    count and a learnt scheme are not shared by two requests at once.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None,
        password: str | None,
        auth: str | None = None,
        verify_tls: bool | str = True,
        timeout: float = 30.0,
        max_backoff: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        early: EarlyAnswer | None = None,
    ) -> None:
        if auth is not None and auth not in AUTH_SCHEMES:
            raise ConfigError(f"caldav auth must be one of {', '.join(AUTH_SCHEMES)} or unset, not {auth!r}")
        if isinstance(verify_tls, str) and not os.path.exists(verify_tls):
            raise ConfigError(f"verify_tls = {verify_tls!r}: no such CA bundle (a PEM file of the CA certificates)")
        if urlsplit(url).scheme not in _DEFAULT_PORTS:
            raise ConfigError(f"caldav url {strip_userinfo(url)!r}: an http:// or https:// URL is needed")
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._verify_tls = verify_tls
        self._username = username
        self._password = password
        self._configured = auth
        self._auth_type = auth
        """The scheme configured or learnt; ``None`` until the server's first challenge names one."""
        self._basic: str | None = None
        self._digest: Digest | None = None
        self._guessed_basic = False
        self._tls: ssl.SSLContext | None = None
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._proxies = _Proxies.from_environment()
        self._headers = {"User-Agent": f"syncd/{__version__}", "Accept": "text/xml, text/calendar",
                         "Accept-Encoding": "gzip, deflate"}
        if auth == "basic":
            self._use_basic()
        self._lock = threading.Lock()
        self._early = early
        """Offered to the requests from the first on, each taking the next early reply if it is the
        request that reply answered; dropped at the first that is not."""

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
        xml: bool = True,
    ) -> HttpReply:
        """``xml=False``: the caller parses the body itself (a listing of a whole calendar, as it goes)."""
        with self._lock:
            if self._early is not None:
                taken = self._early.answer(self.signature(method, url, body, headers, xml))
                if taken is not None:
                    if taken.scheme:
                        # Before the next request's signature: a first request's 401 taught the early
                        # transport the scheme its next request was sent with.
                        self.use_scheme(taken.scheme)
                    return taken.reply
                self._early = None
            return self._request(method, url, body, headers, xml)

    def signature(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None, xml: bool
    ) -> tuple[object, ...]:
        """What makes this request of this transport the same request as another's: method, URL,
        body and headers, and what its Authorization, connection and reading depend on (credentials,
        the auth scheme in use, TLS, proxies, timeout). Holds the password: compared, never shown."""
        return (method, url, body, tuple(sorted((headers or {}).items())), xml, tuple(sorted(self._headers.items())),
                self._username, self._password, self._configured, self._auth_type, self._verify_tls,
                self._proxies, self.timeout)

    def _request(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None, xml: bool
    ) -> HttpReply:
        waited = 0.0
        while True:
            try:
                return self._request_once(method, url, body, headers, xml)
            except _RateLimited as busy:
                wait = busy.retry_after
                where = f"{method} {strip_userinfo(url)}: the server is busy (HTTP {busy.status})"
                if wait is None:
                    raise RemoteError(f"{where} and gave no Retry-After") from None
                if waited + wait > self.max_backoff:
                    raise RemoteError(
                        f"{where} and asks to wait {wait:g} s more (waited {waited:g} s); "
                        f"beyond max_backoff = {self.max_backoff:g} s, the next pass tries again"
                    ) from None
                self._sleep(wait)
                waited += wait

    def _request_once(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None, xml: bool = True
    ) -> HttpReply:
        where = f"{method} {strip_userinfo(url)}"
        sent_headers = dict(self._headers)
        if body:
            sent_headers["Content-Type"] = "text/xml"
        for name, value in (headers or {}).items():
            for known in [k for k in sent_headers if k.lower() == name.lower()]:
                del sent_headers[known]
            sent_headers[name] = value
        if method == "DELETE":
            # Some servers answer 204 with a body, which HTTP forbids: the client reads no body, and
            # the leftover bytes would be taken for the next answer on a kept-alive connection.
            sent_headers.setdefault("Connection", "close")
        answer = self._follow(where, method, url, body or None, sent_headers)
        status = answer.status
        if status == 429 or (status == 503 and "Retry-After" in answer.headers):
            raise _RateLimited(status, _retry_after(answer.headers.get("Retry-After")))
        if status in (401, 403):
            if status == 403 and (method in ITEM_METHODS or error_conditions(answer.body)):
                return HttpReply(403, answer.headers, answer.body, reason=answer.reason or "Forbidden")
            raise self._auth_error(where, status)
        # 501 says "not implemented here" (a report, a method): an answer for the caller, not an outage.
        if status >= 500 and status != 501:
            reason = f" {answer.reason}" if answer.reason else ""
            raise RemoteError(f"{where}: the server failed (HTTP {status}{reason})")
        return HttpReply(status, answer.headers, answer.body, _xml_of(where, answer) if xml else None, answer.reason)

    def _follow(self, where: str, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> _Answer:
        """The answer at the end of the redirects, authenticated as the server asks."""
        first = url
        for _ in range(MAX_REDIRECTS + 1):
            # Credentials only for the server the request was addressed to (and its https:// upgrade).
            entitled = _same_server(first, url)
            retried = False
            while True:
                answer = self._exchange(where, method, url, body, headers, entitled)
                if answer.status != 401 or not entitled or retried \
                        or not self._answer_challenge(where, answer, over_tls=url.startswith("https:")):
                    break
                retried = True
            location = answer.headers.get("Location")
            if answer.status not in _REDIRECTS or not location:
                return answer
            url = urljoin(url, location)
            if answer.status == 303 and method != "HEAD":
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        raise RemoteError(f"{where}: more than {MAX_REDIRECTS} redirects")

    def _exchange(
        self, where: str, method: str, url: str, body: bytes | None, headers: dict[str, str], entitled: bool
    ) -> _Answer:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise RemoteError(f"{where}: cannot reach {strip_userinfo(url)} (an http:// or https:// URL is needed)")
        host, port = parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        proxy = self._proxies.for_url(parts.scheme, host, port)
        sent = dict(headers)
        if proxy is not None and parts.scheme == "http":
            target = urlunsplit(("http", parts.netloc.rpartition("@")[2], target, "", ""))
            if proxy.authorization:
                sent["Proxy-Authorization"] = proxy.authorization
        if entitled:
            authorization = self._authorization(method, target)
            if authorization:
                sent["Authorization"] = authorization
        connection = self._connection(parts.scheme, host, port, proxy)
        try:
            if connection.sock is None:
                connection.connect()
        except TimeoutError:
            connection.close()
            raise RemoteError(f"{where}: no answer within {self.timeout:g} s") from None
        except OSError as exc:
            connection.close()
            raise RemoteError(f"{where}: {_describe_connect(exc, self._verify_tls)}") from None
        try:
            connection.request(method, target, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
        except TimeoutError:
            connection.close()
            raise RemoteError(f"{where}: no answer within {self.timeout:g} s") from None
        except http.client.IncompleteRead as exc:
            connection.close()
            received = len(exc.partial)
            raise TruncatedReply(where, received, received + exc.expected if exc.expected is not None else None) \
                from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise RemoteError(f"{where}: {_describe(exc)}") from None
        if sent.get("Connection", "").lower() == "close":
            connection.close()
        answer_headers = _Headers(response.getheaders())
        return _Answer(response.status, response.reason or "", answer_headers,
                       _decoded(where, data, answer_headers.get("Content-Encoding")))

    def _connection(self, scheme: str, host: str, port: int, proxy: _Proxy | None) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and _dropped(connection.sock):
            # The server closed the kept-alive connection while it was idle (between passes).
            connection.close()
        if connection is None:
            if scheme == "https":
                context = self._tls_context()
                if proxy is not None:
                    connection = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=self.timeout,
                                                             context=context)
                    tunnel = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                    connection.set_tunnel(host, port, headers=tunnel)
                else:
                    connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)
            elif proxy is not None:
                connection = http.client.HTTPConnection(proxy.host, proxy.port, timeout=self.timeout)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
            self._connections[key] = connection
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            if self._verify_tls is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif isinstance(self._verify_tls, str):
                try:
                    context = ssl.create_default_context(cafile=self._verify_tls)
                except (OSError, ValueError) as exc:
                    detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
                    raise ConfigError(f"verify_tls = {self._verify_tls!r}: cannot read CA certificates from it "
                                      f"({detail}); give a PEM file of the CA certificates") from None
            else:
                context = ssl.create_default_context()
            self._tls = context
        return self._tls

    # --- authentication ---------------------------------------------------------------------------

    def _authorization(self, method: str, target: str) -> str | None:
        if self._digest is not None:
            return self._digest.header(method, target)
        return self._basic

    def _answer_challenge(self, where: str, answer: _Answer, *, over_tls: bool) -> bool:
        """Take up the server's 401 challenge; ``True`` when the request is worth sending again."""
        if self._username is None or self._password is None:
            return False
        challenges = parse_challenges(answer.headers.get("WWW-Authenticate", ""))
        offered = {c.scheme for c in challenges}
        usable = next((c for c in challenges if c.scheme == "digest" and Digest.usable(c)), None)
        if self._digest is not None:
            # A Digest answer refused: once more only for a new nonce (stale, or the old one expired).
            if usable is None or usable.params["nonce"] == self._digest.nonce:
                return False
            return self._use_digest(where, usable)
        if self._basic is not None:
            if self._configured != "basic" and usable is not None:
                return self._use_digest(where, usable)  # Basic remembered from an earlier pass; the server moved on
            if self._guessed_basic:
                self._auth_type = self._basic = None  # the guess was wrong: a later challenge may say more
            return False
        if usable is not None:
            return self._use_digest(where, usable)  # preferred over Basic, as the caldav library did
        if self._configured == "digest":
            raise AuthError(f"{where}: the server offers no Digest authentication syncd can answer "
                            f"(it offers {', '.join(sorted(offered)) or 'none'}); set auth = \"basic\" "
                            "or leave auth unset")
        if "basic" in offered:
            self._use_basic()
            return True
        if not challenges and not self._guessed_basic and over_tls:
            # A 401 that names no scheme breaks RFC 9110 11.6.1 (Yahoo's does): guess Basic, once, and
            # only over TLS, as the caldav library did.
            self._guessed_basic = True
            self._use_basic()
            return True
        return False

    def _use_basic(self) -> None:
        if self._username is not None and self._password is not None:
            self._auth_type = "basic"
            self._basic = basic_header(self._username, self._password)

    def _use_digest(self, where: str, challenge: Challenge) -> bool:
        assert self._username is not None and self._password is not None
        try:
            self._digest = Digest(self._username, self._password, challenge)
        except ValueError as exc:
            raise AuthError(f"{where}: {exc}") from None
        self._auth_type = "digest"
        return True

    @property
    def scheme(self) -> str | None:
        """The auth scheme in use: configured, or learnt from the server's first 401 challenge."""
        return self._auth_type

    def use_scheme(self, scheme: str) -> None:
        """Answer with this scheme from the first request on, instead of waiting for a 401 (Digest
        still needs the server's nonce: its first request is answered with a challenge)."""
        if self._username and scheme in AUTH_SCHEMES and self._auth_type is None:
            self._auth_type = scheme
            if scheme == "basic":
                self._use_basic()

    def close(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()

    def _auth_error(self, where: str, status: int | None) -> AuthError:
        if status == 403:
            return AuthError(f"{where}: user {self._username!r} may not do this (HTTP 403)")
        return AuthError(f"{where}: the server refused the credentials of user {self._username!r} (HTTP 401)")


def _same_server(first: str, url: str) -> bool:
    """Whether ``url`` is on the server ``first`` was addressed to (an http -> https upgrade of the
    same host on the default ports counts as the same: what niquests and requests allow too)."""
    a, b = urlsplit(first), urlsplit(url)
    if a.hostname != b.hostname:
        return False
    a_port, b_port = a.port or _DEFAULT_PORTS.get(a.scheme), b.port or _DEFAULT_PORTS.get(b.scheme)
    if (a.scheme, a_port) == (b.scheme, b_port):
        return True
    return (a.scheme, a_port, b.scheme, b_port) == ("http", 80, "https", 443)


def _dropped(sock: object) -> bool:
    """Whether an idle kept-alive socket was closed by the server (it reads as ready: EOF)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)  # type: ignore[arg-type]
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _decoded(where: str, data: bytes, encoding: str | None) -> bytes:
    coding = (encoding or "identity").strip().lower()
    if coding in ("identity", "") or not data:
        return data
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise RemoteError(f"{where}: the server sent a body in {coding!r}, which syncd did not ask for")
    try:
        if coding == "deflate":
            try:
                decoder = zlib.decompressobj()
                out = decoder.decompress(data) + decoder.flush()
            except zlib.error:  # raw deflate without the zlib header, as some servers send it
                decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                out = decoder.decompress(data) + decoder.flush()
        else:
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = decoder.decompress(data) + decoder.flush()
    except zlib.error:
        raise RemoteError(f"{where}: the server's {coding} body does not decompress") from None
    if not decoder.eof:
        raise TruncatedReply(where, None, None)
    return out


_XML_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)


def _xml_of(where: str, answer: _Answer) -> etree._Element | None:
    """The body as XML, tried whatever the Content-Type says (servers mislabel); a body labelled XML
    that does not parse is the server's failure."""
    if not answer.body:
        return None
    content_type = (answer.headers.get("Content-Type") or "").lower()
    if content_type.startswith(_NOT_XML_TYPES) and answer.body.lstrip()[:1] != b"<":
        return None
    try:
        return etree.fromstring(answer.body, parser=_XML_PARSER)
    except etree.XMLSyntaxError:
        if content_type.startswith(_XML_TYPES):
            raise RemoteError(f"{where}: the server sent malformed XML") from None
        return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110 10.2.3: a number of seconds or an HTTP date)."""
    if value is None:
        return None
    try:
        return float(max(0, int(value.strip())))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - time.time())


@dataclass(frozen=True, slots=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None


@dataclass(frozen=True, slots=True)
class _Proxies:
    """The proxies the environment names, as curl, requests and niquests read them."""

    by_scheme: Mapping[str, _Proxy]
    bypass: tuple[str, ...]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> _Proxies:
        def named(*names: str) -> str | None:
            return next((environ[n] for n in names if environ.get(n)), None)

        found: dict[str, _Proxy] = {}
        fallback = named("all_proxy", "ALL_PROXY")
        for scheme in _DEFAULT_PORTS:
            url = named(f"{scheme}_proxy", f"{scheme.upper()}_PROXY") or fallback
            if url:
                found[scheme] = _proxy_of(url)
        bypass = named("no_proxy", "NO_PROXY") or ""
        return cls(found, tuple(e.strip().lower().lstrip(".") for e in bypass.split(",") if e.strip()))

    def for_url(self, scheme: str, host: str, port: int) -> _Proxy | None:
        proxy = self.by_scheme.get(scheme)
        if proxy is None:
            return None
        host = host.lower()
        for entry in self.bypass:
            if entry == "*" or entry in (host, f"{host}:{port}") or host.endswith("." + entry):
                return None
        return proxy


def _proxy_of(url: str) -> _Proxy:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"proxy {strip_userinfo(url)!r} (from the environment): syncd speaks to http:// "
                          "proxies only")
    authorization = None
    if parts.username is not None:
        authorization = basic_header(unquote(parts.username), unquote(parts.password or ""))
    return _Proxy(parts.hostname, parts.port or 8080, authorization)


def _describe_connect(exc: OSError, verify_tls: bool | str) -> str:
    """Why a connection could not be opened."""
    if _tls_cause(exc) is not None:
        return describe_tls(exc, verify_tls)
    return "cannot connect to the server"


def _describe(exc: BaseException) -> str:
    """A one-line reason for a failure on an open connection."""
    if isinstance(exc, ConnectionError):
        return "the server closed the connection without answering"
    if isinstance(exc, http.client.HTTPException):
        return f"the server's answer is not HTTP ({type(exc).__name__})"
    return f"transport error ({type(exc).__name__})"


_TLS_REASONS = (
    # (words in OpenSSL's verify message, what it means, what to do)
    (("expired",), "the server's certificate has expired", "renew the server's certificate"),
    (("not yet valid",), "the server's certificate is not valid yet", "check the server's and this machine's clocks"),
    (("hostname mismatch", "ip address mismatch", "doesn't match", "not valid for"),
     "the server's certificate is for another host name",
     "use the host name the certificate names in the URL, or get a certificate for this one"),
    (("self-signed", "self signed", "unable to get local issuer", "unknown ca", "unable to get issuer"),
     "the server's certificate is self-signed or from an issuer this machine does not trust",
     'give the issuing CA\'s certificate as verify_tls = "/path/to/ca.pem" in the binding\'s remote'),
)


def describe_tls(exc: BaseException, verify_tls: bool | str = True) -> str:
    """Why a TLS handshake failed, in words, with the remedy; never the certificate's contents."""
    cause = _tls_cause(exc)
    message = " ".join(
        str(part) for part in (getattr(cause, "verify_message", None), getattr(cause, "reason", None), cause)
        if part
    ).lower()
    for words, reason, remedy in _TLS_REASONS:
        if any(w in message for w in words):
            if isinstance(verify_tls, str) and "issuer" in reason:
                return (f"TLS certificate check failed: {reason}; check that {verify_tls} holds the CA "
                        "that issued the server's certificate")
            return f"TLS certificate check failed: {reason}; {remedy}"
    if isinstance(verify_tls, str) and ("no such file" in message or "errno 2" in message):
        return f"TLS: the CA bundle verify_tls = {verify_tls!r} cannot be read"
    detail = f" ({getattr(cause, 'verify_message', None) or getattr(cause, 'reason', None)})" if cause else ""
    return f"TLS handshake failed{detail}; check that the URL's port speaks HTTPS and the server's certificate"


def _tls_cause(exc: BaseException) -> BaseException | None:
    """The ssl module's own error inside a library's wrapping, if any."""
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return current
        pending.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        pending.extend((current.__cause__, current.__context__))
    return None
