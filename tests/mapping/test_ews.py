"""Activity <-> exchangelib items: round trips, inbound reading of real EWS XML, and schema-valid requests."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from ews_schema import assert_valid
from exchangelib.items import CalendarItem, Task
from exchangelib.properties import Attendee, Mailbox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.ews_support import create_payload, items_in, reparse, update_payload
from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import apply_to_ews, from_ews, to_ews
from syncd.mapping.ews_recurrence import UnsupportedRecurrence
from syncd.model import (
    CONTENT_FIELDS,
    Activity,
    CrmUser,
    Direction,
    Directory,
    Kind,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
    RegardingKind,
    Response,
    Role,
)
from syncd.store.rules import participant_problems

AMS = ZoneInfo("Europe/Amsterdam")
CTX = MappingContext(
    owner=CrmUser("owner@example.com", timezone="Europe/Amsterdam"),
    directory=Directory(users={"colleague@example.com": "Col"}, contacts={"jan@klant.nl": "Jan"}),
)


def content(activity: Activity) -> dict:
    """What a user sees: times as instants (the zone is a field of its own), since a wall time in a
    spring-forward gap (02:00, which never happens) and the same instant's 03:00 are one moment."""
    return {f: _instant(getattr(activity, f)) for f in ("id", *CONTENT_FIELDS)}


def _instant(value: object) -> object:
    return value.astimezone(timezone.utc) if isinstance(value, datetime) and value.tzinfo else value


def round_trip(activity: Activity, ctx: MappingContext = CTX) -> Activity:
    item = to_ews(activity, ctx)
    assert_valid(create_payload(item))
    return from_ews(reparse(item), ctx).activity


CALL = Activity(
    id="1001",
    kind=Kind.CALL,
    subject="Bel Zoë over de offerte — שלום",
    owner="owner@example.com",
    description="Vragen:\n- prijs\n- levering ✓",
    start=datetime(2030, 3, 25, 9, tzinfo=AMS),
    end=datetime(2030, 3, 25, 9, 30, tzinfo=AMS),
    timezone="Europe/Amsterdam",
    status="succeeded",
    type="sales call",
    priority="urgent",
    direction=Direction.OUTBOUND,
    location="Kantoor",
    place="Utrecht, Oudegracht 1",
    project="Uitbreiding",
    reminder_minutes=15,
    participants=(
        Participant(ParticipantKind.CONTACT, "Jan@Klant.nl", "Jan", Role.REQUIRED, Response.ACCEPTED),
        Participant(ParticipantKind.ACCOUNT, None, "ACME BV"),
        Participant(ParticipantKind.USER, "colleague@example.com", None, Role.OPTIONAL, Response.TENTATIVE),
    ),
    regarding=(Regarding(RegardingKind.ACCOUNT, "acc-7", "ACME BV"), Regarding(RegardingKind.OPPORTUNITY, "opp-3")),
    parent_id="999",
    close_reason="price too high",
)


def test_call_round_trips_every_field():
    """A call with every field set comes back identical, via a schema-valid CreateItem."""
    assert content(round_trip(CALL)) == content(CALL)


def test_call_is_a_calendar_item_with_category_and_kind():
    item = to_ews(CALL, CTX)
    assert isinstance(item, CalendarItem)
    assert item.categories == ["Phone call", "sales call"]
    assert item.syncd_kind == "call" and item.syncd_crm_id == "1001" and item.uid == "1001@syncd"
    assert item.importance == "High" and item.legacy_free_busy_status == "Busy"
    assert [a.mailbox.email_address for a in item.required_attendees] == ["Jan@Klant.nl"]
    assert [a.response_type for a in item.optional_attendees] == ["Tentative"]


ALL_DAY = Activity(
    id="1002",
    kind=Kind.APPOINTMENT,
    subject="Beurs",
    owner="owner@example.com",
    start=date(2030, 10, 26),
    end=date(2030, 10, 28),
    all_day=True,
    recurrence=Recurrence("FREQ=YEARLY;BYMONTH=10;BYDAY=-1SA"),
)


def test_all_day_series_round_trips():
    item = to_ews(ALL_DAY, CTX)
    assert item.is_all_day and item.start == date(2030, 10, 26) and item.end == date(2030, 10, 27)
    assert content(round_trip(ALL_DAY)) == content(ALL_DAY)


def test_all_day_event_ending_on_spring_dst_day_keeps_its_end():
    """exchangelib reads such an end a day short (24 h subtracted in UTC); syncd's carried end repairs it."""
    weekend = ALL_DAY.replace(start=date(2030, 3, 30), end=date(2030, 4, 1), recurrence=None)
    assert round_trip(weekend).end == date(2030, 4, 1)


