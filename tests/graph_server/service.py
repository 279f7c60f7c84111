"""The service behind the socket: routes a request to Entra or Graph, applies injected faults,
validates bodies, records what it saw, and serves JSON batches."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import delta, events, routes, todo, users, validate  # noqa: F401 - the modules register their routes
from .auth import Caller, Entra
from .context import Reply, Request
from .errors import EntraError, GraphError, bad_request, not_served
from .faults import Faults
from .store import Store

_TENANT = r"/(?P<tenant>[^/]+)"
_BATCH_LIMIT = 20
_USER_PATH = re.compile(r"^/v1\.0/users/([^/]+)")


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (top-level or inside a $batch), for request counting."""

    method: str
    path: str  # decoded, without query: /v1.0/users/anna@example.com/calendarView/delta
    query: Mapping[str, str]
    status: int
    client_id: str | None = None
    batch: bool = False
    at: float = field(default_factory=time.monotonic)


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (the request was carried out)


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps(payload).encode(), {"Content-Type": "application/json; charset=utf-8",
                                                          **(headers or {})})


class Graph:
    def __init__(self, tenant_id: str) -> None:
        self.store = Store()
        self.entra = Entra(tenant_id)
        self.delta = delta.DeltaTokens()
        self.faults = Faults()
        self.base_url = ""
        self.requests: list[RequestRecord] = []
        self.response_problems: list[str] = []
        self.server_errors: list[str] = []
        # Seconds each app request waits before it is served (a network's round trip, for overlap).
        self.latency = 0.0
        # Most requests of one app (client id) in flight at once, and how many are now.
        self.peak_in_flight: dict[str | None, int] = {}
        self._in_flight: dict[str | None, int] = {}
        # Exchange Online lets an app have 4 requests at once on one mailbox (MailboxConcurrency);
        # None: no limit. Requests over it answer 429.
        self.concurrency_limit: int | None = None
        self._per_mailbox: dict[tuple[str | None, str | None], int] = {}
        self._records = threading.Lock()

    # -- the HTTP entry ------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        lowered = {k.lower(): v for k, v in headers.items()}
        if path.startswith("/v1.0/") or path == "/v1.0":
            return self._graph(method, path, query, lowered, body)
        return self._entra(method, path, query, lowered, body)

    def _record(self, record: RequestRecord) -> None:
        with self._records:
            self.requests.append(record)

    # -- Entra ---------------------------------------------------------------------------------------

    def _entra(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Answer:
        fault = self.faults.take(method, path)
        if fault is not None and not fault.lose_answer:
            status, raw, extra = fault.answer()
            self._record(RequestRecord(method, path, query, status))
            return Answer(status, raw, extra)
        answer, client_id = self._entra_answer(method, path, query, headers, body)
        self._record(RequestRecord(method, path, query, answer.status, client_id))
        answer.drop = fault is not None
        return answer

    def _entra_answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[Answer, str | None]:
        try:
            if method == "GET" and path == "/common/discovery/instance":
                return _json(200, self.entra.instance_discovery(self.base_url)), None
            match = re.fullmatch(_TENANT + r"/v2\.0/\.well-known/openid-configuration", path)
            if method == "GET" and match:
                return _json(200, self.entra.openid_configuration(self.base_url, match["tenant"])), None
            match = re.fullmatch(_TENANT + r"/oauth2/v2\.0/token", path)
            if method == "POST" and match:
                app, token = self.entra.token(match["tenant"], body, headers.get("authorization"))
                return _json(200, token, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}), app.client_id
        except EntraError as err:
            client = dict(parse_qsl(body.decode("utf-8", "replace"))).get("client_id")
            return _json(err.status, err.body()), client
        return _json(404, {"error": "not_found", "error_description": f"No such endpoint: {path}"}), None

    # -- Graph ---------------------------------------------------------------------------------------

    def _graph(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Answer:
        try:
            caller: Caller | None = self.entra.authenticate(headers.get("authorization"))
        except GraphError:
            caller = None
        if caller is not None and caller.app.is_outlook:
            reply = self._dispatch(method, path[len("/v1.0"):], query, headers, body, caller)
            return self._encode(reply)
        client_id = caller.app.client_id if caller else None
        user = _USER_PATH.match(path)
        slot = (client_id, user[1].lower() if user else None)
        with self._records:
            self._in_flight[client_id] = self._in_flight.get(client_id, 0) + 1
            self.peak_in_flight[client_id] = max(self.peak_in_flight.get(client_id, 0), self._in_flight[client_id])
            self._per_mailbox[slot] = self._per_mailbox.get(slot, 0) + 1
            over = self.concurrency_limit is not None and self._per_mailbox[slot] > self.concurrency_limit
        try:
            if over:
                answer = _json(429, GraphError(
                    429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.").body(),
                    {"Retry-After": "1"})
                self._record(RequestRecord(method, path, query, 429, client_id))
                return answer
            if self.latency:
                time.sleep(self.latency)
            return self._app_request(method, path, query, headers, body, caller, client_id)
        finally:
            with self._records:
                self._in_flight[client_id] -= 1
                self._per_mailbox[slot] -= 1

    def _app_request(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        caller: Caller | None,
        client_id: str | None,
    ) -> Answer:
        fault = self.faults.take(method, path)
        if fault is not None and not fault.lose_answer:
            status, raw, extra = fault.answer()
            self._record(RequestRecord(method, path, query, status, client_id))
            return Answer(status, raw, extra)
        if path == "/v1.0/$batch" and method == "POST":
            answer = self._batch(headers, body, caller)
        else:
            answer = self._encode(self._dispatch(method, path[len("/v1.0"):], query, headers, body, caller))
        self._record(RequestRecord(method, path, query, answer.status, client_id))
        answer.drop = answer.drop or fault is not None
        return answer

    def _encode(self, reply: Reply) -> Answer:
        if reply.body is None:
            return Answer(reply.status, b"", reply.headers)
        return _json(reply.status, reply.body, reply.headers)

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes | Any,
        caller: Caller | None,
    ) -> Reply:
        """One Graph request below /v1.0; errors become Graph's error replies."""
        try:
            if caller is None:
                caller = self.entra.authenticate(headers.get("authorization"))
            if isinstance(body, bytes):
                try:
                    parsed = json.loads(body) if body.strip() else None
                except ValueError as err:
                    raise bad_request(f"Unable to read JSON request payload: {err}", "BadRequest") from err
            else:
                parsed = body
            try:
                found = routes.find(method, path)
            except routes.MethodNotAllowed:
                raise GraphError(405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed.") from None
            if found is None:
                raise not_served(f"{method} {path}")
            handler, args = found
            request = Request(method, path, query, headers, parsed, caller, self)
            with self.store.lock:
                reply = handler(request, **args)
            self._check_response(method, path, reply)
            applied = [p for p in ("outlook.timezone", "odata.maxpagesize", "outlook.body-content-type")
                       if p in request.prefer]
            if applied:
                reply.headers["Preference-Applied"] = ", ".join(applied)
            return reply
        except GraphError as err:
            return Reply(err.status, err.body(), dict(err.headers))
        except Exception as err:  # noqa: BLE001 - a bug of this server: answer 500 and keep the cause
            self.server_errors.append(f"{method} {path}: {err!r}")
            return Reply(500, GraphError(500, "TestServerBug", repr(err)).body())

    def _check_response(self, method: str, path: str, reply: Reply) -> None:
        if reply.entity is None or reply.body is None:
            return
        rows = reply.body.get("value", []) if reply.collection else [reply.body]
        for row in rows:
            if "@removed" in row:
                continue
            problems = validate.response_problems(reply.entity, row, partial=reply.partial)
            if problems:
                message = f"{method} {path}: response {reply.entity} invalid: {problems[:5]}"
                self.response_problems.append(message)
                raise AssertionError(message)

    # -- $batch --------------------------------------------------------------------------------------

    def _batch(self, headers: dict[str, str], body: bytes, caller: Caller | None) -> Answer:
        try:
            if caller is None:
                caller = self.entra.authenticate(headers.get("authorization"))
            try:
                payload = json.loads(body)
            except ValueError as err:
                raise bad_request("Invalid batch payload format.", "BadRequest") from err
            requests = payload.get("requests") if isinstance(payload, dict) else None
            if not isinstance(requests, list) or not requests:
                raise bad_request("Invalid batch payload format.", "BadRequest")
            if len(requests) > _BATCH_LIMIT:
                raise bad_request(f"The number of batch requests ({len(requests)}) exceeds the limit of "
                                  f"{_BATCH_LIMIT}.", "BadRequest")
            ids = [r.get("id") for r in requests if isinstance(r, dict)]
            if len(set(ids)) != len(requests) or any(not isinstance(i, str) or not i for i in ids):
                raise bad_request("Every batch request needs a unique string id.", "BadRequest")
            if any("dependsOn" in r for r in requests):
                raise not_served("dependsOn in $batch")
        except GraphError as err:
            return _json(err.status, err.body(), err.headers)
        responses, drop = [], False
        for sub in requests:
            response, lost = self._batch_one(sub, caller)
            responses.append(response)
            drop = drop or lost
        answer = _json(200, {"responses": responses})
        answer.drop = drop
        return answer

    def _batch_one(self, sub: dict[str, Any], caller: Caller) -> tuple[dict[str, Any], bool]:
        method = str(sub.get("method", "")).upper()
        split = urlsplit("/" + str(sub.get("url", "")).lstrip("/"))
        path = unquote(split.path)
        if path.startswith("/v1.0/"):
            path = path[len("/v1.0"):]
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        sub_headers = {k.lower(): str(v) for k, v in (sub.get("headers") or {}).items()}
        sub_headers.setdefault("authorization", "")
        full_path = "/v1.0" + path
        fault = self.faults.take(method, full_path)
        if fault is not None and not fault.lose_answer:
            status, raw, extra = fault.answer()
            self._record(RequestRecord(method, full_path, query, status, caller.app.client_id, batch=True))
            return {"id": sub["id"], "status": status, "headers": extra, "body": json.loads(raw)}, False
        if "body" in sub and "content-type" not in sub_headers:
            reply = Reply(400, GraphError(400, "BadRequest", f"Write request id : {sub['id']} does not contain "
                                          "Content-Type header or body.").body())
        else:
            reply = self._dispatch(method, path, query, sub_headers, sub.get("body"), caller)
        self._record(RequestRecord(method, full_path, query, reply.status, caller.app.client_id, batch=True))
        response: dict[str, Any] = {"id": sub["id"], "status": reply.status,
                                    "headers": {"Content-Type": "application/json", **reply.headers}}
        if reply.body is not None:
            response["body"] = reply.body
        return response, fault is not None
