"""HTTP for the CalDAV connector: the caldav library's DAVClient (auth, session, TLS), mapped to syncd errors.

Only ``DAVClient.request`` is used; request bodies and multistatus parsing are syncd's own
(:mod:`syncd.connectors.caldav_protocol`), so the connector depends on the standards rather than on
the library's object model.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from caldav.davclient import DAVClient
from caldav.lib import error as caldav_error
from lxml import etree

from syncd import __version__
from syncd.connectors.caldav_protocol import error_conditions
from syncd.errors import AuthError, ConfigError, RemoteError

AUTH_SCHEMES = ("basic", "digest")
#: Methods on one item: a refusal (403 with or without a DAV condition) is that item's answer.
ITEM_METHODS = frozenset({"PUT", "DELETE"})


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


class DavTransport:
    """One authenticated HTTP session to a CalDAV server.

    Raises :class:`RemoteError` for 5xx answers (but 501), refused connections and timeouts and
    :class:`AuthError` for 401 and for a 403 that names no DAV precondition (a 403 with one, such as
    ``DAV:valid-sync-token``, is a protocol answer and comes back as a reply, as does any 403 to a
    PUT or DELETE: one item refused is not the account refused). 429, and 503 with Retry-After, are
    waited out while the waits add up to at most ``max_backoff`` seconds.
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
    ) -> None:
        if auth is not None and auth not in AUTH_SCHEMES:
            raise ConfigError(f"caldav auth must be one of {', '.join(AUTH_SCHEMES)} or unset, not {auth!r}")
        if isinstance(verify_tls, str) and not os.path.exists(verify_tls):
            raise ConfigError(f"verify_tls = {verify_tls!r}: no such CA bundle (a PEM file of the CA certificates)")
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._verify_tls = verify_tls
        self._username = username
        self._client = DAVClient(
            url=strip_userinfo(url),
            username=username,
            password=password,
            # Without a scheme DAVClient answers the server's first 401 challenge (basic or digest).
            auth_type=auth,
            timeout=timeout,  # type: ignore[arg-type]  # caldav says int; niquests, which gets it, takes floats
            ssl_verify_cert=verify_tls,
            enable_rfc6764=False,
            headers={"User-Agent": f"syncd/{__version__}"},
        )

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> HttpReply:
        waited = 0.0
        while True:
            try:
                return self._request_once(method, url, body, headers)
            except caldav_error.RateLimitError as exc:
                wait = _retry_after(exc)
                where = f"{method} {strip_userinfo(url)}: the server is busy (HTTP {exc.status or 429})"
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
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None
    ) -> HttpReply:
        where = f"{method} {strip_userinfo(url)}"
        sent_headers = dict(headers or {})
        if method == "DELETE":
            # Some servers answer 204 with a body, which HTTP forbids: the client reads no body, and
            # the leftover bytes would be taken for the next answer on a kept-alive connection.
            sent_headers.setdefault("Connection", "close")
        try:
            text = body.decode("utf-8") if body else ""
            response = self._client.request(url, method, text, sent_headers)
        except caldav_error.AuthorizationError as exc:
            body_bytes = _as_bytes(exc.body)
            if exc.status == 403 and (method in ITEM_METHODS or error_conditions(body_bytes)):
                return HttpReply(403, {}, body_bytes, reason=str(getattr(exc, "reason", "") or "Forbidden"))
            raise self._auth_error(where, exc.status) from None
        except caldav_error.RateLimitError:
            raise
        except etree.XMLSyntaxError:
            raise RemoteError(f"{where}: the server sent malformed XML") from None
        except TimeoutError:
            raise RemoteError(f"{where}: no answer within {self.timeout:g} s") from None
        except OSError as exc:
            cut = _incomplete_read(exc)
            if cut is not None:
                raise TruncatedReply(where, *cut) from None
            raise RemoteError(f"{where}: {_describe(exc, self.timeout, self._verify_tls)}") from None
        except caldav_error.DAVError as exc:
            raise RemoteError(f"{where}: {exc.reason}") from None
        status = int(response.status)
        # 501 says "not implemented here" (a report, a method): an answer for the caller, not an outage.
        if status >= 500 and status != 501:
            reason = f" {response.reason}" if response.reason else ""
            raise RemoteError(f"{where}: the server failed (HTTP {status}{reason})")
        sent = _sent_body(response)
        expected = _announced_length(response.headers)
        if method != "HEAD" and status not in (204, 304) and sent is not None and expected is not None \
                and len(sent) != expected:
            # HTTP libraries that do not enforce Content-Length hand a cut body over as complete.
            raise TruncatedReply(where, len(sent), expected)
        body_bytes = sent if sent is not None else _body(response)
        return HttpReply(status, response.headers, body_bytes, response.tree, str(response.reason or ""))

    @property
    def scheme(self) -> str | None:
        """The auth scheme in use: configured, or learnt from the server's first 401 challenge."""
        if self._client.auth_type in AUTH_SCHEMES:
            return self._client.auth_type
        name = type(self._client.auth).__name__.lower()  # DAVClient builds HTTPBasicAuth / HTTPDigestAuth
        return next((scheme for scheme in AUTH_SCHEMES if scheme in name), None)

    def use_scheme(self, scheme: str) -> None:
        """Answer with this scheme from the first request on, instead of waiting for a 401."""
        if self._username and scheme in AUTH_SCHEMES and self._client.auth is None:
            self._client.auth_type = scheme
            self._client.build_auth_object([scheme])

    def close(self) -> None:
        self._client.close()

    def _auth_error(self, where: str, status: int | None) -> AuthError:
        if status == 403:
            return AuthError(f"{where}: user {self._username!r} may not do this (HTTP 403)")
        return AuthError(f"{where}: the server refused the credentials of user {self._username!r} (HTTP 401)")


