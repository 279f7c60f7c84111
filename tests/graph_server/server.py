"""GraphServer: the service on an HTTPS socket at 127.0.0.1, and the test-side API around it."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import requests

from . import instances, odata, render, tls
from .auth import App
from .faults import Fault
from .service import Answer, Graph, RequestRecord
from .store import Calendar, Mailbox, TodoList

OUTLOOK_APP = "00000002-0000-0ff1-ce00-000000000000"  # Exchange Online's own app id


class GraphServer:
    """Entra's token endpoint and Microsoft Graph v1.0 on https://127.0.0.1:PORT (see README.md)."""

    def __init__(self, tenant_id: str = "tenant-1") -> None:
        self.tenant_id = tenant_id
        self.graph = Graph(tenant_id)
        self._dir = Path(tempfile.mkdtemp(prefix="syncd-graph-"))
        self._tls, self.ca_path = tls.server_context(self._dir)
        self._httpd: ThreadingHTTPServer | None = None
        self._outlook = self.graph.entra.add_app(
            OUTLOOK_APP, roles=("Calendars.ReadWrite", "Tasks.ReadWrite.All"), is_outlook=True
        )

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Self:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.graph = self.graph  # type: ignore[attr-defined]
        httpd.socket = self._tls.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self.graph.base_url = f"https://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def authority_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return self.graph.base_url

    @property
    def graph_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return self.graph.base_url

    # -- directory -----------------------------------------------------------------------------------

    def add_app(
        self,
        client_id: str,
        secret: str | None = "s3cret",
        certificate_thumbprint: str | None = None,
        roles: Iterable[str] = ("Calendars.ReadWrite", "Tasks.ReadWrite.All"),
        mailboxes: Iterable[str] | None = None,
        *,
        certificate: bytes | str | None = None,
    ) -> App:
        """Register an app (see README.md); `mailboxes` limits its calendar access (RBAC for Applications)."""
        with self.graph.store.lock:
            return self.graph.entra.add_app(
                client_id, secret=secret, certificate=certificate, certificate_thumbprint=certificate_thumbprint,
                roles=roles, mailboxes=mailboxes,
            )

    def revoke_tokens(self, client_id: str) -> None:
        """Every token issued to the app so far answers 401 from now on."""
        self.graph.entra.apps[client_id].token_epoch += 1

    @property
    def token_lifetime(self) -> int:
        return self.graph.entra.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: int) -> None:
        self.graph.entra.token_lifetime = seconds

    def add_mailbox(self, upn: str, name: str | None = None, *, in_cloud: bool = True) -> Mailbox:
        """A user with a mailbox: calendar "Calendar" and To Do list "Tasks". `in_cloud=False`: the
        user exists but the mailbox is not in Exchange Online (Graph answers MailboxNotEnabledForRESTAPI)."""
        return self.graph.store.add_mailbox(upn, name, in_cloud=in_cloud)

    def mailbox(self, upn: str) -> Mailbox:
        found = self.graph.store.mailbox(upn)
        if found is None:
            raise KeyError(upn)
        return found

    def add_calendar(self, upn: str, name: str) -> Calendar:
        return self.graph.store.add_calendar(self.mailbox(upn), name)

    def add_list(self, upn: str, name: str) -> TodoList:
        return self.graph.store.add_list(self.mailbox(upn), name)

    # -- what happened -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        return self.graph.requests

    @property
    def peak_in_flight(self) -> dict[str | None, int]:
        """Most requests each app (by client id) had in flight at once; see `latency`."""
        return self.graph.peak_in_flight

    @property
    def latency(self) -> float:
        """Seconds every app request waits before it is served, so concurrent ones overlap."""
        return self.graph.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.graph.latency = seconds

    @property
    def concurrency_limit(self) -> int | None:
        """Requests one app may have in flight on one mailbox (Exchange Online: 4); more answer 429
        ApplicationThrottled (MailboxConcurrency). None (the default): no limit."""
        return self.graph.concurrency_limit

    @concurrency_limit.setter
    def concurrency_limit(self, limit: int | None) -> None:
        self.graph.concurrency_limit = limit

    @property
    def invitations(self) -> list[dict[str, Any]]:
        return self.graph.store.invitations

    @property
    def response_problems(self) -> list[str]:
        return self.graph.response_problems

    @property
    def server_errors(self) -> list[str]:
        return self.graph.server_errors

    def events(self, upn: str, calendar: str | None = None) -> list[dict[str, Any]]:
        """Single events and series masters of a calendar (default: the default one), as Graph renders
        them with every extended property, in creation order."""
        with self.graph.store.lock:
            box = self.mailbox(upn)
            cal = box.default_calendar if calendar is None else next(
                c for c in box.calendars.values() if calendar in (c.id, c.name)
            )
            return [self._render(box, e.id) for e in sorted(cal.events.values(), key=lambda e: e.created)]

    def event(self, event_id: str) -> dict[str, Any]:
        """An event, series master, occurrence or exception by id."""
        with self.graph.store.lock:
            found = instances.resolve(self.graph.store.events, event_id)
            return self._render(found.event.mailbox, event_id)

    def _render(self, box: Mailbox, event_id: str) -> dict[str, Any]:
        instance = instances.resolve(self.graph.store.events, event_id)
        out = render.event(instance, box, expand=odata.Expand(extended_ids=[]))
        out["singleValueExtendedProperties"] = [
            {"id": written, "value": value} for written, value in instance.event.extended.values()
        ]
        out["extensions"] = [render.extension(e) for e in instance.event.extensions.values()]
        if instance.kind == "seriesMaster":
            out["cancelledOccurrences"] = instances.cancelled_ids(instance.event)
        return out

    def tasks(self, upn: str, list_name: str | None = None) -> list[dict[str, Any]]:
        """The tasks of a list (default: To Do's default list), with linked resources and extensions."""
        with self.graph.store.lock:
            box = self.mailbox(upn)
            todo_list = box.default_list if list_name is None else next(
                t for t in box.lists.values() if list_name in (t.id, t.name)
            )
            return [
                render.task(t, expand=odata.Expand(names={"linkedResources", "extensions"}))
                for t in sorted(todo_list.tasks.values(), key=lambda t: t.created)
            ]

    # -- faults --------------------------------------------------------------------------------------

    def fault(
        self,
        method: str | None,
        path_regex: str,
        status: int = 429,
        headers: dict[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        lose_answer: bool = False,
    ) -> None:
        """The next `times` requests matching `method` and `path_regex` get this answer (see README.md)."""
        self.graph.faults.add(
            Fault(
                method=method,
                pattern=re.compile(path_regex),
                status=status,
                headers={"Retry-After": "1"} if headers is None and status in (429, 503) else dict(headers or {}),
                body=body,
                remaining=times,
                lose_answer=lose_answer,
            )
        )

    def clear_faults(self) -> None:
        self.graph.faults.clear()

    def expire_delta_tokens(self) -> None:
        """Every delta and skip token handed out so far answers 410 SyncStateNotFound."""
        with self.graph.store.lock:
            self.graph.store.delta_epoch += 1

    # -- Outlook -------------------------------------------------------------------------------------

    def client(self, upn: str) -> OutlookSession:
        """A session acting as the user in Outlook / To Do (unrecorded, never faulted)."""
        self.mailbox(upn)
        token = self.graph.entra.issue(self._outlook)["access_token"]
        return OutlookSession(f"{self.graph_url}/v1.0/users/{upn}/", str(self.ca_path), token)


class OutlookSession(requests.Session):
    """requests.Session whose relative URLs are below the user's /v1.0/users/{upn}/ and which raises
    on HTTP errors unless `check=False`."""

    def __init__(self, base: str, ca_path: str, token: str) -> None:
        super().__init__()
        self.base = base
        self.verify = ca_path
        self.headers["Authorization"] = f"Bearer {token}"

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, check: bool = True, **kwargs: Any
    ) -> requests.Response:
        text = url
        if not text.startswith("https://"):
            text = self.base + text.lstrip("/")
        # Per request: requests lets REQUESTS_CA_BUNDLE override a session's `verify` (psf/requests#3829).
        kwargs.setdefault("verify", self.verify)
        response = super().request(method, text, *args, **kwargs)
        if check and response.status_code >= 400:
            # The body names the problem (a schema violation, say): a test author needs it.
            raise requests.HTTPError(f"{response.status_code} {method} {text}: {response.text}", response=response)
        return response


class _Handler(BaseHTTPRequestHandler):
    # Headers and body go out in two writes; with Nagle's algorithm the client's delayed ACK would
    # hold the body back ~40 ms per request.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        graph: Graph = self.server.graph  # type: ignore[attr-defined]
        try:
            answer = graph.handle(self.command, self.path, dict(self.headers.items()), body)
        except Exception as err:  # noqa: BLE001 - a server bug must reach the client as a 500
            graph.server_errors.append(f"{self.command} {self.path}: {err!r}")
            answer = Answer(500, f"test Graph server error: {err!r}".encode(), {"Content-Type": "text/plain"})
        if answer.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(answer.status)
            for name, value in {**answer.headers, "Content-Length": str(len(answer.body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: object) -> None:
        return None
