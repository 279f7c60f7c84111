"""When a binding's next pass is due: its interval while it succeeds, an exponential back-off after
failures, never longer than ``max_backoff`` (and never shorter than the interval)."""

from __future__ import annotations

from datetime import datetime, timedelta

from syncd.config import Binding, DaemonSection


def interval_of(binding: Binding, daemon: DaemonSection) -> float:
    return binding.interval if binding.interval is not None else daemon.interval


def delay_after(interval: float, failures: int, max_backoff: float) -> float:
    """Seconds between passes of a binding that has failed ``failures`` times in a row."""
    if failures <= 0:
        return interval
    # 2**failures grows past any ceiling quickly; cap the exponent so the float stays finite.
    return max(interval, min(max_backoff, interval * 2.0 ** min(failures, 64)))


def first_run(last_pass_at: datetime | None, delay: float, now: datetime) -> datetime:
    """A (re)started worker resumes a binding's rhythm instead of syncing everything at once."""
    if last_pass_at is None:
        return now
    return max(now, last_pass_at + timedelta(seconds=delay))
