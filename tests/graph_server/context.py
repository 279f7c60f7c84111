"""One Graph request as the handlers see it, their reply, and the checks every mailbox path makes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import times, validate
from .auth import Caller, require_role
from .errors import GraphError, access_denied, bad_request, conflict, invalid_user
from .store import Mailbox

if TYPE_CHECKING:
    from .service import Graph


@dataclass
class Request:
    method: str
    path: str  # below /v1.0, without query: /users/anna@example.com/events
    query: dict[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: Any
    caller: Caller
    graph: Graph

    @property
    def zone(self) -> str:
        return times.preferred_zone(self.headers.get("prefer"))

    @property
    def prefer(self) -> str:
        return self.headers.get("prefer", "")

    def url(self, path: str) -> str:
        return f"{self.graph.base_url}/v1.0{path}"

    def json_body(self, type_name: str, *, partial: bool = False) -> dict[str, Any]:
        """The body as a JSON object valid for `type_name`, else 400 as Graph answers."""
        if not isinstance(self.body, dict):
            raise bad_request("Empty Payload. JSON content expected.", "BadRequest")
        problems = validate.request_problems(type_name, self.body, partial=partial)
        if problems:
            raise bad_request("Invalid request body: " + "; ".join(problems[:5]), "RequestBodyRead")
        return self.body

    def check_if_match(self, etag: str) -> None:
        wanted = self.headers.get("if-match")
        if wanted is None or wanted.strip() == "*":
            return
        if wanted.strip() not in (f'W/"{etag}"', etag, f'"{etag}"'):
            raise conflict()


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # For response validation: the entity type of the body (or of each row of "value").
    entity: str | None = None
    collection: bool = False
    partial: bool = False  # $select'ed: required properties may be missing


CALENDAR_READ = ("Calendars.ReadWrite", "Calendars.Read", "Calendars.ReadBasic")
CALENDAR_WRITE = ("Calendars.ReadWrite",)
TASKS_READ = ("Tasks.ReadWrite.All", "Tasks.Read.All")
TASKS_WRITE = ("Tasks.ReadWrite.All",)


def mailbox(request: Request, user: str, area: str) -> Mailbox:
    """The mailbox of `user` for the calendar or To Do `area`, with the service's checks: application
    permission, the user exists, and (calendar only) the app's RBAC scope."""
    writing = request.method != "GET"
    if area == "calendar":
        require_role(request.caller, *(CALENDAR_WRITE if writing else CALENDAR_READ))
    else:
        require_role(request.caller, *(TASKS_WRITE if writing else TASKS_READ))
    if user.lower() == "me":
        raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    found = request.graph.store.mailbox(user)
    if found is None:
        raise invalid_user(user)
    if not found.in_cloud:
        raise GraphError(404, "MailboxNotEnabledForRESTAPI",
                         "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
    app = request.caller.app
    if area == "calendar" and not app.is_outlook and not app.may_reach(found.upn):
        raise access_denied()
    return found
