"""An exchangelib ``Account`` for one binding, and EWS failures in words an Exchange admin acts on.

Three things exchangelib leaves global are kept per connector here:

* TLS and timeout. exchangelib builds its HTTP sessions from class attributes of its ``Protocol``
  (``HTTP_ADAPTER_CLS``, ``TIMEOUT``); setting them on ``BaseProtocol`` would change every binding of
  the process. Each connector gets its own ``Protocol`` subclass instead, carrying its ``verify_tls``
  (``False`` or a CA bundle path) and ``timeout``.
* The protocol cache. exchangelib caches one ``Protocol`` per (endpoint, credentials) in a process-wide
  dict and ``Account`` takes it from there. :func:`open_account` puts the connector's own protocol in
  that slot just before the ``Account`` is made (under a lock), and :func:`close_account` closes its
  sessions and takes it out again, so no binding ever inherits another's TLS settings or sessions.
* Retries. ``FaultTolerance(max_wait=max_backoff)`` waits out ErrorServerBusy (with its
  BackOffMilliseconds hint) and transient 5xx, bounded; but it also reads every HTTP 401 as throttling
  and waits 10 + 20 + 40 ... seconds before giving up. :class:`_RetryPolicy` makes a 401 final at once.

Only this module and :mod:`syncd.connectors.exchange` import exchangelib (it costs ~0.6 s).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSTimeZone,
    FaultTolerance,
    Identity,
    OAuth2Credentials,
    Version,
)
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorFolderNotFound,
    ErrorImpersonateUserDenied,
    ErrorInternalServerError,
    ErrorInternalServerTransientError,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorMailboxStoreUnavailable,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    EWSError,
    RateLimitError,
    ResponseMessageError,
    TransportError,
    UnauthorizedError,
    UnknownTimeZone,
)
from exchangelib.protocol import Protocol

from syncd.connectors.base import NetworkSettings, reveal_secret
from syncd.errors import AuthError, ItemError, NotFound, PreconditionFailed, RemoteError

_AUTH_TYPES = {"ntlm": NTLM, "basic": BASIC, "oauth2": OAUTH2}
_cache_lock = threading.Lock()
#: Failures of the server or the network, never of one item: they stop the pass even during a write.
_WHOLE = (
    ErrorTimeoutExpired,
    ErrorServerBusy,
    ErrorInternalServerError,
    ErrorInternalServerTransientError,
    ErrorMailboxStoreUnavailable,
)


class ExchangeSettings(NetworkSettings, TypingProtocol):
    """What the connector reads from a binding's ``remote`` section (``syncd.config.ExchangeRemote``)."""

    @property
    def service_endpoint(self) -> str | None: ...
    @property
    def autodiscover(self) -> bool: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> object: ...
    @property
    def auth_type(self) -> str: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def tenant_id(self) -> str | None: ...
    @property
    def client_secret(self) -> object: ...
    @property
    def primary_smtp_address(self) -> str: ...
    @property
    def access_type(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def send_invitations(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Who:
    """Names for error messages: never a secret."""

    login: str
    mailbox: str
    endpoint: str
    access_type: str
    max_backoff: float


class _RetryPolicy(FaultTolerance):
    """FaultTolerance, except that HTTP 401 means "wrong credentials" at once, not "throttled, wait"."""

    def raise_response_errors(self, response: requests.Response) -> None:
        if response.status_code == 401:
            raise UnauthorizedError(f"Invalid credentials for {response.url}")
        return super().raise_response_errors(response)


def _protocol_class(verify_tls: bool | str, timeout: float) -> type[Protocol]:
    class _Adapter(requests.adapters.HTTPAdapter):
        # Any: requests names the types of these three only in a private module.
        def send(
            self,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            verify: Any = True,
            cert: Any = None,
            proxies: dict[str, str] | None = None,
        ) -> requests.Response:
            chosen = verify if verify_tls is True else verify_tls
            return super().send(request, stream=stream, timeout=timeout, verify=chosen, cert=cert, proxies=proxies)

    class SyncdProtocol(Protocol):
        HTTP_ADAPTER_CLS = _Adapter
        TIMEOUT = timeout

    return SyncdProtocol


def parse_version(text: str | None) -> Version | None:
    """``"15.1"`` or ``"15.1.2507.6"`` -> a Version; ``None`` lets exchangelib ask the server."""
    if not text:
        return None
    try:
        parts = [int(p) for p in text.split(".")]
    except ValueError:
        raise RemoteError(f"version {text!r} is not an Exchange build such as \"15.1\"") from None
    if not 2 <= len(parts) <= 4:
        raise RemoteError(f"version {text!r} is not an Exchange build such as \"15.1\"")
    return Version(build=Build(*parts))


def who(settings: ExchangeSettings) -> Who:
    login = settings.username or settings.client_id or "?"
    return Who(
        login=login,
        mailbox=settings.primary_smtp_address,
        endpoint=settings.service_endpoint or "(autodiscover)",
        access_type=settings.access_type,
        max_backoff=settings.max_backoff,
    )


def _credentials(settings: ExchangeSettings) -> Credentials | OAuth2Credentials:
    if settings.auth_type == "oauth2":
        return OAuth2Credentials(
            client_id=settings.client_id,
            client_secret=reveal_secret(settings.client_secret),
            tenant_id=settings.tenant_id,
            identity=Identity(primary_smtp_address=settings.primary_smtp_address),
        )
    return Credentials(settings.username or "", reveal_secret(settings.password) or "")


def _endpoint(settings: ExchangeSettings, credentials: Credentials | OAuth2Credentials, names: Who) -> str:
    if settings.service_endpoint:
        return settings.service_endpoint
    from exchangelib.autodiscover import discover

    with translate(names):
        _, protocol = discover(email=settings.primary_smtp_address, credentials=credentials)
    return str(protocol.service_endpoint)


def open_account(settings: ExchangeSettings, timezone: str) -> Account:
    """An Account on the binding's mailbox; no request is sent until the account is used."""
    names = who(settings)
    credentials = _credentials(settings)
    endpoint = _endpoint(settings, credentials, names)
    config = Configuration(
        service_endpoint=endpoint,
        credentials=credentials,
        auth_type=_AUTH_TYPES[settings.auth_type],
        version=parse_version(settings.version),
        retry_policy=_RetryPolicy(max_wait=settings.max_backoff),
    )
    try:
        zone = EWSTimeZone(timezone)
    except UnknownTimeZone:
        zone = EWSTimeZone("UTC")
    access = IMPERSONATION if settings.access_type == "impersonation" else DELEGATE
    with _cache_lock:
        with suppress(KeyError):
            del Protocol[config]
        protocol = _protocol_class(settings.verify_tls, settings.timeout)(config=config)
        account = Account(
            settings.primary_smtp_address,
            config=config,
            autodiscover=False,
            access_type=access,
            default_timezone=zone,
        )
    assert account.protocol is protocol, "exchangelib did not take the connector's protocol"
    return account


def close_account(account: Account) -> None:
    protocol = account.protocol
    protocol.close()
    with _cache_lock, suppress(KeyError):
        if Protocol[protocol.config][0] is protocol:
            del Protocol[protocol.config]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it came from. exchangelib re-raises a connection failure as a new exception
    inside its handler (ErrorTimeoutExpired, then ErrorServerBusy, then "No valid version headers"
    while it guesses the server's version), so the cause is in ``__context__``; requests and urllib3
    keep theirs in ``args`` and ``reason``."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo += [e for e in linked if isinstance(e, BaseException)]


def _connection_failure(exc: BaseException) -> str | None:
    """What went wrong when no HTTP answer came at all, in a few words; None for anything else."""
    if isinstance(exc, UnauthorizedError) or not isinstance(
        exc, TransportError | requests.exceptions.RequestException | OSError
    ):
        return None
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed: {e.verify_message or e.reason}"
    for e in chain:
        if isinstance(e, ssl.SSLError | requests.exceptions.SSLError):
            reason = getattr(e, "reason", None)
            return f"TLS failed: {reason}" if isinstance(reason, str) and reason else "TLS handshake failed"
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host name not found"
        if isinstance(e, requests.exceptions.ConnectTimeout):
            return "connection timed out"
        if isinstance(e, requests.exceptions.Timeout | socket.timeout | TimeoutError):
            return "timed out waiting for an answer"
        if isinstance(e, ConnectionResetError | requests.exceptions.ChunkedEncodingError):
            return "connection reset by the server"
    if any(isinstance(e, requests.exceptions.ConnectionError) for e in chain):
        return "connection failed"
    # The cause's text alone, where a library dropped the exception itself: only with urllib3's or
    # exchangelib's wrapping words, as a server's own ErrorTimeoutExpired ("The request timed out")
    # is an answer, not a failure to connect.
    text = " ".join(str(e) for e in chain)
    if any(marker in text for marker in _TRANSPORT_MARKERS):
        for needle, reason in _CONNECTION_WORDS:
            if needle in text:
                return reason
    return None


def _url(names: Who, exc: BaseException) -> str:
    if not names.endpoint.startswith("("):
        return names.endpoint
    # Autodiscover: the endpoint it tried, as the failed request names it.
    for e in _chain(exc):
        url = getattr(getattr(e, "request", None), "url", None)
        if isinstance(url, str) and url:
            return url
    return f"Exchange (autodiscover for {names.mailbox})"


_TRANSPORT_MARKERS = ("Reraised from", "Max retries exceeded", "HTTPConnectionPool", "HTTPSConnectionPool")
_CONNECTION_WORDS = (
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verify failed"),
    ("certificate verify failed", "TLS certificate verify failed"),
    ("SSLError", "TLS handshake failed"),
    ("Connection refused", "connection refused"),
    ("Name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("timed out", "timed out"),
)


@contextmanager
def _unreachable(names: Who) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        reason = _connection_failure(exc)
        if reason is None:
            raise
        # exchangelib's own text for this is ~1,000 characters of nested reprs, different on every
        # attempt (object addresses): one line, the same each time, so `check` says it once.
        raise RemoteError(f"cannot connect to {_url(names, exc)}: {reason}") from None


@contextmanager
def translate(names: Who, ref: str | None = None) -> Iterator[None]:
    """exchangelib's exceptions -> syncd's: for one item when ``ref`` is given, else for the binding."""
    with _exchange_errors(names, ref), _unreachable(names):
        yield


@contextmanager
def _exchange_errors(names: Who, ref: str | None) -> Iterator[None]:
    try:
        yield
    except UnauthorizedError:
        raise AuthError(
            f"the EWS endpoint {names.endpoint} refused the credentials of {names.login} (HTTP 401): "
            "check the password, that the account is neither locked nor disabled, and the account's EWS access"
        ) from None
    except ErrorImpersonateUserDenied:
        raise AuthError(
            f"{names.login} may not impersonate {names.mailbox} (ErrorImpersonateUserDenied): the service "
            "account lacks the ApplicationImpersonation role (New-ManagementRoleAssignment -Role "
            f"ApplicationImpersonation -User {names.login})"
        ) from None
    except ErrorNonExistentMailbox:
        raise AuthError(
            f"Exchange has no mailbox {names.mailbox} (ErrorNonExistentMailbox): check primary_smtp_address"
        ) from None
    except ErrorAccessDenied:
        if ref is not None:
            raise ItemError(ref, None, "Exchange denied access to this item (ErrorAccessDenied)") from None
        how = (
            "grant the service account the ApplicationImpersonation role"
            if names.access_type == "impersonation"
            else "give it Full Access to the mailbox, or Editor rights on its Calendar and Tasks folders "
            "(Add-MailboxPermission / Add-MailboxFolderPermission), or use access_type = \"impersonation\""
        )
        raise AuthError(
            f"{names.login} has no access to the mailbox {names.mailbox} (ErrorAccessDenied): {how}"
        ) from None
    except RateLimitError as exc:
        raise RemoteError(
            f"Exchange at {names.endpoint} is throttling syncd (ErrorServerBusy) and asked it to wait "
            f"{exc.wait:g} s, more than max_backoff = {names.max_backoff:g} s; the pass stops and is retried later"
        ) from None
    except ErrorIrresolvableConflict:
        if ref is None:
            raise
        raise PreconditionFailed(ref) from None
    except ErrorItemNotFound:
        if ref is None:
            raise RemoteError(f"Exchange at {names.endpoint}: an item vanished during the request") from None
        raise NotFound(ref) from None
    except ErrorFolderNotFound:
        raise RemoteError(f"the mailbox {names.mailbox} has no such folder (ErrorFolderNotFound)") from None
    except ResponseMessageError as exc:
        code = type(exc).__name__
        if ref is not None and code.startswith("Error") and not isinstance(exc, _WHOLE):
            raise ItemError(ref, None, f"Exchange refused it: {code}: {exc}") from None
        raise RemoteError(f"Exchange at {names.endpoint} failed: {code}: {exc}") from None
    except EWSError as exc:
        raise RemoteError(f"Exchange at {names.endpoint} failed: {type(exc).__name__}: {exc}") from None
