"""The Exchange connector's listing (:class:`~syncd.connectors.base.Paging`): the changed items by
ItemId alone, read afterwards a page at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from ews_fixture import PASSWORD, Outlook, ews_fixture, remote  # noqa: F401  (the fixture `ews`)
from ews_server import EwsServer

from syncd.config import ExchangeRemote
from syncd.connectors.exchange import ExchangeConnector
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Kind

USER = "anna@example.com"
CTX = MappingContext(CrmUser(USER, "Anna", "Europe/Amsterdam"))
START = datetime.now(ZoneInfo("Europe/Amsterdam")).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(3)


def meeting(activity_id: str, subject: str) -> Activity:
    return Activity(id=activity_id, kind=Kind.APPOINTMENT, subject=subject, owner=USER, start=START,
                    end=START + timedelta(hours=1), timezone="Europe/Amsterdam", status="planned")


@pytest.fixture
def connect(ews: EwsServer) -> Iterator[Callable[[], ExchangeConnector]]:
    ews.add_mailbox(USER, PASSWORD)
    made: list[ExchangeConnector] = []

    def make() -> ExchangeConnector:
        made.append(ExchangeConnector(ExchangeRemote(**remote(ews, USER)), CTX))
        return made[-1]

    yield make
    for connector in made:
        connector.close()


def test_a_listing_reads_no_item_and_a_page_is_read_with_one_get_item(
    ews: EwsServer, connect: Callable[[], ExchangeConnector]
) -> None:
    connector = connect()
    outlook = Outlook(ews, USER)
    made = [outlook.create_event(f"Visit #{i}", START + timedelta(days=i), START + timedelta(days=i, hours=1))
            for i in range(5)]
    before = len(ews.operations())
    listed = connector.listing(None, {})
    assert ews.operations()[before:] == ["SyncFolderItems", "SyncFolderItems"]  # calendar and tasks
    assert sorted(listed.changed) == sorted(i.id for i in made) and listed.total == 5 and listed.deleted == []

    page = connector.fetch(listed.changed[:3])
    assert ews.operations()[-1:] == ["GetItem"] and len(ews.operations()) == before + 3
    assert sorted(i.activity.subject for i in page if i.activity) == ["Visit #0", "Visit #1", "Visit #2"]
    # What the engine then knows is not listed again; a deletion is, by ItemId.
    outlook.delete(made[4])
    again = connector.listing(listed.state, {i.ref: i.etag for i in page})
    assert (again.changed, again.deleted) == ([], [])
    known = {i.id: i.change_key for i in made}
    assert connector.listing(listed.state, known).deleted == [made[4].id]

