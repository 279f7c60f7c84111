"""``syncd demo``: the whole job on the embedded default, with nothing to set up.

It starts Radicale on 127.0.0.1 (throw-away storage), creates a SQLite store with sample activities,
syncs them to the calendar, then edits one event and creates another on the server the way a phone
would (plain CalDAV requests), syncs back and shows what the CRM now holds.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click
import icalendar

from syncd import config as config_module
from syncd.app import App
from syncd.model import (
    Activity,
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
)

if TYPE_CHECKING:
    from syncd.engine.runner import PassReport

ZONE = "Europe/Amsterdam"
OWNER = "anna@example.com"


def sample_activities(now: datetime) -> list[Activity]:
    """A week of a sales rep's work, dated around ``now`` so it falls inside the sync window."""
    tz = ZoneInfo(ZONE)
    monday = (now.astimezone(tz) - timedelta(days=now.astimezone(tz).weekday())).replace(
        hour=9, minute=0, second=0, microsecond=0
    ) + timedelta(days=7)

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return (monday + timedelta(days=days)).replace(hour=hour, minute=minute)

    weekly_start = at(0, 9)
    return [
        Activity(
            id="demo-1", kind=Kind.APPOINTMENT, subject="Weekly sales meeting", owner=OWNER,
            description="Pipeline review; bring the numbers.", start=weekly_start,
            end=weekly_start + timedelta(hours=1), timezone=ZONE, status="planned", type="sales meeting",
            location="Room Amstel",
            recurrence=Recurrence(
                "FREQ=WEEKLY;BYDAY=MO;COUNT=10",
                exdates=(weekly_start + timedelta(weeks=2),),
                overrides=(Override(weekly_start + timedelta(weeks=1), start=weekly_start + timedelta(weeks=1, hours=2),
                                    end=weekly_start + timedelta(weeks=1, hours=3), location="Room IJ"),),
            ),
            participants=(Participant(ParticipantKind.USER, "bob@example.com", "Bob de Vries"),),
            reminder_minutes=15,
        ),
        Activity(
            id="demo-2", kind=Kind.CALL, subject="Call Łukasz about the offer", owner=OWNER,
            start=at(1, 14), end=at(1, 14, 30), timezone=ZONE, status="planned", type="phone call",
            priority="high", direction=Direction.OUTBOUND,
            participants=(Participant(ParticipantKind.CONTACT, "lukasz@klient.pl", "Łukasz Wiśniewski"),),
            regarding=(Regarding(RegardingKind.ACCOUNT, "acc-17", "Klient Sp. z o.o."),),
        ),
        Activity(
            id="demo-3", kind=Kind.TASK, subject="Send the revised quotation", owner=OWNER,
            due=at(2, 17), timezone=ZONE, status="open", priority="normal", parent_id="demo-2",
        ),
        Activity(
            id="demo-4", kind=Kind.APPOINTMENT, subject="Kick-off with Tel Aviv office — פגישת פתיחה", owner=OWNER,
            start=at(3, 10), end=at(3, 12), timezone=ZONE, status="planned", type="kick-off",
            location="Online",
            participants=(
                Participant(ParticipantKind.USER, "bob@example.com", "Bob de Vries", Role.REQUIRED, Response.ACCEPTED),
                Participant(ParticipantKind.CONTACT, "noa@example.co.il", "נועה כהן", Role.REQUIRED),
                Participant(ParticipantKind.EXTERNAL, "pieter@partner.nl", "Pieter", Role.OPTIONAL),
            ),
        ),
        Activity(
            id="demo-5", kind=Kind.APPOINTMENT, subject="Trade fair Utrecht", owner=OWNER,
            start=at(4, 0).date(), end=(at(4, 0) + timedelta(days=1)).date(), all_day=True, status="planned",
            place="Jaarbeursplein 6, Utrecht",
        ),
    ]


