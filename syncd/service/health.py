"""The HTTP listener: ``/healthz`` for probes and load balancers, ``/metrics`` for Prometheus."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from syncd.errors import ConfigError

#: Returns None when healthy, else the reason it is not.
HealthCheck = Callable[[], str | None]


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all addresses)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"[daemon] listen = {listen!r}: expected host:port, e.g. 127.0.0.1:9465")
    return host.strip("[]") or "0.0.0.0", int(port)


class HealthServer:
    def __init__(self, listen: str, check: HealthCheck, metrics: Callable[[], bytes]) -> None:
        host, port = parse_listen(listen)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        self._server = server_class((host, port), _handler(check, metrics))
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


def _handler(check: HealthCheck, metrics: Callable[[], bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "syncd"

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not worth a log line

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                reason = check()
                if reason is None:
                    self._send(200, b"ok\n", "text/plain; charset=utf-8")
                else:
                    self._send(503, f"unhealthy: {reason}\n".encode(), "text/plain; charset=utf-8")
            elif path == "/metrics":
                self._send(200, metrics(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found: try /healthz or /metrics\n", "text/plain; charset=utf-8")

        do_HEAD = do_GET

    return Handler
