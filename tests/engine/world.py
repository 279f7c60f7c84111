"""A small world for engine tests: a SQLite CRM store, a real Radicale calendar behind a counting
proxy, and the calls a user makes on either side (CRM edits; a phone's plain CalDAV requests)."""

from __future__ import annotations

import base64
import http.client
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import icalendar
from radicale_server import PASSWORD, USER, FaultProxy, unique_name

from syncd import config as config_module
from syncd.app import App
from syncd.config import Config
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.engine.runner import PassReport
from syncd.model import Activity, CrmUser, Kind
from syncd.store import repository

AMS = ZoneInfo("Europe/Amsterdam")
OWNER = "anna@example.com"
BOB = "bob@example.com"


def soon(days: int = 3, hour: int = 10) -> datetime:
    """A time inside the default sync window, on a round hour in Amsterdam."""
    base = datetime.now(AMS).replace(hour=hour, minute=0, second=0, microsecond=0)
    return base + timedelta(days=days)


def meeting(activity_id: str, subject: str = "Kick-off", days: int = 3, **extra: Any) -> Activity:
    start = soon(days)
    fields: dict[str, Any] = dict(
        id=activity_id, kind=Kind.APPOINTMENT, subject=subject, owner=OWNER, start=start,
        end=start + timedelta(hours=1), timezone="Europe/Amsterdam", status="planned",
    )
    fields.update(extra)
    return Activity(**fields)


def task(activity_id: str, subject: str = "Send the offer", **extra: Any) -> Activity:
    """An open task due in two days."""
    return meeting(activity_id, subject, kind=Kind.TASK, start=None, end=None, status="open", due=soon(2, 17), **extra)


@dataclass
class Phone:
    """A calendar client talking plain CalDAV to the server (never through syncd's code)."""

    calendar_url: str

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        parts = urlsplit(self.calendar_url)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers={"Authorization": f"Basic {token}", **(headers or {})})
            response = conn.getresponse()
            return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()

    def path(self, uid: str) -> str:
        """Where the item with this UID is: syncd names its own by a UUID of the CRM id."""
        from syncd.mapping.identity import activity_id_from_uid, resource_name

        crm_id = activity_id_from_uid(uid)
        name = resource_name(crm_id) if crm_id else quote(uid, safe="") + ".ics"
        return urlsplit(self.calendar_url).path + name

    def hrefs(self) -> list[str]:
        body = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>')
        status, data, _ = self._request("PROPFIND", urlsplit(self.calendar_url).path, body, {"Depth": "1"})
        assert status == 207, status
        from lxml import etree

        tree = etree.fromstring(data)
        base = urlsplit(self.calendar_url).path
        hrefs = [h.text for h in tree.iter("{DAV:}href")]
        return sorted(h for h in hrefs if h and h.rstrip("/") != base.rstrip("/"))

    def items(self) -> dict[str, icalendar.Calendar]:
        """Every object on the server by UID."""
        found = {}
        for href in self.hrefs():
            status, data, _ = self._request("GET", href)
            assert status == 200
            cal = icalendar.Calendar.from_ical(data)
            uid = str(next(c for c in cal.subcomponents if c.name in ("VEVENT", "VTODO"))["UID"])
            assert uid not in found, f"duplicate UID {uid} on the server"
            found[uid] = cal
        return found

    def get(self, uid: str) -> tuple[icalendar.Calendar, str]:
        status, data, headers = self._request("GET", self.path(uid))
        assert status == 200, f"GET {uid}: {status}"
        return icalendar.Calendar.from_ical(data), headers["etag"]

    def put(self, uid: str, cal: icalendar.Calendar | bytes, etag: str | None = None) -> int:
        body = cal if isinstance(cal, bytes) else cal.to_ical()
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        headers.update({"If-Match": etag} if etag else {})
        status, _, _ = self._request("PUT", self.path(uid), body, headers)
        return status

    def edit(self, uid: str, **props: Any) -> None:
        """Change properties of the master component, as a phone's editor would."""
        cal, etag = self.get(uid)
        comp = next(c for c in cal.subcomponents if c.name in ("VEVENT", "VTODO") and "RECURRENCE-ID" not in c)
        for name, value in props.items():
            name = name.upper().replace("_", "-")
            if name in comp:
                del comp[name]
            if value is not None:
                comp.add(name, value)
        if "LAST-MODIFIED" in comp:
            del comp["LAST-MODIFIED"]
        comp.add("LAST-MODIFIED", datetime.now(UTC))
        assert self.put(uid, cal, etag) in (201, 204)

    def move_second_and_delete_third(self, uid: str, first: datetime) -> int:
        """In a weekly series starting at ``first``: the second occurrence moved three hours later and
        the third deleted (EXDATE), in one PUT, as a phone's editor writes them; the PUT's status."""
        cal, etag = self.get(uid)
        master(cal).add("EXDATE", first + timedelta(weeks=2))
        moved = icalendar.Event()
        moved.add("UID", uid)
        moved.add("RECURRENCE-ID", first + timedelta(weeks=1))
        moved.add("DTSTART", first + timedelta(weeks=1, hours=3))
        moved.add("DTEND", first + timedelta(weeks=1, hours=4))
        moved.add("SUMMARY", "Weekly sales meeting")
        moved.add("DTSTAMP", datetime.now(UTC))
        cal.add_component(moved)
        return self.put(uid, cal, etag)

    def delete(self, uid: str) -> None:
        status, _, _ = self._request("DELETE", self.path(uid))
        assert status in (200, 204), status

    def create_event(self, uid: str, summary: str, start: datetime, hours: int = 1, **props: Any) -> None:
        cal = icalendar.Calendar()
        cal.add("PRODID", "-//Phone//EN")
        cal.add("VERSION", "2.0")
        event = icalendar.Event()
        event.add("UID", uid)
        event.add("SUMMARY", summary)
        event.add("DTSTART", start)
        event.add("DTEND", start + timedelta(hours=hours))
        event.add("DTSTAMP", datetime.now(UTC))
        for name, value in props.items():
            event.add(name.upper().replace("_", "-"), value)
        cal.add_component(event)
        assert self.put(uid, cal) == 201


