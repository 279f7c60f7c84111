"""The crash-safety matrix's world: one scenario with pending changes of every kind on both sides,
set up once per calendar type and restored before every case, and the checks that say what a
faulty pass followed by clean passes lost, duplicated, resurrected or left stuck.

The scenario (the same for CalDAV and Exchange). Synced beforehand: Steady, "CRM edit me",
"CRM delete me", "Phone edit me", "Phone delete me" and the weekly series "Weekly". Pending when the
faulty pass starts:

* in the CRM: "CRM edit me" becomes "CRM edited", "CRM delete me" is deleted, "CRM new" is created,
  and "CRM series" is created: weekly, its second occurrence moved and renamed, its third deleted;
* in the calendar: "Phone edit me" becomes "Phone edited", "Phone delete me" is deleted, "Phone new"
  is created, and the second occurrence of "Weekly" is moved three hours and renamed.

After any faulty pass and two clean ones, both sides must hold exactly ``EXPECTED``, once each,
with both series' exceptions, and nothing of ``GONE``.

A rig restores a snapshot (the SQLite store file, and the calendar: Radicale's collection folder
or the EWS test server's store) instead of setting the scenario up again: a case costs one faulty
and two clean passes, not five.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import socket
import socketserver
import sqlite3
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import icalendar
from world import OWNER, Phone, meeting, soon, uid

from syncd import config as config_module
from syncd.app import App
from syncd.config import Config
from syncd.model import Activity, CrmUser, Override, Recurrence
from syncd.store import repository

EXPECTED = ("CRM edited", "CRM new", "CRM series", "Phone edited", "Phone new", "Steady", "Weekly")
GONE = ("CRM delete me", "Phone delete me")
#: Subjects an edit replaced: seen again, the edit was lost.
REPLACED = ("CRM edit me", "Phone edit me")
#: The client timeout of a faulty pass (the `timeout` fault holds an answer longer than that)...
CLIENT_TIMEOUT = 1.0
#: ... and of every other pass, long enough for a loaded machine.
CLEAN_TIMEOUT = 10.0
LEASE_TTL = 1.0


def utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


@dataclass(frozen=True)
class Exception_:
    """One occurrence of a series as a side holds it: moved/renamed (start, subject) or deleted."""

    start: datetime | None
    subject: str | None


@dataclass
class Item:
    """One event as a side holds it, reduced to what the checks compare."""

    key: str  # UID (CalDAV), ItemId (Exchange), activity id (CRM)
    crm_id: str | None
    subject: str
    start: datetime | None
    exceptions: dict[datetime, Exception_] = field(default_factory=dict)
    exdates: set[datetime] = field(default_factory=set)


@dataclass(frozen=True)
class Times:
    """The scenario's moments, fixed when the snapshot is made."""

    first: datetime
    phone_new: datetime

    @property
    def second(self) -> datetime:
        return self.first + timedelta(weeks=1)

    @property
    def third(self) -> datetime:
        return self.first + timedelta(weeks=2)

    # "CRM series": two hours after "Weekly".
    @property
    def crm_first(self) -> datetime:
        return self.first + timedelta(hours=2)


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    resurrected: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    store: list[str] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)
    """A pass that raised, or an item that failed with an internal error (a bug, not a fault)."""

    KINDS = ("lost", "duplicated", "resurrected", "stuck", "store", "internal")

    @property
    def clean(self) -> bool:
        return not any(getattr(self, what) for what in self.KINDS)

    def all(self) -> list[str]:
        return [f"{what}: {m}" for what in self.KINDS for m in getattr(self, what)]


# -- the two sides ---------------------------------------------------------------------------------


