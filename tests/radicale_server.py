"""Test helpers: a real Radicale on loopback, and a small HTTP proxy in front of it that counts
requests and can fail on purpose (HTTP 500, no answer, rewritten answers). Real HTTP, no mocks.

Use the fixtures by importing them into a test module (``from radicale_server import radicale``).
"""

from __future__ import annotations

import base64
import http.client
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from fault_proxy import forward

from syncd.connectors.radicale_embedded import EmbeddedRadicale

USER = "alice"
PASSWORD = "wonderland"
_names = itertools.count(1)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    body: bytes


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


#: A rewrite gets the request and the upstream answer; it returns the answer to send (or the same).
Rewrite = Callable[[Seen, Answer], Answer]

_CALENDAR_DATA = re.compile(rb"<(?:[\w.-]+:)?calendar-data\b[^>]*?(?:/>|>.*?</(?:[\w.-]+:)?calendar-data>)", re.S)


def without_listed_bodies(seen: Seen, answer: Answer) -> Answer:
    """A server that leaves calendar-data out of a sync-collection answer (RFC 6578 lets a client ask
    for it; not every server sends it), so that a first pull reads its items by multiget."""
    if seen.method == "REPORT" and b"sync-collection" in seen.body:
        return Answer(answer.status, answer.headers, _CALENDAR_DATA.sub(b"", answer.body))
    return answer


class FaultProxy:
    """A loopback reverse proxy in front of ``upstream_port``.

    ``mode`` is ``"pass"`` (forward), ``"error"`` (answer 500 without asking upstream) or ``"hang"``
    (say nothing for ``hang_seconds``, longer than any client timeout in the tests). ``requests``
    records every request that reached the proxy, in order.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.hang_seconds = 5.0
        self.rewrite: Rewrite | None = None
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for seen in self.requests if method is None or seen.method == method)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _forward(self, seen: Seen, headers: list[tuple[str, str]]) -> Answer:
        status, kept, body = forward("127.0.0.1", self.upstream_port, seen.method, seen.path, headers, seen.body,
                                     timeout=10)
        return Answer(status, kept, body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # http.server sends headers and body in two writes; with Nagle's algorithm the client's
            # delayed ACK holds the body back about 40 ms per request, which dominated the suite's time.
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # keep pytest output clean

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, self.rfile.read(length) if length else b"")
                proxy._record(seen)
                if proxy.mode == "hang":
                    proxy._stopping.wait(proxy.hang_seconds)
                    self.close_connection = True
                    return
                if proxy.mode == "error":
                    answer = Answer(500, [("Content-Type", "text/plain")], b"injected failure")
                else:
                    answer = proxy._forward(seen, list(self.headers.items()))
                    if proxy.rewrite is not None:
                        answer = proxy.rewrite(seen, answer)
                self.send_response(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = _handle
            do_OPTIONS = do_MKCALENDAR = do_PROPPATCH = do_HEAD = do_POST = _handle

        return Handler


def unique_name(prefix: str = "cal") -> str:
    """A collection name no other test uses, so tests can share one server."""
    return f"{prefix}-{next(_names)}"


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRadicale]:
    """One Radicale for the session, with user ``USER``; each test makes its own calendars."""
    server = EmbeddedRadicale(tmp_path_factory.mktemp("radicale"))
    server.add_user(USER, PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(radicale: EmbeddedRadicale) -> Iterator[FaultProxy]:
    """A fresh counting/failing proxy in front of the session's Radicale."""
    fault_proxy = FaultProxy(radicale.port).start()
    try:
        yield fault_proxy
    finally:
        fault_proxy.stop()


def put_raw(url: str, data: bytes, user: str = USER, password: str = PASSWORD) -> int:
    """PUT bytes as they are, with a plain HTTP client (for items syncd would never write)."""
    parts = urlsplit(url)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request(
            "PUT",
            parts.path,
            body=data,
            headers={"Authorization": f"Basic {token}", "Content-Type": "text/calendar; charset=utf-8"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
