"""The engine world with mailboxes on the Graph test server instead of Radicale calendars, shared by the
Graph engine tests (import ``graph_fixture`` for the fixture ``graph`` and ``world`` as their fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from graph_fixture import remote
from graph_server import GraphServer
from world import OWNER, World

from syncd.mapping import graph_props as gp


def crm_id(item: dict[str, Any]) -> str | None:
    """The CRM id syncd stored on an event (extended property) or a task (linked resource)."""
    for prop in item.get("singleValueExtendedProperties") or ():
        if prop["id"].casefold() == gp.CRM_ID.casefold():
            return str(prop["value"])
    for link in item.get("linkedResources") or ():
        if link.get("applicationName") == "syncd":
            return str(link["externalId"])
    return None


@dataclass
class Outlook:
    """The user in Outlook and To Do: plain Graph requests as the user, never through syncd's code."""

    server: GraphServer
    upn: str

    def __post_init__(self) -> None:
        self.http = self.server.client(self.upn)

    def events(self) -> list[dict[str, Any]]:
        return self.server.events(self.upn)

    def tasks(self) -> list[dict[str, Any]]:
        return self.server.tasks(self.upn)

    def subjects(self) -> list[str]:
        return sorted(e["subject"] for e in self.events())

    def by_crm_id(self, crm: str) -> dict[str, Any]:
        return next(i for i in self.events() + self.tasks() if crm_id(i) == crm)

    def create_event(self, subject: str, start: Any, end: Any, **fields: Any) -> dict[str, Any]:
        body = {"subject": subject, "start": gp.dtz(start, "W. Europe Standard Time"),
                "end": gp.dtz(end, "W. Europe Standard Time"), **fields}
        return dict(self.http.post("events", json=body).json())

    def edit(self, item: dict[str, Any], **fields: Any) -> None:
        if "title" in item:
            self.http.patch(f"todo/lists/{self.list_id()}/tasks/{item['id']}", json=fields)
        else:
            self.http.patch(f"events/{item['id']}", json=fields)

    def delete(self, item: dict[str, Any]) -> None:
        if "title" in item:
            self.http.delete(f"todo/lists/{self.list_id()}/tasks/{item['id']}")
        else:
            self.http.delete(f"events/{item['id']}")

    def list_id(self) -> str:
        lists = self.http.get("todo/lists").json()["value"]
        return str(next(x["id"] for x in lists if x["wellknownListName"] == "defaultList"))

    def occurrences(self, master: dict[str, Any], start: Any, end: Any) -> list[dict[str, Any]]:
        params = {"startDateTime": start.isoformat(), "endDateTime": end.isoformat()}
        return list(self.http.get(f"events/{master['id']}/instances", params=params).json()["value"])


@dataclass
class GraphWorld(World):
    server: GraphServer | None = None

    def bind(self, name: str = "anna", owner: str = OWNER, **settings: Any) -> Outlook:  # type: ignore[override]
        assert self.server is not None
        try:
            self.server.mailbox(owner)
        except KeyError:
            self.server.add_mailbox(owner, owner.split("@", maxsplit=1)[0].title())
        changes = settings.pop("remote", {})
        settings["remote"] = remote(self.server, changes.pop("user", owner), **changes)
        self.bindings.append({"name": name, "owner": owner, **settings})
        return Outlook(self.server, owner)

    def app_requests(self) -> list[tuple[str, str]]:
        """(method, path below the mailbox) of the Graph requests syncd sent."""
        assert self.server is not None
        return [(r.method, r.path.split("@example.com/", 1)[-1]) for r in self.server.requests
                if r.path.startswith("/v1.0/") and not r.batch]


@pytest.fixture
def world(tmp_path: Path, graph: GraphServer) -> Iterator[GraphWorld]:
    yield GraphWorld(tmp_path, None, None, server=graph)  # type: ignore[arg-type]
