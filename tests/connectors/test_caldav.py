"""The CalDAV connector against a real Radicale on loopback, through a counting/failing proxy."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from radicale_server import (
    PASSWORD,
    USER,
    Answer,
    FaultProxy,
    Seen,
    proxy,
    put_raw,
    radicale,
    unique_name,
)

from syncd.config import CalDavRemote
from syncd.connectors.base import Connector, RemoteChanges, RemoteItem
from syncd.connectors.caldav import CalDavConfig, CalDavConnector
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.errors import AlreadyExists, AuthError, PreconditionFailed, RemoteError
from syncd.mapping.context import MappingContext
from syncd.mapping.ical import to_ical
from syncd.model import Activity, CrmUser, Kind

__all__ = ["proxy", "radicale"]  # pytest fixtures

AMS = ZoneInfo("Europe/Amsterdam")
OWNER = "alice@example.com"
CTX = MappingContext(owner=CrmUser(OWNER, "Alice", "Europe/Amsterdam"))


def appointment(activity_id: str, subject: str = "Kick-off", day: int = 2) -> Activity:
    return Activity(
        id=activity_id,
        kind=Kind.APPOINTMENT,
        subject=subject,
        owner=OWNER,
        start=datetime(2026, 3, day, 10, 0, tzinfo=AMS),
        end=datetime(2026, 3, day, 11, 0, tzinfo=AMS),
        timezone="Europe/Amsterdam",
    )


def task(activity_id: str, subject: str = "Send the offer") -> Activity:
    return Activity(id=activity_id, kind=Kind.TASK, subject=subject, owner=OWNER, due=date(2026, 3, 6), all_day=True)


MakeConnector = Callable[..., CalDavConnector]


@pytest.fixture
def make_connector(radicale: EmbeddedRadicale, proxy: FaultProxy) -> Iterator[MakeConnector]:
    """Connectors to fresh calendars of ``USER``, reached through the proxy."""
    made: list[CalDavConnector] = []

    def make(
        components: tuple[str, ...] = ("VEVENT", "VTODO"),
        tasks: tuple[str, ...] | None = None,
        password: str = PASSWORD,
        timeout: float = 5.0,
        use_sync_collection: bool | None = None,
    ) -> CalDavConnector:
        url = _calendar(radicale, proxy, components)
        tasks_url = _calendar(radicale, proxy, tasks) if tasks else None
        config = CalDavConfig(url, tasks_url, USER, password, "basic", timeout=timeout)
        connector = CalDavConnector(config, CTX, use_sync_collection=use_sync_collection)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def _calendar(radicale: EmbeddedRadicale, proxy: FaultProxy, components: tuple[str, ...]) -> str:
    name = unique_name()
    radicale.make_calendar(USER, name, components)
    return f"{proxy.url}/{USER}/{name}/"


def known_of(changes: RemoteChanges, *more: dict[str, str | None]) -> dict[str, str | None]:
    known = {item.ref: item.etag for item in changes.changed}
    for extra in more:
        known.update(extra)
    return known


def collection_url(proxy: FaultProxy, state: str) -> str:
    """The URL of the (only) collection a connector's state describes; state keys are its paths."""
    [path] = json.loads(state)["collections"]
    return proxy.url + path


def by_crm_id(items: list[RemoteItem]) -> dict[str | None, RemoteItem]:
    return {item.crm_id: item for item in items}


def test_is_a_connector(make_connector: MakeConnector) -> None:
    """The engine can use it through the Connector protocol."""
    assert isinstance(make_connector(), Connector)


def test_first_read_is_full_then_only_changes_come(make_connector: MakeConnector) -> None:
    """A first pass returns every item as an activity; later passes only what changed since."""
    caldav = make_connector()
    a = caldav.create(appointment("A1", "Kick-off"))
    b = caldav.create(appointment("A2", "Review", day=3))
    first = caldav.changes(None, {})
    items = by_crm_id(first.changed)
    assert {"A1", "A2"} == set(items)
    assert "Kick-off" == items["A1"].activity.subject
    assert (a.ref, a.etag) == (items["A1"].ref, items["A1"].etag)
    assert "A1@syncd" == items["A1"].uid
    assert 2 == first.total
    assert [] == first.deleted

    known = known_of(first)
    assert ([], []) == _summary(caldav.changes(first.state, known))

    # Someone edits A2 in their calendar (here: a second client writing through the same protocol).
    other = caldav.update(b.ref, b.etag, appointment("A2", "Review (moved)", day=4), raw=items["A2"].raw)
    later = caldav.changes(first.state, known)
    assert [("A2", "Review (moved)", other.etag)] == [
        (i.crm_id, i.activity.subject, i.etag) for i in later.changed
    ]


