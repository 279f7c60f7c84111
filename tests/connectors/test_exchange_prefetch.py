"""Updates the CRM made, read with one GetItem per batch instead of a GetItem before every UpdateItem
(issue 14), on the EWS test server.

The item syncd writes over must still be the item at the version the engine decided on, so what other
clients stored on it survives and an Outlook edit made since is not overwritten: these check the
batched read keeps the guarantees of the GetItem it replaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from ews_fixture import (
    PASSWORD,
    Outlook,
    ews_fixture,  # noqa: F401  (the fixture `ews`)
    remote,
)
from ews_server import EwsServer
from ews_server.faults import SoapFault

from syncd.config import ExchangeRemote
from syncd.connectors import exchange as exchange_module
from syncd.connectors.base import Prefetching
from syncd.connectors.exchange import ExchangeConnector
from syncd.errors import NotFound, PreconditionFailed
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Kind

USER = "anna@example.com"
AMS = ZoneInfo("Europe/Amsterdam")
CTX = MappingContext(CrmUser(USER, "Anna", "Europe/Amsterdam"))
N = 20
#: What Outlook set on every item syncd made (syncd does not map it): an update must keep it.
OUTLOOKS = {"IsResponseRequested": "false"}


def meeting(activity_id: str, subject: str, day: int) -> Activity:
    start = datetime.now(AMS).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=day)
    return Activity(id=activity_id, kind=Kind.APPOINTMENT, subject=subject, owner=USER, start=start,
                    end=start + timedelta(hours=1), timezone="Europe/Amsterdam", status="planned")


class Mailbox:
    """``N`` items syncd made and Outlook then edited; ``etags`` are the ChangeKeys the engine knows."""

    def __init__(self, server: EwsServer, count: int = N) -> None:
        server.add_mailbox(USER, PASSWORD)
        self.server = server
        self.outlook = Outlook(server, USER)
        self.exchange = ExchangeConnector(ExchangeRemote(**remote(server, USER)), CTX)
        self.ids = [f"p{n:02d}" for n in range(count)]
        made = self.exchange.create_many([meeting(key, f"Meeting {key}", n + 1) for n, key in enumerate(self.ids)])
        self.refs: dict[str, str] = {}
        self.etags: dict[str, str | None] = {}
        for key, result in zip(self.ids, made, strict=True):
            assert not isinstance(result, Exception), result
            self.refs[key] = result.ref
            self.outlook_edit(key, **OUTLOOKS)
        server.requests.clear()

    def outlook_edit(self, key: str, **fields: str) -> None:
        self.etags[key] = self.outlook.edit(self.server.item(self.refs[key]), **fields).change_key

    def update(self, key: str, subject: str, etag: str | None = None) -> None:
        day = self.ids.index(key) + 1
        written = self.exchange.update(self.refs[key], etag or self.etags[key], meeting(key, subject, day))
        self.etags[key] = written.etag

    def holds(self, key: str, **fields: str) -> bool:
        item = self.server.item(self.refs[key])
        return all(item.text(name) == value for name, value in fields.items())

    def operations(self) -> Counter[str | None]:
        return Counter(self.server.operations())


@pytest.fixture
def mailbox(ews: EwsServer) -> Iterator[Callable[[int], Mailbox]]:
    made: list[Mailbox] = []

    def make(count: int) -> Mailbox:
        made.append(Mailbox(ews, count))
        return made[-1]

    yield make
    for box in made:
        box.exchange.close()


@pytest.fixture
def box(mailbox: Callable[[int], Mailbox]) -> Mailbox:
    return mailbox(3)


def test_n_prefetched_updates_cost_one_getitem_and_keep_outlooks_fields(mailbox: Callable[[int], Mailbox]) -> None:
    box = mailbox(N)
    assert isinstance(box.exchange, Prefetching)
    box.exchange.prefetch([box.refs[k] for k in box.ids])
    for key in box.ids:
        box.update(key, f"Renamed {key}")
    assert box.operations() == {"GetItem": 1, "UpdateItem": N}
    for key in box.ids:
        assert box.holds(key, Subject=f"Renamed {key}", **OUTLOOKS)


def test_the_items_are_read_a_batch_at_a_time_as_the_writes_reach_them(
    mailbox: Callable[[int], Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exchange_module, "_UPDATE_BATCH", 2)
    box = mailbox(5)
    box.exchange.prefetch([box.refs[k] for k in box.ids])
    for key in box.ids:
        box.update(key, f"Renamed {key}")
    # ceil(5 / 2) reads, each just before its writes.
    assert box.server.operations() == ["GetItem", "UpdateItem", "UpdateItem"] * 2 + ["GetItem", "UpdateItem"]
    assert all(box.holds(key, Subject=f"Renamed {key}", **OUTLOOKS) for key in box.ids)


def test_an_item_outlook_changes_after_the_batched_read_is_not_written_over(box: Mailbox) -> None:
    """The UpdateItem carries the ChangeKey the engine decided on: Exchange refuses it, Outlook's edit
    stays; the engine's re-read then writes over the item as it now is."""
    first, second = box.ids[:2]
    box.exchange.prefetch([box.refs[k] for k in box.ids])
    box.update(first, "Renamed")  # reads the batch
    known = box.etags[second]
    box.outlook_edit(second, Location="Room 4.12")
    with pytest.raises(PreconditionFailed):
        box.update(second, "Renamed", known)
    assert box.holds(second, Subject=f"Meeting {second}", Location="Room 4.12", **OUTLOOKS)
    assert box.server.operations() == ["GetItem", "UpdateItem", "UpdateItem"]
    [fresh] = box.exchange.fetch([box.refs[second]])
    box.exchange.update(fresh.ref, fresh.etag, meeting(second, "Renamed", 2), fresh.raw)
    assert box.holds(second, Subject="Renamed", **OUTLOOKS)


