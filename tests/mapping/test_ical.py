"""Activity <-> iCalendar: round trips, inbound quirks of real clients, and errors that name the fault."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.identity import activity_id_for_uid
from syncd.mapping.options import MappingOptions
from syncd.model import (
    Activity,
    CrmUser,
    Direction,
    Directory,
    Kind,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
    RegardingKind,
    Response,
    ShowAs,
    Role,
)

AMS = ZoneInfo("Europe/Amsterdam")
NY = ZoneInfo("America/New_York")
CTX = MappingContext(
    owner=CrmUser("owner@example.com", "Anna Owner", "Europe/Amsterdam"),
    options=MappingOptions(crm_url="https://crm.example/act/{id}"),
    directory=Directory(
        users={"colleague@example.com": "Cor"},
        contacts={"jan@klant.nl": "Jan"},
        accounts={"info@acme.pl": "Acme"},
    ),
)


def _full() -> Activity:
    return Activity(
        id="42",
        kind=Kind.CALL,
        subject="Overleg, kwartaal; \\ שלום – Zażółć",
        owner="owner@example.com",
        description="line 1\nline 2, with; specials\\",
        start=datetime(2026, 3, 20, 9, 0, tzinfo=AMS),
        end=datetime(2026, 3, 20, 10, 30, tzinfo=AMS),
        timezone="Europe/Amsterdam",
        status="postponed",
        type="sales meeting",
        priority="urgent",
        direction=Direction.INBOUND,
        location="Room 1, 2nd floor",
        place="Kerkstraat 1; Amsterdam",
        project="Project X",
        reminder_minutes=15,
        recurrence=Recurrence(
            "FREQ=WEEKLY;COUNT=8;BYDAY=FR",
            exdates=(datetime(2026, 3, 27, 9, 0, tzinfo=AMS),),
            overrides=(
                Override(datetime(2026, 4, 3, 9, 0, tzinfo=AMS), start=datetime(2026, 4, 3, 11, 0, tzinfo=AMS), subject="moved"),
                Override(datetime(2026, 4, 10, 9, 0, tzinfo=AMS), location="elsewhere", description="", status="cancelled"),
            ),
        ),
        participants=(
            Participant(ParticipantKind.CONTACT, "Jan@Klant.nl", "Jan, de Vries", Role.REQUIRED, Response.ACCEPTED),
            Participant(ParticipantKind.ACCOUNT, None, "Acme; Sp. z o.o.", Role.OPTIONAL),
            Participant(ParticipantKind.USER, "colleague@example.com", "Cor", Role.OPTIONAL, Response.NEEDS_ACTION),
        ),
        regarding=(Regarding(RegardingKind.ACCOUNT, "acc-1", "Acme"), Regarding(RegardingKind.OPPORTUNITY, "op,2", None)),
        parent_id="41",
        close_reason="price too high",
        updated_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        created_at=datetime(2026, 2, 1, 8, 0, tzinfo=UTC),
    )


def _roundtrip(activity: Activity, ctx: MappingContext = CTX) -> Activity:
    return from_ical(to_ical(activity, ctx), ctx, "ref.ics").activity


def _event(body: str, calendar_extra: str = "") -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *filter(None, calendar_extra.split("\n")), "BEGIN:VEVENT"]
    lines += [line.strip() for line in body.strip().splitlines()]
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode()


class TestRoundTrip:
    def test_every_field_of_a_call_survives(self) -> None:
        """A call with series, overrides, people, links and all CRM fields reads back identical."""
        activity = _full()
        assert activity == _roundtrip(activity)

    def test_task_fields(self) -> None:
        """A completed task keeps due, completion time, status and 100 % done."""
        task = Activity(
            id="t1", kind=Kind.TASK, subject="Offerte sturen", owner="owner@example.com",
            start=datetime(2026, 5, 1, 9, tzinfo=AMS), due=datetime(2026, 5, 4, 17, tzinfo=AMS),
            timezone="Europe/Amsterdam", status="done", completed_at=datetime(2026, 5, 3, 10, 15, tzinfo=UTC),
            reminder_minutes=60, priority="low",
        )
        data = to_ical(task, CTX)
        todo = Calendar.from_ical(data).todos[0]
        assert todo["STATUS"] == "COMPLETED"
        assert int(todo["PERCENT-COMPLETE"]) == 100
        assert todo["COMPLETED"].dt == datetime(2026, 5, 3, 10, 15, tzinfo=UTC)
        assert task == from_ical(data, CTX, "t").activity

    def test_a_tasks_end_survives_although_vtodo_has_no_dtend(self) -> None:
        """A task planned from 9:00 to 11:00 comes back with its end, not with the end dropped."""
        task = Activity(
            id="t3", kind=Kind.TASK, subject="Prepare the demo", owner="owner@example.com",
            start=datetime(2026, 5, 1, 9, tzinfo=AMS), end=datetime(2026, 5, 1, 11, tzinfo=AMS),
            due=datetime(2026, 5, 1, 17, tzinfo=AMS), timezone="Europe/Amsterdam", status="open",
        )
        assert task == from_ical(to_ical(task, CTX), CTX, "t").activity

    def test_task_with_only_a_due_date_and_reminder(self) -> None:
        """An all-day task without start keeps its due date; the reminder is relative to DUE."""
        task = Activity(id="t2", kind=Kind.TASK, subject="Bellen", owner="owner@example.com", all_day=True,
                        due=date(2026, 6, 1), reminder_minutes=30, status="open")
        data = to_ical(task, CTX)
        assert b"TRIGGER;RELATED=END:-PT30M" in data
        assert task == from_ical(data, CTX, "t").activity

    def test_all_day_shorthand_and_multi_day(self) -> None:
        """All-day: end == start (one day) writes no DTEND and reads back; a 3-day event keeps DTEND."""
        one = Activity(id="a", kind=Kind.APPOINTMENT, subject="Beurs", owner="owner@example.com",
                       start=date(2026, 11, 22), end=date(2026, 11, 22), all_day=True)
        data = to_ical(one, CTX)
        assert b"DTSTART;VALUE=DATE:20261122" in data and b"DTEND" not in data
        assert one == _roundtrip(one)
        three = one.replace(end=date(2026, 11, 25), recurrence=Recurrence("FREQ=YEARLY;UNTIL=20301122", exdates=(date(2027, 11, 22),)))
        data = to_ical(three, CTX)
        assert b"EXDATE;VALUE=DATE:20271122" in data
        assert three == _roundtrip(three)

    def test_utc_activity(self) -> None:
        """An activity without a zone is written in UTC (Z) with no VTIMEZONE, and reads back zoneless."""
        activity = Activity(id="u", kind=Kind.APPOINTMENT, subject="x", owner="owner@example.com",
                            start=datetime(2026, 1, 5, 8, tzinfo=UTC), end=datetime(2026, 1, 5, 9, tzinfo=UTC))
        data = to_ical(activity, CTX)
        assert b"DTSTART:20260105T080000Z" in data and b"VTIMEZONE" not in data
        assert activity == _roundtrip(activity)

    def test_vtimezone_for_every_tzid(self) -> None:
        """Every TZID used has a VTIMEZONE, so strict clients can read the times."""
        calendar = Calendar.from_ical(to_ical(_full(), CTX))
        assert calendar.get_missing_tzids() == set()
        assert [tz.tz_name for tz in calendar.timezones] == ["Europe/Amsterdam"]

    def test_call_marked_by_category_and_kind(self) -> None:
        """A call carries the call category and X-SYNCD-KIND; URL and X-SYNCD-ID are on every item."""
        event = Calendar.from_ical(to_ical(_full(), CTX)).events[0]
        assert "Phone call" in [str(c) for c in event["CATEGORIES"].cats]
        assert event["X-SYNCD-KIND"] == "call"
        assert str(event["URL"]) == "https://crm.example/act/42"
        assert str(event["UID"]) == "42@syncd"

    def test_many_to_one_status_round_trips(self) -> None:
        """'succeeded' and 'done' both show CONFIRMED/COMPLETED; the CRM value still comes back exactly."""
        for status in ("succeeded", "done", "scheduled", "planned"):
            activity = Activity(id="s", kind=Kind.APPOINTMENT, subject="x", owner="owner@example.com",
                                start=datetime(2026, 1, 5, 8, tzinfo=UTC), status=status)
            assert _roundtrip(activity).status == status

    def test_organizer_only_with_attendees(self) -> None:
        """ORGANIZER is written only for a group-scheduled item (RFC 5545 3.8.4.3)."""
        alone = Activity(id="o", kind=Kind.APPOINTMENT, subject="x", owner="owner@example.com",
                         start=datetime(2026, 1, 5, 8, tzinfo=UTC))
        assert b"ORGANIZER" not in to_ical(alone, CTX)
        assert b'ORGANIZER;CN="Anna Owner";SCHEDULE-AGENT=CLIENT:mailto:owner@example.com' in to_ical(_full(), CTX).replace(b"\r\n ", b"")


class TestBase:
    def test_foreign_properties_survive_an_update(self) -> None:
        """Other clients' X-props, attendee parameters, categories and later alarms survive; UID stays."""
        base = to_ical(_full(), CTX).decode()
        base = base.replace("UID:42@syncd", "UID:server-made-uid").replace(
            "BEGIN:VALARM", "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\nTRANSP:TRANSPARENT\r\nBEGIN:VALARM", 1
        )
        calendar = Calendar.from_ical(base)
        master = calendar.events[0]
        master["CATEGORIES"].cats.append("Private")
        for attendee in master["ATTENDEE"]:
            attendee.params["SCHEDULE-STATUS"] = "2.0"
        from icalendar import Alarm

        later = Alarm()
        later.add("ACTION", "AUDIO")
        later.add("TRIGGER", timedelta(minutes=-5))
        master.add_component(later)
        earlier = Alarm()
        earlier.add("ACTION", "DISPLAY")
        earlier.add("DESCRIPTION", "x")
        earlier.add("TRIGGER", timedelta(days=-1))
        master.add_component(earlier)
        # TRANSP and CATEGORIES are the activity's show_as and categories now: read from the base, they
        # come back with the CRM's version (tests/mapping/test_fields_ical.py).
        read = from_ical(calendar.to_ical(), CTX, "r").activity
        assert read.show_as is ShowAs.FREE and read.categories == ("Private",)
        changed = _full().replace(subject="new subject", reminder_minutes=30, show_as=read.show_as,
                                  categories=read.categories)
        out = Calendar.from_ical(to_ical(changed, CTX, calendar.to_ical()))
        event = out.events[0]
        assert str(event["UID"]) == "server-made-uid"
        assert event["X-APPLE-TRAVEL-ADVISORY-BEHAVIOR"] == "AUTOMATIC"
        assert event["TRANSP"] == "TRANSPARENT"
        assert "Private" in [str(c) for c in event["CATEGORIES"].cats]
        assert all(a.params.get("SCHEDULE-STATUS") == "2.0" for a in event["ATTENDEE"])
        triggers = sorted(a["TRIGGER"].dt for a in event.walk("VALARM"))
        assert triggers == [timedelta(minutes=-30), timedelta(minutes=-5)]
        parsed = from_ical(out.to_ical(), CTX, "r")
        assert parsed.uid == "server-made-uid" and parsed.crm_id == "42"
        assert parsed.activity == changed

    def test_sequence_goes_up_when_the_time_changes(self) -> None:
        """A moved item gets a higher SEQUENCE; a text-only change keeps it."""
        base = to_ical(_full(), CTX)
        same_time = Calendar.from_ical(to_ical(_full().replace(subject="y"), CTX, base)).events[0]
        assert same_time.get("SEQUENCE") is None
        later = _full().replace(start=datetime(2026, 3, 20, 10, tzinfo=AMS), end=datetime(2026, 3, 20, 11, tzinfo=AMS))
        assert int(Calendar.from_ical(to_ical(later, CTX, base)).events[0]["SEQUENCE"]) == 1

    def test_unreadable_base_is_ignored(self) -> None:
        """A broken previous version does not stop the write."""
        assert b"SUMMARY" in to_ical(_full(), CTX, b"garbage")


