"""Activity <-> Graph event / To Do task JSON: what a user sees in Outlook and what comes back to the CRM."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from syncd.mapping import graph_props as gp
from syncd.mapping.context import MappingContext
from syncd.mapping.graph import event_from_graph, event_patch, event_to_graph, occurrence_patch
from syncd.mapping.graph_todo import task_extension, task_from_graph, task_link, task_to_graph
from syncd.mapping.options import MappingOptions
from syncd.mapping.outlook_recurrence import UnsupportedRecurrence, occurrence_changes
from syncd.model import (
    Activity,
    Attachment,
    CrmUser,
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

AMS = ZoneInfo("Europe/Amsterdam")
NY = ZoneInfo("America/New_York")
OWNER = "anna@example.com"
CTX = MappingContext(owner=CrmUser(OWNER, "Anna", "Europe/Amsterdam"),
                     options=MappingOptions(type_categories={"visit": "Customer visit"}))


def _utc(value: dict[str, str]) -> dict[str, str]:
    at = gp.instant(value)
    assert at is not None
    return {"dateTime": at.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def as_read(body: dict[str, Any], ident: str = "AAMkEvent1", floating_all_day: bool = False) -> dict[str, Any]:
    """The event as Graph hands it back with Prefer: outlook.timezone="UTC"."""
    read = copy.deepcopy(body)
    read.update(id=ident, changeKey="ck1", type="seriesMaster" if body.get("recurrence") else "singleInstance",
                originalStartTimeZone=body["start"]["timeZone"], originalEndTimeZone=body["end"]["timeZone"],
                lastModifiedDateTime="2030-01-01T10:00:00.1234567Z", createdDateTime="2030-01-01T09:00:00Z",
                organizer={"emailAddress": {"name": "Anna", "address": OWNER}})
    if not (floating_all_day and body.get("isAllDay")):
        read["start"], read["end"] = _utc(body["start"]), _utc(body["end"])
    else:
        read["start"] = {"dateTime": body["start"]["dateTime"], "timeZone": "UTC"}
        read["end"] = {"dateTime": body["end"]["dateTime"], "timeZone": "UTC"}
    return read


def appointment(**changes: Any) -> Activity:
    fields: dict[str, Any] = dict(
        id="42", kind=Kind.APPOINTMENT, subject="Kick-off", owner=OWNER, description="Agenda:\n1. scope",
        start=datetime(2030, 3, 4, 9, 30, tzinfo=AMS), end=datetime(2030, 3, 4, 11, tzinfo=AMS),
        timezone="Europe/Amsterdam", status="postponed", type="visit", priority="high", direction=Direction.OUTBOUND,
        location="Room 4", place="Utrecht", project="P-7", reminder_minutes=30,
        participants=(Participant(ParticipantKind.CONTACT, "jan@example.org", "Jan", Role.OPTIONAL, Response.ACCEPTED),
                      Participant(ParticipantKind.EXTERNAL, None, "Someone without mail")),
        regarding=(Regarding(RegardingKind.ACCOUNT, "acc-1", "ACME"),), sensitivity=Sensitivity.PRIVATE,
        categories=("Key account",), attachments=(Attachment("https://files.example/offer.pdf", "Offer"),),
        extra={"budget": 1200},
    )
    fields.update(changes)
    return Activity(**fields)


def _content(activity: Activity) -> Activity:
    return activity.replace(updated_at=None, created_at=None)


def test_a_timed_appointment_comes_back_unchanged() -> None:
    activity = appointment()
    body = event_to_graph(activity, CTX, invitations=False)
    assert body["start"] == {"dateTime": "2030-03-04T09:30:00", "timeZone": "Europe/Amsterdam"}
    assert (body["showAs"], body["importance"], body["sensitivity"]) == ("tentative", "high", "private")
    assert body["categories"] == ["Customer visit", "Key account"]
    assert "attendees" not in body  # nobody is mailed
    parsed = event_from_graph(as_read(body), CTX)
    assert parsed.crm_id == "42"
    assert _content(parsed.activity) == _content(activity)


def test_with_invitations_attendees_are_written_and_read_back() -> None:
    activity = appointment()
    body = event_to_graph(activity, CTX, invitations=True)
    assert body["attendees"] == [{"emailAddress": {"address": "jan@example.org", "name": "Jan"}, "type": "optional"}]
    read = as_read(body)
    read["attendees"][0]["status"] = {"response": "declined"}
    back = event_from_graph(read, CTX).activity
    assert [(p.email, p.role, p.response) for p in back.participants] == [
        ("jan@example.org", Role.OPTIONAL, Response.DECLINED), (None, Role.REQUIRED, Response.NEEDS_ACTION)]


@pytest.mark.parametrize("floating", [False, True], ids=["utc-instant", "floating-midnight"])
def test_an_all_day_event_keeps_its_days_in_a_zone_west_of_utc(floating: bool) -> None:
    ctx = MappingContext(owner=CrmUser(OWNER, "Anna", "America/New_York"))
    activity = Activity(id="7", kind=Kind.APPOINTMENT, subject="Trade fair", owner=OWNER, all_day=True,
                        start=date(2030, 11, 2), end=date(2030, 11, 5), timezone="America/New_York")
    body = event_to_graph(activity, ctx, invitations=False)
    assert (body["start"]["dateTime"], body["end"]["dateTime"]) == ("2030-11-02T00:00:00", "2030-11-05T00:00:00")
    back = event_from_graph(as_read(body, floating_all_day=floating), ctx).activity
    assert (back.start, back.end, back.all_day) == (date(2030, 11, 2), date(2030, 11, 5), True)


def test_an_outlook_event_in_a_windows_zone_reads_in_the_iana_zone() -> None:
    event = {
        "id": "AAMkOutlook", "changeKey": "c", "type": "singleInstance", "subject": "Lunch",
        "iCalUId": "040000008200E00074C5B7101A82E008", "isAllDay": False, "showAs": "busy", "importance": "normal",
        "start": {"dateTime": "2030-06-03T10:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2030-06-03T11:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "W. Europe Standard Time", "location": {"displayName": "Bistro"},
        "body": {"contentType": "html", "content": "<html><head><style>p{}</style></head><body><p>Hi &amp; bye</p>"
                                                   "</body></html>"},
        "categories": ["Phone call"], "isReminderOn": True, "reminderMinutesBeforeStart": 15,
        "organizer": {"emailAddress": {"address": "marek@example.com"}},
    }
    parsed = event_from_graph(event, CTX)
    a = parsed.activity
    assert parsed.crm_id is None and a.id.startswith("cal-")
    assert (a.kind, a.timezone, a.start) == (Kind.CALL, "Europe/Berlin", datetime(2030, 6, 3, 12, tzinfo=AMS))
    assert (a.description, a.location, a.reminder_minutes, a.owner) == ("Hi & bye", "Bistro", 15, "marek@example.com")
    assert a.status == "planned" and a.priority is None


def test_an_item_syncd_made_through_ews_is_recognised() -> None:
    """EWS wrote the same property set and names; Graph may spell the ids in another case."""
    body = event_to_graph(appointment(), CTX, invitations=False)
    read = as_read(body)
    for prop in read["singleValueExtendedProperties"]:
        prop["id"] = prop["id"].replace("String {", "String {").upper().replace("STRING", "String")
    parsed = event_from_graph(read, CTX)
    assert parsed.crm_id == "42" and parsed.activity.place == "Utrecht"


RULES = [
    ("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10", datetime(2030, 3, 4, 9, tzinfo=AMS)),
    ("FREQ=DAILY;INTERVAL=3;UNTIL=20300601T070000Z", datetime(2030, 3, 28, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=-1FR", datetime(2030, 1, 25, 16, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1", datetime(2030, 1, 1, 16, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", datetime(2030, 1, 31, 16, tzinfo=AMS)),
    ("FREQ=YEARLY;INTERVAL=2;BYMONTH=6;BYMONTHDAY=10", datetime(2030, 6, 10, 9, tzinfo=AMS)),
    ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", datetime(2030, 11, 28, 12, tzinfo=NY)),
]


def _occurrences(rule: str, start: datetime, n: int = 40) -> list[datetime]:
    return list(islice(rrulestr(rule, dtstart=start), n))


@pytest.mark.parametrize(("rule", "start"), RULES, ids=[r for r, _ in RULES])
def test_recurrence_patterns_go_both_ways(rule: str, start: datetime) -> None:
    activity = appointment(start=start, end=start + timedelta(hours=1), timezone=start.tzinfo.key,  # type: ignore[union-attr]
                           recurrence=Recurrence(rule))
    body = event_to_graph(activity, CTX, invitations=False)
    read = as_read(body)
    del read["singleValueExtendedProperties"]  # no carried rule: read from the pattern alone
    back = event_from_graph(read, CTX).activity
    assert back.recurrence is not None
    assert _occurrences(back.recurrence.rrule, start) == _occurrences(rule, start)


def test_graph_has_a_yearly_interval_and_the_ews_form_reads_too() -> None:
    start = datetime(2030, 6, 10, 9, tzinfo=AMS)
    body = event_to_graph(appointment(start=start, end=start + timedelta(hours=1),
                                      recurrence=Recurrence("FREQ=YEARLY;INTERVAL=2;BYMONTH=6;BYMONTHDAY=10")),
                          CTX, invitations=False)
    assert body["recurrence"]["pattern"] == {"type": "absoluteYearly", "interval": 2, "dayOfMonth": 10, "month": 6}
    ews_form = as_read(body)
    ews_form["recurrence"]["pattern"] = {"type": "absoluteMonthly", "interval": 24, "dayOfMonth": 10}
    del ews_form["singleValueExtendedProperties"]
    rule = event_from_graph(ews_form, CTX).activity.recurrence.rrule  # type: ignore[union-attr]
    assert _occurrences(rule, start, 5) == [start.replace(year=y) for y in (2030, 2032, 2034, 2036, 2038)]


def test_a_pattern_outlook_holds_but_rrule_cannot_say_is_refused() -> None:
    read = as_read(event_to_graph(appointment(recurrence=Recurrence("FREQ=WEEKLY;BYDAY=MO")), CTX, invitations=False))
    read["recurrence"]["pattern"] = {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday", "wednesday"],
                                     "index": "first"}
    with pytest.raises(UnsupportedRecurrence):
        event_from_graph(read, CTX)


def test_exceptions_and_cancelled_occurrences_read_as_overrides_and_exdates() -> None:
    start = datetime(2030, 3, 4, 9, tzinfo=AMS)
    read = as_read(event_to_graph(appointment(start=start, end=start + timedelta(hours=1),
                                              recurrence=Recurrence("FREQ=WEEKLY;COUNT=5")), CTX, invitations=False))
    read["cancelledOccurrences"] = ["OID.AAMkEvent1.2030-03-11"]
    moved = start + timedelta(weeks=2)
    read["exceptionOccurrences"] = [{
        "id": "AAMkExc", "type": "exception", "originalStart": moved.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start": gp.dtz(moved + timedelta(hours=3), "UTC"), "end": gp.dtz(moved + timedelta(hours=4), "UTC"),
        "subject": "Kick-off", "location": {"displayName": "Room 9"},
    }]
    rec = event_from_graph(read, CTX).activity.recurrence
    assert rec is not None and rec.exdates == (datetime(2030, 3, 11, 9, tzinfo=AMS),)
    [override] = rec.overrides
    assert (override.recurrence_id, override.start, override.location, override.subject) == (
        moved, moved + timedelta(hours=3), "Room 9", None)


def test_an_update_patches_only_what_changed() -> None:
    start = datetime(2030, 3, 4, 9, tzinfo=AMS)
    series = appointment(start=start, end=start + timedelta(hours=1), recurrence=Recurrence("FREQ=WEEKLY;COUNT=5"),
                         categories=("Mine",))
    current = as_read(event_to_graph(series, CTX, invitations=False))
    current["originalStartTimeZone"] = "W. Europe Standard Time"  # as Exchange may keep it
    current["categories"] = ["Mine", "Customer visit"]  # Outlook's order
    assert event_patch(current, event_to_graph(series, CTX, invitations=False)) == {}
    patch = event_patch(current, event_to_graph(series.replace(location="Room 5"), CTX, invitations=False))
    assert patch == {"location": {"displayName": "Room 5"}}
    later = event_patch(current, event_to_graph(series.replace(start=start + timedelta(hours=1),
                                                               end=start + timedelta(hours=2)), CTX, invitations=False))
    assert {"start", "end", "isAllDay"} <= set(later) and "recurrence" not in later


def test_a_task_round_trips_through_to_do() -> None:
    task = Activity(id="t1", kind=Kind.TASK, subject="Send the offer", owner=OWNER, status="in-progress",
                    due=datetime(2030, 3, 5, 17, tzinfo=AMS), start=datetime(2030, 3, 4, 9, tzinfo=AMS),
                    timezone="Europe/Amsterdam", reminder_minutes=60, priority="low", description="PDF",
                    location="Office", sensitivity=Sensitivity.CONFIDENTIAL)
    body = task_to_graph(task, CTX)
    assert body["dueDateTime"] == {"dateTime": "2030-03-05T00:00:00", "timeZone": "Europe/Amsterdam"}
    assert (body["status"], body["importance"], body["isReminderOn"]) == ("inProgress", "low", True)
    assert task_link(task, CTX)["externalId"] == "t1"
    read = {**body, "id": "AAMkTask", "@odata.etag": 'W/"x"', "extensions": [task_extension(task)],
            "dueDateTime": _utc(body["dueDateTime"]), "startDateTime": _utc(body["startDateTime"]),
            "linkedResources": [{**task_link(task, CTX), "id": "lr1"}]}
    parsed = task_from_graph(read, CTX)
    assert parsed.crm_id == "t1"
    assert _content(parsed.activity) == _content(task)


def test_a_task_completed_in_to_do_is_done_with_its_completion_time() -> None:
    task = Activity(id="t2", kind=Kind.TASK, subject="Call back", owner=OWNER, status="open", due=date(2030, 3, 5),
                    all_day=True)
    body = task_to_graph(task, CTX)
    read = {**body, "id": "AAMkTask2", "extensions": [task_extension(task)], "status": "completed",
            "completedDateTime": {"dateTime": "2030-03-04T15:00:00.0000000", "timeZone": "UTC"}}
    done = task_from_graph(read, CTX).activity
    assert (done.status, done.due) == ("done", date(2030, 3, 5))
    assert done.completed_at == datetime(2030, 3, 4, 15, tzinfo=UTC)


def test_a_show_as_set_in_the_crm_wins_over_the_status() -> None:
    activity = appointment(show_as=ShowAs.FREE)
    body = event_to_graph(activity, CTX, invitations=False)
    assert body["showAs"] == "free"
    back = event_from_graph(as_read(body), CTX).activity
    assert (back.status, back.show_as) == ("postponed", ShowAs.FREE)


def test_an_event_without_syncd_data_leaves_the_hidden_fields_to_the_crm() -> None:
    read = as_read(event_to_graph(appointment(), CTX, invitations=False))
    del read["singleValueExtendedProperties"]  # a client dropped syncd's properties
    parsed = event_from_graph(read, CTX)
    assert {"place", "project", "regarding"} <= parsed.uncarried.fields
    assert parsed.uncarried.shown["status"](appointment())  # the CRM's status still shows as Outlook shows


def test_a_cancelled_occurrence_is_written_free_and_reads_back_cancelled() -> None:
    """As through EWS: free in Outlook with the subject unchanged, its exact status in syncd's data; an
    occurrence the organizer cancelled (an attendee's copy: ``isCancelled``) reads cancelled, one made busy
    again in Outlook is no longer cancelled."""
    start = datetime(2030, 3, 4, 9, tzinfo=AMS)
    second, third = start + timedelta(weeks=1), start + timedelta(weeks=2)
    series = appointment(status="planned", start=start, end=start + timedelta(hours=1), recurrence=Recurrence(
        "FREQ=WEEKLY;COUNT=5", overrides=(Override(second, status="cancelled"),)))
    read = as_read(event_to_graph(series, CTX, invitations=False))
    assert read["showAs"] == "busy"
    [change] = occurrence_changes(series, service="graph")
    patch = occurrence_patch(change, CTX.options)
    assert patch == {"showAs": "free"}

    def exception(at: datetime, **fields: Any) -> dict[str, Any]:
        row = {k: v for k, v in read.items() if k not in ("recurrence", "id", "type", "singleValueExtendedProperties")}
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        row.update(id=f"AAMkExc{stamp}", type="exception", originalStart=stamp, start=gp.dtz(at, "UTC"),
                   end=gp.dtz(at + timedelta(hours=1), "UTC"), **fields)
        return row

    read["exceptionOccurrences"] = [exception(second, **patch)]
    back = event_from_graph(read, CTX).activity
    assert back.status == "planned"
    assert back.recurrence is not None and back.recurrence.overrides == (Override(second, status="cancelled"),)

    read["exceptionOccurrences"] = [exception(second, showAs="busy"),
                                    exception(third, showAs="free", isCancelled=True)]
    back = event_from_graph(read, CTX).activity
    assert back.recurrence is not None
    # The second shows the series again: no override of its own left.
    assert back.recurrence.overrides == (Override(third, status="cancelled"),)


def test_a_cancelled_occurrence_with_a_show_as_of_its_own_keeps_both() -> None:
    start = datetime(2030, 3, 4, 9, tzinfo=AMS)
    second = start + timedelta(weeks=1)
    own = Override(second, status="cancelled", show_as=ShowAs.OUT_OF_OFFICE)
    series = appointment(status="planned", start=start, end=start + timedelta(hours=1),
                         recurrence=Recurrence("FREQ=WEEKLY;COUNT=5", overrides=(own,)))
    read = as_read(event_to_graph(series, CTX, invitations=False))
    [change] = occurrence_changes(series, service="graph")
    assert occurrence_patch(change, CTX.options) == {"showAs": "oof"}  # its own show-as wins
    stamp = second.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    read["exceptionOccurrences"] = [{"id": "AAMkExc", "type": "exception", "originalStart": stamp,
                                     "start": gp.dtz(second, "UTC"), "end": gp.dtz(second + timedelta(hours=1), "UTC"),
                                     "subject": read["subject"], "showAs": "oof"}]
    back = event_from_graph(read, CTX).activity
    assert back.recurrence is not None and back.recurrence.overrides == (own,)


def test_an_undone_show_as_of_an_occurrence_shows_the_series_again() -> None:
    """An occurrence of its own subject was out of office; set back to the series' in the CRM, Outlook gets
    the series' free/busy again: busy, when the series has neither a show-as nor a status of its own."""
    start = datetime(2030, 3, 4, 9, tzinfo=AMS)
    second = start + timedelta(weeks=1)
    own = Override(second, subject="Offsite", show_as=ShowAs.OUT_OF_OFFICE)
    series = appointment(status=None, show_as=None, start=start, end=start + timedelta(hours=1),
                         recurrence=Recurrence("FREQ=WEEKLY;COUNT=5", overrides=(Override(second, subject="Offsite"),)))
    assert event_to_graph(series, CTX, invitations=False)["showAs"] == "busy"
    [change] = occurrence_changes(series, Recurrence("FREQ=WEEKLY;COUNT=5", overrides=(own,)), service="graph")
    assert occurrence_patch(change, CTX.options) == {"showAs": "busy"}
    # A series that shows tentative (by its status): that.
    tentative = series.replace(status="postponed")
    [change] = occurrence_changes(tentative, Recurrence("FREQ=WEEKLY;COUNT=5", overrides=(own,)), service="graph")
    assert occurrence_patch(change, CTX.options) == {"showAs": "tentative"}