def test_all_day_end_equal_start_reads_back_as_next_day():
    one_day = ALL_DAY.replace(end=ALL_DAY.start, recurrence=None)
    assert round_trip(one_day).end == date(2030, 10, 27)


TASK = Activity(
    id="1003",
    kind=Kind.TASK,
    subject="Offerte sturen",
    owner="owner@example.com",
    start=datetime(2030, 3, 30, 9, tzinfo=AMS),
    due=datetime(2030, 4, 2, 17, tzinfo=AMS),
    timezone="Europe/Amsterdam",
    status="done",
    completed_at=datetime(2030, 4, 1, 12, tzinfo=timezone.utc),
    priority="low",
    reminder_minutes=60,
    recurrence=Recurrence("FREQ=WEEKLY;BYDAY=SA;COUNT=3"),
    participants=(Participant(ParticipantKind.CONTACT, "jan@klant.nl", "Jan"),),
)


def test_task_round_trips_with_status_dates_and_reminder():
    item = to_ews(TASK, CTX)
    assert isinstance(item, Task)
    assert (item.status, item.percent_complete) == ("Completed", 100)
    assert item.due_date == date(2030, 4, 2) and item.start_date == date(2030, 3, 30)
    assert content(round_trip(TASK)) == content(TASK)


def test_task_changed_in_outlook_follows_outlook():
    """A task reopened and re-dated in Outlook reads with Outlook's status and date, not the old CRM ones.
    Outlook shows a task's dates only: a timed task keeps its time of day on the new date (a bare date
    in a timed task is what the store refuses, so the pull could never be saved)."""
    item = reparse(to_ews(TASK.replace(recurrence=None), CTX))
    item.status, item.percent_complete, item.due_date = "InProgress", 50, date(2030, 4, 9)
    back = from_ews(item, CTX).activity
    assert (back.status, back.due, back.completed_at) == ("in-progress", datetime(2030, 4, 9, 17, tzinfo=AMS), None)
    all_day = reparse(to_ews(TASK.replace(recurrence=None, all_day=True, timezone=None, start=date(2030, 3, 30),
                                          due=date(2030, 4, 2), completed_at=None), CTX))
    all_day.due_date = date(2030, 4, 9)
    assert from_ews(all_day, CTX).activity.due == date(2030, 4, 9)


def test_cancelled_meeting_reads_as_cancelled_and_many_to_one_status_round_trips():
    done = CALL.replace(status="completed")  # one of several CRM statuses that all show as Busy
    item = reparse(to_ews(done, CTX))
    assert from_ews(item, CTX).activity.status == "completed"
    item.is_cancelled = True
    assert from_ews(item, CTX).activity.status == "cancelled"
    item.is_cancelled, item.legacy_free_busy_status = False, "Tentative"
    assert from_ews(item, CTX).activity.status == "postponed"


def test_outlook_edits_to_attendees_and_categories_are_read():
    item = reparse(to_ews(CALL, CTX))
    item.required_attendees = [
        Attendee(mailbox=Mailbox(email_address="JAN@klant.nl", name="Jan"), response_type="Decline"),
        Attendee(mailbox=Mailbox(email_address="stranger@elsewhere.org"), response_type="Unknown"),
    ]
    item.categories = ["Red"]
    back = from_ews(item, CTX).activity
    assert [(p.kind, p.email, p.response) for p in back.participants] == [
        (ParticipantKind.CONTACT, "JAN@klant.nl", Response.DECLINED),
        (ParticipantKind.ACCOUNT, None, Response.NEEDS_ACTION),
        (ParticipantKind.USER, "colleague@example.com", Response.TENTATIVE),
        (ParticipantKind.EXTERNAL, "stranger@elsewhere.org", Response.NEEDS_ACTION),
    ]
    assert (back.kind, back.type) == (Kind.APPOINTMENT, None)


def test_apply_returns_only_changed_fields_and_keeps_user_categories():
    item = reparse(to_ews(CALL, CTX))
    assert apply_to_ews(item, CALL, CTX) == []
    item.categories = [*item.categories, "Red"]
    # A user's category is read into the activity's own categories, so the CRM's version carries it.
    assert from_ews(item, CTX).activity.categories == ("Red",)
    changed = apply_to_ews(item, CALL.replace(subject="Nieuw", type="demo", location=None, categories=("Red",)), CTX)
    assert set(changed) == {"subject", "categories", "location", "syncd_extra"}
    assert item.categories == ["Phone call", "demo", "Red"]
    assert_valid(update_payload(item, changed))