def test_own_writes_are_not_reported_back(make_connector: MakeConnector) -> None:
    """An item whose etag the engine already knows is not fetched again."""
    caldav = make_connector()
    first = caldav.changes(None, {})
    created = caldav.create(appointment("A1"))
    later = caldav.changes(first.state, {created.ref: created.etag})
    assert ([], []) == _summary(later)


def test_update_needs_the_current_etag(make_connector: MakeConnector) -> None:
    """Update with the item's etag succeeds; with a stale one it raises PreconditionFailed."""
    caldav = make_connector()
    created = caldav.create(appointment("A1"))
    updated = caldav.update(created.ref, created.etag, appointment("A1", "Renamed"))
    assert created.ref == updated.ref
    assert updated.etag not in (None, created.etag)
    with pytest.raises(PreconditionFailed) as failure:
        caldav.update(created.ref, created.etag, appointment("A1", "Lost update"))
    assert created.ref == failure.value.ref
    [current] = caldav.fetch([created.ref])
    assert "Renamed" == current.activity.subject


def test_delete_is_conditional_and_idempotent(make_connector: MakeConnector) -> None:
    """Delete with a stale etag fails; with the right one the item goes; a second delete is fine."""
    caldav = make_connector()
    created = caldav.create(appointment("A1"))
    first = caldav.changes(None, {})
    updated = caldav.update(created.ref, created.etag, appointment("A1", "Renamed"))
    with pytest.raises(PreconditionFailed):
        caldav.delete(created.ref, created.etag)
    caldav.delete(updated.ref, updated.etag)
    caldav.delete(updated.ref, updated.etag)
    later = caldav.changes(first.state, {updated.ref: updated.etag})
    assert ([], [updated.ref]) == _summary(later)
    assert [] == caldav.fetch([updated.ref])


def test_create_of_an_existing_uid_raises_already_exists(make_connector: MakeConnector) -> None:
    """A second create of the same activity does not overwrite the first."""
    caldav = make_connector()
    created = caldav.create(appointment("A1", "Original"))
    with pytest.raises(AlreadyExists) as failure:
        caldav.create(appointment("A1", "Duplicate"))
    assert created.ref == failure.value.ref
    assert "Original" == caldav.fetch([created.ref])[0].activity.subject


def test_find_recovers_a_lost_link(make_connector: MakeConnector) -> None:
    """After a crash between write and link, find() returns the item syncd made."""
    caldav = make_connector()
    created = caldav.create(appointment("A1"))
    found = caldav.find("A1", Kind.APPOINTMENT)
    assert found is not None
    assert (created.ref, created.etag, "A1") == (found.ref, found.etag, found.crm_id)
    assert caldav.find("A9", Kind.APPOINTMENT) is None


def test_find_falls_back_to_a_uid_query(make_connector: MakeConnector, proxy: FaultProxy) -> None:
    """An item of ours stored under another name (another client moved it) is found by its UID."""
    caldav = make_connector()
    url = collection_url(proxy, caldav.changes(None, {}).state)
    assert 201 == put_raw(url + "renamed-by-client.ics", to_ical(appointment("A7"), CTX))
    found = caldav.find("A7", Kind.APPOINTMENT)
    assert found is not None
    assert found.ref.endswith("/renamed-by-client.ics")
    assert "A7" == found.crm_id


def test_a_pass_without_changes_costs_one_request_per_collection(
    make_connector: MakeConnector, proxy: FaultProxy
) -> None:
    """With events and tasks in two collections, an idle pass is two requests (sync and ctag modes)."""
    for use_sync in (None, False):
        caldav = make_connector(("VEVENT",), tasks=("VTODO",), use_sync_collection=use_sync)
        caldav.create(appointment("A1"))
        caldav.create(task("T1"))
        first = caldav.changes(None, {})
        known = known_of(first)
        proxy.reset()
        assert ([], []) == _summary(caldav.changes(first.state, known))
        method = "REPORT" if use_sync is None else "PROPFIND"
        assert (2, 2) == (proxy.count(), proxy.count(method)), proxy.requests


