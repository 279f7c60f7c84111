"""Fingerprints are stored with every link: a syncd that computed another value for the same activity
would take every linked item for changed after an upgrade (a pass rewriting the whole calendar).
These are the values syncd has always stored, pinned; and the two a link records, computed together,
are the two computed one by one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import arbitrary_activities, messy_activities

from syncd.activity_json import read_jsonl
from syncd.engine.plan import Policy, crm_fingerprint, remote_fingerprint
from syncd.mapping.fingerprint import fingerprint, fingerprints
from syncd.model import (
    CONTENT_FIELDS,
    Activity,
    Attachment,
    Direction,
    Kind,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
    RegardingKind,
    Response,
    Role,
    Sensitivity,
    ShowAs,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "activities.jsonl"
AMS = ZoneInfo("Europe/Amsterdam")
VTIMEZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Office time\r\nLAST-MODIFIED:20240101T000000Z\r\nBEGIN:STANDARD\r\n"
    "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\n"
    "END:VTIMEZONE\r\n"
)


def _made() -> dict[str, Activity]:
    """Activities that reach every form the fingerprint has, by name."""
    phone = Activity(
        "phone-000252@bench.example", Kind.APPOINTMENT, "Phone meeting #252", "rep@bench.example",
        description="Agenda item 252.\nBring notes.", location="Room 0",
        start=datetime(2026, 12, 15, 7, tzinfo=UTC), end=datetime(2026, 12, 15, 8, tzinfo=UTC),
        participants=(Participant(ParticipantKind.EXTERNAL, "c252@customer.example", "Contact 252"),),
    )
    series = Activity(
        "series", Kind.APPOINTMENT, " Weekly \r\n", "Owner@Example.com", start=datetime(2026, 3, 2, 9, tzinfo=AMS),
        end=datetime(2026, 3, 2, 10, tzinfo=AMS), timezone="Europe/Amsterdam",
        recurrence=Recurrence(
            "RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;WKST=MO",
            (datetime(2026, 3, 9, 9, tzinfo=AMS), datetime(2026, 3, 9, 9, tzinfo=AMS)),
            (
                Override(datetime(2026, 3, 16, 8, tzinfo=UTC), start=datetime(2026, 3, 16, 11, tzinfo=AMS),
                         end=datetime(2026, 3, 16, 12, tzinfo=AMS), subject="moved"),
                Override(datetime(2026, 3, 23, 8, tzinfo=UTC), reminder_minutes=5, sensitivity=Sensitivity.PRIVATE),
                Override(datetime(2026, 3, 30, 7, tzinfo=UTC), start=datetime(2026, 3, 30, 7, tzinfo=UTC),
                         this_and_future=True, location="elsewhere"),
                Override(date(2026, 4, 6)),
            ),
            (datetime(2026, 4, 1, 9, tzinfo=AMS),),
            ("FREQ=MONTHLY;BYMONTHDAY=15",),
        ),
        participants=(
            Participant(ParticipantKind.USER, "Piotr@Example.com", "Piotr", Role.OPTIONAL, Response.ACCEPTED),
            Participant(ParticipantKind.EXTERNAL, None, "Walk-in"),
            Participant(ParticipantKind.CONTACT, "zoë@example.com", None, response=Response.TENTATIVE),
        ),
    )
    task = Activity(
        "task", Kind.TASK, "Send the offer", "owner@example.com", due=datetime(2026, 5, 1, 17, tzinfo=AMS),
        completed_at=datetime(2026, 4, 30, 12, 30, 15, 999, tzinfo=UTC), status="done", type="follow-up",
        priority="high", direction=Direction.OUTBOUND, reminder_minutes=30, project="Sales 2026", parent_id="ACT-1",
        close_reason="sent", regarding=(Regarding(RegardingKind.ACCOUNT, "ACC-1", "Łódź Sp. z o.o."),
                                        Regarding(RegardingKind.OPPORTUNITY, "OPP-9", None)),
    )
    later = Activity(
        "later", Kind.CALL, "Call 📞", "owner@example.com", start=datetime(2026, 6, 1, 10, tzinfo=AMS),
        end=datetime(2026, 6, 1, 10, 20, tzinfo=AMS), timezone="Office time", timezone_definition=VTIMEZONE,
        sensitivity=Sensitivity.CONFIDENTIAL, show_as=ShowAs.TENTATIVE, categories=(" Sales", "Sales ", "", "VIP"),
        attachments=(Attachment("https://files.example.com/a.pdf ", "A"), Attachment("https://x.example/b", None)),
        extra={"score": 2.0, "zero": -0.0, "note": "n", "flag": True},
        organizer=Participant(ParticipantKind.EXTERNAL, "Boss@Example.com", "The Boss"),
    )
    edges = Activity(
        "edges", Kind.APPOINTMENT, "Lone \ud800 surrogate", "owner@example.com", all_day=True,
        start=date(9999, 12, 31), end=date(9999, 12, 31), description="\r\n",
    )
    ancient = Activity(
        "ancient", Kind.APPOINTMENT, "Year one", "owner@example.com",
        start=datetime(1, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo")), end=datetime(999, 1, 1, 12, tzinfo=UTC),
    )
    floating = Activity(
        "floating", Kind.APPOINTMENT, "Floating", "owner@example.com", start=datetime(2026, 7, 1, 9),
        end=datetime(2026, 7, 1, 9) + timedelta(hours=1),
    )
    all_day = Activity("all-day", Kind.APPOINTMENT, "Holiday", "owner@example.com", all_day=True,
                       start=date(2026, 8, 3), end=date(2026, 8, 3))
    return {a.id: a for a in (phone, series, task, later, edges, ancient, floating, all_day)}


def _examples() -> dict[str, Activity]:
    return {a.id: a for a in read_jsonl(EXAMPLES.read_text(encoding="utf-8"))}


#: (all fields, the fields a default binding's calendar holds), as syncd 0.x stored them.
PINNED: dict[str, tuple[str, str]] = {
    "ACT-1001": ("35e8f55b16aaba57b4517b16fa384bfa", "31e60be16feac63087018619d0aa998d"),
    "ACT-1002": ("a5d21f5ae677b92691acb6750948b1c3", "3438da4d1c090563221d18aaccc68039"),
    "ACT-1003": ("d48b89b17a1f3a322d3f3c740bcfb27d", "71766710a62bdea35f95271b40447ad5"),
    "ACT-1004": ("a6a9f91dc2d0d665bffaee70dc7ac1a9", "21e639562c191e7cb59a263b8308b44d"),
    "ACT-1005": ("70c695faa12d12189b30aadbf1eaa970", "9b613aa38f9cb8cd26bbabf3d600edf8"),
    "ACT-1006": ("ae4a5214b34fb842afafeb6384007781", "35abc34a00ba0033209846498d6f5b18"),
    "ACT-1007": ("dd0264beb8d3c40e6ebd0bca9599ab0d", "9c60653f15eadd428a3c207f353f8786"),
    "ACT-1008": ("6ddd90ed03e0c0387f8c2e68bb1bb122", "5b3247e0934697ce3472d279270f9933"),
    "all-day": ("690ba25c479989d74d14c4b0db3f0469", "525585458959324170340513e5bc361a"),
    "ancient": ("920f6c78d8210be04b5417c5ffa60de5", "f03ec0b2d2e1bae9a06b7c36793be1b2"),
    "edges": ("649c8e8b62d1a8ca1b44febe2af74a85", "b6bb4d80ef39f684c72af86fba2f9221"),
    "floating": ("7d73f026bbdeb82514ca9fa7a93a20c4", "9b2c1c3ec47b3a169beafcf63a259824"),
    "later": ("f84223d38c0b06663535155af8cfacd9", "1430755e4a7ba4bcb1e17a3e42b1e502"),
    "phone-000252@bench.example": ("8827bf13c4987cdc42b560b01fdd82b1", "67ecd6855f03e4ed0feafda03e98a8dd"),
    "series": ("acc51e96a181dddc875c66944f4569c7", "0ae83c40cf7c325b30ac75669d53cbbb"),
    "task": ("2f31e295a1daa447480294eff6ba1717", "0d3cc12874c2b0239520ce6518aa8a48"),
}


@pytest.mark.parametrize("ident", sorted(PINNED))
def test_the_stored_fingerprints_stay(ident: str) -> None:
    activity = {**_examples(), **_made()}[ident]
    compared = Policy(owner=activity.owner)
    assert (crm_fingerprint(activity), remote_fingerprint(activity, compared)) == PINNED[ident]
    assert fingerprints(activity, compared.compared) == PINNED[ident]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(arbitrary_activities(), messy_activities()), st.sets(st.sampled_from(CONTENT_FIELDS)))
def test_the_pair_is_the_two_fingerprints(activity: Activity, some: set[str]) -> None:
    """Computed together for a link, computed one by one when the planner compares."""
    assert fingerprints(activity, some) == (fingerprint(activity), fingerprint(activity, sorted(some)))
