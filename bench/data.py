"""The data every contender syncs: N CRM activities (a sales rep's mix) and N calendar events as a
phone would write them. Times fall inside syncd's default window (30 days back, 365 ahead)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from syncd.model import (
    Activity,
    Kind,
    Participant,
    ParticipantKind,
    Regarding,
    RegardingKind,
)

ZONE = "Europe/Amsterdam"
OWNER = "rep@bench.example"


def _slot(i: int, n: int, now: datetime) -> datetime:
    """Item ``i`` of ``n`` on a working-hour slot spread over the next 300 days."""
    tz = ZoneInfo(ZONE)
    day = (now.astimezone(tz) + timedelta(days=1 + (i * 300) // max(n, 1))).replace(
        hour=8 + i % 9, minute=0, second=0, microsecond=0
    )
    return day


def activities(n: int, now: datetime) -> list[Activity]:
    """70% appointments (half with a contact), 20% calls, 10% tasks."""
    out: list[Activity] = []
    for i in range(n):
        start = _slot(i, n, now)
        common = {"id": f"bench-{i:06d}", "owner": OWNER, "timezone": ZONE, "description": f"Agenda item {i}.\nBring notes."}
        if i % 10 == 9:
            out.append(Activity(kind=Kind.TASK, subject=f"Follow up #{i}", due=start, status="open",
                                priority="normal", **common))
        elif i % 10 >= 7:
            out.append(Activity(
                kind=Kind.CALL, subject=f"Call customer #{i}", start=start, end=start + timedelta(minutes=30),
                status="planned", type="phone call",
                participants=(Participant(ParticipantKind.CONTACT, f"c{i % 500}@customer.example", f"Contact {i % 500}"),),
                regarding=(Regarding(RegardingKind.ACCOUNT, f"acc-{i % 200}", f"Account {i % 200}"),),
                **common,
            ))
        else:
            people = (Participant(ParticipantKind.CONTACT, f"c{i % 500}@customer.example", f"Contact {i % 500}"),) if i % 2 else ()
            out.append(Activity(
                kind=Kind.APPOINTMENT, subject=f"Meeting #{i}", start=start, end=start + timedelta(hours=1),
                status="planned", location=f"Room {i % 12}", participants=people, **common,
            ))
    return out


def edited(activity: Activity) -> Activity:
    return dataclasses.replace(activity, subject=activity.subject + " (edited in the CRM)", updated_at=None)


def server_event(i: int, n: int, now: datetime) -> tuple[str, bytes]:
    """(file name, iCalendar body) of a phone-made event, about the size of what syncd writes."""
    start = _slot(i, n, now).astimezone(UTC)
    end = start + timedelta(hours=1)
    fmt = "%Y%m%dT%H%M%SZ"
    uid = f"phone-{i:06d}@bench.example"
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bench Phone//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{now.astimezone(UTC):{fmt}}\r\nDTSTART:{start:{fmt}}\r\nDTEND:{end:{fmt}}\r\n"
        f"SUMMARY:Phone meeting #{i}\r\nLOCATION:Room {i % 12}\r\nDESCRIPTION:Agenda item {i}.\\nBring notes.\r\n"
        f"ORGANIZER;CN=Rep:mailto:{OWNER}\r\n"
        f"ATTENDEE;CN=Contact {i % 500};PARTSTAT=NEEDS-ACTION:mailto:c{i % 500}@customer.example\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    return f"phone-{i:06d}.ics", body.encode()


def server_edit(body: bytes) -> bytes:
    """What a phone edit does to an event: a new summary (and a new DTSTAMP would not matter)."""
    text = body.decode()
    lines = text.split("\r\n")
    out = []
    for line in lines:
        if line.startswith("SUMMARY:"):
            line = line + " (edited on the phone)"
        out.append(line)
    return "\r\n".join(out).encode()
