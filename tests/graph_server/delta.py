"""Delta queries: calendarView/delta and todo tasks/delta.

A token names a snapshot the server keeps: the rows the client has been given (id -> change key).
The next round diffs the current rows against it, so what was deleted, cancelled or moved out of
the window comes back as `@removed`, and a change to a series re-reports its occurrences. A round's
rows are computed once and handed out in pages (`$skiptoken`); the last page carries the `$deltatoken`.
Tokens of an earlier epoch (`expire_delta_tokens`) answer 410.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import events, odata, render
from .context import Reply, Request, mailbox
from .errors import bad_request, sync_state_not_found
from .routes import CALENDAR, USER, route
from .todo import list_of

DEFAULT_PAGE = 10


@dataclass
class Snapshot:
    """What one client has been told about one collection."""

    kind: str  # calendarView or tasks
    user: str
    container: str  # calendar id or list id
    start: datetime | None
    end: datetime | None
    epoch: int
    seen: dict[str, str] = field(default_factory=dict)  # row id -> change key


@dataclass
class _Round:
    snapshot: Snapshot  # the state once every page of the round is read
    rows: list[dict[str, Any]]
    epoch: int


class DeltaTokens:
    def __init__(self) -> None:
        self.snapshots: dict[str, Snapshot] = {}
        self.rounds: dict[str, _Round] = {}


def _page(request: Request, path: str, round_: _Round) -> Reply:
    tokens: DeltaTokens = request.graph.delta
    size = odata.page_size(request.prefer, None, DEFAULT_PAGE)
    rows, rest = round_.rows[:size], round_.rows[size:]
    body: dict[str, Any] = {"@odata.context": request.url("/$metadata#Collection(event)"), "value": rows}
    if rest:
        token = secrets.token_urlsafe(24)
        tokens.rounds[token] = _Round(round_.snapshot, rest, round_.epoch)
        body["@odata.nextLink"] = request.url(path) + f"?$skiptoken={token}"
    else:
        token = secrets.token_urlsafe(24)
        tokens.snapshots[token] = round_.snapshot
        body["@odata.deltaLink"] = request.url(path) + f"?$deltatoken={token}"
    return Reply(200, body)


def _delta(
    request: Request,
    path: str,
    kind: str,
    user: str,
    container: str,
    current: Callable[[Snapshot], list[tuple[str, str, Callable[[], dict[str, Any]]]]],
    window: tuple[datetime, datetime] | None,
) -> Reply:
    """One delta call: `current(snapshot)` lists (id, change key, render) of the rows in view now."""
    graph = request.graph
    tokens: DeltaTokens = graph.delta
    epoch = graph.store.delta_epoch
    skip, delta = request.query.get("$skiptoken"), request.query.get("$deltatoken")
    if skip is not None:
        round_ = tokens.rounds.get(skip)
        if round_ is None or round_.epoch != epoch:
            raise sync_state_not_found()
        return _page(request, path, round_)
    if delta is not None:
        previous = tokens.snapshots.get(delta)
        if previous is None or previous.epoch != epoch or (previous.kind, previous.container) != (kind, container):
            raise sync_state_not_found()
        base = previous
    else:
        if window is None and kind == "calendarView":
            raise bad_request("startDateTime and endDateTime are required.", "ErrorInvalidParameter")
        start, end = window if window else (None, None)
        base = Snapshot(kind, user, container, start, end, epoch)
    now_rows = current(base)
    rows = []
    seen = {}
    for row_id, change_key, make in now_rows:
        seen[row_id] = change_key
        if base.seen.get(row_id) != change_key:
            rows.append(make())
    rows.extend({"@removed": {"reason": "deleted"}, "id": gone} for gone in base.seen if gone not in seen)
    snapshot = Snapshot(kind, user, container, base.start, base.end, epoch, seen)
    return _page(request, path, _Round(snapshot, rows, epoch))


@route("GET", USER + CALENDAR + "/calendarView/delta")
def calendar_view_delta(request: Request, user: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    calendar = events.calendar_of(box, cal)
    has_window = "startDateTime" in request.query or "endDateTime" in request.query
    window = events.window(request) if has_window else None

    def current(snapshot: Snapshot) -> list[tuple[str, str, Callable[[], dict[str, Any]]]]:
        assert snapshot.start is not None and snapshot.end is not None
        return [
            (i.id, i.change_key, functools.partial(events.render_instance, request, box, i))
            for i in events.view(calendar, snapshot.start, snapshot.end)
        ]

    reply = _delta(request, request.path, "calendarView", box.upn, calendar.id, current, window)
    reply.entity, reply.collection = events.EVENT, True
    return reply


@route("GET", USER + r"/todo/lists/(?P<lid>[^/]+)/tasks/delta")
def tasks_delta(request: Request, user: str, lid: str) -> Reply:
    box = mailbox(request, user, "todo")
    todo_list = list_of(box, lid)

    def current(snapshot: Snapshot) -> list[tuple[str, str, Callable[[], dict[str, Any]]]]:
        return [
            (t.id, t.etag, functools.partial(render.task, t, zone=request.zone))
            for t in sorted(todo_list.tasks.values(), key=lambda t: t.seq)
        ]

    reply = _delta(request, request.path, "tasks", box.upn, todo_list.id, current, None)
    reply.entity, reply.collection = "microsoft.graph.todoTask", True
    return reply