class TestInbound:
    def test_calendar_created_event_with_call_category(self) -> None:
        """An event made on the calendar with the call category becomes a call with a derived id."""
        parsed = from_ical(_event("""
            UID:abc-123@google.com
            DTSTAMP:20260101T100000Z
            DTSTART:20260105T080000Z
            DURATION:PT45M
            CATEGORIES:Phone call,Work
        """), CTX, "/c/abc.ics")
        assert parsed.crm_id is None and parsed.uid == "abc-123@google.com"
        assert parsed.activity.id == activity_id_for_uid("abc-123@google.com")
        assert parsed.activity.kind is Kind.CALL
        assert parsed.activity.end == datetime(2026, 1, 5, 8, 45, tzinfo=UTC)
        assert parsed.activity.subject == ""
        assert parsed.categories == ("Phone call", "Work")
        assert parsed.modified_at == datetime(2026, 1, 1, 10, tzinfo=UTC)

    def test_windows_zone_names(self) -> None:
        """Outlook's Windows TZIDs and display labels map to IANA zones."""
        for tzid, iana in (
            ("W. Europe Standard Time", "Europe/Berlin"),
            ("Eastern Standard Time", "America/New_York"),
            ("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Amsterdam"),
            ("Israel Standard Time", "Asia/Jerusalem"),
        ):
            parsed = from_ical(_event(f"""
                UID:w
                DTSTART;TZID="{tzid}":20260710T090000
                DTEND;TZID="{tzid}":20260710T100000
            """), CTX, "w").activity
            assert parsed.timezone == iana
            assert parsed.start == datetime(2026, 7, 10, 9, tzinfo=ZoneInfo(iana))

    def test_custom_vtimezone_is_matched(self) -> None:
        """A TZID no table knows is matched through its VTIMEZONE (Exchange's 'Customized Time Zone')."""
        vtz = "\n".join([
            "BEGIN:VTIMEZONE", "TZID:Customized Time Zone",
            "BEGIN:STANDARD", "DTSTART:16010101T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
            "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", "END:STANDARD",
            "BEGIN:DAYLIGHT", "DTSTART:16010101T020000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200",
            "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "END:DAYLIGHT", "END:VTIMEZONE",
        ])
        parsed = from_ical(_event("""
            UID:c
            DTSTART;TZID=Customized Time Zone:20260710T090000
            RRULE:FREQ=WEEKLY;COUNT=30
        """, vtz), CTX, "c").activity
        assert parsed.start == datetime(2026, 7, 10, 7, tzinfo=UTC)
        assert parsed.timezone is not None and ZoneInfo(parsed.timezone).utcoffset(datetime(2026, 1, 1)) == timedelta(hours=1)

    def test_floating_times(self) -> None:
        """Floating times are read in X-WR-TIMEZONE if given, else in the owner's zone."""
        body = "UID:f\nDTSTART:20260710T090000\nDTEND:20260710T100000"
        assert from_ical(_event(body), CTX, "f").activity.start == datetime(2026, 7, 10, 9, tzinfo=AMS)
        google = from_ical(_event(body, "X-WR-TIMEZONE:America/New_York"), CTX, "f").activity
        assert google.start == datetime(2026, 7, 10, 9, tzinfo=NY) and google.timezone == "America/New_York"

    def test_people(self) -> None:
        """Attendees match the directory case-insensitively; the organizer is not a participant."""
        parsed = from_ical(_event("""
            UID:p
            DTSTART:20260105T080000Z
            ORGANIZER;CN=Boss:MAILTO:boss@elsewhere.com
            ATTENDEE;CN=Jan;PARTSTAT=TENTATIVE:mailto:JAN@klant.NL
            ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=DECLINED:mailto:info@acme.pl
            ATTENDEE;PARTSTAT=ACCEPTED:mailto:Colleague@Example.com
            ATTENDEE:mailto:stranger@x.org
        """), CTX, "p").activity
        assert parsed.owner == "owner@example.com"
        assert [(p.kind, p.email, p.role, p.response) for p in parsed.participants] == [
            (ParticipantKind.CONTACT, "JAN@klant.NL", Role.REQUIRED, Response.TENTATIVE),
            (ParticipantKind.ACCOUNT, "info@acme.pl", Role.OPTIONAL, Response.DECLINED),
            (ParticipantKind.USER, "Colleague@Example.com", Role.REQUIRED, Response.ACCEPTED),
            (ParticipantKind.EXTERNAL, "stranger@x.org", Role.REQUIRED, Response.NEEDS_ACTION),
        ]

    def test_earliest_of_several_alarms(self) -> None:
        """The reminder is the earliest alarm, counting absolute and RELATED=END triggers."""
        parsed = from_ical(_event("""
            UID:a
            DTSTART:20260105T080000Z
            DTEND:20260105T090000Z
            BEGIN:VALARM
            ACTION:DISPLAY
            TRIGGER:-PT10M
            END:VALARM
            BEGIN:VALARM
            ACTION:DISPLAY
            TRIGGER;RELATED=END:-PT90M
            END:VALARM
            BEGIN:VALARM
            ACTION:AUDIO
            TRIGGER;VALUE=DATE-TIME:20260105T070000Z
            END:VALARM
        """), CTX, "a").activity
        assert parsed.reminder_minutes == 60

    def test_method_request_folded_lines_and_crlf(self) -> None:
        """An iTIP REQUEST wrapper with folded lines reads like a stored item."""
        data = (
            "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nPRODID:Microsoft Exchange Server 2010\r\nVERSION:2.0\r\n"
            "BEGIN:VEVENT\r\nUID:040000008200E00074C5B7101A82E008\r\nSUMMARY;LANGUAGE=nl-NL:Een heel lange o\r\n"
            " mschrijving die gevouwen is\r\nDTSTART;TZID=W. Europe Standard Time:20260302T140000\r\n"
            "DTEND;TZID=W. Europe Standard Time:20260302T150000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ).encode()
        parsed = from_ical(data, CTX, "m").activity
        assert parsed.subject == "Een heel lange omschrijving die gevouwen is"
        assert parsed.start == datetime(2026, 3, 2, 14, tzinfo=ZoneInfo("Europe/Berlin"))

    def test_thisandfuture_changes_every_later_occurrence(self) -> None:
        """RANGE=THISANDFUTURE: the move and the new title reach the later occurrences too (RFC 5545 3.8.4.4)."""
        data = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
            "BEGIN:VEVENT\r\nUID:r\r\nDTSTART:20260105T080000Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:a\r\nEND:VEVENT\r\n"
            "BEGIN:VEVENT\r\nUID:r\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20260107T080000Z\r\n"
            "DTSTART:20260107T090000Z\r\nSUMMARY:b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ).encode()
        parsed = from_ical(data, CTX, "r").activity
        assert parsed.recurrence is not None
        assert parsed.recurrence.overrides == tuple(
            Override(datetime(2026, 1, day, 8, tzinfo=UTC), start=datetime(2026, 1, day, 9, tzinfo=UTC), subject="b")
            for day in (7, 8, 9)
        )


class TestErrors:
    @pytest.mark.parametrize(
        ("body", "prop"),
        [
            ("UID:e\nDTSTART:20260105T080000Z\nEXRULE:FREQ=WEEKLY", "EXRULE"),
            ("UID:e\nDTSTART:20260105T080000Z\nRRULE:RSCALE=HEBREW;FREQ=YEARLY", "RRULE"),
            ("UID:e\nDTSTART:20260105T080000Z\nRDATE:2026-01-10", "RDATE"),
            ("UID:e\nDTSTART:not-a-date", "DTSTART"),
            ("UID:e\nSUMMARY:no start", "DTSTART"),
            ("UID:e\nDTSTART;TZID=Mars/Olympus:20260105T080000", "DTSTART"),
            ("UID:e\nDTSTART:20260105T080000Z\nDTEND:20260104T080000Z", "DTEND"),
            ("UID:e\nDTSTART:20260105T080000Z\nX-SYNCD-PARTICIPANT:{broken", "X-SYNCD-PARTICIPANT"),
            ("UID:e\nDTSTART:20260105T080000Z\nPRIORITY:high", "PRIORITY"),
        ],
    )
    def test_error_names_item_and_property(self, body: str, prop: str) -> None:
        """An unreadable item raises ItemError naming the item (its ref) and the property at fault."""
        with pytest.raises(ItemError) as info:
            from_ical(_event(body), CTX, "/cal/e.ics")
        assert (info.value.item, info.value.prop) == ("/cal/e.ics", prop)

    @pytest.mark.parametrize("data", [b"", b"not ical", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", b"\xff\xfe\x00"])
    def test_garbage_raises_item_error_only(self, data: bytes) -> None:
        """Whatever the bytes, the only exception is ItemError."""
        with pytest.raises(ItemError):
            from_ical(data, CTX, "g")
