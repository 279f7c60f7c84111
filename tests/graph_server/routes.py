"""The route table: handlers register a method and a path pattern below /v1.0."""

from __future__ import annotations

import re
from collections.abc import Callable

from .context import Reply

Handler = Callable[..., Reply]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []

USER = r"/users/(?P<user>[^/]+)"
CALENDAR = r"(?:/calendar|/calendars/(?P<cal>[^/]+))?"


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^{pattern}/?$", re.I), handler))
        return handler

    return register


def find(method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
    """The handler of a request, None if no path matches; 405 is the caller's business."""
    allowed = False
    for verb, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match:
            if verb == method:
                return handler, {k: v for k, v in match.groupdict().items() if v is not None}
            allowed = True
    if allowed:
        raise MethodNotAllowed
    return None


class MethodNotAllowed(Exception):
    pass