def test_a_copy_at_another_changekey_than_the_engines_is_not_used(box: Mailbox) -> None:
    """Outlook edited the item after the engine decided, before the batch was read: the batch's copy
    is newer than what the engine decided on, so the update reads it as before, and Exchange refuses
    the write made on the engine's ChangeKey."""
    key = box.ids[0]
    known = box.etags[key]
    box.outlook_edit(key, Location="Room 4.12")
    box.exchange.prefetch([box.refs[key]])
    with pytest.raises(PreconditionFailed):
        box.update(key, "Renamed", known)
    assert box.server.operations() == ["GetItem", "GetItem", "UpdateItem"]
    assert box.holds(key, Subject=f"Meeting {key}", Location="Room 4.12")


def test_a_failed_batched_read_falls_back_to_a_getitem_per_update(box: Mailbox) -> None:
    keys = box.ids[:3]
    box.server.inject(SoapFault("ErrorInternalServerError", "An internal server error occurred."),
                      operation="GetItem")
    box.exchange.prefetch([box.refs[k] for k in keys])
    for key in keys:
        box.update(key, f"Renamed {key}")
    assert box.server.operations() == ["GetItem", "GetItem", "UpdateItem", "GetItem", "UpdateItem", "GetItem",
                                       "UpdateItem"]
    assert all(box.holds(key, Subject=f"Renamed {key}", **OUTLOOKS) for key in keys)


def test_an_item_the_batch_could_not_read_is_read_by_its_update(box: Mailbox) -> None:
    """Exchange answers one id of the GetItem with an error (the item is gone): the other updates use
    the batch, that one's own read says it is gone."""
    keys = box.ids[:3]
    box.outlook.delete(box.server.item(box.refs[keys[1]]))
    box.exchange.prefetch([box.refs[k] for k in keys])
    box.update(keys[0], "Renamed")
    with pytest.raises(NotFound):
        box.update(keys[1], "Renamed")
    box.update(keys[2], "Renamed")
    assert box.server.operations() == ["GetItem", "UpdateItem", "GetItem", "UpdateItem"]


def test_the_batch_lasts_one_pass(box: Mailbox) -> None:
    """Reading the change feed starts a new pass: what was to be read in a batch is read alone again."""
    state = box.exchange.changes(None, {}).state
    box.exchange.prefetch([box.refs[k] for k in box.ids])
    box.exchange.changes(state, {box.refs[k]: box.etags[k] for k in box.ids})
    box.server.requests.clear()
    for key in box.ids:
        box.update(key, "Renamed")
    assert box.server.operations() == ["GetItem", "UpdateItem"] * 3
