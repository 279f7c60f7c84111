"""Prometheus metrics of one worker, in a registry of its own (no process-global state)."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from syncd import __version__
from syncd.engine.runner import PassReport

#: PassReport.counts keys that move items: (direction, action).
_ITEM_COUNTS = {
    "remote_created": ("to_calendar", "created"),
    "remote_updated": ("to_calendar", "updated"),
    "remote_deleted": ("to_calendar", "deleted"),
    "crm_created": ("to_crm", "created"),
    "crm_updated": ("to_crm", "updated"),
    "crm_deleted": ("to_crm", "deleted"),
    "paired": ("link", "paired"),
    "relinked": ("link", "relinked"),
    "unlinked": ("link", "unlinked"),
}

#: A pass that did not end "ok" is an error of this kind: the remote or store failed as a whole
#: ("pass"), or the mass-deletion guard stopped it ("safety").
_PASS_ERROR_KIND = {"failed": "pass", "stopped": "safety"}

#: The label values the README documents, created at 0 for every configured binding: a series that
#: appears only with its first increment makes ``rate()`` and ``increase()`` miss that increment,
#: and an alert cannot see a binding that never ran.
PASS_RESULTS = ("ok", "failed", "stopped")
ERROR_KINDS = ("item", "pass", "safety", "internal")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter("syncd_passes", "Passes run, by binding and result.", ["binding", "result"], registry=r)
        self.items = Counter("syncd_items", "Items written, by binding, direction and action.",
                             ["binding", "direction", "action"], registry=r)
        self.conflicts = Counter("syncd_conflicts", "Conflicts met (settled by policy or kept).", ["binding"],
                                 registry=r)
        self.errors = Counter("syncd_errors", "Errors: item (one item failed), pass (the pass failed), "
                              "safety (the mass-deletion guard stopped the pass).", ["binding", "kind"], registry=r)
        self.duration = Histogram("syncd_pass_duration_seconds", "Duration of passes.", ["binding"], registry=r,
                                  buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900))
        self.last_success = Gauge("syncd_last_success_timestamp_seconds",
                                  "Unix time of the binding's last successful pass.", ["binding"], registry=r)
        self.failing = Gauge("syncd_binding_failing", "1 while the binding's passes keep failing.", ["binding"],
                             registry=r)
        self.failures = Gauge("syncd_binding_consecutive_failures", "Failed passes in a row.", ["binding"], registry=r)
        self.in_error = Gauge("syncd_items_in_error", "Items of the binding in error after its last pass "
                              "(`syncd status --binding NAME` lists them).", ["binding"], registry=r)
        self.lease = Gauge("syncd_lease_held", "1 while this worker holds the binding's lease.", ["binding"],
                           registry=r)
        self.workers = Gauge("syncd_workers_live", "Workers sharing the store's bindings.", registry=r)
        Info("syncd_build", "The running syncd's version.", registry=r).info({"version": __version__})
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def known(self, name: str) -> None:
        """A configured binding: all its series exist from now on, at 0 until something happens."""
        for result in PASS_RESULTS:
            self.passes.labels(name, result)
        for direction, action in _ITEM_COUNTS.values():
            self.items.labels(name, direction, action)
        self.conflicts.labels(name)
        for kind in ERROR_KINDS:
            self.errors.labels(name, kind)
        self.duration.labels(name)
        for gauge in (self.failing, self.failures, self.in_error, self.lease):
            gauge.labels(name)

    def observe(self, report: PassReport) -> None:
        name = report.binding
        self.passes.labels(name, report.result).inc()
        self.duration.labels(name).observe(report.seconds)
        for key, (direction, action) in _ITEM_COUNTS.items():
            if report.counts.get(key):
                self.items.labels(name, direction, action).inc(report.counts[key])
        if report.counts.get("conflicts"):
            self.conflicts.labels(name).inc(report.counts["conflicts"])
        if report.counts.get("errors"):
            self.errors.labels(name, "item").inc(report.counts["errors"])
        if report.result in _PASS_ERROR_KIND:
            self.errors.labels(name, _PASS_ERROR_KIND[report.result]).inc()
        else:
            self.in_error.labels(name).set(report.items_in_error)

    def binding_state(self, name: str, failures: int, last_success_at: datetime | None) -> None:
        self.failing.labels(name).set(1 if failures else 0)
        self.failures.labels(name).set(failures)
        # 0 for "never": `time() - syncd_last_success_timestamp_seconds > 3 * interval` then fires
        # for a binding that never synced, where a missing series would keep the alert silent.
        self.last_success.labels(name).set(last_success_at.timestamp() if last_success_at else 0)

    def held(self, name: str, held: bool) -> None:
        self.lease.labels(name).set(1 if held else 0)
        if not held:
            # The binding's holder (another worker, or this one later) reports its state; stale
            # values here would keep an alert firing, or fire one, for a binding that is fine.
            for gauge in (self.failing, self.failures, self.in_error):
                gauge.labels(name).set(0)
            with suppress(KeyError):
                self.last_success.remove(name)

    def forget(self, name: str) -> None:
        """A binding gone from the config leaves the gauges (its counters stay until restart)."""
        for gauge in (self.last_success, self.failing, self.failures, self.lease, self.in_error):
            with suppress(KeyError):
                gauge.remove(name)

    def render(self) -> bytes:
        """The text format, uncompressed (the HTTP listener serves the registry itself)."""
        return generate_latest(self.registry)