def test_ctag_and_etag_listing_path(make_connector: MakeConnector, proxy: FaultProxy) -> None:
    """Without sync-collection, a moved ctag leads to an etag listing and a multiget of what changed."""
    caldav = make_connector(use_sync_collection=False)
    caldav.create(appointment("A1"))
    b = caldav.create(appointment("A2", day=3))
    c = caldav.create(appointment("A3", day=4))
    first = caldav.changes(None, {})
    assert {"A1", "A2", "A3"} == set(by_crm_id(first.changed))
    assert all(entry["token"] is None for entry in json.loads(first.state)["collections"].values())
    known = known_of(first)

    b2 = caldav.update(b.ref, b.etag, appointment("A2", "Changed", day=3))
    caldav.delete(c.ref, c.etag)
    proxy.reset()
    later = caldav.changes(first.state, known)
    assert ([b2.ref], [c.ref]) == _summary(later)
    assert ["PROPFIND", "PROPFIND", "REPORT"] == [seen.method for seen in proxy.requests]
    assert 2 == later.total


def test_an_invalid_sync_token_leads_to_a_full_read(make_connector: MakeConnector) -> None:
    """A token the server refuses (403 DAV:valid-sync-token) is no error: everything is read again."""
    caldav = make_connector()
    caldav.create(appointment("A1"))
    caldav.create(appointment("A2", day=3))
    first = caldav.changes(None, {})
    state = json.loads(first.state)
    for entry in state["collections"].values():
        entry["token"] = "http://radicale.org/ns/sync/" + "0" * 64
    [path] = state["collections"]
    vanished = {path + "vanished.ics": '"x"', "/elsewhere/other.ics": '"y"'}
    again = caldav.changes(json.dumps(state), known_of(first, vanished))
    assert {"A1", "A2"} == set(by_crm_id(again.changed))
    # A known item of this collection that is not there is gone; other collections' refs are not ours.
    assert [path + "vanished.ics"] == again.deleted
    assert ([], []) == _summary(caldav.changes(again.state, known_of(again)))
    # Garbage state is read as "no state".
    assert {"A1", "A2"} == set(by_crm_id(caldav.changes("not json", {}).changed))


def test_a_server_refusing_sync_collection_is_read_by_ctag(
    make_connector: MakeConnector, proxy: FaultProxy
) -> None:
    """If the sync-collection REPORT fails although announced (501), ctag and etag listing take over."""

    def refuse_sync(seen: Seen, answer: Answer) -> Answer:
        if seen.method == "REPORT" and b"sync-collection" in seen.body:
            return Answer(501, [("Content-Type", "text/plain")], b"not implemented")
        return answer

    proxy.rewrite = refuse_sync
    caldav = make_connector()
    caldav.create(appointment("A1"))
    first = caldav.changes(None, {})
    assert ["A1"] == [item.crm_id for item in first.changed]
    proxy.reset()
    assert ([], []) == _summary(caldav.changes(first.state, known_of(first)))
    assert ["PROPFIND"] == [seen.method for seen in proxy.requests]


def test_accepts_the_config_section(radicale: EmbeddedRadicale, proxy: FaultProxy) -> None:
    """The binding's ``remote`` section (with its SecretStr password, auth "auto") configures it."""
    url = _calendar(radicale, proxy, ("VEVENT", "VTODO"))
    remote = CalDavRemote(type="caldav", url=url, username=USER, password=PASSWORD)
    caldav = CalDavConnector(remote, CTX)
    try:
        assert [] == caldav.check()
    finally:
        caldav.close()


def test_an_unreadable_item_is_reported_and_the_others_are_read(
    make_connector: MakeConnector, proxy: FaultProxy
) -> None:
    """An item the mapping refuses comes back with its error; it does not stop the pass."""
    caldav = make_connector()
    a1 = caldav.create(appointment("A1")).ref.rsplit("/", 1)[1]
    url = collection_url(proxy, caldav.changes(None, {}).state)
    bad = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//elsewhere//EN\r\nBEGIN:VEVENT\r\nUID:odd-one\r\n"
        b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
        b"EXRULE:FREQ=WEEKLY\r\nSUMMARY:Odd\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert 201 == put_raw(url + "odd-one.ics", bad)
    items = {item.ref.rsplit("/", 1)[1]: item for item in caldav.changes(None, {}).changed}
    assert {a1, "odd-one.ics"} == set(items)
    assert items[a1].activity is not None
    odd = items["odd-one.ics"]
    assert odd.activity is None
    assert odd.error and "EXRULE" in odd.error
    assert odd.etag is not None and odd.raw