def _ask_server(url: str, user: str, password: str, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    import http.client
    from base64 import b64encode
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    auth = b64encode(f"{user}:{password}".encode()).decode()
    conn.request(method, path, body=body, headers={"Authorization": f"Basic {auth}", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data, {k.lower(): v for k, v in response.getheaders()}


def _phone_edits(calendar_url: str, user: str, password: str) -> None:
    """What a phone does: move the call by an hour, and add an event of its own."""
    from urllib.parse import urlsplit

    from syncd.mapping.identity import resource_name

    call = urlsplit(calendar_url).path + resource_name("demo-2")  # the name syncd gave the CRM's call
    base = urlsplit(calendar_url).path
    status, data, headers = _ask_server(calendar_url, user, password, "GET", call)
    if status != 200:
        raise click.ClickException(f"the demo could not read the call back from the server (HTTP {status})")
    cal = icalendar.Calendar.from_ical(data)
    event = next(c for c in cal.walk("VEVENT"))
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    for name, value in (("DTSTART", start + timedelta(hours=1)), ("DTEND", end + timedelta(hours=1))):
        del event[name]
        event.add(name, value)
    event["SUMMARY"] = icalendar.vText("Call Łukasz about the offer (moved on the phone)")
    _ask_server(calendar_url, user, password, "PUT", call, cal.to_ical(),
                {"Content-Type": "text/calendar; charset=utf-8", "If-Match": headers.get("etag", "*")})

    phone = icalendar.Calendar()
    phone.add("PRODID", "-//Phone//Calendar 1.0//EN")
    phone.add("VERSION", "2.0")
    lunch = icalendar.Event()
    lunch.add("UID", "phone-lunch-1@phone.example")
    lunch.add("SUMMARY", "Lunch with a prospect")
    day = start.astimezone(UTC) + timedelta(days=1)
    lunch.add("DTSTART", day.replace(hour=11, minute=30))
    lunch.add("DTEND", day.replace(hour=12, minute=30))
    lunch.add("DTSTAMP", datetime.now(UTC))
    phone.add_component(lunch)
    _ask_server(calendar_url, user, password, "PUT", f"{base}phone-lunch-1.ics", phone.to_ical(),
                {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"})


def _show(app: App, title: str, report: PassReport) -> None:
    from syncd.cli import _summary

    click.secho(title, bold=True)
    click.echo("  " + _summary(report).replace("\n", "\n  "))


def run_demo(keep: bool = False, workdir: str | None = None) -> int:
    import importlib.util

    if importlib.util.find_spec("radicale") is None:
        # The demo's server is an extra: an install for production does not carry it.
        click.echo("syncd: the demo needs Radicale, which is not installed: pip install 'syncd[demo]'", err=True)
        return 2
    from syncd import logging as log_setup
    from syncd.connectors.radicale_embedded import EmbeddedRadicale
    from syncd.store import repository
    from syncd.store.importer import import_activities

    log_setup.configure("warning")
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    try:
        with EmbeddedRadicale(root / "radicale") as radicale:
            radicale.add_user("anna", password)
            calendar_url = radicale.make_calendar("anna", "work")
            click.echo(f"CalDAV server (Radicale) at {radicale.url}, calendar {calendar_url}")
            config = config_module.parse(
                {
                    "store": {"url": f"sqlite:///{root / 'crm.sqlite3'}"},
                    "bindings": [{
                        "name": "anna-demo", "owner": OWNER,
                        "remote": {"type": "caldav", "url": calendar_url, "username": "anna", "password": password},
                    }],
                },
                source="demo",
            )
            log_setup.register_secrets(config.secrets())
            app = App(config)
            app.ensure_schema()
            with app.session() as session:
                repository.add_user(session, CrmUser(OWNER, "Anna Jansen", ZONE))
                repository.add_user(session, CrmUser("bob@example.com", "Bob de Vries", ZONE))
                session.commit()
                result = import_activities(session, sample_activities(datetime.now(UTC)))
            click.echo(f"CRM store {root / 'crm.sqlite3'}: {len(result.created)} sample activities for {OWNER}")
            binding = config.bindings[0]

            _show(app, "1. First sync: the CRM's activities go to the calendar", app.run_pass(binding))
            _phone_edits(calendar_url, "anna", password)
            click.echo("2. On the phone: the call is moved by an hour and renamed; a lunch is added")
            _show(app, "3. Sync: the phone's changes come back to the CRM", app.run_pass(binding))
            with app.session() as session:
                call = repository.get_activity(session, "demo-2")
                lunch = [a for a in repository.iter_activities(session) if a.subject == "Lunch with a prospect"]
            if call is not None and isinstance(call.start, datetime):
                click.echo(f"   CRM now: {call.subject!r} at {call.start.astimezone(ZoneInfo(ZONE)):%a %d %b %H:%M}")
            for activity in lunch:
                click.echo(f"   CRM now: new {activity.kind} {activity.subject!r} (id {activity.id})")
            _show(app, "4. Sync again: nothing changed, nothing to do", app.run_pass(binding))
            if keep:
                click.echo(
                    f"Radicale keeps running at {calendar_url} (user anna, password {password}); Ctrl-C stops it"
                )
                try:
                    while True:
                        import time

                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)
    return 0
