"""One CalDAV calendar collection, item data as raw iCalendar bytes.

Change detection (RFC 6578 sync-collection, ctag, etag listing), calendar-multiget in batches and
conditional writes. Items are named by their canonical path (see
:func:`~syncd.connectors.caldav_protocol.canonical_path`); nothing here parses iCalendar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from syncd.connectors import caldav_protocol as dav
from syncd.connectors.caldav_transport import DavTransport, HttpReply
from syncd.errors import (
    AlreadyExists,
    AuthError,
    ItemError,
    NotFound,
    PreconditionFailed,
    RemoteError,
)

if TYPE_CHECKING:
    from syncd.connectors.body_spool import BodySpool

MULTIGET_BATCH = 100
#: Bound on RFC 6578 3.6 continuations, so a server that keeps truncating cannot loop us forever.
MAX_SYNC_ROUNDS = 1000
_ICS = "text/calendar; charset=utf-8"


@dataclass(frozen=True, slots=True)
class RawItem:
    path: str
    etag: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Written:
    """Where a PUT left the item and its etag. ``lost`` says the item is not at ``path`` right after
    the write: the server stored it under a name of its own without saying which (no Location)."""

    path: str
    etag: str | None
    lost: bool = False


class UidTaken(ItemError):
    """The server refuses the item's UID because another calendar of the same user holds it (RFC 6638
    unique-scheduling-object-resource, or a no-uid-conflict naming an item outside this collection)."""


@dataclass(frozen=True, slots=True)
class SyncDelta:
    """What an RFC 6578 sync-collection report said: changed members (with etag, if sent) and gone ones."""

    changed: dict[str, str | None]
    deleted: list[str]
    token: str


class InvalidSyncToken(Exception):
    """The server no longer accepts the token (RFC 6578 3.2 DAV:valid-sync-token); read everything."""


class SyncUnsupported(Exception):
    """The collection refused the sync-collection report; use ctag and etag listing instead."""


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    path: str
    is_calendar: bool
    components: set[str] | None
    """Component types the calendar accepts; ``None`` when the server does not say (any)."""
    privileges: set[str] | None
    """Clark names of the current user's privileges; ``None`` when the server does not say."""
    supports_sync: bool
    ctag: str | None