def test_server_errors_and_timeouts_are_remote_errors(make_connector: MakeConnector, proxy: FaultProxy) -> None:
    """HTTP 500 and a server that does not answer in time stop the pass with RemoteError."""
    caldav = make_connector(timeout=0.5)
    state = caldav.changes(None, {}).state
    proxy.mode = "error"
    with pytest.raises(RemoteError, match="HTTP 500"):
        caldav.changes(state, {})
    with pytest.raises(RemoteError, match="HTTP 500"):
        caldav.create(appointment("A1"))
    proxy.mode = "hang"
    with pytest.raises(RemoteError, match="no answer within 0.5 s"):
        caldav.changes(state, {})
    proxy.mode = "pass"
    assert [] == caldav.changes(state, {}).changed


def test_wrong_credentials_are_an_auth_error(make_connector: MakeConnector) -> None:
    """A 401 raises AuthError, whose message names the user but never the password."""
    caldav = make_connector(password="not-the-password")
    with pytest.raises(AuthError) as failure:
        caldav.changes(None, {})
    assert USER in str(failure.value)
    assert "not-the-password" not in str(failure.value)
    assert any("401" in problem for problem in caldav.check())


def test_tasks_go_to_the_tasks_collection(make_connector: MakeConnector) -> None:
    """With a tasks_url, tasks are written to and read from it; events stay in the events collection."""
    caldav = make_connector(("VEVENT",), tasks=("VTODO",))
    event = caldav.create(appointment("A1"))
    todo = caldav.create(task("T1"))
    assert event.ref.rsplit("/", 2)[1] != todo.ref.rsplit("/", 2)[1]
    first = caldav.changes(None, {})
    items = by_crm_id(first.changed)
    assert (Kind.APPOINTMENT, Kind.TASK) == (items["A1"].activity.kind, items["T1"].activity.kind)
    assert (event.ref, todo.ref) == (items["A1"].ref, items["T1"].ref)
    assert 2 == len(json.loads(first.state)["collections"])
    found = caldav.find("T1", Kind.TASK)
    assert found is not None and todo.ref == found.ref
    assert caldav.find("T1", Kind.APPOINTMENT) is None
    assert [] == caldav.check()


def test_check_names_what_is_wrong(
    make_connector: MakeConnector, radicale: EmbeddedRadicale, proxy: FaultProxy
) -> None:
    """check() reports a calendar that cannot hold tasks and a collection that does not exist."""
    assert [] == make_connector().check()
    events_only = make_connector(("VEVENT",))
    [problem] = events_only.check()
    assert "does not accept tasks (VTODO)" in problem
    missing = CalDavConnector(
        CalDavConfig(f"{proxy.url}/{USER}/no-such-calendar/", None, USER, PASSWORD, "basic", timeout=5), CTX
    )
    try:
        [problem] = missing.check()
        assert "404" in problem
    finally:
        missing.close()


def test_check_reports_a_read_only_calendar(make_connector: MakeConnector, proxy: FaultProxy) -> None:
    """A server that grants only DAV:read (current-user-privilege-set) gets a problem from check()."""

    def read_only(seen: Seen, answer: Answer) -> Answer:
        if seen.method != "PROPFIND":
            return answer
        root = etree.fromstring(answer.body)
        for privileges in root.iter("{DAV:}current-user-privilege-set"):
            for privilege in list(privileges):
                if privilege[0].tag != "{DAV:}read":
                    privileges.remove(privilege)
        return Answer(answer.status, answer.headers, etree.tostring(root))

    caldav = make_connector()
    proxy.rewrite = read_only
    [problem] = caldav.check()
    assert "may read but not write" in problem


def _summary(changes: RemoteChanges) -> tuple[list[str], list[str]]:
    return sorted(item.ref for item in changes.changed), sorted(changes.deleted)