def test_apply_leaves_an_unchanged_series_alone_and_rewrites_a_changed_one():
    series = CALL.replace(recurrence=Recurrence("FREQ=WEEKLY;BYDAY=MO;COUNT=5"))
    item = reparse(to_ews(series, CTX))
    assert "recurrence" not in apply_to_ews(item, series.replace(subject="x"), CTX)
    changed = apply_to_ews(item, series.replace(recurrence=Recurrence("FREQ=WEEKLY;BYDAY=MO;COUNT=8")), CTX)
    assert "recurrence" in changed
    assert_valid(update_payload(item, changed))


def test_apply_refuses_a_kind_change_across_item_classes():
    with pytest.raises(ItemError):
        apply_to_ews(reparse(to_ews(CALL, CTX)), TASK, CTX)


def test_inexpressible_recurrence_is_refused_outbound():
    with pytest.raises(UnsupportedRecurrence):
        to_ews(CALL.replace(recurrence=Recurrence("FREQ=MONTHLY;BYDAY=1MO,3MO")), CTX)


def test_mailing_is_not_synced():
    with pytest.raises(ItemError):
        to_ews(CALL.replace(kind=Kind.MAILING), CTX)


# --- inbound from recorded Exchange responses --------------------------------------------------------


def test_msdocs_calendar_item_maps():
    (item,) = items_in("getitem-operation-calendar-item__03__GetItemResponse.xml")
    parsed = from_ews(item, CTX)
    assert parsed.item_id == "ASUAdT" and parsed.crm_id is None
    a = parsed.activity
    assert (a.kind, a.start, a.end) == (
        Kind.APPOINTMENT,
        datetime(2006, 6, 16, 0, 30, tzinfo=timezone.utc),
        datetime(2006, 6, 16, 1, 0, tzinfo=timezone.utc),
    )
    assert (a.owner, a.reminder_minutes, a.status) == ("someone@example.com", 15, "planned")


def test_msdocs_recurring_master_maps():
    (item,) = items_in("how-to-create-a-recurring-series-by-using-ews-in-exchange__04__GetItemResponse.xml")
    a = from_ews(item, CTX).activity
    assert a.subject == "Weekly Update Meeting"
    assert a.recurrence is not None and a.recurrence.rrule == "FREQ=WEEKLY;BYDAY=SA;COUNT=10"
    assert a.start == datetime(2014, 3, 8, 21, 21, tzinfo=timezone.utc)


def test_msdocs_task_maps():
    (item,) = items_in("getitem-operation-task__01__GetItemResponse.xml")
    a = from_ews(item, CTX).activity
    assert (a.kind, a.subject, a.status, a.due, a.priority) == (Kind.TASK, "Buy new shoes", "open", None, None)


def test_deleted_and_modified_occurrences_read_as_exdates_and_overrides():
    """A master as Exchange returns it after an occurrence was deleted and another moved and renamed."""
    from exchangelib.recurrence import DeletedOccurrence, Occurrence

    series = CALL.replace(recurrence=Recurrence("FREQ=WEEKLY;COUNT=5"), participants=())
    master = reparse(to_ews(series, CTX))
    utc = timezone.utc
    master.deleted_occurrences = [DeletedOccurrence(start=datetime(2030, 4, 1, 7, tzinfo=utc))]
    master.modified_occurrences = [
        Occurrence(start=datetime(2030, 4, 9, 12, tzinfo=utc), end=datetime(2030, 4, 9, 12, 30, tzinfo=utc),
                   original_start=datetime(2030, 4, 8, 7, tzinfo=utc))
    ]
    exception = reparse(to_ews(series.replace(subject="Verplaatst", recurrence=None), CTX))
    exception.original_start = datetime(2030, 4, 8, 7, tzinfo=utc)
    rec = from_ews(master, CTX, occurrences=[exception]).activity.recurrence
    assert rec.exdates == (datetime(2030, 4, 1, 9, tzinfo=AMS),)
    (override,) = rec.overrides
    assert override.recurrence_id == datetime(2030, 4, 8, 9, tzinfo=AMS)
    assert (override.start, override.subject, override.location) == (datetime(2030, 4, 9, 14, tzinfo=AMS), "Verplaatst", None)


# --- property: random activities round-trip ---------------------------------------------------------

ZONES = ["Europe/Amsterdam", "America/New_York", "Asia/Jerusalem", "Europe/Warsaw", "UTC"]
RULES = ["FREQ=DAILY;COUNT=5", "FREQ=WEEKLY;INTERVAL=2;UNTIL=20310101T000000Z", "FREQ=YEARLY"]
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).map(str.strip).filter(bool)