class DavCollection:
    def __init__(self, transport: DavTransport, url: str) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.path = dav.canonical_path(self.url, self.url)
        self._http = transport

    def item_path(self, name: str) -> str:
        return self.path + dav.path_segment(name)

    def contains(self, path: str) -> bool:
        return dav.is_member(path, self.path)

    def _url(self, path: str) -> str:
        return urljoin(self.url, path)

    # --- reading -------------------------------------------------------------------------------

    def info(self) -> CollectionInfo:
        """What the collection is and offers (one PROPFIND Depth 0)."""
        props = [
            dav.RESOURCETYPE,
            dav.SUPPORTED_COMPONENTS,
            dav.CURRENT_USER_PRIVILEGE_SET,
            dav.SUPPORTED_REPORT_SET,
            dav.GETCTAG,
            dav.SYNC_TOKEN,
        ]
        own = self._propfind_self(props)
        privileges = own.leaves(dav.CURRENT_USER_PRIVILEGE_SET) if dav.CURRENT_USER_PRIVILEGE_SET in own.props else None
        return CollectionInfo(
            path=self.path,
            is_calendar=dav.CALENDAR in own.leaves(dav.RESOURCETYPE),
            components=dav.components_of(own),
            privileges=privileges,
            supports_sync=dav.SYNC_COLLECTION in own.leaves(dav.SUPPORTED_REPORT_SET),
            ctag=_ctag_of(own),
        )

    def supports_sync(self) -> bool:
        """Whether the collection offers RFC 6578 sync-collection (one PROPFIND Depth 0 of that alone:
        a server computes a ctag or sync-token from every member, a second or more at 5,000 on Radicale)."""
        return dav.SYNC_COLLECTION in self._propfind_self([dav.SUPPORTED_REPORT_SET]).leaves(dav.SUPPORTED_REPORT_SET)

    def ctag(self) -> str | None:
        """The collection's change tag: CS:getctag, else DAV:sync-token (one PROPFIND Depth 0)."""
        return _ctag_of(self._propfind_self([dav.GETCTAG, dav.SYNC_TOKEN]))

    def list_etags(self) -> dict[str, str | None]:
        """Every member's etag (PROPFIND Depth 1), sub-collections left out."""
        listing: dict[str, str | None] = {}

        def member(r: dav.DavResponse) -> None:
            if (r.status // 100 == 2 and self.contains(r.path)
                    and dav.clark(dav.DAV, "collection") not in r.leaves(dav.RESOURCETYPE)):
                listing[r.path] = r.etag

        body = dav.propfind_body([dav.GETETAG, dav.RESOURCETYPE])
        reply = self._http.request("PROPFIND", self.url, body, {"Depth": "1"}, xml=False)
        self._check_multistatus("PROPFIND", self.url, reply)
        self._read_listing(reply, self.url, member)
        return listing

    def sync(self, token: str | None, bodies: BodySpool | None = None) -> SyncDelta:
        """RFC 6578 sync-collection from ``token`` (``None``: every member), following truncation.
        With ``bodies``, the members' calendar-data is asked for too and kept there; a server that
        does not send it for a member leaves that member to be read as usual."""
        changed: dict[str, str | None] = {}
        deleted: set[str] = set()

        def member(response: dav.DavResponse) -> None:
            path = response.path
            if not self.contains(path):
                return
            if response.status == 404:
                deleted.add(path)
                changed.pop(path, None)
                if bodies is not None:
                    bodies.drop(path)
            elif response.status // 100 == 2:
                etag = changed[path] = response.etag  # once: each reading makes another string
                deleted.discard(path)
                if bodies is not None and (data := response.calendar_data) is not None:
                    bodies.add(path, etag, data)

        for _ in range(MAX_SYNC_ROUNDS):
            # A first sync lists the whole calendar: read as it is parsed, never held as a tree.
            reply = self._http.request(
                "REPORT", self.url, dav.sync_collection_body(token, data=bodies is not None), {"Depth": "0"},
                xml=False,
            )
            if reply.status != 207:
                self._raise_for_sync(reply, token)
            sync_token, truncated = self._read_listing(reply, self.url, member)
            if not sync_token:
                raise RemoteError(f"REPORT {self.url}: sync-collection answer without a sync-token")
            token = sync_token
            if not truncated:
                return SyncDelta(changed, sorted(deleted), token)
        raise RemoteError(f"REPORT {self.url}: the server kept truncating the sync-collection answer")

    def _raise_for_sync(self, reply: HttpReply, token: str | None) -> None:
        conditions = reply.conditions
        if dav.VALID_SYNC_TOKEN in conditions or (token and reply.status in (400, 409)):
            raise InvalidSyncToken(token)
        if dav.SUPPORTED_REPORT in conditions or reply.status in (405, 501) or (reply.status == 400 and not token):
            raise SyncUnsupported(f"HTTP {reply.status}")
        if reply.status == 403:
            raise AuthError(f"REPORT {self.url}: sync-collection forbidden (HTTP 403)")
        raise RemoteError(f"REPORT {self.url}: sync-collection failed (HTTP {reply.status})")

    def multiget(self, paths: Sequence[str]) -> list[RawItem]:
        """The items at ``paths`` in batches of :data:`MULTIGET_BATCH`; missing ones are left out."""
        items: list[RawItem] = []
        for start in range(0, len(paths), MULTIGET_BATCH):
            batch = paths[start : start + MULTIGET_BATCH]
            result = self._expect_multistatus("REPORT", self.url, dav.multiget_body(batch), depth=None)
            items.extend(self._items(result.responses))
        return items

    def get(self, path: str) -> RawItem | None:
        reply = self._http.request("GET", self._url(path), None, {"Accept": "text/calendar"})
        if reply.status in (404, 410):
            return None
        if reply.status != 200:
            raise RemoteError(f"GET {self._url(path)}: HTTP {reply.status}")
        return RawItem(path, dav.normalize_etag(reply.header("ETag")), reply.body)

    def find_uid(self, component: str, uid: str) -> list[RawItem]:
        """Items of this component type whose UID is ``uid`` (calendar-query, RFC 4791 7.8)."""
        result = self._expect_multistatus(
            "REPORT", self.url, dav.uid_query_body(component, uid), depth="1"
        )
        return list(self._items(result.responses))

    def _items(self, responses: list[dav.DavResponse]) -> Iterator[RawItem]:
        for response in responses:
            data = response.calendar_data
            if response.status // 100 == 2 and data is not None:
                yield RawItem(response.path, response.etag, data)

    # --- writing -------------------------------------------------------------------------------

    def create(self, path: str, data: bytes) -> Written:
        """PUT a new item (If-None-Match: *); where it went and its etag."""
        reply = self._http.request(
            "PUT", self._url(path), data, {"Content-Type": _ICS, "If-None-Match": "*"}
        )
        conditions = reply.conditions
        if dav.UNIQUE_SCHEDULING_OBJECT in conditions or (
            dav.NO_UID_CONFLICT in conditions and not self._conflict_is_here(reply)
        ):
            raise UidTaken(path, "UID", refusal(reply, "item"))
        if reply.status == 412 or dav.NO_UID_CONFLICT in conditions:
            raise AlreadyExists(path)
        return self._after_put(path, reply)

    def update(self, path: str, etag: str | None, data: bytes) -> Written:
        """PUT over an item only if it still has ``etag`` (``None``: if it exists)."""
        reply = self._http.request(
            "PUT", self._url(path), data, {"Content-Type": _ICS, "If-Match": etag or "*"}
        )
        if reply.status == 412:
            raise PreconditionFailed(path)
        if reply.status in (404, 410):
            raise NotFound(path)
        return self._after_put(path, reply)

    def delete(self, path: str, etag: str | None) -> None:
        headers = {"If-Match": etag} if etag else {}
        reply = self._http.request("DELETE", self._url(path), None, headers)
        if reply.status == 412:
            raise PreconditionFailed(path)
        if reply.status in (404, 410) or reply.status // 100 == 2:
            return
        raise ItemError(path, None, refusal(reply, "delete"))

    def _after_put(self, path: str, reply: HttpReply) -> Written:
        if reply.status // 100 != 2:
            raise ItemError(path, None, refusal(reply, "item"))
        location = reply.header("Location")
        if location:
            # A server may store the item under a name of its own (RFC 4918 9.7.1 allows Location).
            moved = dav.canonical_path(location, self.url)
            if moved != path and self.contains(moved):
                path = moved
        etag = dav.normalize_etag(reply.header("ETag"))
        if etag is not None:
            return Written(path, etag)
        # RFC 4791 5.3.4: a server that changed the data on PUT sends no ETag; ask for the new one.
        found, etag = self._etag_of(path)
        return Written(path, etag, lost=not found)

    def _etag_of(self, path: str) -> tuple[bool, str | None]:
        """(whether the item is at ``path``, its etag)."""
        reply = self._http.request("PROPFIND", self._url(path), dav.propfind_body([dav.GETETAG]), {"Depth": "0"})
        if reply.status in (404, 410):
            return False, None
        if reply.status != 207:
            return True, None
        result = self._parse(reply, self._url(path))
        mine = [r for r in result.responses if r.path == path]
        if not mine or all(r.status in (404, 410) for r in mine):
            return False, None
        return True, mine[0].etag

    def _conflict_is_here(self, reply: HttpReply) -> bool:
        """Whether a no-uid-conflict names an item of this collection (or none at all)."""
        hrefs = dav.condition_hrefs(reply.body, dav.NO_UID_CONFLICT)
        return not hrefs or any(self.contains(dav.canonical_path(h, self.url)) for h in hrefs)

    # --- plumbing ------------------------------------------------------------------------------

    def _propfind_self(self, props: list[str]) -> dav.DavResponse:
        result = self._expect_multistatus("PROPFIND", self.url, dav.propfind_body(props), depth="0")
        for response in result.responses:
            if response.path.rstrip("/") == self.path.rstrip("/"):
                return response
        raise RemoteError(f"PROPFIND {self.url}: the answer does not describe the collection")

    def _expect_multistatus(
        self, method: str, url: str, body: bytes, depth: str | None
    ) -> dav.Multistatus:
        headers = {"Depth": depth} if depth is not None else {}
        reply = self._http.request(method, url, body, headers)
        self._check_multistatus(method, url, reply)
        return self._parse(reply, url)

    @staticmethod
    def _check_multistatus(method: str, url: str, reply: HttpReply) -> None:
        if reply.status == 404:
            raise RemoteError(f"{method} {url}: no such collection (HTTP 404)")
        if reply.status == 403:
            raise AuthError(f"{method} {url}: forbidden (HTTP 403)")
        if reply.status != 207:
            raise RemoteError(f"{method} {url}: unexpected HTTP {reply.status}")

    @staticmethod
    def _parse(reply: HttpReply, url: str) -> dav.Multistatus:
        try:
            return dav.parse_multistatus(reply.tree, url)
        except ValueError as exc:
            raise RemoteError(f"{url}: {exc}") from None

    @staticmethod
    def _read_listing(
        reply: HttpReply, url: str, member: Callable[[dav.DavResponse], None]
    ) -> tuple[str | None, bool]:
        """:func:`~syncd.connectors.caldav_protocol.read_listing` of a reply read without its tree, a
        malformed answer failing as :meth:`_parse` fails it."""
        try:
            return dav.read_listing(reply.body, url, member)
        except ValueError as exc:
            raise RemoteError(f"{url}: {exc}") from None


