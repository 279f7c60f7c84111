"""HTTP to Microsoft Graph for one binding: Entra tokens, throttling, batching, errors in admin words.

* Tokens: an ``msal.ConfidentialClientApplication`` per connector (client secret, or a certificate as
  PEM or PFX), authority ``{authority_url}/{tenant_id}``; MSAL caches the client-credential token and
  renews it. A 401 from Graph drops the cached token once and asks Entra again.
* Throttling: 429 and 503 are waited out as ``Retry-After`` says, up to ``max_backoff`` seconds per
  request; longer, and the pass stops with a RemoteError. At most :data:`MAX_CONCURRENT` requests of one
  app are in flight at a time, process-wide (Graph throttles per app and mailbox; the bindings of a
  daemon share the app), through a semaphore per ``client_id``.
* Retries: a request that got no answer at all is sent again only when that is safe: GET, DELETE, a
  PATCH with If-Match, and a POST the caller marks ``idempotent`` (an event create with its
  ``transactionId``). A generic POST is never repeated.
* Errors: Entra's AADSTS codes, a missing application permission (the roles of the token are
  decoded and named), a mailbox outside the app's scope, an unknown user -- each as an
  :class:`~syncd.errors.AuthError` / :class:`~syncd.errors.RemoteError` saying what to change.

No exchangelib here: the Graph connector runs with the ``graph`` extra alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests

from syncd.connectors.base import NetworkSettings, reveal_secret
from syncd.errors import AuthError, ItemError, NotFound, PreconditionFailed, RemoteError
from syncd.logging import get_logger

log = get_logger("syncd.connectors.graph")

#: Requests of one app in flight at once, over every binding of the process.
MAX_CONCURRENT = 4
#: JSON batching's limit.
BATCH_MAX = 20
_PUBLIC_CLOUDS = {
    "login.microsoftonline.com": "https://graph.microsoft.com",
    "login.microsoftonline.us": "https://graph.microsoft.us",
    "login.chinacloudapi.cn": "https://microsoftgraph.chinacloudapi.cn",
}
_GRAPH_HOSTS = {urlsplit(u).hostname for u in _PUBLIC_CLOUDS.values()} | {"dod-graph.microsoft.us"}
_semaphores: dict[str, threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()
#: MSAL applications (and so their token caches) outlive a pass: a daemon asks Entra for a token only
#: when the last one expires. Keyed by everything that makes the app, the credential as a digest.
_apps: dict[tuple[str, ...], msal.ConfidentialClientApplication] = {}

#: What an admin does about an Entra error code.
_AADSTS = {
    "7000215": "the client secret is wrong or expired: create a new one under the app registration's "
    "Certificates & secrets and put its value (not its id) in client_secret",
    "7000222": "the client secret has expired: create a new one under Certificates & secrets",
    "700027": "Entra does not know this certificate: upload its public part under the app registration's "
    "Certificates & secrets, or check certificate_path",
    "700016": "no app with this client_id is registered in the tenant: check client_id and tenant_id, and "
    "that the app was granted admin consent in this tenant",
    "90002": "Entra knows no tenant with this tenant_id: check tenant_id (the directory id or a verified domain)",
    "900023": "tenant_id is not a valid tenant id or domain",
    "1002012": "Entra refused the requested scope",
    "7000112": "the app is disabled in the tenant: enable it under Enterprise applications",
}


class GraphSettings(NetworkSettings, Protocol):
    """What the connector reads from a binding's ``remote`` section (``syncd.config.GraphRemote``)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> object: ...
    @property
    def certificate_path(self) -> str | None: ...
    @property
    def certificate_password(self) -> object: ...
    @property
    def user(self) -> str: ...
    @property
    def authority_url(self) -> str: ...
    @property
    def graph_url(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer (of a request or of a sub-request of a batch)."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def code(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("code") or "") if isinstance(error, dict) else ""

    def message(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("message") or "") if isinstance(error, dict) else ""


def _semaphore(client_id: str) -> threading.BoundedSemaphore:
    with _semaphores_lock:
        return _semaphores.setdefault(client_id, threading.BoundedSemaphore(MAX_CONCURRENT))


def token_roles(token: str) -> set[str]:
    """The application permissions (``roles``) an access token grants; read, not verified (Graph does that)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return set()
    roles = data.get("roles") if isinstance(data, dict) else None
    return {str(r) for r in roles} if isinstance(roles, list) else set()


class GraphSession:
    """Authenticated, throttled HTTP to one mailbox's Graph resources."""

    def __init__(self, settings: GraphSettings) -> None:
        self.user = settings.user
        self.client_id = settings.client_id
        self.graph_url = settings.graph_url.rstrip("/")
        self.base = f"{self.graph_url}/v1.0"
        self._settings = settings
        self._timeout = settings.timeout
        self._max_backoff = settings.max_backoff
        self._http = _Http(settings.verify_tls, settings.timeout)
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None
        self._sem = _semaphore(settings.client_id)
        host = urlsplit(settings.graph_url).hostname
        self._scope = f"https://{host}/.default" if host in _GRAPH_HOSTS else "https://graph.microsoft.com/.default"

    # --- tokens --------------------------------------------------------------------------------

    def _credential(self) -> str | dict[str, Any]:
        s = self._settings
        if s.certificate_path is None:
            return reveal_secret(s.client_secret) or ""
        # As for *_file secrets: systemd's LoadCredential= puts it under $CREDENTIALS_DIRECTORY.
        path = Path(os.path.expandvars(s.certificate_path))
        password = reveal_secret(s.certificate_password)
        if path.suffix.lower() in (".pfx", ".p12"):
            if not path.is_file():
                raise AuthError(f"certificate_path {str(path)!r} is not a readable file")
            cred: dict[str, Any] = {"private_key_pfx_path": str(path)}
        else:
            try:
                pem = path.read_text(encoding="ascii")
            except OSError as exc:
                raise AuthError(f"certificate_path {str(path)!r} cannot be read: {exc.strerror}") from None
            if "PRIVATE KEY" not in pem or "CERTIFICATE" not in pem:
                raise AuthError(
                    f"certificate_path {s.certificate_path!r} must hold the private key and the certificate (PEM)"
                )
            cred = {"private_key": pem, "public_certificate": pem}
        if password:
            cred["passphrase"] = password
        return cred

    def _msal(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            s = self._settings
            credential = self._credential()
            digest = hashlib.sha256(json.dumps(credential, sort_keys=True).encode()).hexdigest()
            key = (s.authority_url, s.tenant_id, s.client_id, digest, str(s.verify_tls))
            with _semaphores_lock:
                self._app = _apps.get(key)
            if self._app is not None:
                return self._app
            host = urlsplit(s.authority_url).hostname or ""
            with self._unreachable(s.authority_url):
                try:
                    self._app = msal.ConfidentialClientApplication(
                        s.client_id,
                        client_credential=credential,
                        authority=f"{s.authority_url.rstrip('/')}/{s.tenant_id}",
                        # Only the public clouds are known to Microsoft's instance discovery; asking it about
                        # any other authority would send the tenant's name to login.microsoftonline.com.
                        instance_discovery=None if host in _PUBLIC_CLOUDS else False,
                        http_client=_Http(s.verify_tls, s.timeout),
                    )
                except ValueError as exc:
                    # MSAL's discovery of an unknown tenant, or a certificate it cannot load.
                    if s.certificate_path is not None and "authority configuration" not in str(exc):
                        raise AuthError(
                            f"the certificate in certificate_path {s.certificate_path!r} cannot be loaded "
                            f"({str(exc).split('. ')[0]}): check the file, and certificate_password for an "
                            "encrypted key"
                        ) from None
                    raise AuthError(self._entra_words(str(exc))) from None
            with _semaphores_lock:
                _apps[key] = self._app
        return self._app

    def token(self) -> str:
        if self._token is None:
            app = self._msal()
            with self._unreachable(self._settings.authority_url):
                result = app.acquire_token_for_client(scopes=[self._scope])
            if "access_token" not in result:
                raise AuthError(self._entra_words(str(result.get("error_description") or result.get("error"))))
            self._token = str(result["access_token"])
        return self._token

    def _drop_token(self) -> None:
        """Forget the token, in MSAL's cache too (a revoked token would otherwise come back)."""
        self._token = None
        if self._app is not None:
            with _semaphores_lock:
                for key, app in list(_apps.items()):
                    if app is self._app:
                        del _apps[key]
        self._app = None

    def _entra_words(self, description: str) -> str:
        first = description.strip().splitlines()[0] if description.strip() else "no reason given"
        code = first.removeprefix("AADSTS").split(":", 1)[0] if first.startswith("AADSTS") else ""
        advice = _AADSTS.get(code)
        who = f"Entra ({self._settings.authority_url}, tenant {self._settings.tenant_id}) refused app {self.client_id}"
        if advice:
            return f"{who}: {advice} (AADSTS{code})"
        if "authority configuration" in first:
            return f"{who}: {_AADSTS['90002']}"
        return f"{who}: {first}"

    # --- requests ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith("https://") or path.startswith("http://") else f"{self.base}/{path}"

    def user_path(self, path: str) -> str:
        return f"users/{self.user}/{path}"

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Answer:
        """One request, throttling waited out; the answer whatever its status (see :meth:`check`)."""
        safe = idempotent if idempotent is not None else method in ("GET", "DELETE") or (
            method == "PATCH" and "If-Match" in (headers or {})
        )
        url = self.url(path)
        waited = 0.0
        lost = 0
        refreshed = False
        while True:
            sent = {"Authorization": f"Bearer {self.token()}", **(headers or {})}
            try:
                with self._sem, self._unreachable(url, quiet=safe and lost == 0):
                    response = self._http.request(
                        method, url, json=body, params=params, headers=sent, timeout=self._timeout
                    )
            except _NoAnswer:
                lost += 1
                log.info("graph request got no answer; sending it again", method=method, url=url)
                continue
            answer = _answer(response)
            if answer.status == 401 and not refreshed:
                refreshed = True
                self._drop_token()
                continue
            delay = _retry_after(answer)
            if delay is not None and (answer.status == 429 or safe or method != "POST"):
                waited = self._wait(delay, waited, url)
                continue
            return answer

    def _wait(self, delay: float, waited: float, url: str) -> float:
        if waited + delay > self._max_backoff:
            raise RemoteError(
                f"Microsoft Graph is throttling app {self.client_id} ({url}) and asked it to wait {delay:g} s more, "
                f"beyond max_backoff = {self._max_backoff:g} s; the pass stops and is retried later"
            )
        log.info("graph throttled; waiting", seconds=delay)
        time.sleep(delay)
        return waited + delay

    def batch(self, items: Sequence[dict[str, Any]], *, idempotent: bool = True) -> list[Answer]:
        """Sub-requests (``method``, ``url`` relative to /v1.0, optional ``headers``, ``body``) in
        ``$batch`` requests of at most 20; answers in the order given. Throttled sub-requests are sent
        again (in the next batch) after the largest Retry-After: a throttled request was not carried
        out. A batch is sent again after a lost answer only when all of it is ``idempotent`` (reads, or
        creates with a transactionId)."""
        answers: list[Answer | None] = [None] * len(items)
        pending = list(range(len(items)))
        waited = 0.0
        while pending:
            chunk, pending = pending[:BATCH_MAX], pending[BATCH_MAX:]
            requests_ = [{"id": str(i), **items[i]} for i in chunk]
            answer = self.call("POST", "$batch", body={"requests": requests_}, idempotent=idempotent)
            self.raise_for(answer)
            retry: list[int] = []
            delay = 0.0
            for sub in answer.body.get("responses") or ():
                index = int(sub["id"])
                got = Answer(int(sub.get("status", 500)), dict(sub.get("headers") or {}), sub.get("body"))
                after = _retry_after(got)
                if after is not None and (got.status == 429 or items[index].get("method", "GET") != "POST"):
                    retry.append(index)
                    delay = max(delay, after)
                else:
                    answers[index] = got
            if retry:
                waited = self._wait(delay, waited, f"{self.base}/$batch")
                pending = retry + pending
        return [a if a is not None else Answer(500, {}, None) for a in answers]

    # --- errors --------------------------------------------------------------------------------

    def raise_for(self, answer: Answer, ref: str | None = None, *, area: str = "calendar") -> None:
        """Nothing for a success; else the error in words an admin (or, for ``ref``, a user) acts on."""
        if answer.ok:
            return
        code, message, status = answer.code(), answer.message(), answer.status
        if status == 401:
            raise AuthError(
                f"Microsoft Graph at {self.graph_url} refused the token of app {self.client_id} (401 {code}): "
                "check tenant_id, and that the app registration and its admin consent still exist"
            )
        if status == 403:
            raise AuthError(self._denied(area, code))
        if status == 404 and code in ("ErrorInvalidUser", "Request_ResourceNotFound", "MailboxNotEnabledForRESTAPI",
                                      "ResourceNotFound") and ref is None:
            raise AuthError(
                f"Microsoft Graph knows no mailbox {self.user} ({code}): check user (a user principal name or "
                "object id of a user with an Exchange Online mailbox)"
            )
        if ref is not None:
            if status in (409, 412):
                raise PreconditionFailed(ref)
            if status == 404:
                raise NotFound(ref)
            if 400 <= status < 500 and status not in (408, 429):
                raise ItemError(ref, None, f"Microsoft Graph refused it ({status} {code}): {message}")
        raise RemoteError(f"Microsoft Graph at {self.graph_url} failed ({status} {code}): {message}".rstrip(": "))

    def missing_permission(self, area: str, token: str) -> str | None:
        """What to grant when the token lacks the application permission syncd needs for ``area``."""
        needed = "Tasks.ReadWrite.All" if area == "tasks" else "Calendars.ReadWrite"
        roles = token_roles(token)
        if needed in roles:
            return None
        granted = ", ".join(sorted(roles)) or "none"
        return (
            f"app {self.client_id} lacks the application permission {needed} (its token grants: {granted}): "
            "add it under the app registration's API permissions > Microsoft Graph > Application permissions, "
            "then grant admin consent"
        )

    def _denied(self, area: str, code: str) -> str:
        missing = self.missing_permission(area, self._token or "")
        if missing:
            return missing
        if area == "tasks":
            return f"Microsoft Graph denied app {self.client_id} the To Do lists of {self.user} ({code})"
        return (
            f"app {self.client_id} may not reach the mailbox {self.user} (403 {code}): the mailbox is outside the "
            "scope an Exchange admin gave the app (RBAC for Applications: New-ManagementRoleAssignment -App "
            f"{self.client_id} -Role \"Application Calendars.ReadWrite\" -CustomResourceScope <scope that "
            "includes this mailbox>, or an application access policy)"
        )

    @contextmanager
    def _unreachable(self, url: str, quiet: bool = False) -> Iterator[None]:
        try:
            yield
        except requests.exceptions.RequestException as exc:
            reason = _connection_failure(exc)
            if quiet and reason in ("connection reset by the server", "connection failed", "no answer"):
                raise _NoAnswer from None
            raise RemoteError(f"cannot connect to {_origin(url)}: {reason}") from None

    def close(self) -> None:
        self._http.close()


class _Http(requests.Session):
    """requests, with the binding's TLS choice on every request: a Session's own ``verify`` loses to
    $REQUESTS_CA_BUNDLE (requests merges the environment over it), and MSAL gets the same client."""

    def __init__(self, verify: bool | str, timeout: float) -> None:
        super().__init__()
        self._verify = verify
        self._timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self._verify
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


class _NoAnswer(Exception):
    """The request was sent and no answer came (a safe request is sent again once)."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _answer(response: requests.Response) -> Answer:
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    return Answer(response.status_code, dict(response.headers), body)


def _retry_after(answer: Answer) -> float | None:
    if answer.status not in (429, 503, 504):
        return None
    value = {k.casefold(): v for k, v in answer.headers.items()}.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else (1.0 if answer.status == 429 else None)
    except ValueError:
        return 1.0


def _connection_failure(exc: BaseException) -> str:
    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(chain) < 32:
        current = todo.pop(0)
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo += [e for e in linked if isinstance(e, BaseException)]
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed: {e.verify_message or e.reason}"
    for e in chain:
        if isinstance(e, ssl.SSLError | requests.exceptions.SSLError):
            return "TLS handshake failed"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host name not found"
        if isinstance(e, requests.exceptions.ConnectTimeout):
            return "connection timed out"
        if isinstance(e, requests.exceptions.Timeout | TimeoutError):
            return "timed out waiting for an answer"
        if isinstance(e, ConnectionResetError | requests.exceptions.ChunkedEncodingError):
            return "connection reset by the server"
    text = " ".join(str(e) for e in chain)
    if "RemoteDisconnected" in text or "without response" in text:
        return "no answer"
    return "connection failed"
