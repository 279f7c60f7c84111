"""One connector per binding, kept between a daemon's passes.

A connector owns its HTTP session; a new one per pass costs a TCP (and TLS) handshake, often an auth
challenge, and building the client itself. Kept, an idle pass is one request on a warm connection.

What a kept connector must not carry from one pass to the next:

- anything a failed pass may have left broken: a pass that does not end "ok" closes it, the next one
  builds a fresh connector;
- a stale config: it is rebuilt when the binding's settings, its secrets (a rotated password file is
  read each pass, as before), its owner or the mapping options differ from those it was built with;
- the CRM's people as an earlier pass read them: the context's directory is pointed at each pass's
  own session (see :class:`_Tables`);
- anything else it caches for good (a calendar found by its display name): it is rebuilt after
  :data:`KEPT_FOR` seconds, the time a process keeps such a lookup anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from syncd.config import Binding
from syncd.connectors.base import Connector
from syncd.logging import get_logger
from syncd.mapping.context import MappingContext
from syncd.model import Directory

log = get_logger("syncd.service")

#: Seconds a connector is kept at most (CalDAV's calendar-by-name lookups last as long).
KEPT_FOR = 3600.0

_SECRETS = ("password", "client_secret", "certificate_password")


class _Table(Mapping[str, "str | None"]):
    """One table of the CRM's people, as the running pass reads it through its own session."""

    def __init__(self) -> None:
        self.rows: Mapping[str, str | None] = {}

    def __getitem__(self, key: str) -> str | None:
        return self.rows[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __reduce__(self) -> tuple[type[dict[str, str | None]], tuple[dict[str, str | None]]]:
        # Sent to a process that parses a pull (syncd.connectors.parse_pool) as what it reads now.
        return dict, (dict(self.rows),)


@dataclass(frozen=True, slots=True)
class _Tables:
    """The directory a kept connector's context holds. It outlives the session each pass reads
    through, so every pass points it at that pass's directory, and away from it afterwards (a closed
    session must not be read, and must not be kept alive)."""

    users: _Table = field(default_factory=_Table)
    contacts: _Table = field(default_factory=_Table)
    accounts: _Table = field(default_factory=_Table)

    @property
    def directory(self) -> Directory:
        return Directory(users=self.users, contacts=self.contacts, accounts=self.accounts)

    def point_at(self, directory: Directory) -> None:
        self.users.rows, self.contacts.rows, self.accounts.rows = (
            directory.users, directory.contacts, directory.accounts,
        )


@dataclass(slots=True)
class Lent:
    """A connector lent to one pass; given back with :meth:`KeptConnectors.give_back`."""

    name: str
    key: tuple[Any, ...]
    connector: Connector
    tables: _Tables
    built_at: float


def _key(binding: Binding, ctx: MappingContext) -> tuple[Any, ...]:
    """What a connector was built from. Deferred secrets compare by where they are read from, so
    their values are read here, each pass, as a new connector would read them (may raise ConfigError)."""
    secrets = []
    for attr in _SECRETS:
        value = getattr(binding.remote, attr, None)
        reveal = getattr(value, "get_secret_value", None)
        secrets.append(reveal() if callable(reveal) else value)
    return binding, tuple(secrets), ctx.owner, ctx.options, ctx.send_invitations


class KeptConnectors:
    """The daemon's connectors, one per binding: lent to a pass, given back after it."""

    def __init__(
        self, build: Callable[[Binding, MappingContext], Connector], clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: dict[str, Lent] = {}
        self._closed = False

    def lend(self, binding: Binding, ctx: MappingContext) -> Lent:
        """The binding's kept connector if it still fits, else a new one (the old one is closed)."""
        key = _key(binding, ctx)
        with self._lock:
            kept = self._idle.pop(binding.name, None)
        if kept is not None and (kept.key != key or self._clock() - kept.built_at > KEPT_FOR):
            log.debug("connector rebuilt", binding=binding.name)
            _close(kept)
            kept = None
        if kept is None:
            tables = _Tables()
            connector = self._build(binding, replace(ctx, directory=tables.directory))
            kept = Lent(binding.name, key, connector, tables, self._clock())
        kept.tables.point_at(ctx.directory)
        return kept

    def give_back(self, lent: Lent, keep: bool) -> None:
        """After the pass: kept for the next one if ``keep`` (the pass went well), else closed."""
        lent.tables.point_at(Directory())
        with self._lock:
            keep = keep and not self._closed  # given back after the daemon stopped: closed
            # One pass per binding at a time, so nothing is kept for this name; should a second
            # one ever be, the older is closed rather than leaked.
            older = self._idle.pop(lent.name, None) if keep else None
            if keep:
                self._idle[lent.name] = lent
        if not keep:
            _close(lent)
        elif older is not None:
            _close(older)

    def discard(self, name: str) -> None:
        """The binding is no longer this worker's (released, or gone from the config)."""
        with self._lock:
            kept = self._idle.pop(name, None)
        if kept is not None:
            _close(kept)

    def close(self) -> None:
        """Close every idle connector (the daemon stops); lent ones close when given back."""
        with self._lock:
            self._closed = True
            kept, self._idle = list(self._idle.values()), {}
        for lent in kept:
            _close(lent)

    def __len__(self) -> int:
        with self._lock:
            return len(self._idle)


def _close(lent: Lent) -> None:
    try:
        lent.connector.close()
    except Exception as exc:  # noqa: BLE001 - a connector that fails to close is dropped all the same
        log.warning("closing a connector failed", binding=lent.name, error=f"{type(exc).__name__}: {exc}")
