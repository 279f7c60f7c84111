"""The HTTP listener: ``/healthz`` for probes and load balancers, ``/metrics`` for Prometheus.

``/metrics`` is prometheus_client's own WSGI app, so a scrape gets what Prometheus asks for: gzip
(a thousand bindings make megabytes of text, a tenth of that compressed), the OpenMetrics format,
and ``?name[]=...`` to fetch only some metrics.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, make_wsgi_app

from syncd.errors import ConfigError

#: Returns None when healthy, else the reason it is not.
HealthCheck = Callable[[], str | None]
#: What /metrics serves: a registry, or a function that renders the text format.
MetricsSource = CollectorRegistry | Callable[[], bytes]
_WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all addresses)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"[daemon] listen = {listen!r}: expected host:port, e.g. 127.0.0.1:9465")
    return host.strip("[]") or "0.0.0.0", int(port)


def _registry_of(metrics: MetricsSource) -> CollectorRegistry | None:
    if isinstance(metrics, CollectorRegistry):
        return metrics
    # ``Metrics.render``, as the daemon hands it over: serving its registry is what gives the
    # scrape gzip, OpenMetrics and name[]; a bare function can only give the plain text.
    registry = getattr(getattr(metrics, "__self__", None), "registry", None)
    return registry if isinstance(registry, CollectorRegistry) else None


class HealthServer:
    def __init__(self, listen: str, check: HealthCheck, metrics: MetricsSource) -> None:
        host, port = parse_listen(listen)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        registry = _registry_of(metrics)
        if registry is not None:
            handler = _handler(check, make_wsgi_app(registry), None)
        else:
            assert callable(metrics)
            handler = _handler(check, None, metrics)
        self._server = server_class((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="syncd-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    check: HealthCheck, app: _WsgiApp | None, render: Callable[[], bytes] | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "syncd"

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not worth a log line

        def _send(self, status: int, body: bytes, headers: Iterable[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _text(self, status: int, body: bytes) -> None:
            self._send(status, body, [("Content-Type", "text/plain; charset=utf-8")])

        def _metrics(self, query: str) -> None:
            if app is None:
                assert render is not None
                self._send(200, render(), [("Content-Type", CONTENT_TYPE_LATEST)])
                return
            # The app answers GET only; a HEAD gets the GET's headers, without the body (_send).
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": query}
            for header, key in (("Accept", "HTTP_ACCEPT"), ("Accept-Encoding", "HTTP_ACCEPT_ENCODING")):
                if (value := self.headers.get(header)) is not None:
                    environ[key] = value
            answer: list[Any] = []
            body = b"".join(app(environ, lambda status, headers, exc_info=None: answer.extend((status, headers))))
            status, headers = answer
            # Caches between Prometheus and syncd must not serve a gzipped or OpenMetrics answer
            # to a client that did not ask for it.
            self._send(int(status.split()[0]), body, [*headers, ("Vary", "Accept, Accept-Encoding")])

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/healthz":
                reason = check()
                if reason is None:
                    self._text(200, b"ok\n")
                else:
                    self._text(503, f"unhealthy: {reason}\n".encode())
            elif path == "/metrics":
                self._metrics(query)
            else:
                self._text(404, b"not found: try /healthz or /metrics\n")

        do_HEAD = do_GET

    return Handler