@dataclass
class World:
    root: Path
    radicale: EmbeddedRadicale
    proxy: FaultProxy
    calendars: dict[str, str] = field(default_factory=dict)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    store_url: str = ""

    def __post_init__(self) -> None:
        self.store_url = self.store_url or f"sqlite:///{self.root / 'crm.sqlite3'}"
        app = App(self.config())
        app.ensure_schema()
        with app.session() as session:
            repository.add_user(session, CrmUser(OWNER, "Anna", "Europe/Amsterdam"))
            repository.add_user(session, CrmUser(BOB, "Bob", "Europe/Amsterdam"))
            session.commit()

    def calendar(self, name: str | None = None, components: tuple[str, ...] = ("VEVENT", "VTODO")) -> str:
        """A fresh calendar on the server; returns its URL through the proxy."""
        name = name or unique_name()
        self.radicale.make_calendar(USER, name, components)
        self.calendars[name] = f"{self.radicale.url}/{USER}/{name}/"
        return f"{self.proxy.url}/{USER}/{name}/"

    def bind(self, name: str = "anna", owner: str = OWNER, **settings: Any) -> Phone:
        """Add a binding of ``owner`` to a new calendar; returns the phone that sees that calendar."""
        url = self.calendar()
        remote = {"type": "caldav", "url": url, "username": USER, "password": PASSWORD, "timeout": 2}
        remote.update(settings.pop("remote", {}))
        self.bindings.append({"name": name, "owner": owner, "remote": remote, **settings})
        direct = url.replace(self.proxy.url, self.radicale.url)
        return Phone(direct)

    def config(self, **binding_changes: Any) -> Config:
        bindings = [{**b, **binding_changes} for b in self.bindings]
        return config_module.parse({"store": {"url": self.store_url}, "bindings": bindings})

    def config_file(self) -> Path:
        import json

        path = self.root / "config.toml"
        lines = [f"[store]\nurl = {json.dumps(self.store_url)}\n"]
        for b in self.bindings:
            lines.append("[[bindings]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in b.items() if k != "remote"]
            lines.append("[bindings.remote]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in b["remote"].items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def app(self, **binding_changes: Any) -> App:
        return App(self.config(**binding_changes))

    def sync(self, name: str = "anna", clock: Any = None, **binding_changes: Any) -> PassReport:
        app = self.app(**binding_changes)
        return app.run_pass(app.config.binding(name), clock=clock)

    # -- the CRM side ----------------------------------------------------------------------------

    def save(self, *activities: Activity) -> None:
        with App(self.config()).session() as session:
            for activity in activities:
                repository.save_activity(session, activity)
            session.commit()

    def get(self, activity_id: str) -> Activity | None:
        with App(self.config()).session() as session:
            return repository.get_activity(session, activity_id)

    def all(self) -> list[Activity]:
        with App(self.config()).session() as session:
            return list(repository.iter_activities(session))

    def delete(self, activity_id: str) -> None:
        with App(self.config()).session() as session:
            repository.delete_activity(session, activity_id)
            session.commit()

    def sql(self, statement: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        with App(self.config()).engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []


def master(cal: icalendar.Calendar) -> icalendar.cal.Component:
    return next(c for c in cal.subcomponents if c.name in ("VEVENT", "VTODO") and "RECURRENCE-ID" not in c)


def uid(activity_id: str) -> str:
    from syncd.mapping.identity import uid_for

    return uid_for(activity_id)


def idle(world: World, name: str = "anna") -> bool:
    """One more pass of the binding finds nothing to do on either side."""
    report = world.sync(name)
    return report.result == "ok" and sum(report.counts.values()) == 0


def iter_reports(*reports: PassReport) -> Iterator[str]:
    for report in reports:
        yield f"{report.binding}: {report.result} {dict(report.counts)} {report.error} {report.errors}"