def _as_bytes(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else body


def _incomplete_read(exc: BaseException) -> tuple[int | None, int | None] | None:
    """``(received, announced)`` bytes when ``exc`` is (or wraps) a body cut short, else ``None``.

    niquests and requests wrap urllib3's IncompleteRead (``partial`` bytes read, ``expected`` more
    to come) in a ChunkedEncodingError; http.client's own has the partial bytes instead of a count.
    """
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    chunked = False
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if type(current).__name__ == "IncompleteRead":
            partial = getattr(current, "partial", None)
            more = getattr(current, "expected", None)
            received = len(partial) if isinstance(partial, bytes | bytearray) else partial
            if isinstance(received, int) and isinstance(more, int):
                return received, received + more
            return (received if isinstance(received, int) else None), None
        # Also raised for a chunked body whose connection closed before the last chunk.
        chunked = chunked or type(current).__name__ == "ChunkedEncodingError"
        pending.extend(a for a in current.args if isinstance(a, BaseException))
        pending.extend((current.__cause__, current.__context__))
    return (None, None) if chunked else None


def _announced_length(headers: Mapping[str, str]) -> int | None:
    """The Content-Length the body must have, when it can be compared with what was decoded."""
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        return None  # the header counts compressed bytes; the library hands over decoded ones
    try:
        return int(headers.get("Content-Length") or "")
    except ValueError:
        return None


def _sent_body(response: object) -> bytes | None:
    """The body as the server sent it, when the caldav library still holds it (non-XML bodies, such as
    a GET's iCalendar, in caldav 3): its ``raw`` turns CRLF into LF and fails on bytes that are not
    UTF-8, so neither measures nor carries what arrived. An XML body cut short fails to parse anyway.
    """
    body = getattr(response, "_raw_body", None)
    return body if isinstance(body, bytes) and body else None


def _body(response: object) -> bytes:
    try:
        raw = getattr(response, "raw", None)
    except UnicodeDecodeError:
        # Not UTF-8 (an old Outlook export, garbage): the bytes, for the caller to judge.
        undecoded = getattr(response, "_raw", b"")
        return undecoded if isinstance(undecoded, bytes) else b""
    return raw.encode("utf-8") if isinstance(raw, str) and raw else b""


def _retry_after(exc: caldav_error.RateLimitError) -> float | None:
    seconds = getattr(exc, "retry_after_seconds", None)
    return float(seconds) if isinstance(seconds, int | float) and seconds >= 0 else None


def _describe(exc: OSError, timeout: float, verify_tls: bool | str = True) -> str:
    """A one-line reason for a transport failure; class names of the HTTP library say enough."""
    name = type(exc).__name__
    if "SSL" in name or "Certificate" in name:
        return describe_tls(exc, verify_tls)
    if "Timeout" in name:
        return f"no answer within {timeout:g} s"
    if "Connection" in name:
        tls = _tls_cause(exc)
        return describe_tls(exc, verify_tls) if tls is not None else "cannot connect to the server"
    return f"transport error ({name})"


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
