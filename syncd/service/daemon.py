"""``syncd run``: start the scheduler and the HTTP listener, then wait for signals.

SIGHUP reloads the config (a config that does not validate is refused and the old one stays);
SIGTERM and SIGINT stop: no new passes, running ones get ``[daemon] stop_timeout`` seconds to finish,
the leases are given back, exit 0. The signals are blocked in every thread and taken by the main
thread with ``sigtimedwait``, which also paces systemd's watchdog.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import time

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from syncd import config as config_module
from syncd import logging as log_setup
from syncd.app import App
from syncd.config import Config
from syncd.errors import ConfigError, SyncdError
from syncd.logging import get_logger
from syncd.service.health import HealthServer
from syncd.service.leases import Leases, worker_id
from syncd.service.metrics import Metrics
from syncd.service.notify import Notifier, watchdog_period
from syncd.service.scheduler import Scheduler
from syncd.store.db import store_error

log = get_logger("syncd.service")

_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
#: The longest the main thread sleeps between looks at the watchdog and the status line.
_TICK = 1.0


def _register_secrets(config: Config) -> None:
    # The service can read its secrets: handing them to the scrubber here, before any pass thread
    # starts, spares the threads from growing the scrubber's set while others iterate it.
    store_password = make_url(config.store.url).password
    log_setup.register_secrets([*config.secrets(read=True), *([str(store_password)] if store_password else [])])


class Daemon:
    def __init__(self, config: Config, config_path: str | None) -> None:
        self.config_path = config_path
        self.worker = worker_id()
        self.app = App(config, worker=self.worker, keep_connectors=True)
        self.metrics = Metrics()
        self.leases = Leases(self.app.engine, self.worker, config.daemon.lease_ttl)
        self.scheduler = Scheduler(self.app, self.leases, self.metrics)
        self.notifier = Notifier()
        self.http: HealthServer | None = None

    @property
    def config(self) -> Config:
        return self.app.config

    def run(self) -> bool:
        """Serve until SIGTERM/SIGINT; True when every pass finished before the deadline.

        Raises before serving when the store cannot be used (the driver's error) or the listen
        address cannot be had (:class:`ConfigError`); nothing has started then."""
        _register_secrets(self.config)
        # Both before the signals are blocked: a SIGTERM while a slow store is being reached ends
        # syncd at once, and a taken port is found before any lease is.
        self.app.ensure_schema()
        self.http = self._bind()
        # Before any thread starts, so that every thread inherits the mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            self.scheduler.start()
        except BaseException:
            if self.http is not None:
                # socketserver's shutdown() waits for a serve loop that never ran: start one to stop it.
                self.http.start()
                self.http.stop()
            raise
        if self.http is not None:
            self.http.start()
        host, port = self.http.address if self.http else ("", 0)
        log.info("syncd running", bindings=len(self.config.bindings), listen=f"{host}:{port}" if port else None,
                 lease_ttl=self.config.daemon.lease_ttl)
        self.notifier.ready(self.scheduler.summary())
        self._serve()
        log.info("stopping: no new passes", stop_timeout=self.config.daemon.stop_timeout)
        self.notifier.stopping()
        clean = self.scheduler.stop(self.config.daemon.stop_timeout)
        if self.http is not None:
            self.http.stop()
        if clean:
            log.info("stopped")
        else:
            log.warning("stopped with passes still running; they are repeated by the next pass")
        return clean

    def _bind(self) -> HealthServer | None:
        listen = self.config.daemon.listen
        if not listen:
            return None
        try:
            return HealthServer(listen, self.scheduler.health, self.metrics.render)
        except OSError as exc:
            hint = (" (another process listens there, perhaps another syncd run: stop it, choose another "
                    'port, or set listen = "" to turn the listener off)') if exc.errno == errno.EADDRINUSE else ""
            raise ConfigError(
                f"[daemon] listen = {listen!r}: cannot listen there: {exc.strerror or exc}{hint}"
            ) from None

    def _serve(self) -> None:
        watchdog = watchdog_period()
        next_ping = 0.0
        status = ""
        while True:
            now = time.monotonic()
            if watchdog is not None and now >= next_ping and self.scheduler.alive():
                self.notifier.watchdog()
                next_ping = now + watchdog
            if (text := self.scheduler.summary()) != status:
                self.notifier.status(text)
                status = text
            wait = _TICK if watchdog is None else max(0.01, min(_TICK, next_ping - time.monotonic()))
            info = signal.sigtimedwait(_SIGNALS, wait)
            if info is None:
                continue
            if info.si_signo == signal.SIGHUP:
                self.reload()
            else:
                log.info("signal received", signal=signal.Signals(info.si_signo).name)
                return

    def reload(self) -> None:
        self.notifier.reloading()
        try:
            new = config_module.load(self.config_path)
            if new.store.url != self.config.store.url:
                raise ConfigError("[store] url cannot change while syncd runs; restart it")
        except ConfigError as exc:
            log.error("config reload refused; the running config stays in force", error=str(exc))
            self.notifier.ready(self.scheduler.summary())
            return
        for key in ("listen", "lease_ttl"):
            if getattr(new.daemon, key) != getattr(self.config.daemon, key):
                log.warning("this setting takes effect at the next restart", setting=f"daemon.{key}")
        _register_secrets(new)
        if new.logging != self.config.logging:
            log_setup.configure(new.logging.level, new.logging.format)
        old = {b.name for b in self.config.bindings}
        names = {b.name for b in new.bindings}
        self.scheduler.reload(new)
        log.info("config reloaded", added=sorted(names - old), removed=sorted(old - names), bindings=len(names))
        self.notifier.ready(self.scheduler.summary())


def serve(config: Config, config_path: str | None) -> int:
    """The ``syncd run`` command."""
    # An overlapping schedule is expected (a pass longer than its interval) and handled by
    # max_instances; APScheduler would log a warning for each skipped run. Alembic's schema check
    # at start-up is not news either.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    daemon = Daemon(config, config_path)
    structlog.contextvars.bind_contextvars(worker=daemon.worker)
    try:
        clean = daemon.run()
    except SQLAlchemyError as exc:
        # The store cannot be reached (exit 75: systemd starts syncd again after RestartSec) or
        # fails; the command line prints the line, systemctl status shows it.
        error = store_error(exc, config.store.url)
        daemon.notifier.status(f"not started: {error}")
        raise error from None
    except SyncdError as exc:
        daemon.notifier.status(f"not started: {exc}")
        raise
    if not clean:
        # Passes still running hold worker threads the interpreter would wait for at exit.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