class Rig:
    """One calendar type's half of the matrix: a binding "anna", a store file, a calendar, a proxy."""

    name = "?"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store_path = root / "crm.sqlite3"
        self.snapshot_dir = root / "snapshot"
        self.times: Times | None = None
        self.remote_settings: dict[str, Any] = {}
        self.binding_settings: dict[str, Any] = {}
        """More settings of the binding (e.g. ``conflict``)."""
        self._apps: dict[bool, App] = {}

    # --- config ------------------------------------------------------------------------------------

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.store_path}"

    def binding(self, faulty: bool = False) -> dict[str, Any]:
        remote = {**self.remote_settings, "timeout": CLIENT_TIMEOUT if faulty else CLEAN_TIMEOUT}
        return {"name": "anna", "owner": OWNER, **self.binding_settings, "remote": remote}

    def config(self, faulty: bool = False) -> Config:
        return config_module.parse({"store": {"url": self.store_url}, "bindings": [self.binding(faulty)]})

    def config_file(self, log_format: str = "json") -> Path:
        """The TOML a user would write, for ``syncd sync`` as a process (logging at the default level)."""
        b = self.binding()
        lines = [f"[store]\nurl = {json.dumps(self.store_url)}\n", "[daemon]", f"lease_ttl = {LEASE_TTL}",
                 "listen = \"\"", f'\n[logging]\nlevel = "info"\nformat = "{log_format}"\n', "[[bindings]]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in b.items() if k != "remote"]
        lines.append("[bindings.remote]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in b["remote"].items()]
        path = self.root / "config.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def app(self, faulty: bool = False) -> App:
        """One App for every pass and check, as a daemon keeps one (its engine caches compiled SQL);
        another for faulty passes, with a short client timeout."""
        if faulty not in self._apps:
            self._apps[faulty] = App(self.config(faulty))
        return self._apps[faulty]

    def reconfigure(self, **binding_settings: Any) -> None:
        """Change the binding's settings (e.g. ``conflict``) from the next pass on."""
        self.binding_settings = binding_settings
        self._dispose()
        self._apps.clear()

    def _dispose(self) -> None:
        for app in self._apps.values():
            app.engine.dispose()

    def sync(self, faulty: bool = False):  # -> PassReport
        app = self.app(faulty)
        return app.run_pass(app.config.binding("anna"))

    # --- the CRM side --------------------------------------------------------------------------

    def crm_save(self, *activities: Activity) -> None:
        with self.app().session() as session:
            for activity in activities:
                repository.save_activity(session, activity)
            session.commit()

    def crm_delete(self, activity_id: str) -> None:
        with self.app().session() as session:
            repository.delete_activity(session, activity_id)
            session.commit()

    def crm_items(self) -> list[Item]:
        with self.app().session() as session:
            activities = list(repository.iter_activities(session))
        items = []
        for a in activities:
            item = Item(a.id, a.id, a.subject, utc(a.start) if a.start else None)
            if a.recurrence is not None:
                item.exdates = {utc(d) for d in a.recurrence.exdates}
                for o in a.recurrence.overrides:
                    item.exceptions[utc(o.recurrence_id)] = Exception_(utc(o.start) if o.start else None, o.subject)
            items.append(item)
        return items

    def sql(self, statement: str) -> list[tuple]:
        conn = sqlite3.connect(self.store_path)
        try:
            return conn.execute(statement).fetchall()
        finally:
            conn.close()

    # --- the calendar side (per type) ----------------------------------------------------------

    def calendar_items(self) -> list[Item]:
        raise NotImplementedError

    def calendar_refs(self) -> set[str]:
        """What the store's links point at: item paths (CalDAV) or ItemIds (Exchange)."""
        raise NotImplementedError

    def edit_subject(self, activity_id: str, subject: str) -> None:
        raise NotImplementedError

    def delete_item(self, activity_id: str) -> None:
        raise NotImplementedError

    def create_event(self, subject: str, start: datetime) -> None:
        raise NotImplementedError

    def move_occurrence(self, activity_id: str, original: datetime, start: datetime, subject: str) -> None:
        raise NotImplementedError

    def snapshot_calendar(self) -> None:
        raise NotImplementedError

    def restore_calendar(self) -> None:
        raise NotImplementedError

    # --- the scenario --------------------------------------------------------------------------

    def init_store(self) -> None:
        """A new store with the CRM user the binding syncs."""
        self.store_path.unlink(missing_ok=True)
        app = self.app()
        app.ensure_schema()
        with app.session() as session:
            repository.add_user(session, CrmUser(OWNER, "Anna", "Europe/Amsterdam"))
            session.commit()

    def build(self) -> None:
        """Set the scenario up once and snapshot it."""
        self.init_store()
        first = soon(1, 9)
        self.times = times = Times(first, soon(8, 11))
        self.crm_save(
            meeting("steady", "Steady"),
            meeting("c_upd", "CRM edit me", days=2),
            meeting("c_del", "CRM delete me", days=4),
            meeting("p_upd", "Phone edit me", days=5),
            meeting("p_del", "Phone delete me", days=6),
            meeting("series", "Weekly", start=first, end=first + timedelta(hours=1),
                    recurrence=Recurrence("FREQ=WEEKLY;COUNT=6")),
        )
        for _ in range(2):
            report = self.sync()
            assert report.result == "ok" and not report.errors, (report.error, report.errors)
        crm_first = times.crm_first
        self.crm_save(
            meeting("c_upd", "CRM edited", days=2),
            meeting("c_new", "CRM new", days=7),
            meeting("c_series", "CRM series", start=crm_first, end=crm_first + timedelta(hours=1),
                    recurrence=Recurrence(
                        "FREQ=WEEKLY;COUNT=4",
                        exdates=(crm_first + timedelta(weeks=2),),
                        overrides=(Override(recurrence_id=crm_first + timedelta(weeks=1),
                                            start=crm_first + timedelta(weeks=1, hours=1),
                                            end=crm_first + timedelta(weeks=1, hours=2),
                                            subject="CRM series (moved)"),),
                    )),
        )
        self.crm_delete("c_del")
        self.edit_subject("p_upd", "Phone edited")
        self.delete_item("p_del")
        self.create_event("Phone new", times.phone_new)
        self.move_occurrence("series", times.second, times.second + timedelta(hours=3), "Weekly (moved)")
        self.snapshot_dir.mkdir(exist_ok=True)
        self._dispose()  # the last connection closed: SQLite folds its WAL into the file
        shutil.copyfile(self.store_path, self.snapshot_dir / "crm.sqlite3")
        self.snapshot_calendar()

    def restore(self) -> None:
        self._dispose()
        for suffix in ("-journal", "-wal", "-shm"):
            Path(f"{self.store_path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.snapshot_dir / "crm.sqlite3", self.store_path)
        self.restore_calendar()

    # --- the checks ----------------------------------------------------------------------------

    def check(self) -> Findings:
        """What both sides and the store look like against the scenario's expected end state."""
        assert self.times is not None
        found = Findings()
        crm, cal = self.crm_items(), self.calendar_items()
        for side, items in (("CRM", crm), ("calendar", cal)):
            subjects = Counter(i.subject for i in items)
            for subject in EXPECTED:
                if subjects[subject] == 0:
                    found.lost.append(f"{side} lacks {subject!r}")
                elif subjects[subject] > 1:
                    found.duplicated.append(f"{side} has {subjects[subject]}x {subject!r}")
            for subject in GONE:
                if subjects[subject]:
                    found.resurrected.append(f"{side} has {subject!r} again")
            for subject in REPLACED:
                if subjects[subject]:
                    found.lost.append(f"{side} shows {subject!r}: the edit was lost")
            others = set(subjects) - set(EXPECTED) - set(GONE) - set(REPLACED)
            for subject in sorted(others):
                found.duplicated.append(f"{side} has an unexpected {subject!r} x{subjects[subject]}")
            keys = Counter(i.crm_id for i in items if i.crm_id)
            found.duplicated += [f"{side}: activity {k} {n} times" for k, n in keys.items() if n > 1]
            by_subject = {i.subject: i for i in items}
            self._check_series(side, by_subject, found)
            new = by_subject.get("Phone new")
            if new is not None and new.start != utc(self.times.phone_new):
                found.lost.append(f"{side}: 'Phone new' starts {new.start}, not {utc(self.times.phone_new)}")
        self._check_store(crm, found)
        return found

    def _check_series(self, side: str, by_subject: dict[str, Item], found: Findings) -> None:
        t = self.times
        assert t is not None
        weekly = by_subject.get("Weekly")
        if weekly is not None:
            want = Exception_(utc(t.second + timedelta(hours=3)), "Weekly (moved)")
            got = weekly.exceptions.get(utc(t.second))
            if got != want:
                found.lost.append(f"{side}: 'Weekly' occurrence 2 is {got}, not {want} (the calendar's exception)")
            if len(weekly.exceptions) != 1 or weekly.exdates:
                found.lost.append(f"{side}: 'Weekly' has exceptions {weekly.exceptions} and exdates {weekly.exdates}")
        series = by_subject.get("CRM series")
        if series is not None:
            moved = t.crm_first + timedelta(weeks=1)
            want = Exception_(utc(moved + timedelta(hours=1)), "CRM series (moved)")
            got = series.exceptions.get(utc(moved))
            if got != want:
                found.lost.append(f"{side}: 'CRM series' occurrence 2 is {got}, not {want} (the CRM's exception)")
            if series.exdates != {utc(t.crm_first + timedelta(weeks=2))} or len(series.exceptions) != 1:
                found.lost.append(f"{side}: 'CRM series' has exceptions {series.exceptions} and exdates {series.exdates}")

    def _check_store(self, crm: list[Item], found: Findings) -> None:
        [(integrity,)] = self.sql("PRAGMA integrity_check")
        if integrity != "ok":
            found.store.append(f"SQLite integrity_check: {integrity}")
        # What `syncd activities export` writes: every activity, each line a complete activity.
        from syncd.store.importer import export_activities

        out = io.StringIO()
        try:
            with self.app().session() as session:
                exported = export_activities(session, out)
        except Exception as exc:  # noqa: BLE001 - a half-written row shows up here
            found.store.append(f"export failed: {type(exc).__name__}: {exc}")
            exported = -1
        lines = out.getvalue().splitlines()
        if exported != len(crm) or len(lines) != len(crm):
            found.store.append(f"export wrote {exported} activities ({len(lines)} lines) of {len(crm)}")
        for line in lines:
            row = json.loads(line)
            if not row.get("id") or not row.get("subject") or not row.get("owner"):
                found.store.append(f"a half-written activity: {line[:200]}")
        links = self.sql("SELECT activity_id, status, ref FROM sync_links WHERE binding = 'anna'")
        ids = {i.key for i in crm}
        linked = Counter(a for a, _, _ in links)
        for activity_id in ids - set(linked):
            found.stuck.append(f"activity {activity_id} has no link")
        for activity_id, status, ref in links:
            if activity_id not in ids:
                found.stuck.append(f"link of a missing activity {activity_id} ({status})")
            if status != "synced":
                found.stuck.append(f"link {activity_id} is {status}")
        refs = Counter(ref for _, _, ref in links)
        found.duplicated += [f"{n} links share the calendar item {r}" for r, n in refs.items() if n > 1]
        existing = self.calendar_refs()
        found.stuck += [f"link {a} points at a missing calendar item" for a, _, r in links
                        if unquote(r or "") not in existing]
        errors = self.sql("SELECT item, message FROM sync_errors")
        found.stuck += [f"item error left: {k}: {m}" for k, m in errors]


class CalDavRig(Rig):
    """A calendar on the session's Radicale, seen by syncd through the fault proxy."""

    name = "caldav"

    def __init__(self, root: Path, radicale, proxy_url: str, user: str, password: str, calendar: str) -> None:
        super().__init__(root)
        self.radicale = radicale
        self.calendar_name = calendar
        radicale.make_calendar(user, calendar)
        self.direct_url = f"{radicale.url}/{user}/{calendar}/"
        self.phone = Phone(self.direct_url)
        self.folder = Path(radicale.storage_dir) / "collections" / "collection-root" / user / calendar
        self.remote_settings = {"type": "caldav", "url": f"{proxy_url}/{user}/{calendar}/", "username": user,
                                "password": password}

    def _files(self) -> list[Path]:
        """The collection's items as Radicale stores them: one file per item, named by its href."""
        return sorted(p for p in self.folder.iterdir() if p.is_file() and not p.name.startswith(".Radicale"))

    def calendar_items(self) -> list[Item]:
        items = []
        for path in self._files():
            cal = icalendar.Calendar.from_ical(path.read_bytes())
            comps = [c for c in cal.subcomponents if c.name in ("VEVENT", "VTODO")]
            master = next(c for c in comps if "RECURRENCE-ID" not in c)
            item = Item(str(master["UID"]), str(master.get("X-SYNCD-ID") or "") or None, str(master.get("SUMMARY")),
                        utc(master.decoded("DTSTART")) if "DTSTART" in master else None)
            exdates = master.get("EXDATE")
            for prop in exdates if isinstance(exdates, list) else [exdates] if exdates else []:
                item.exdates |= {utc(d.dt) for d in prop.dts}
            for c in comps:
                if "RECURRENCE-ID" in c:
                    item.exceptions[utc(c.decoded("RECURRENCE-ID"))] = Exception_(
                        utc(c.decoded("DTSTART")), str(c.get("SUMMARY")))
            items.append(item)
        return items

    def calendar_refs(self) -> set[str]:
        base = urlsplit(self.direct_url).path
        return {unquote(base + p.name) for p in self._files()}

    def edit_subject(self, activity_id: str, subject: str) -> None:
        self.phone.edit(uid(activity_id), summary=subject)

    def delete_item(self, activity_id: str) -> None:
        self.phone.delete(uid(activity_id))

    def create_event(self, subject: str, start: datetime) -> None:
        self.phone.create_event("phone-new@example.org", subject, start)

    def move_occurrence(self, activity_id: str, original: datetime, start: datetime, subject: str) -> None:
        cal, etag = self.phone.get(uid(activity_id))
        moved = icalendar.Event()
        moved.add("UID", uid(activity_id))
        moved.add("RECURRENCE-ID", original)
        moved.add("DTSTART", start)
        moved.add("DTEND", start + timedelta(hours=1))
        moved.add("SUMMARY", subject)
        moved.add("DTSTAMP", datetime.now(UTC))
        cal.add_component(moved)
        assert self.phone.put(uid(activity_id), cal, etag) == 204

    def snapshot_calendar(self) -> None:
        shutil.copytree(self.folder, self.snapshot_dir / "collection")

    def restore_calendar(self) -> None:
        # The same collection path, the same items, etags and sync-token history: to syncd and to
        # Radicale (which keeps nothing of a collection in memory) it is the calendar of the snapshot.
        shutil.rmtree(self.folder)
        shutil.copytree(self.snapshot_dir / "collection", self.folder)


class ExchangeRig(Rig):
    """A mailbox on an EWS test server, seen by syncd through the fault proxy."""

    name = "exchange"

    def __init__(self, root: Path, server, proxy_endpoint: str) -> None:
        from ews_fixture import PASSWORD, Outlook, remote

        super().__init__(root)
        self.server = server
        server.add_mailbox(OWNER, PASSWORD, "Anna")
        self.outlook = Outlook(server, OWNER)
        self.remote_settings = remote(server, OWNER, service_endpoint=proxy_endpoint,
                                      max_backoff=1)
        self._snapshot: Any = None

    def _by_crm_id(self, activity_id: str):
        return self.outlook.by_crm_id(activity_id)

    def calendar_items(self) -> list[Item]:
        from ews_fixture import crm_id
        from ews_server.recurrence import parse_dt

        items = []
        for stored in self.outlook.items() + self.outlook.items("tasks"):
            start = stored.text("Start")
            item = Item(stored.id, crm_id(stored), stored.text("Subject") or "", parse_dt(start) if start else None)
            item.exdates = {utc(d) for d in stored.deleted_occurrences}
            for original, fields in stored.exceptions.items():
                moved = fields.get("Start")
                subject = fields.get("Subject")
                item.exceptions[utc(original)] = Exception_(
                    parse_dt(moved.text) if moved is not None else utc(original),
                    subject.text if subject is not None else stored.text("Subject"))
            items.append(item)
        return items

    def calendar_refs(self) -> set[str]:
        return {i.id for i in self.outlook.items() + self.outlook.items("tasks")}

    def edit_subject(self, activity_id: str, subject: str) -> None:
        self.outlook.edit(self._by_crm_id(activity_id), Subject=subject)

    def delete_item(self, activity_id: str) -> None:
        self.outlook.delete(self._by_crm_id(activity_id))

    def create_event(self, subject: str, start: datetime) -> None:
        self.outlook.create_event(subject, start, start + timedelta(hours=1))

    def move_occurrence(self, activity_id: str, original: datetime, start: datetime, subject: str) -> None:
        self.server.modify_occurrence(self._by_crm_id(activity_id).id, original, Start=start,
                                      End=start + timedelta(hours=1), Subject=subject)

    def snapshot_calendar(self) -> None:
        self._snapshot = _copy_store(self.server.store)

    def restore_calendar(self) -> None:
        self.server.store = _copy_store(self._snapshot)


def no_delay(httpd: socketserver.TCPServer) -> None:
    """Answer without Nagle's 40 ms wait: http.server writes an answer's headers and body in two
    sends, and the client's delayed ACK holds the second back (~45 ms per request on loopback)."""
    base = httpd.RequestHandlerClass

    class NoDelay(base):  # type: ignore[valid-type,misc]
        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    httpd.RequestHandlerClass = NoDelay


def quiet(httpd: socketserver.TCPServer) -> None:
    """No traceback on stderr for a client that went away (a syncd process killed on purpose)."""
    handle_error = httpd.handle_error

    def handle(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            handle_error(request, client_address)

    httpd.handle_error = handle  # type: ignore[method-assign]


def _copy_store(store: Any) -> Any:
    """A deep copy of an EWS test server's Store (its lock is not copied but replaced)."""
    memo = {id(store.lock): threading.RLock()}
    return copy.deepcopy(store, memo)

