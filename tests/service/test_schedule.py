"""When a binding's next pass is due: its interval, then an exponential back-off to the ceiling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.service.schedule import delay_after, first_run

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 60), (1, 120), (2, 240), (3, 480), (5, 1800), (60, 1800), (10_000, 1800)]
)
def test_back_off_doubles_per_failure_up_to_the_ceiling(failures: int, delay: float) -> None:
    assert delay_after(60, failures, max_backoff=1800) == delay


def test_a_ceiling_below_the_interval_never_speeds_passes_up() -> None:
    assert delay_after(600, 3, max_backoff=60) == 600


def test_a_restarted_worker_resumes_the_rhythm() -> None:
    """Overdue or never synced: now; synced a moment ago: one delay after that pass."""
    assert first_run(None, 300, NOW) == NOW
    assert first_run(NOW - timedelta(hours=1), 300, NOW) == NOW
    assert first_run(NOW - timedelta(seconds=100), 300, NOW) == NOW + timedelta(seconds=200)
