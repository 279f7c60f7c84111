"""The HTTP listener on its own: a probe sees 503 and the reason when the worker is unhealthy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from processes import http_get

from syncd.errors import ConfigError
from syncd.service.health import HealthServer, parse_listen


@pytest.fixture
def reason() -> list[str | None]:
    return [None]


@pytest.fixture
def server(reason: list[str | None]) -> Iterator[HealthServer]:
    server = HealthServer("127.0.0.1:0", lambda: reason[0], lambda: b"syncd_workers_live 1.0\n")
    server.start()
    yield server
    server.stop()


def test_healthz_follows_the_check(server: HealthServer, reason: list[str | None]) -> None:
    port = server.address[1]
    assert http_get(port, "/healthz") == (200, "ok\n")
    reason[0] = "the store does not answer: connection refused"
    assert http_get(port, "/healthz") == (503, "unhealthy: the store does not answer: connection refused\n")
    assert http_get(port, "/metrics") == (200, "syncd_workers_live 1.0\n")


@pytest.mark.parametrize(("listen", "address"), [
    ("127.0.0.1:9465", ("127.0.0.1", 9465)), ("[::1]:9465", ("::1", 9465)), (":9465", ("0.0.0.0", 9465)),
])
def test_listen_addresses(listen: str, address: tuple[str, int]) -> None:
    assert parse_listen(listen) == address


def test_a_listen_address_without_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="host:port"):
        parse_listen("localhost")