def _ctag_of(response: dav.DavResponse) -> str | None:
    return response.text(dav.GETCTAG) or response.text(dav.SYNC_TOKEN)


def _local(clark_name: str) -> str:
    return clark_name.rpartition("}")[2]


#: What a DAV condition in a refusal means, in a user's words (RFC 4791 5.3.2.1, RFC 6638 3.2.4.1, RFC 3744).
_CONDITION_WORDS = {
    dav.NO_UID_CONFLICT: "another item of the calendar has this UID",
    dav.UNIQUE_SCHEDULING_OBJECT: "another calendar of this user holds an item with this UID",
    dav.clark(dav.CALDAV, "valid-calendar-data"): "the server finds the iCalendar data invalid",
    dav.clark(dav.CALDAV, "valid-calendar-object-resource"): "the server refuses the item's structure",
    dav.clark(dav.CALDAV, "supported-calendar-component"): "the calendar does not take this kind of item",
    dav.clark(dav.CALDAV, "supported-calendar-data"): "the server does not take this data format",
    dav.clark(dav.CALDAV, "max-resource-size"): "the item is larger than the server allows",
    dav.clark(dav.CALDAV, "min-date-time"): "a date is earlier than the server allows",
    dav.clark(dav.CALDAV, "max-date-time"): "a date is later than the server allows",
    dav.clark(dav.CALDAV, "max-instances"): "the series has more occurrences than the server allows",
    dav.clark(dav.CALDAV, "max-attendees-per-instance"): "the item has more attendees than the server allows",
    dav.clark(dav.CALDAV, "valid-scheduling-message"): "the server refuses the item's scheduling data",
    dav.clark(dav.CALDAV, "valid-organizer"): "the server refuses the item's organizer",
    dav.clark(dav.DAV, "need-privileges"): "the user may not write this item",
}


def refusal(reply: HttpReply, what: str) -> str:
    """Why the server refused one item's write or delete: status, reason phrase and DAV conditions."""
    conditions = sorted(reply.conditions)
    said = [f"{_local(c)}: {_CONDITION_WORDS[c]}" if c in _CONDITION_WORDS else _local(c) for c in conditions]
    phrase = f" {reply.reason}" if reply.reason else ""
    why = f": {'; '.join(said)}" if said else ""
    verb = "the delete" if what == "delete" else "the item"
    return f"the server refused {verb} (HTTP {reply.status}{phrase}{why})"
