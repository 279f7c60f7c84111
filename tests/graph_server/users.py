"""Directory reads: /users/{id}, which needs User.Read.All like the real directory."""

from __future__ import annotations

from .auth import require_role
from .context import Reply, Request
from .errors import GraphError
from .routes import USER, route


@route("GET", USER)
def get_user(request: Request, user: str) -> Reply:
    if not request.caller.app.is_outlook:
        try:
            require_role(request.caller, "User.Read.All", "User.ReadBasic.All", "Directory.Read.All")
        except GraphError as err:
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            ) from err
    box = request.graph.store.mailbox(user)
    if box is None:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{user}' does not exist or one of its queried reference-property objects are not present.",
        )
    return Reply(
        200,
        {
            "@odata.context": request.url("/$metadata#users/$entity"),
            "id": box.object_id,
            "userPrincipalName": box.upn,
            "displayName": box.display_name,
            "mail": box.upn,
        },
        entity="microsoft.graph.user",
        partial=True,
    )
