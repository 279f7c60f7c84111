"""A fault-injecting HTTP proxy for tests: real HTTP on 127.0.0.1 in front of a real server.

API
---
``url, ctl = start(upstream_url)``
    Starts a proxy on a free loopback port in a daemon thread. ``url`` is ``upstream_url`` with
    scheme, host and port replaced by the proxy's (``start("http://127.0.0.1:5232/alice/cal/")`` gives
    ``"http://127.0.0.1:<port>/alice/cal/"``); paths go upstream unchanged. Call ``ctl.stop()`` when
    done (it also ends any ``timeout`` hold at once). ``ctl.url`` is the proxy's root URL.

``ctl.fault(kind, *, method=None, path=None, body=None, match=None, nth=1, times=1, **options) -> Fault``
    Schedules a fault. A request *matches* when it has this ``method`` (case-insensitive), its path
    contains ``path``, its body contains the bytes ``body`` (e.g. ``b"calendar-multiget"`` or
    ``b"sync-collection"`` to tell REPORTs apart) and ``match(request)`` is true; an unset criterion
    matches anything. Matching requests are counted from the moment the fault is scheduled: the
    fault hits the ``nth`` one (1-based) and the ``times - 1`` matching ones after it
    (``times=None``: every one from the ``nth`` on). So ``ctl.fault("status500", nth=3)`` fails the
    third request from now, whatever it is, and ``ctl.fault("truncate", method="GET")`` the next
    GET. Several faults may be pending; a request gets the first (oldest) that hits it. The
    returned :class:`Fault` counts its hits in ``fault.fired``.

Kinds and their options:

``status500`` / ``status503``
    Answer that status without forwarding (upstream never sees the request). ``retry_after``: send
    a Retry-After header with this value.
``drop_before``
    Close the connection without forwarding and without answering.
``drop_after``
    Forward (a write lands upstream), then close the connection without answering.
``timeout``
    Forward (``forward=False``: don't), then hold the answer for ``seconds`` (default 30, meant to
    be longer than the client's timeout) and close without answering.
``truncate``
    Forward, then send only part of the body. ``keep``: bytes to keep (``int``) or a fraction of the
    body (``float``, default 0.5); ``at_line`` (default True): cut after the last complete line
    before that point, so iCalendar text still looks line-complete (a body with no line end before
    it, as XML often is, is cut at the point itself). ``announce``: ``"full"``
    (default) sends the upstream Content-Length and closes the connection after the short body (a
    connection cut mid-body); ``"actual"`` sends a Content-Length matching the short body (a short
    answer no HTTP client can notice).
``truncate_ics``
    Forward, then cut the iCalendar data at a line boundary while keeping the answer well-formed:
    a ``text/calendar`` body is cut as by ``truncate(at_line=True, announce="actual")``; in a
    multistatus every ``calendar-data`` (or, with ``item="x.ics"``, only those of hrefs containing
    that text) is cut the same way. ``keep`` as for ``truncate``.
``garbage``
    Forward, then replace the body with non-XML bytes (``data``, default a fixed junk string) with
    a matching Content-Length; status and other headers stay.
``etag``
    Forward, then alter the ETag header: ``value`` is sent instead (default: the upstream tag with
    ``-altered`` inside the quotes; ``value=""`` drops the header).
``rewrite``
    Forward, then ``rewrite(request, answer) -> answer`` (``Answer`` is status, headers, body;
    Content-Length is set from the body).

Counting: ``ctl.count(method=None, path=None)`` is how many requests (matching those criteria)
reached the proxy since start or the last ``ctl.reset()``; ``ctl.requests`` lists them as
:class:`Request` (method, path, headers, body, and ``fault``: the kind applied, or None).
``ctl.reset()`` clears that log and drops pending faults; ``ctl.clear_faults()`` only the faults.

The proxy strips Accept-Encoding, so bodies come back uncompressed and can be cut or rewritten, and
answers every request with HTTP/1.1 keep-alive unless a fault closes the connection.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit, urlunsplit

KINDS = frozenset(
    {
        "status500",
        "status503",
        "drop_before",
        "drop_after",
        "timeout",
        "truncate",
        "truncate_ics",
        "garbage",
        "etag",
        "rewrite",
    }
)
_OPTIONS: dict[str, frozenset[str]] = {
    "status500": frozenset({"retry_after"}),
    "status503": frozenset({"retry_after"}),
    "drop_before": frozenset(),
    "drop_after": frozenset(),
    "timeout": frozenset({"seconds", "forward"}),
    "truncate": frozenset({"keep", "at_line", "announce"}),
    "truncate_ics": frozenset({"keep", "item"}),
    "garbage": frozenset({"data"}),
    "etag": frozenset({"value"}),
    "rewrite": frozenset({"rewrite"}),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te"}
#: Not forwarded, so answers come back uncompressed and a fault can cut or rewrite them.
_NOT_FORWARDED = _HOP_BY_HOP | {"accept-encoding"}


def forward(
    host: str, port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes, timeout: float
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request passed on upstream as it came (but uncompressed), and its answer without the
    hop-by-hop headers; shared with tests/radicale_server.py's counting proxy."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            if name.lower() not in _NOT_FORWARDED:
                conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        kept = [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_BY_HOP]
        return response.status, kept, data
    finally:
        conn.close()


_GARBAGE = b"\x00\xff<<not xml, not iCalendar>>\x00 garbage from fault_proxy\n"
_CALENDAR_DATA = re.compile(rb"(<(?:[\w.-]+:)?calendar-data\b[^>]*>)(.*?)(</(?:[\w.-]+:)?calendar-data>)", re.DOTALL)
_RESPONSE = re.compile(rb"<(?:[\w.-]+:)?response\b.*?</(?:[\w.-]+:)?response>", re.DOTALL)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fault: str | None = None
    """The kind of fault applied to this request, if any."""


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def with_header(self, name: str, value: str | None) -> Answer:
        kept = [(n, v) for n, v in self.headers if n.lower() != name.lower()]
        if value is not None:
            kept.append((name, value))
        return Answer(self.status, kept, self.body)


@dataclass
class Fault:
    kind: str
    method: str | None
    path: str | None
    body: bytes | None
    match: Callable[[Request], bool] | None
    nth: int
    times: int | None
    options: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    """Matching requests since the fault was scheduled."""
    fired: int = 0
    """Requests the fault was applied to."""

    def matches(self, request: Request) -> bool:
        if self.method is not None and request.method.upper() != self.method.upper():
            return False
        if self.path is not None and self.path not in request.path:
            return False
        if self.body is not None and self.body not in request.body:
            return False
        return self.match is None or self.match(request)

    def _count(self, free: bool) -> bool:
        """Count a matching request; whether the fault hits it (only if no older fault took it)."""
        self.seen += 1
        if not free or self.seen < self.nth or self.spent:
            return False
        self.fired += 1
        return True

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times


class Controller:
    """Schedules faults and counts requests for one running proxy (see the module docstring)."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the fault proxy forwards plain HTTP on loopback only, not {upstream_url!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.requests: list[Request] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fault(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        body: bytes | None = None,
        match: Callable[[Request], bool] | None = None,
        nth: int = 1,
        times: int | None = 1,
        **options: Any,
    ) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(sorted(KINDS))}")
        unknown = set(options) - _OPTIONS[kind]
        if unknown:
            raise TypeError(f"fault {kind!r} takes no option(s) {', '.join(sorted(unknown))}")
        if kind == "rewrite" and not callable(options.get("rewrite")):
            raise TypeError("fault 'rewrite' needs rewrite=callable(request, answer) -> answer")
        if nth < 1 or (times is not None and times < 1):
            raise ValueError("nth and times count from 1")
        scheduled = Fault(kind, method, path, body, match, nth, times, dict(options))
        with self._lock:
            self._faults.append(scheduled)
        return scheduled

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method.upper() == method.upper()) and (path is None or path in r.path)
            )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- inside the proxy ----------------------------------------------------------------------

    def _arrive(self, request: Request) -> tuple[Request, Fault | None]:
        """Log the request and pick the fault that hits it, atomically, so counts are exact."""
        with self._lock:
            hit: Fault | None = None
            for scheduled in self._faults:
                # Every pending fault counts its matches, so "the 3rd GET from now" stays true
                # even while an older fault takes the request.
                if scheduled.matches(request) and scheduled._count(hit is None):
                    hit = scheduled
            if hit is not None:
                request = Request(request.method, request.path, request.headers, request.body, hit.kind)
            self._faults = [f for f in self._faults if not f.spent]
            self.requests.append(request)
            return request, hit

    def _forward(self, request: Request) -> Answer:
        status, headers, body = forward(self.upstream_host, self.upstream_port, request.method, request.path,
                                        list(request.headers.items()), request.body, timeout=30)
        return Answer(status, headers, body)

    def _hold(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def start(upstream_url: str) -> tuple[str, Controller]:
    """Start a proxy in front of ``upstream_url``; returns the URL to use instead and its controller."""
    controller = Controller(upstream_url)
    controller._thread.start()
    parts = urlsplit(upstream_url)
    proxied = urlunsplit(("http", f"127.0.0.1:{controller._server.server_address[1]}", parts.path, parts.query, ""))
    return proxied, controller


# --- the faults that change an answer ------------------------------------------------------------


def cut(data: bytes, keep: float, at_line: bool) -> bytes:
    """The first part of ``data``: ``keep`` bytes or that fraction of them, back to a line end if asked."""
    size = keep if isinstance(keep, int) else int(len(data) * keep)
    size = max(0, min(size, len(data)))
    if at_line:
        end = data.rfind(b"\n", 0, size)
        # A one-line body (XML often is) has no line end to go back to: cut it where asked.
        size = end + 1 if end >= 0 else size
    return data[:size]


def _truncate_ics(answer: Answer, keep: float, item: str | None) -> Answer:
    if answer.body.lstrip().startswith(b"<"):

        def cut_data(match: re.Match[bytes]) -> bytes:
            return match.group(1) + cut(match.group(2), keep, True) + match.group(3)

        def cut_response(match: re.Match[bytes]) -> bytes:
            response = match.group(0)
            if item is not None and item.encode() not in response:
                return response
            return _CALENDAR_DATA.sub(cut_data, response)

        return Answer(answer.status, answer.headers, _RESPONSE.sub(cut_response, answer.body))
    return Answer(answer.status, answer.headers, cut(answer.body, keep, True))


def _altered_etag(etag: str | None) -> str | None:
    if not etag:
        return None
    weak = etag.startswith("W/")
    opaque = etag[2:] if weak else etag
    return ("W/" if weak else "") + '"' + opaque.strip('"') + '-altered"'


def _handler_class(controller: Controller) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # see tests/radicale_server.py: 40 ms per request otherwise
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output clean

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request, hit = controller._arrive(Request(self.command, self.path, dict(self.headers.items()), body))
            kind = hit.kind if hit is not None else None
            options = hit.options if hit is not None else {}
            if kind == "drop_before":
                self._close()
                return
            if kind in ("status500", "status503"):
                status = 500 if kind == "status500" else 503
                answer = Answer(status, [("Content-Type", "text/plain")], f"injected HTTP {status}\n".encode())
                if options.get("retry_after") is not None:
                    answer = answer.with_header("Retry-After", str(options["retry_after"]))
                self._send(answer)
                return
            if kind == "timeout":
                if options.get("forward", True):
                    controller._forward(request)
                controller._hold(float(options.get("seconds", 30.0)))
                self._close()
                return
            try:
                answer = controller._forward(request)
            except OSError as exc:
                self._send(Answer(502, [("Content-Type", "text/plain")], f"upstream failed: {exc}\n".encode()))
                return
            if kind == "drop_after":
                self._close()
                return
            if kind == "truncate":
                keep = options.get("keep", 0.5)
                short = cut(answer.body, keep, bool(options.get("at_line", True)))
                if options.get("announce", "full") == "full":
                    self._send(answer, body=short, length=len(answer.body))
                    self._close()
                    return
                answer = Answer(answer.status, answer.headers, short)
            elif kind == "truncate_ics":
                answer = _truncate_ics(answer, options.get("keep", 0.5), options.get("item"))
            elif kind == "garbage":
                answer = Answer(answer.status, answer.headers, options.get("data", _GARBAGE))
            elif kind == "etag":
                value = options["value"] if "value" in options else _altered_etag(answer.header("ETag"))
                answer = answer.with_header("ETag", value or None)
            elif kind == "rewrite":
                answer = options["rewrite"](request, answer)
            self._send(answer)

        def _send(self, answer: Answer, body: bytes | None = None, length: int | None = None) -> None:
            data = answer.body if body is None else body
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data) if length is None else length))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()

        def _close(self) -> None:
            self.close_connection = True

        do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = _handle
        do_OPTIONS = do_MKCALENDAR = do_PROPPATCH = do_HEAD = do_POST = do_MOVE = do_COPY = _handle

    return Handler
