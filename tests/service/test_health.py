"""The HTTP listener on its own: a probe sees 503 and the reason when the worker is unhealthy, and
Prometheus gets its scrape the way it asks for it (gzip, OpenMetrics, name[]), with every configured
binding's series there before its first pass."""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from processes import http_get, metric

from syncd import __version__
from syncd.app import App
from syncd.config import Config, parse
from syncd.errors import ConfigError
from syncd.service.health import HealthServer, parse_listen
from syncd.service.leases import Leases
from syncd.service.metrics import ERROR_KINDS, PASS_RESULTS, Metrics
from syncd.service.scheduler import Scheduler

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def get(port: int, path: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture
def reason() -> list[str | None]:
    return [None]


@pytest.fixture
def server(reason: list[str | None]) -> Iterator[HealthServer]:
    server = HealthServer("127.0.0.1:0", lambda: reason[0], lambda: b"syncd_workers_live 1.0\n")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def metrics() -> Metrics:
    metrics = Metrics()
    metrics.workers.set(1)
    metrics.known("anna")
    metrics.passes.labels("anna", "ok").inc(3)
    return metrics


@pytest.fixture
def scraped(metrics: Metrics) -> Iterator[int]:
    """A listener serving ``metrics`` as the daemon wires it (``Metrics.render``); yields its port."""
    server = HealthServer("127.0.0.1:0", lambda: None, metrics.render)
    server.start()
    yield server.address[1]
    server.stop()


def test_healthz_follows_the_check(server: HealthServer, reason: list[str | None]) -> None:
    port = server.address[1]
    assert http_get(port, "/healthz") == (200, "ok\n")
    reason[0] = "the store does not answer: connection refused"
    assert http_get(port, "/healthz") == (503, "unhealthy: the store does not answer: connection refused\n")
    assert http_get(port, "/metrics") == (200, "syncd_workers_live 1.0\n")


def test_metrics_are_gzipped_for_a_scraper_that_accepts_it(scraped: int) -> None:
    status, headers, body = get(scraped, "/metrics", Accept_Encoding="gzip")
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert int(headers["Content-Length"]) == len(body)
    text = gzip.decompress(body).decode()
    assert metric(text, "syncd_passes_total", binding="anna", result="ok") == 3
    assert headers["Content-Type"].startswith("text/plain; version=")

    status, headers, body = get(scraped, "/metrics")
    assert status == 200 and "Content-Encoding" not in headers
    assert metric(body.decode(), "syncd_passes_total", binding="anna", result="ok") == 3


def test_openmetrics_for_a_scraper_that_asks_for_it(scraped: int) -> None:
    status, headers, body = get(scraped, "/metrics", Accept=OPENMETRICS)
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert 'syncd_passes_total{binding="anna",result="ok"} 3.0' in text


def test_name_filter_gives_only_the_metrics_asked_for(scraped: int) -> None:
    status, _, body = get(scraped, "/metrics?name[]=syncd_passes_total")
    samples = [line for line in body.decode().splitlines() if not line.startswith("#")]
    assert status == 200 and samples
    assert {line.split("{")[0] for line in samples} == {"syncd_passes_total"}
    assert metric(body.decode(), "syncd_passes_total", binding="anna", result="ok") == 3


def test_head_gets_the_headers_without_a_body(scraped: int) -> None:
    status, headers, body = get(scraped, "/metrics", method="HEAD", Accept_Encoding="gzip")
    assert (status, body) == (200, b"")
    assert headers["Content-Encoding"] == "gzip" and int(headers["Content-Length"]) > 0
    assert get(scraped, "/healthz", method="HEAD")[::2] == (200, b"")
    assert get(scraped, "/nowhere")[0] == 404


def test_process_platform_and_build_info_are_exported(scraped: int) -> None:
    text = get(scraped, "/metrics")[2].decode()
    assert metric(text, "syncd_build_info", version=__version__) == 1
    assert metric(text, "process_resident_memory_bytes") > 0
    assert metric(text, "process_start_time_seconds") > 0
    assert "python_info{" in text


def test_a_configured_binding_that_never_ran_has_every_series_at_zero(tmp_path: Path) -> None:
    """Before its first pass (or when it never succeeded) a binding's counters, gauges and last
    success are 0, so `time() - syncd_last_success_timestamp_seconds > 3 * interval` fires for it;
    a binding dropped from the config leaves the gauges."""
    # Nothing listens there; no pass runs in this test anyway.
    remote = {"type": "caldav", "url": "http://127.0.0.1:9/dav/", "username": "u", "password": "p"}

    def config(*names: str) -> Config:
        return parse({"store": {"url": f"sqlite:///{tmp_path / 'store.sqlite3'}"},
                      "bindings": [{"name": n, "owner": f"{n}@example.com", "remote": remote} for n in names]})

    app = App(config("anna", "bob"), worker="test-worker")
    app.ensure_schema()
    metrics = Metrics()
    leases = Leases(app.engine, "test-worker", 30)
    # Never started: the heartbeat takes the leases and plans the passes, none runs.
    scheduler = Scheduler(app, leases, metrics)
    server = HealthServer("127.0.0.1:0", lambda: None, metrics.render)
    server.start()
    try:
        scheduler.reconcile(raise_errors=True)
        text = http_get(server.address[1], "/metrics")[1]
        for name in ("anna", "bob"):
            for result in PASS_RESULTS:
                assert metric(text, "syncd_passes_total", binding=name, result=result) == 0
            for kind in ERROR_KINDS:
                assert metric(text, "syncd_errors_total", binding=name, kind=kind) == 0
            assert metric(text, "syncd_items_total", binding=name, direction="to_calendar", action="created") == 0
            assert metric(text, "syncd_items_total", binding=name, direction="link", action="paired") == 0
            assert metric(text, "syncd_conflicts_total", binding=name) == 0
            assert metric(text, "syncd_pass_duration_seconds_count", binding=name) == 0
            assert metric(text, "syncd_last_success_timestamp_seconds", binding=name) == 0
            assert metric(text, "syncd_binding_failing", binding=name) == 0
            assert metric(text, "syncd_binding_consecutive_failures", binding=name) == 0
            assert metric(text, "syncd_items_in_error", binding=name) == 0
            assert metric(text, "syncd_lease_held", binding=name) == 1

        scheduler.app.config = config("bob")
        scheduler.reconcile(raise_errors=True)
        text = http_get(server.address[1], "/metrics")[1]
        assert metric(text, "syncd_lease_held", binding="anna") is None
        assert metric(text, "syncd_last_success_timestamp_seconds", binding="anna") is None
        assert metric(text, "syncd_lease_held", binding="bob") == 1
    finally:
        server.stop()
        leases.leave()
        app.engine.dispose()


def test_a_released_binding_leaves_its_state_to_the_holder() -> None:
    """A worker that gives a binding up stops reporting its last success and failures: the holder
    reports them, and a stale copy here would fire (or keep firing) an alert."""
    metrics = Metrics()
    metrics.known("anna")
    metrics.held("anna", True)
    metrics.binding_state("anna", 4, datetime(2026, 1, 1, tzinfo=UTC))
    metrics.in_error.labels("anna").set(2)
    value = metrics.registry.get_sample_value
    assert value("syncd_last_success_timestamp_seconds", {"binding": "anna"}) == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert value("syncd_binding_failing", {"binding": "anna"}) == 1
    metrics.held("anna", False)
    assert value("syncd_last_success_timestamp_seconds", {"binding": "anna"}) is None
    for name in ("syncd_binding_failing", "syncd_binding_consecutive_failures", "syncd_items_in_error", "syncd_lease_held"):
        assert value(name, {"binding": "anna"}) == 0


@pytest.mark.parametrize(("listen", "address"), [
    ("127.0.0.1:9465", ("127.0.0.1", 9465)), ("[::1]:9465", ("::1", 9465)), (":9465", ("0.0.0.0", 9465)),
])
def test_listen_addresses(listen: str, address: tuple[str, int]) -> None:
    assert parse_listen(listen) == address


def test_a_listen_address_without_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="host:port"):
        parse_listen("localhost")
