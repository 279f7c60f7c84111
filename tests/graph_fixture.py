"""The Graph test server as a fixture, and the `[bindings.remote]` table of a graph binding on it.

Import ``graph_fixture`` into a test module to use the fixture ``graph``; act as the user in Outlook
or To Do with ``Outlook(graph)`` or ``graph.client(USER)`` (real HTTP, not recorded in ``graph.requests``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graph_server import GraphServer, OutlookSession
from graph_server.store import prop_key

from syncd.mapping.graph_props import CRM_ID

TENANT = "tenant-1"
APP_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cret-Gr4ph"
USER = "anna@example.com"


@pytest.fixture(name="graph")
def graph_fixture() -> Iterator[GraphServer]:
    """A started server: tenant TENANT, app APP_ID / SECRET with Calendars.ReadWrite and
    Tasks.ReadWrite.All, mailbox USER."""
    with GraphServer(tenant_id=TENANT) as server:
        server.add_app(APP_ID, secret=SECRET)
        server.add_mailbox(USER, name="Anna")
        yield server
        # Every answer validated against the CSDL schema, and the server never failed itself.
        assert server.response_problems == []
        assert server.server_errors == []


def remote(server: GraphServer, user: str = USER, **changes: Any) -> dict[str, Any]:
    """A binding's ``remote`` table for mailbox ``user`` on this server."""
    settings: dict[str, Any] = {
        "type": "graph",
        "tenant_id": TENANT,
        "client_id": APP_ID,
        "client_secret": SECRET,
        "user": user,
        "calendar": "default",
        "tasks": "default",
        "authority_url": server.authority_url,
        "graph_url": server.graph_url,
        "verify_tls": str(server.ca_path),
        "timeout": 5,
        "max_backoff": 5,
    }
    settings.update(changes)
    return settings


def utc(value: datetime) -> dict[str, str]:
    """A dateTimeTimeZone in UTC, as Outlook would send it."""
    return {"dateTime": value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def crm_id(event: dict[str, Any]) -> str | None:
    """The CRM id syncd stamped on an event (from GraphServer.events / .event, which carry every
    extended property)."""
    wanted = prop_key(CRM_ID)
    for prop in event.get("singleValueExtendedProperties") or []:
        if prop_key(prop["id"]) == wanted:
            return str(prop["value"])
    return None


@dataclass
class Outlook:
    """What a user does in Outlook and To Do, over real HTTP as that user (not recorded, not faulted)."""

    server: GraphServer
    user: str = USER

    @property
    def http(self) -> OutlookSession:
        return self.server.client(self.user)

    def events(self) -> list[dict[str, Any]]:
        return self.server.events(self.user)

    def by_crm_id(self, activity_id: str) -> dict[str, Any]:
        [found] = [e for e in self.events() if crm_id(e) == activity_id]
        return found

    def subjects(self) -> list[str]:
        return sorted(e["subject"] for e in self.events())

    def create_event(self, subject: str, start: datetime, end: datetime, **fields: Any) -> dict[str, Any]:
        body = {"subject": subject, "start": utc(start), "end": utc(end), **fields}
        return self.http.post("events", json=body).json()

    def edit(self, event_id: str, **fields: Any) -> dict[str, Any]:
        """PATCH an event, occurrence or exception (datetimes become UTC dateTimeTimeZones)."""
        body = {k: utc(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        return self.http.patch(f"events/{event_id}", json=body).json()

    def delete(self, event_id: str) -> None:
        self.http.delete(f"events/{event_id}")

    def occurrences(self, master_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        query = {"startDateTime": start.astimezone(UTC).isoformat(), "endDateTime": end.astimezone(UTC).isoformat(),
                 "$top": "1000"}
        return self.http.get(f"events/{master_id}/instances", params=query).json()["value"]

    def occurrence(self, master_id: str, original_start: datetime) -> dict[str, Any]:
        around = original_start.astimezone(UTC)
        [found] = [
            o for o in self.occurrences(master_id, around - timedelta(days=1), around + timedelta(days=1))
            if datetime.fromisoformat(o["originalStart"].replace("0Z", "+00:00")) == around
        ]
        return found

    def modify_occurrence(self, master_id: str, original_start: datetime, **fields: Any) -> dict[str, Any]:
        return self.edit(self.occurrence(master_id, original_start)["id"], **fields)

    def delete_occurrence(self, master_id: str, original_start: datetime) -> None:
        self.delete(self.occurrence(master_id, original_start)["id"])

    # -- To Do ---------------------------------------------------------------------------------------

    def default_list(self) -> str:
        return self.server.mailbox(self.user).default_list.id

    def tasks(self) -> list[dict[str, Any]]:
        return self.server.tasks(self.user)

    def create_task(self, title: str, **fields: Any) -> dict[str, Any]:
        return self.http.post(f"todo/lists/{self.default_list()}/tasks", json={"title": title, **fields}).json()

    def edit_task(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return self.http.patch(f"todo/lists/{self.default_list()}/tasks/{task_id}", json=fields).json()

    def complete_task(self, task_id: str) -> dict[str, Any]:
        return self.edit_task(task_id, status="completed")

    def delete_task(self, task_id: str) -> None:
        self.http.delete(f"todo/lists/{self.default_list()}/tasks/{task_id}")
