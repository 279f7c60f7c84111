"""Mailboxes, calendars, events, To Do lists and tasks, held as the Graph JSON clients wrote, plus the
properties the service keeps itself (ids, change keys, times, exceptions of a series).

Every write takes the next number of one store-wide sequence and a new change key. Callers hold
`Store.lock` across any read-modify-write.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def new_id(prefix: str = "AAMkAGI2") -> str:
    """An opaque id in Exchange's style, safe in a URL path segment."""
    return prefix + secrets.token_urlsafe(30)


def new_change_key() -> str:
    return base64.b64encode(b"\x0f\x00\x00\x00" + secrets.token_bytes(14)).decode()


def now() -> datetime:
    return datetime.now(UTC)


# An extended property's identity: (type, property set GUID or None, "name"/"id"/"tag", name or number).
PropKey = tuple[str, str | None, str, str | int]


def prop_key(prop_id: str) -> PropKey:
    """Parse `String {GUID} Name X`, `Integer {GUID} Id 0x8501` or `String 0x0037` (case-insensitive
    type, GUID and keywords, as the service compares them)."""
    parts = prop_id.strip().split(" ", 3)
    if len(parts) == 2 and parts[1].lower().startswith("0x"):
        return (parts[0].lower(), None, "tag", int(parts[1], 16))
    if len(parts) == 4 and parts[1].startswith("{") and parts[2].lower() in ("name", "id"):
        kind = parts[2].lower()
        value: str | int = parts[3] if kind == "name" else int(parts[3], 0)
        return (parts[0].lower(), parts[1].strip("{}").lower(), kind, value)
    raise ValueError(prop_id)


@dataclass(eq=False)
class SeriesException:
    """An occurrence of a series changed on its own: overrides on top of the master's properties."""

    id: str
    overrides: dict[str, Any]
    change_key: str
    modified: datetime


@dataclass(eq=False)
class Event:
    """A single event or a series master. `data` holds what clients wrote (Graph JSON)."""

    id: str
    calendar: Calendar
    data: dict[str, Any]
    change_key: str
    created: datetime
    modified: datetime
    seq: int
    ical_uid: str
    transaction_id: str | None = None
    # key -> (id as written, value)
    extended: dict[PropKey, tuple[str, str]] = field(default_factory=dict)
    # extensionName -> the open extension's JSON (without id)
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # original start (UTC) -> exception; original starts of cancelled occurrences
    exceptions: dict[datetime, SeriesException] = field(default_factory=dict)
    cancelled: set[datetime] = field(default_factory=set)

    @property
    def is_series(self) -> bool:
        return bool(self.data.get("recurrence"))

    @property
    def mailbox(self) -> Mailbox:
        return self.calendar.mailbox


@dataclass(eq=False)
class Calendar:
    id: str
    name: str
    mailbox: Mailbox
    is_default: bool
    change_key: str = field(default_factory=new_change_key)
    events: dict[str, Event] = field(default_factory=dict)


@dataclass(eq=False)
class Task:
    id: str
    todo_list: TodoList
    data: dict[str, Any]
    etag: str
    created: datetime
    modified: datetime
    seq: int
    linked_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(eq=False)
class TodoList:
    id: str
    name: str
    mailbox: Mailbox
    wellknown: str  # defaultList, flaggedEmails or none
    etag: str = field(default_factory=new_change_key)
    tasks: dict[str, Task] = field(default_factory=dict)


@dataclass(eq=False)
class Mailbox:
    upn: str
    object_id: str
    display_name: str
    calendars: dict[str, Calendar] = field(default_factory=dict)
    lists: dict[str, TodoList] = field(default_factory=dict)
    # transactionId -> event created with it (the service keeps them to refuse duplicates)
    transactions: dict[str, Event] = field(default_factory=dict)
    # False: a user whose mailbox is not in Exchange Online (on premises, inactive, soft-deleted).
    in_cloud: bool = True

    @property
    def default_calendar(self) -> Calendar:
        return next(c for c in self.calendars.values() if c.is_default)

    @property
    def default_list(self) -> TodoList:
        return next(t for t in self.lists.values() if t.wellknown == "defaultList")

    @property
    def address(self) -> dict[str, str]:
        return {"name": self.display_name, "address": self.upn}


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._seq = itertools.count(1)
        self.last_seq = 0
        self.mailboxes: dict[str, Mailbox] = {}  # lower-case UPN and object id -> mailbox
        self.events: dict[str, Event] = {}
        self.tasks: dict[str, Task] = {}
        self.invitations: list[dict[str, Any]] = []
        # Bumped by expire_delta_tokens: tokens of an older epoch answer 410.
        self.delta_epoch = 0

    def next_seq(self) -> int:
        self.last_seq = next(self._seq)
        return self.last_seq

    def add_mailbox(self, upn: str, name: str | None = None, *, in_cloud: bool = True) -> Mailbox:
        with self.lock:
            display = name or upn.split("@", maxsplit=1)[0].title()
            mailbox = Mailbox(upn=upn, object_id=str(uuid.uuid4()), display_name=display, in_cloud=in_cloud)
            self.add_calendar(mailbox, "Calendar", is_default=True)
            self.add_list(mailbox, "Tasks", wellknown="defaultList")
            self.mailboxes[upn.lower()] = mailbox
            self.mailboxes[mailbox.object_id] = mailbox
            return mailbox

    def add_calendar(self, mailbox: Mailbox, name: str, *, is_default: bool = False) -> Calendar:
        with self.lock:
            calendar = Calendar(id=new_id("AAMkAGI2Cal"), name=name, mailbox=mailbox, is_default=is_default)
            mailbox.calendars[calendar.id] = calendar
            return calendar

    def add_list(self, mailbox: Mailbox, name: str, *, wellknown: str = "none") -> TodoList:
        with self.lock:
            todo_list = TodoList(id=new_id("AAMkADLst"), name=name, mailbox=mailbox, wellknown=wellknown)
            mailbox.lists[todo_list.id] = todo_list
            return todo_list

    def mailbox(self, user: str) -> Mailbox | None:
        return self.mailboxes.get(user.lower())

    def record_invitation(self, event: Event, kind: str, data: dict[str, Any]) -> None:
        recipients = tuple(
            a["emailAddress"]["address"]
            for a in data.get("attendees") or []
            if (a.get("emailAddress") or {}).get("address")
        )
        if recipients:
            self.invitations.append(
                {
                    "mailbox": event.mailbox.upn,
                    "event_id": event.id,
                    "subject": data.get("subject"),
                    "recipients": recipients,
                    "kind": kind,
                }
            )
