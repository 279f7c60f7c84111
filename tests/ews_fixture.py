"""The EWS test server as a fixture, and Outlook: a user editing a mailbox directly on that server
(never through syncd's or exchangelib's code)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import pytest
from ews_server import EwsServer, StoredItem

from syncd.mapping.ews_props import PROPERTY_SET_ID

PASSWORD = "s3cret-Pa55"
EXCHANGE_2016 = "15.1"


@pytest.fixture(name="ews")
def ews_fixture() -> Iterator[EwsServer]:
    """The server; import ``ews_fixture`` into a test module to use the fixture ``ews``."""
    with EwsServer() as server:
        yield server
        # Every answer the server gave validated against messages.xsd, and it never failed itself.
        assert server.response_errors == []
        assert server.server_errors == []


def remote(server: EwsServer, smtp: str, **changes: Any) -> dict[str, Any]:
    """A binding's ``remote`` table for this server's mailbox ``smtp`` (Basic auth, Exchange 2016)."""
    settings: dict[str, Any] = {
        "type": "exchange",
        "service_endpoint": server.url,
        "auth_type": "basic",
        "username": smtp,
        "password": PASSWORD,
        "primary_smtp_address": smtp,
        "version": EXCHANGE_2016,
        "timeout": 5,
        "max_backoff": 5,
    }
    settings.update(changes)
    return settings


def utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def crm_id(item: StoredItem) -> str | None:
    value = item.extended_value(PropertySetId=PROPERTY_SET_ID, PropertyName="syncd-crm-id", PropertyType="String")
    return value if isinstance(value, str) else None


@dataclass
class Outlook:
    """What a user does to a mailbox in Outlook, acted out on the server."""

    server: EwsServer
    smtp: str

    def items(self, folder: str = "calendar") -> list[StoredItem]:
        return self.server.items(self.smtp, folder)

    def by_crm_id(self, activity_id: str, folder: str = "calendar") -> StoredItem:
        [item] = [i for i in self.items(folder) if crm_id(i) == activity_id]
        return item

    def subjects(self, folder: str = "calendar") -> list[str | None]:
        return sorted((i.text("Subject") for i in self.items(folder)), key=str)

    def create_event(self, subject: str, start: datetime, end: datetime, **fields: str) -> StoredItem:
        extra = "".join(f"<t:{k}>{escape(v)}</t:{k}>" for k, v in fields.items())
        return self.server.put_item(
            self.smtp,
            "calendar",
            f"<t:CalendarItem><t:Subject>{escape(subject)}</t:Subject>{extra}"
            f"<t:Start>{utc(start)}</t:Start><t:End>{utc(end)}</t:End></t:CalendarItem>",
        )

    def edit(self, item: StoredItem, **fields: str | datetime | None) -> StoredItem:
        return self.server.edit_item(item.id, **fields)

    def delete(self, item: StoredItem) -> None:
        self.server.delete_item(item.id)