@st.composite
def activities(draw):
    kind = draw(st.sampled_from([Kind.APPOINTMENT, Kind.CALL, Kind.TASK]))
    zone = draw(st.sampled_from(ZONES))
    all_day = draw(st.booleans())
    # Around the DST changes of 2030 on both sides of the Atlantic
    day = draw(st.sampled_from([date(2030, 3, 9), date(2030, 3, 30), date(2030, 10, 26), date(2030, 11, 2)]))
    minutes = draw(st.integers(0, 24 * 60 - 1))
    start = day if all_day else datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)) + timedelta(minutes=minutes)
    length = timedelta(days=draw(st.integers(1, 3))) if all_day else timedelta(minutes=draw(st.integers(0, 600)))
    people = draw(st.lists(st.builds(
        Participant,
        kind=st.sampled_from(list(ParticipantKind)),
        email=st.one_of(st.none(), st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(nl|pl|il)", fullmatch=True)),
        name=st.one_of(st.none(), text),
        role=st.sampled_from(list(Role)),
        response=st.sampled_from(list(Response)),
    ).filter(lambda p: not participant_problems(p, "")), max_size=4, unique_by=lambda p: p.key))  # what the store keeps
    rule = draw(st.one_of(st.none(), st.sampled_from(RULES)))
    if rule and all_day:
        rule = rule.replace("T000000Z", "")  # RFC 5545: UNTIL is a DATE when DTSTART is
    fields = dict(
        id=draw(st.from_regex(r"[0-9]{1,6}", fullmatch=True)),
        kind=kind,
        subject=draw(text),
        owner="owner@example.com",
        description=draw(st.one_of(st.none(), text)),
        all_day=all_day,
        timezone=None if all_day else (None if zone == "UTC" else zone),
        status=draw(st.sampled_from([None, "open", "planned", "done", "cancelled", "postponed", "eigen status"])),
        type=draw(st.one_of(st.none(), text)),
        priority=draw(st.sampled_from([None, "high", "normal", "low", "urgent", "blocker"])),
        direction=draw(st.one_of(st.none(), st.sampled_from(list(Direction)))),
        place=draw(st.one_of(st.none(), text)),
        project=draw(st.one_of(st.none(), text)),
        reminder_minutes=draw(st.one_of(st.none(), st.integers(0, 10080))),
        recurrence=Recurrence(rule) if rule else None,
        regarding=tuple(draw(st.lists(st.builds(Regarding, st.sampled_from(list(RegardingKind)), text, st.one_of(st.none(), text)), max_size=2))),
        close_reason=draw(st.one_of(st.none(), text)),
    )
    if kind == Kind.TASK:
        fields.update(start=start, due=start + length)
        if not all_day:
            fields["timezone"] = zone
    else:
        fields.update(start=start, end=start + length, location=draw(st.one_of(st.none(), text)))
    return Activity(participants=tuple(people), **fields)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(activities())
def test_any_activity_round_trips(activity):
    """Random appointments, calls and tasks (zoned across DST, all-day, recurring, attendees with and
    without e-mail, non-ASCII text) come back unchanged through a schema-valid EWS item."""
    assert content(round_trip(activity)) == content(activity)


# --- request payloads against Microsoft's schema ----------------------------------------------------


def test_update_payloads_for_moved_task_and_rezoned_event_are_valid():
    task = reparse(to_ews(TASK, CTX))
    changed = apply_to_ews(task, TASK.replace(status="open", completed_at=None, due=date(2030, 4, 20)), CTX)
    assert {"status", "percent_complete", "due_date"} <= set(changed)
    assert_valid(update_payload(task, changed))
    event = reparse(to_ews(CALL, CTX))
    moved = CALL.replace(start=datetime(2030, 3, 26, 9, tzinfo=ZoneInfo("Asia/Jerusalem")), timezone="Asia/Jerusalem",
                         end=datetime(2030, 3, 26, 10, tzinfo=ZoneInfo("Asia/Jerusalem")), participants=())
    changed = apply_to_ews(event, moved, CTX)
    assert {"start", "end", "_start_timezone", "required_attendees", "optional_attendees"} <= set(changed)
    assert_valid(update_payload(event, changed))


def test_schema_check_rejects_a_malformed_create_payload():
    """The validator is strict: an element out of the schema's order fails."""
    from lxml import etree

    payload = create_payload(to_ews(CALL, CTX))
    item = payload.find(".//{http://schemas.microsoft.com/exchange/services/2006/types}CalendarItem")
    item.append(item[0])  # Subject moved to the end
    with pytest.raises(etree.DocumentInvalid):
        assert_valid(payload)
