"""The HTTP side: Basic auth, SOAP envelopes, schema validation both ways, fault injection."""

from __future__ import annotations

import base64
import binascii
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from lxml import etree

from . import faults, schema, writes
from .context import Context
from .faults import SoapFault
from .operations import OPERATIONS
from .recurrence import format_dt
from .store import Login, Mailbox, Store, StoredItem, prop_key
from .xmlns import SOAP, T, local, new, sub, t

PATH = "/EWS/Exchange.asmx"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it, for assertions on what a client sent."""

    operation: str | None
    login: str | None
    anchor_mailbox: str | None
    impersonated: str | None
    attributes: Mapping[str, str]
    status: int
    response_codes: tuple[str, ...]
    at: float


@dataclass
class _Injection:
    fault: SoapFault | None  # None: answer HTTP 401
    remaining: int
    operation: str | None


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class EwsServer:
    """An Exchange Web Services endpoint on 127.0.0.1 for exchangelib to talk to over real HTTP.

    Use as a context manager; `url` is the service endpoint. With `validate_responses` every
    response body is checked against messages.xsd and failures collect in `response_errors`
    (tests assert it stays empty).
    """

    def __init__(
        self,
        *,
        validate_responses: bool = True,
        build: tuple[int, int, int, int] = (15, 1, 2507, 6),
        tls: ssl.SSLContext | None = None,
    ):
        self.store = Store()
        self.tls = tls  # a server-side context: serve HTTPS
        self.validate_responses = validate_responses
        self.build = build
        self.requests: list[RequestRecord] = []
        self.response_errors: list[str] = []
        self.server_errors: list[str] = []
        self._injections: list[_Injection] = []
        # Called with each request's record once it is answered, before the answer is sent: a test's
        # way to act in between (an Outlook edit after syncd read, a kill after the server wrote).
        self.after_request: Callable[[RequestRecord], None] | None = None
        self._meta = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.ews = self  # type: ignore[attr-defined]
        if self.tls is not None:
            httpd.socket = self.tls.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}{PATH}"

    # -- accounts ------------------------------------------------------------------------------

    def add_mailbox(self, smtp: str, password: str, display_name: str | None = None) -> Mailbox:
        """A mailbox with calendar and tasks, and a login of the same name."""
        return self.store.add_mailbox(smtp, password, display_name)

    def add_service_account(self, name: str, password: str, *, can_impersonate: bool = False) -> Login:
        """A login without a mailbox; with `can_impersonate` it holds ApplicationImpersonation."""
        return self.store.add_login(name, password, can_impersonate=can_impersonate)

    def grant_delegate(self, mailbox_smtp: str, login_name: str) -> None:
        with self.store.lock:
            self._mailbox(mailbox_smtp).delegates.add(login_name.lower())

    def reject_login(self, name: str, rejected: bool = True) -> None:
        """Answer 401 to this login whatever its password (a locked or disabled account)."""
        with self.store.lock:
            self.store.logins[name.lower()].rejected = rejected

    # -- fault injection -----------------------------------------------------------------------

    def inject(self, fault: SoapFault, *, count: int = 1, operation: str | None = None) -> None:
        """Answer the next `count` requests (of `operation`, if given) with this SOAP fault."""
        with self._meta:
            self._injections.append(_Injection(fault, count, operation))

    def busy(self, *, count: int = 1, back_off_ms: int = 100, operation: str | None = None) -> None:
        """Throttle as Exchange does: HTTP 500, ErrorServerBusy with BackOffMilliseconds."""
        self.inject(faults.server_busy(back_off_ms), count=count, operation=operation)

    def unauthorized(self, *, count: int = 1) -> None:
        """Answer the next `count` requests with HTTP 401, credentials notwithstanding."""
        with self._meta:
            self._injections.append(_Injection(None, count, None))

    # -- state, for assertions and for simulating a user in Outlook -----------------------------

    def mailbox(self, smtp: str) -> Mailbox:
        return self._mailbox(smtp)

    def items(self, smtp: str, folder: str = "calendar") -> list[StoredItem]:
        with self.store.lock:
            return sorted(self._mailbox(smtp).folders[folder].items.values(), key=lambda i: i.created_seq)

    def item(self, item_id: str) -> StoredItem:
        with self.store.lock:
            return self.store.items[item_id]

    def put_item(self, smtp: str, folder: str, item_xml: str, *, actor: str | None = None) -> StoredItem:
        """Store an item given as t:CalendarItem / t:Task XML (t: bound to the types namespace)."""
        elem = etree.fromstring(f'<wrap xmlns:t="{T}">{item_xml}</wrap>', _PARSER)[0]
        fields, extended = {}, {}
        for child in elem:
            if local(child) == "ExtendedProperty":
                extended[prop_key(child.find(t("ExtendedFieldURI")))] = child
            else:
                fields[local(child)] = child
        with self.store.lock:
            target = self._mailbox(smtp).folders[folder]
            return writes.create(
                self.store, target, local(elem), fields, extended, actor or target.mailbox.display_name
            )

    def edit_item(
        self, item_id: str, *, actor: str | None = None, **texts: str | datetime | None
    ) -> StoredItem:
        """Change simple fields as a user would in Outlook (None removes a field)."""
        with self.store.lock:
            item = self.store.items[item_id]
            fields = dict(item.fields)
            for name, value in texts.items():
                if value is None:
                    fields.pop(name, None)
                    continue
                elem = etree.Element(t(name))
                elem.text = value if isinstance(value, str) else format_dt(value)
                fields[name] = elem
            writes.check_times(item.kind, fields)
            item.fields = fields
            return writes.touched(self.store, item, actor or item.folder.mailbox.display_name)

    def delete_item(self, item_id: str) -> None:
        with self.store.lock:
            writes.delete(self.store, self.store.items[item_id])

    def modify_occurrence(
        self, master_id: str, original_start: datetime, **changes: str | datetime
    ) -> StoredItem:
        """Move or edit one occurrence of a series (e.g. Start=..., End=..., Subject=...)."""
        with self.store.lock:
            master = self.store.items[master_id]
            return writes.modify_occurrence(
                self.store, master, original_start, master.folder.mailbox.display_name, **changes
            )

    def delete_occurrence(self, master_id: str, original_start: datetime) -> StoredItem:
        with self.store.lock:
            master = self.store.items[master_id]
            return writes.delete_occurrence(
                self.store, master, original_start, master.folder.mailbox.display_name
            )

    def invalidate_sync_states(self, smtp: str, folder: str = "calendar") -> None:
        """Make every sync state handed out for this folder invalid (ErrorInvalidSyncStateData)."""
        with self.store.lock:
            self._mailbox(smtp).folders[folder].sync_epoch += 1

    def operations(self) -> list[str | None]:
        with self._meta:
            return [r.operation for r in self.requests]

    def _mailbox(self, smtp: str) -> Mailbox:
        mailbox = self.store.mailbox(smtp)
        if mailbox is None:
            raise KeyError(smtp)
        return mailbox

    # -- request handling ----------------------------------------------------------------------

    def _take_injection(self, operation: str | None, *, http_401: bool) -> _Injection | None:
        with self._meta:
            for injection in self._injections:
                if (injection.fault is None) != http_401:
                    continue
                if injection.operation in (None, operation):
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._injections.remove(injection)
                    return injection
        return None

    def _authenticate(self, authorization: str | None) -> Login | None:
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            name, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        login = self.store.logins.get(name.lower())
        if login is None or login.rejected or login.password != password:
            return None
        return login

    def handle(self, path: str, headers: Mapping[str, str] | Message, body: bytes) -> _Reply:
        record: dict = {
            "operation": None,
            "login": None,
            "anchor_mailbox": headers.get("X-AnchorMailbox"),
            "impersonated": None,
            "attributes": {},
            "response_codes": (),
        }
        reply = self._handle(path, headers, body, record)
        done = RequestRecord(status=reply.status, at=time.monotonic(), **record)
        with self._meta:
            self.requests.append(done)
        if self.after_request is not None:
            self.after_request(done)
        return reply

    def _handle(self, path: str, headers: Mapping[str, str] | Message, body: bytes, record: dict) -> _Reply:
        if path.split("?")[0].lower() != PATH.lower():
            return _Reply(404)
        login = self._authenticate(headers.get("Authorization"))
        if login is None or self._take_injection(None, http_401=True):
            return _Reply(401, headers={"WWW-Authenticate": 'Basic realm="127.0.0.1"'})
        record["login"] = login.name
        try:
            envelope = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError as err:
            line, column = err.position
            return self._fault(faults.schema_validation(line, column, str(err)))
        payload = envelope.find(f"{{{SOAP}}}Body/*")
        if payload is None:
            return self._fault(faults.schema_validation(1, 1, "The SOAP Body has no request element."))
        operation = local(payload)
        record["operation"] = operation
        record["attributes"] = dict(payload.attrib)
        injection = self._take_injection(operation, http_401=False)
        if injection is not None and injection.fault is not None:
            return self._fault(injection.fault)
        violation = schema.validation_error(payload)
        if violation is not None:
            return self._fault(faults.schema_validation(*violation))
        try:
            ctx = self._context(login, envelope.find(f"{{{SOAP}}}Header"), record)
            handler = OPERATIONS.get(operation)
            if handler is None:
                raise faults.not_implemented(operation)
            with self.store.lock:
                result = handler(ctx, payload)
        except SoapFault as fault:
            return self._fault(fault)
        except Exception as err:  # a bug in this server: make the client fail loudly, keep the cause
            self.server_errors.append(f"{operation}: {err!r}")
            raise
        record["response_codes"] = tuple(e.text for e in result.iter("{*}ResponseCode"))
        if self.validate_responses:
            violation = schema.validation_error(result)
            if violation is not None:
                self.response_errors.append(
                    f"{operation}Response {violation}: {etree.tostring(result)[:2000]!r}"
                )
        return _Reply(200, self._envelope(result))

    def _context(self, login: Login, header: etree._Element | None, record: dict) -> Context:
        sid = (
            header.find(f"{t('ExchangeImpersonation')}/{t('ConnectingSID')}") if header is not None else None
        )
        if sid is None:
            return Context(self.store, login)
        address = sid.findtext(t("PrimarySmtpAddress")) or sid.findtext(t("SmtpAddress")) or ""
        record["impersonated"] = address
        if not login.can_impersonate:
            raise faults.impersonate_denied()
        mailbox = self.store.mailbox(address)
        if mailbox is None:
            raise faults.non_existent_mailbox(address)
        return Context(self.store, login, impersonated=mailbox)

    def _envelope(self, result: etree._Element) -> bytes:
        env = new(f"{{{SOAP}}}Envelope")
        major, minor, major_build, minor_build = self.build
        sub(
            sub(env, f"{{{SOAP}}}Header"),
            t("ServerVersionInfo"),
            MajorVersion=str(major),
            MinorVersion=str(minor),
            MajorBuildNumber=str(major_build),
            MinorBuildNumber=str(minor_build),
            Version="V2017_07_11",
        )
        sub(env, f"{{{SOAP}}}Body").append(result)
        return etree.tostring(env, xml_declaration=True, encoding="utf-8")

    def _fault(self, fault: SoapFault) -> _Reply:
        return _Reply(fault.status, etree.tostring(fault.envelope(), xml_declaration=True, encoding="utf-8"))


class _Handler(BaseHTTPRequestHandler):
    # http.server sends headers and body in two writes; with Nagle's algorithm the client's
    # delayed ACK holds the body back about 40 ms per request, which dominated the suite's time.
    disable_nagle_algorithm = True
    # HTTP/1.1 keep-alive as IIS does; exchangelib treats "Connection: close" as a busy server.
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ews: EwsServer = self.server.ews  # type: ignore[attr-defined]
        try:
            reply = ews.handle(self.path, self.headers, body)
        except Exception as err:  # noqa: BLE001 (a server bug must reach the client as an HTTP 500)
            reply = _Reply(500, f"test EWS server error: {err!r}".encode(), {"Content-Type": "text/plain"})
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            **reply.headers,
            "Content-Length": str(len(reply.body)),
        }
        try:
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client is gone (a test killed it): nothing to tell it

    def log_message(self, format: str, *args: object) -> None:
        return None
