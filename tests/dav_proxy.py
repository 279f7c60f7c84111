"""A scripted HTTP proxy in front of the real Radicale, for CalDAV servers' habits Radicale lacks.

Each behaviour below is a hook that sees a request before it goes upstream (and may answer it
itself, or send it elsewhere) or the answer after; real HTTP on 127.0.0.1, real Radicale behind it.

- :class:`Renaming`: stores a created item under a name of its own (a hash of its UID), optionally
  saying so in a Location header, and answers 410 at the name the client wrote.
- :class:`ForgetfulSync`: answers sync-collection with a token as if nothing had changed (207, no
  members, a fresh token) instead of RFC 6578's valid-sync-token error.
- :class:`OneUidPerHome`: refuses a UID that another calendar of the same user holds (403
  CALDAV:unique-scheduling-object-resource, as RFC 6638 servers do).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fault_proxy import forward


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


#: Before forwarding: an Answer to send instead, or None to forward the (possibly changed) request.
Before = Callable[[Request], Answer | None]
#: After forwarding: the answer to send.
After = Callable[[Request, Answer], Answer]


class DavProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.before: list[Before] = []
        self.after: list[After] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, method: str | None = None, body: bytes | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method) and (body is None or body in r.body))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
        for hook in self.before:
            answer = hook(request)
            if answer is not None:
                return answer
        status, headers, body = forward("127.0.0.1", self.upstream_port, request.method, request.path,
                                        list(request.headers.items()), request.body, timeout=10)
        answer = Answer(status, headers, body)
        for after in self.after:
            answer = after(request, answer)
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, self.path, dict(self.headers.items()),
                                  self.rfile.read(length) if length else b"")
                answer = proxy._answer(request)
                self.send_response(answer.status)
                for name, value in answer.headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = _handle
            do_OPTIONS = do_MKCALENDAR = do_PROPPATCH = do_HEAD = do_POST = _handle

        return Handler


@pytest.fixture
def dav_proxy(radicale) -> Iterator[DavProxy]:
    proxy = DavProxy(radicale.port)
    try:
        yield proxy
    finally:
        proxy.stop()


_UID = re.compile(rb"^UID:(.*?)\r?$", re.MULTILINE)


def uid_of(body: bytes) -> str | None:
    found = _UID.search(body)
    return found.group(1).decode().strip() if found else None


def folder(path: str) -> str:
    return path.rsplit("/", 1)[0] + "/"


class Renaming:
    """Stores each created item as ``<sha1 of its UID>.ics``; the written name answers 410."""

    def __init__(self, proxy: DavProxy, *, location: bool) -> None:
        self.location = location
        self.renamed: dict[str, str] = {}
        proxy.before.append(self.before)
        proxy.after.append(self.after)

    @staticmethod
    def name_for(uid: str) -> str:
        return hashlib.sha1(uid.encode()).hexdigest() + ".ics"

    def before(self, request: Request) -> Answer | None:
        if request.path in self.renamed and request.method in ("GET", "PUT", "DELETE", "PROPFIND"):
            return Answer(410, [("Content-Type", "text/plain")], b"Gone")
        if request.method == "PUT" and request.header("If-None-Match") == "*":
            uid = uid_of(request.body)
            target = folder(request.path) + self.name_for(uid or "")
            if uid and target != request.path:
                self.renamed[request.path] = target
                request.path = target
        return None

    def after(self, request: Request, answer: Answer) -> Answer:
        if self.location and request.method == "PUT" and answer.status == 201 and request.path in \
                self.renamed.values():
            answer.headers.append(("Location", request.path))
        return answer


class ForgetfulSync:
    """Every sync-collection REPORT that carries a token gets an empty 207 with a fresh token."""

    _RESPONSE = re.compile(rb"<(?:[\w.-]+:)?response\b.*?</(?:[\w.-]+:)?response>", re.DOTALL)

    def __init__(self, proxy: DavProxy) -> None:
        self.on = True
        proxy.after.append(self.after)

    def after(self, request: Request, answer: Answer) -> Answer:
        if self.on and request.method == "REPORT" and b"sync-collection" in request.body \
                and re.search(rb"<(?:\w+:)?sync-token>[^<]+<", request.body) and answer.status == 207:
            answer.body = self._RESPONSE.sub(b"", answer.body)
        return answer


class OneUidPerHome:
    """A UID may live in one calendar of a user's home (``/user/``); another calendar gets a 403."""

    def __init__(self, proxy: DavProxy) -> None:
        self.where: dict[str, str] = {}
        self.refused = 0
        proxy.before.append(self.before)
        proxy.after.append(self.after)

    def before(self, request: Request) -> Answer | None:
        uid = uid_of(request.body) if request.method == "PUT" else None
        if uid is None:
            return None
        held = self.where.get(uid)
        if held is not None and held != folder(request.path) and held.split("/")[1] == request.path.split("/")[1]:
            self.refused += 1
            body = (b'<?xml version="1.0" encoding="utf-8"?><D:error xmlns:D="DAV:" '
                    b'xmlns:C="urn:ietf:params:xml:ns:caldav"><C:unique-scheduling-object-resource>'
                    b"<D:href>" + held.encode() + b"</D:href></C:unique-scheduling-object-resource></D:error>")
            return Answer(403, [("Content-Type", "application/xml; charset=utf-8")], body)
        return None

    def after(self, request: Request, answer: Answer) -> Answer:
        uid = uid_of(request.body) if request.method == "PUT" else None
        if uid is not None and answer.status in (201, 204):
            self.where.setdefault(uid, folder(request.path))
        return answer
