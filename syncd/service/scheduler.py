"""The bindings this worker holds, as APScheduler jobs: one job per binding at its interval (with
jitter), never two passes of one binding at once (``max_instances=1`` in this process, the lease
across processes), an exponential back-off while a binding fails.

A heartbeat job, on an executor of its own so that long passes cannot starve it, keeps the leases:
it renews them, gives back those over this worker's fair share or gone from the config, takes free
ones, and adds or removes the pass jobs to match.
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from syncd.app import App
from syncd.config import Binding, Config
from syncd.logging import get_logger
from syncd.service.leases import LeasedState, Leases, LeaseTaken, fair_share
from syncd.service.metrics import Metrics
from syncd.service.schedule import delay_after, first_run, interval_of

log = get_logger("syncd.service")

HEARTBEATS_PER_TTL = 3
#: How often the change log is pruned (the first time right after start-up).
HOUSEKEEPING_HOURS = 6
_PASS_JOB = "pass:"


class Scheduler:
    def __init__(self, app: App, leases: Leases, metrics: Metrics) -> None:
        self.app = app
        self.leases = leases
        self.metrics = metrics
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._held: set[str] = set()
        self._running: set[str] = set()
        self._ensured: set[str] = set()
        self._delays: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._reported: set[str] = set()
        self._stopping = False
        self._live = 1
        self._heartbeat_at: float | None = None
        self._heartbeat_error: str | None = None
        self._wanted_in: tuple[Config, dict[str, Binding]] | None = None
        self._aps = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(app.config.daemon.passes_at_once),
                "leases": ThreadPoolExecutor(1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    @property
    def config(self) -> Config:
        return self.app.config

    def _wanted(self) -> dict[str, Binding]:
        # Asked at every pass's start and end: made once per config (a reload brings a new one).
        config, made = self.config, self._wanted_in
        if made is not None and made[0] is config:
            return made[1]
        wanted = {b.name: b for b in config.bindings if b.enabled}
        self._wanted_in = (config, wanted)
        return wanted

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Take the first leases (raising if the store does not answer), then start the jobs."""
        self.reconcile(raise_errors=True)
        period = self.leases.ttl.total_seconds() / HEARTBEATS_PER_TTL
        self._aps.add_job(self.reconcile, IntervalTrigger(seconds=period, timezone=UTC), id="leases", executor="leases")
        self._aps.add_job(self.housekeeping, IntervalTrigger(hours=HOUSEKEEPING_HOURS, timezone=UTC),
                          id="housekeeping", executor="leases", next_run_time=datetime.now(UTC))
        self._aps.start()

    def housekeeping(self) -> None:
        """Prune the change log and old passes (any worker may; it is idempotent)."""
        from syncd.engine.housekeeping import prune_change_log, prune_passes

        try:
            with self.app.session() as session:
                pruned = prune_change_log(session, list(self._wanted()), self.config.store.change_log_days)
                passes = prune_passes(session)
            if pruned or passes:
                log.info("store pruned", change_log_entries=pruned, passes=passes)
        except SQLAlchemyError as exc:
            log.error("change log pruning failed", error=_first_line(exc))

    def reload(self, config: Config) -> None:
        """Use a new (validated) config; the heartbeat, run at once, adds and removes pass jobs."""
        with self._lock:
            self.app.config = config
        self._aps.modify_job("leases", next_run_time=datetime.now(UTC))

    def stop(self, timeout: float) -> bool:
        """No new passes; wait up to ``timeout`` for those running; give the leases back.
        False if passes were still running at the deadline (their leases then simply expire)."""
        with self._lock:
            self._stopping = True
        for job in self._aps.get_jobs():
            if job.id.startswith(_PASS_JOB):
                job.remove()
        with self._lock:
            clean = self._idle.wait_for(lambda: not self._running, timeout)
            running = set(self._running)
        self._aps.shutdown(wait=False)
        if self.app.kept is not None:
            self.app.kept.close()
        try:
            if clean:
                self.leases.leave()
            else:
                self.leases.release(self._held - running)
        except SQLAlchemyError as exc:
            log.warning("could not give the leases back; they expire by themselves", error=_first_line(exc))
        return clean

    # -- health ----------------------------------------------------------------------------------

    def health(self) -> str | None:
        """None while the scheduler runs and the store answered the last heartbeat."""
        if not self._aps.running:
            return "the scheduler is not running"
        if self._heartbeat_error:
            return f"the store does not answer: {self._heartbeat_error}"
        ttl = self.leases.ttl.total_seconds()
        if self._heartbeat_at is None or time.monotonic() - self._heartbeat_at > ttl:
            return f"no heartbeat for more than {ttl:g}s"
        return None

    def alive(self) -> bool:
        """The scheduler thread runs (what systemd's watchdog should know; a store outage is not
        cured by a restart)."""
        thread = getattr(self._aps, "_thread", None)
        return self._aps.running and thread is not None and thread.is_alive()

    def summary(self) -> str:
        with self._lock:
            held, wanted = len(self._held & set(self._wanted())), len(self._wanted())
        failing = sum(1 for n, f in self._failures.items() if f and n in self._held)
        text = f"{held} of {wanted} bindings held, {self._live} workers live, {failing} failing"
        reason = self.health()
        return text if reason is None else f"{text}; unhealthy: {reason}"

    # -- the heartbeat ---------------------------------------------------------------------------

    def reconcile(self, raise_errors: bool = False) -> None:
        with structlog.contextvars.bound_contextvars(worker=self.leases.worker):
            try:
                self._reconcile()
            except SQLAlchemyError as exc:
                self._heartbeat_error = _first_line(exc)
                log.error("heartbeat failed", error=self._heartbeat_error)
                if raise_errors:
                    raise
            else:
                self._heartbeat_at, self._heartbeat_error = time.monotonic(), None

    def _reconcile(self) -> None:
        live = self.leases.heartbeat()
        wanted = self._wanted()
        if new := set(wanted) - self._ensured:
            self.leases.ensure(new)
            self._ensured |= new
        mine = self.leases.renew()
        share = fair_share(len(wanted), live)
        with self._lock:
            lost = self._held - mine
            idle_kept = sorted((mine & set(wanted)) - self._running)
            if self._stopping:
                drop = mine - self._running
            else:
                excess = max(0, len(mine & set(wanted)) - share)
                shed = set(random.sample(idle_kept, min(excess, len(idle_kept))))
                drop = ((mine - set(wanted)) - self._running) | shed
            self._held = mine - drop
            stopping = self._stopping
        if lost:
            log.warning("leases taken by another worker", bindings=sorted(lost))
        self.leases.release(drop)
        if not stopping:
            room = share - len(self._held & set(wanted))
            taken = self.leases.acquire(set(wanted) - self._held, room)
            with self._lock:
                self._held |= set(taken)
        self._live = live
        self.metrics.workers.set(live)
        self._sync_jobs(wanted, stopping)

    def _sync_jobs(self, wanted: dict[str, Binding], stopping: bool) -> None:
        with self._lock:
            target = set() if stopping else self._held & set(wanted)
        jobs = {job.id.removeprefix(_PASS_JOB) for job in self._aps.get_jobs() if job.id.startswith(_PASS_JOB)}
        for name in jobs - target:
            self._remove_job(name)
        for name in (self._reported | set(self._failures)) - set(wanted):
            # Gone from the config: its series leave /metrics (counters stay until a restart).
            self.metrics.forget(name)
            self._reported.discard(name)
            self._failures.pop(name, None)
        for name in sorted(set(wanted) - self._reported):
            self.metrics.known(name)
            self._reported.add(name)
        now = datetime.now(UTC)
        for name in sorted(target - jobs):
            info = self.leases.info(name)
            delay = self._delay(wanted[name], info.failures)
            jitter = timedelta(seconds=random.uniform(0, self.config.daemon.jitter))
            start = first_run(info.last_pass_at, delay, now) + jitter
            self._aps.add_job(self._pass, self._trigger(delay), args=[name], id=_PASS_JOB + name, next_run_time=start)
            self._delays[name], self._failures[name] = delay, info.failures
            self.metrics.held(name, True)
            self.metrics.binding_state(name, info.failures, info.last_success_at)
            log.info("binding taken", binding=name, next_run_at=start.isoformat(timespec="seconds"))
        for name in target & jobs:
            self._pace(wanted[name], self._failures.get(name, 0))

    def _remove_job(self, name: str) -> None:
        with suppress(JobLookupError):
            self._aps.remove_job(_PASS_JOB + name)
        if self.app.kept is not None:
            self.app.kept.discard(name)
        self._delays.pop(name, None)
        self.metrics.held(name, False)
        log.info("binding released", binding=name)

    # -- passes ----------------------------------------------------------------------------------

    def _trigger(self, delay: float) -> IntervalTrigger:
        return IntervalTrigger(seconds=delay, jitter=self.config.daemon.jitter or None, timezone=UTC)

    def _delay(self, binding: Binding, failures: int) -> float:
        daemon = self.config.daemon
        return delay_after(interval_of(binding, daemon), failures, daemon.max_backoff)

    def _pace(self, binding: Binding, failures: int) -> None:
        """Re-time the binding's job when its back-off (or its interval, after a reload) changed."""
        delay = self._delay(binding, failures)
        if delay == self._delays.get(binding.name):
            return
        try:
            self._aps.reschedule_job(_PASS_JOB + binding.name, trigger=self._trigger(delay))
        except JobLookupError:
            return
        self._delays[binding.name] = delay
        if failures:
            log.warning("binding failing, backing off", binding=binding.name, failures=failures, retry_in=delay)

    def _pass(self, name: str) -> None:
        with structlog.contextvars.bound_contextvars(worker=self.leases.worker, binding=name):
            with self._lock:
                binding = self._wanted().get(name)
                if self._stopping or name not in self._held or binding is None:
                    return
                self._running.add(name)
            try:
                self._run(binding)
            except Exception:
                self.metrics.errors.labels(name, "internal").inc()
                log.exception("pass crashed")
            finally:
                with self._lock:
                    self._running.discard(name)
                    # Released or removed from the config while this pass ran: its connector
                    # came back after the job was removed, and is not wanted.
                    unwanted = name not in self._held or name not in self._wanted()
                    self._idle.notify_all()
                if unwanted and self.app.kept is not None:
                    self.app.kept.discard(name)

    def _run(self, binding: Binding) -> None:
        name = binding.name
        # The heartbeat renews the lease while the pass runs; the pass starts only under a lease the
        # database confirms, claimed in the transaction that records its start.
        states: list[LeasedState] = []

        def leased(session: Session) -> LeasedState:
            states.append(LeasedState(session, self.leases))
            return states[-1]

        try:
            report = self.app.run_pass(binding, bookkeeping=leased)
        except LeaseTaken:
            log.warning("lease taken by another worker; pass skipped")
            with self._lock:
                self._held.discard(name)
            self._remove_job(name)
            return
        finally:
            for state in states:
                state.release()  # done by the record of the pass's end; not by a pass that crashed before it
        self.metrics.observe(report)
        info = states[-1].info if states and states[-1].info else self.leases.info(name)
        self._failures[name] = info.failures
        self.metrics.binding_state(name, info.failures, info.last_success_at)
        self._pace(binding, info.failures)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
