"""TZIDs as calendars write them resolve to the IANA zone they mean."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.mapping.timezones import iana_for_tzid, iana_for_vtimezone, zone


@pytest.mark.parametrize(
    ("tzid", "iana"),
    [
        ("Europe/Amsterdam", "Europe/Amsterdam"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Eastern Standard Time", "America/New_York"),
        ("Central European Standard Time", "Europe/Warsaw"),
        ("Israel Standard Time", "Asia/Jerusalem"),
        ('"W. Europe Standard Time"', "Europe/Berlin"),
        ("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Amsterdam"),
        ("(UTC+02:00) Jerusalem", "Asia/Jerusalem"),
        ("(UTC+01:00) Sarajevo, Skopje, Warsaw, Zagreb", "Europe/Sarajevo"),
        ("/mozilla.org/20050126_1/Europe/Berlin", "Europe/Berlin"),
        ("/freeassociation.sourceforge.net/Tzfile/America/New_York", "America/New_York"),
        ("UTC", "UTC"),
        ("GMT", "UTC"),
    ],
)
def test_known_names(tzid: str, iana: str) -> None:
    """IANA, Windows, Windows display labels and vendor paths all map to an IANA zone."""
    assert iana_for_tzid(tzid) == iana


@pytest.mark.parametrize("tzid", ["Customized Time Zone", "(UTC+05:00) Amsterdam", "", "Mars/Olympus"])
def test_unknown_names(tzid: str) -> None:
    """A label whose offset contradicts its city, or a made-up name, is not guessed."""
    assert iana_for_tzid(tzid) is None


def test_vtimezone_match_prefers_the_named_city() -> None:
    """Among zones with identical rules, the one whose city the TZID names wins."""
    assert iana_for_vtimezone("Paris time", zone("Europe/Paris"), datetime(2026, 7, 1, tzinfo=UTC)) == "Europe/Paris"
    assert iana_for_vtimezone("x", zone("America/New_York"), datetime(2026, 7, 1, tzinfo=UTC)) is not None
