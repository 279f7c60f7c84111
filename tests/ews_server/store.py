"""Mailboxes, folders and items, held as EWS XML so whatever a client writes reads back as written.

Every write takes the next number of one store-wide sequence; sync states are positions in it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from . import ids
from .xmlns import Element, t

# (PropertySetId or DistinguishedPropertySetId, PropertyTag, PropertyName, PropertyId, PropertyType)
PropKey = tuple[str | None, int | None, str | None, int | None, str]


def prop_key(uri: Element) -> PropKey:
    """Identity of an extended property, from a t:ExtendedFieldURI (case and tag spelling normalised)."""
    set_id = uri.get("PropertySetId") or uri.get("DistinguishedPropertySetId")
    tag = uri.get("PropertyTag")
    prop_id = uri.get("PropertyId")
    return (
        set_id.lower() if set_id else None,
        int(tag, 0) if tag else None,
        uri.get("PropertyName"),
        int(prop_id) if prop_id else None,
        uri.get("PropertyType", ""),
    )


@dataclass(eq=False)
class StoredItem:
    """One t:CalendarItem or t:Task. `fields` maps element names to elements, ExtendedProperty aside."""

    id: str
    change_key: str
    kind: str
    folder: Folder
    fields: dict[str, Element] = field(default_factory=dict)
    extended: dict[PropKey, Element] = field(default_factory=dict)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    created_seq: int = 0
    seq: int = 0
    change_count: int = 1
    modified_by: str = ""
    # Exceptions of a recurring master: original start (UTC) -> overriding field elements.
    exceptions: dict[datetime, dict[str, Element]] = field(default_factory=dict)
    deleted_occurrences: set[datetime] = field(default_factory=set)

    def text(self, name: str) -> str | None:
        elem = self.fields.get(name)
        return None if elem is None else (elem.text or "")

    def element(self, name: str) -> Element | None:
        return self.fields.get(name)

    def extended_value(self, **uri_attrs: str) -> str | list[str] | None:
        """The Value (or Values) of an extended property, named by ExtendedFieldURI attributes."""
        key = prop_key(etree.Element(t("ExtendedFieldURI"), uri_attrs))
        prop = self.extended.get(key)
        if prop is None:
            return None
        value = prop.find(t("Value"))
        if value is not None:
            return value.text or ""
        return [v.text or "" for v in prop.iter(t("Value"))]


@dataclass(eq=False)
class Folder:
    id: str
    change_key: str
    distinguished: str
    display_name: str
    element: str  # CalendarFolder, TasksFolder or Folder
    folder_class: str | None
    mailbox: Mailbox
    parent: Folder | None = None
    items: dict[str, StoredItem] = field(default_factory=dict)
    # Deleted item id -> (sequence it was created at, sequence it was deleted at).
    tombstones: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Bumped to invalidate every sync state handed out for this folder.
    sync_epoch: int = 0

    @property
    def item_kind(self) -> str | None:
        return {"CalendarFolder": "CalendarItem", "TasksFolder": "Task"}.get(self.element)


@dataclass(frozen=True)
class SentMessage:
    """A meeting message the server would have sent (invitation, update or cancellation)."""

    kind: str
    item_id: str
    subject: str | None
    recipients: tuple[str, ...]
    disposition: str


@dataclass(eq=False)
class Mailbox:
    smtp: str
    display_name: str
    folders: dict[str, Folder] = field(default_factory=dict)
    # Logins (lower-case) allowed to open this mailbox as a delegate.
    delegates: set[str] = field(default_factory=set)
    sent: list[SentMessage] = field(default_factory=list)

    @property
    def calendar(self) -> Folder:
        return self.folders["calendar"]

    @property
    def tasks(self) -> Folder:
        return self.folders["tasks"]


@dataclass(eq=False)
class Login:
    name: str
    password: str
    mailbox: Mailbox | None
    can_impersonate: bool = False
    # Answer 401 even when the password is right (a disabled account, a revoked app password).
    rejected: bool = False


# Distinguished folders a mailbox has: name -> (display name, element, folder class, parent name).
_FOLDERS = {
    "root": ("", "Folder", None, None),
    "msgfolderroot": ("Top of Information Store", "Folder", "IPF.Note", "root"),
    "calendar": ("Calendar", "CalendarFolder", "IPF.Appointment", "msgfolderroot"),
    "tasks": ("Tasks", "TasksFolder", "IPF.Task", "msgfolderroot"),
}


class Store:
    """All server state. Callers hold `lock` across any read-modify-write."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._seq = itertools.count(1)
        self.last_seq = 0
        self.mailboxes: dict[str, Mailbox] = {}
        self.logins: dict[str, Login] = {}
        self.items: dict[str, StoredItem] = {}
        self.folders: dict[str, Folder] = {}
        self.sync_states = ids.SyncStateCodec()

    def next_seq(self) -> int:
        self.last_seq = next(self._seq)
        return self.last_seq

    def add_mailbox(self, smtp: str, password: str, display_name: str | None = None) -> Mailbox:
        with self.lock:
            mailbox = Mailbox(smtp=smtp, display_name=display_name or smtp.split("@")[0].title())
            for name, (title, element, folder_class, parent) in _FOLDERS.items():
                folder = Folder(
                    id=ids.item_id(),
                    change_key=ids.change_key(),
                    distinguished=name,
                    display_name=title,
                    element=element,
                    folder_class=folder_class,
                    mailbox=mailbox,
                    parent=mailbox.folders.get(parent) if parent else None,
                )
                mailbox.folders[name] = folder
                self.folders[folder.id] = folder
            self.mailboxes[smtp.lower()] = mailbox
            self.logins[smtp.lower()] = Login(smtp, password, mailbox)
            return mailbox

    def add_login(self, name: str, password: str, *, can_impersonate: bool = False) -> Login:
        with self.lock:
            login = Login(name, password, None, can_impersonate)
            self.logins[name.lower()] = login
            return login

    def mailbox(self, smtp: str) -> Mailbox | None:
        return self.mailboxes.get(smtp.lower())
