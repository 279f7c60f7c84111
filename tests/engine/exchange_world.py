"""The engine world with mailboxes on the EWS test server instead of Radicale calendars, shared by the
Exchange engine tests (import ``world`` as their fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ews_fixture import PASSWORD, Outlook, remote
from ews_server import EwsServer
from world import OWNER, World


@dataclass
class ExchangeWorld(World):
    server: EwsServer | None = None

    def bind(self, name: str = "anna", owner: str = OWNER, **settings: Any) -> Outlook:  # type: ignore[override]
        assert self.server is not None
        if self.server.store.mailbox(owner) is None:
            self.server.add_mailbox(owner, PASSWORD, owner.split("@", maxsplit=1)[0].title())
        settings["remote"] = remote(self.server, owner, **settings.pop("remote", {}))
        self.bindings.append({"name": name, "owner": owner, **settings})
        return Outlook(self.server, owner)


@pytest.fixture
def world(tmp_path: Path, ews: EwsServer) -> Iterator[ExchangeWorld]:
    yield ExchangeWorld(tmp_path, None, None, server=ews)  # type: ignore[arg-type]
