"""Finding a user's calendars from a server, principal or calendar-home URL (RFC 6764, RFC 4791 6).

The path every CalDAV client walks: the URL itself (a calendar? a principal? a home?), else the
server's ``/.well-known/caldav``; then DAV:current-user-principal, its CALDAV:calendar-home-set, and
one Depth 1 PROPFIND there listing the calendars with their names and components. Three to four
requests, on syncd's own transport, so TLS, auth and errors read as everywhere else in the connector.
(The caldav library walks the same path, but through its object model, with a request per calendar
for its components; its errors would bypass :class:`~syncd.connectors.caldav_transport.DavTransport`.)
DNS SRV records (RFC 6764 3) are not looked up: the URL names the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from syncd.connectors import caldav_protocol as dav
from syncd.connectors.caldav_transport import DavTransport, strip_userinfo
from syncd.errors import ConfigError, RemoteError

CURRENT_USER_PRINCIPAL = dav.clark(dav.DAV, "current-user-principal")
CALENDAR_HOME_SET = dav.clark(dav.CALDAV, "calendar-home-set")
WELL_KNOWN = "/.well-known/caldav"
_PROPS = [dav.RESOURCETYPE, dav.DISPLAYNAME, dav.SUPPORTED_COMPONENTS, CURRENT_USER_PRINCIPAL, CALENDAR_HOME_SET]
_COMPONENT_WORDS = {"VEVENT": "events", "VTODO": "tasks", "VJOURNAL": "journal"}


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    url: str
    name: str | None
    """DAV:displayname; ``None`` when the server gives none."""
    components: frozenset[str] | None
    """Component types it accepts; ``None`` when the server does not say (then any)."""

    def takes(self, component: str) -> bool:
        return self.components is None or component in self.components

    @property
    def label(self) -> str:
        return self.name or urlsplit(self.url).path.rstrip("/").rpartition("/")[2]

    @property
    def what(self) -> str:
        if self.components is None:
            return "any items"
        return ", ".join(_COMPONENT_WORDS.get(c, c) for c in sorted(self.components)) or "nothing"


@dataclass(frozen=True, slots=True)
class Discovery:
    start: str
    principal: str | None
    homes: tuple[str, ...]
    calendars: tuple[CalendarEntry, ...]
    requests: int


def discover(transport: DavTransport, url: str) -> Discovery:
    """The calendars reachable from ``url``; raises RemoteError when the path leads nowhere."""
    walk = _Walk(transport)
    here = walk.props(url, "0")
    if here is None or not _useful(here):
        well_known = urljoin(url, WELL_KNOWN)
        found = walk.props(well_known, "0")
        if found is None or not _useful(found):
            raise RemoteError(
                f"{strip_userinfo(url)} is not a CalDAV calendar, principal or calendar home, and the server "
                f"answers no {WELL_KNOWN}; give the calendar's URL (README: Finding a calendar's URL)"
            )
        url, here = well_known, found
    if dav.CALENDAR in here.leaves(dav.RESOURCETYPE):
        entry = _entry(url, here)
        return Discovery(url, None, (), (entry,), walk.count)
    homes = _hrefs(here, CALENDAR_HOME_SET, url)
    principal = next(iter(_hrefs(here, CURRENT_USER_PRINCIPAL, url)), None)
    if not homes and principal is not None:
        of_principal = walk.props(principal, "0")
        homes = _hrefs(of_principal, CALENDAR_HOME_SET, principal) if of_principal is not None else []
    if not homes:
        # A collection that names no home may be the home itself (a server without principals).
        homes = [url]
    calendars: list[CalendarEntry] = []
    for home in homes:
        for response in walk.members(home):
            if dav.CALENDAR in response.leaves(dav.RESOURCETYPE):
                calendars.append(_entry(urljoin(home, response.path), response))
    return Discovery(url, principal, tuple(homes), tuple(calendars), walk.count)


def pick(found: Discovery, name: str, key: str, component: str) -> CalendarEntry:
    """The one calendar whose display name is ``name`` (case and surrounding blanks ignored)."""
    wanted = name.strip().casefold()
    matches = [c for c in found.calendars if (c.name or "").strip().casefold() == wanted]
    if not matches:
        there = ", ".join(f'"{c.label}"' for c in found.calendars) or "none"
        raise ConfigError(f'{key} = "{name}": no calendar of that name at {strip_userinfo(found.start)} '
                          f"(calendars there: {there}); `syncd discover` lists them")
    if len(matches) > 1:
        urls = ", ".join(strip_userinfo(c.url) for c in matches)
        raise ConfigError(f'{key} = "{name}": {len(matches)} calendars have that name ({urls}); '
                          "give the one meant as its URL instead")
    entry = matches[0]
    if not entry.takes(component):
        raise ConfigError(f'{key} = "{name}": {strip_userinfo(entry.url)} holds {entry.what}, '
                          f"not {_COMPONENT_WORDS[component]}")
    return entry


def as_toml(found: Discovery, *, username: str | None, password_env: str | None) -> str:
    """A ``[bindings.remote]`` table ready to paste, the first calendar for events (and the first task
    list apart from it for tasks) filled in, every calendar found listed above it."""
    lines = [f"# {len(found.calendars)} calendars found from {strip_userinfo(found.start)}"
             + (f" (principal {found.principal})" if found.principal else "") + ":"]
    width = max((len(c.label) for c in found.calendars), default=0) + 2
    for entry in found.calendars:
        lines.append(f"#   {json.dumps(entry.label):<{width}}  {entry.what:<16} {strip_userinfo(entry.url)}")
    events = next((c for c in found.calendars if c.takes("VEVENT")), None)
    tasks = next((c for c in found.calendars if c.takes("VTODO")), None)
    if events is None:
        lines.append("# none of them takes events")
        return "\n".join(lines) + "\n"
    lines += ["", "[bindings.remote]", 'type = "caldav"',
              f"url = {_toml_string(strip_userinfo(events.url))}  # {json.dumps(events.label)}"]
    if tasks is not None and tasks != events and not events.takes("VTODO"):
        lines.append(f"tasks_url = {_toml_string(strip_userinfo(tasks.url))}  # {json.dumps(tasks.label)}")
    if username:
        lines.append(f"username = {_toml_string(username)}")
    if password_env:
        lines.append(f"password_env = {_toml_string(password_env)}")
    lines += [
        "# or, by name (resolved when syncd connects):",
        f"#   url = {_toml_string(_server_root(found.start))}",
        f"#   calendar = {_toml_string(events.label)}",
    ]
    return "\n".join(lines) + "\n"


class _Walk:
    def __init__(self, transport: DavTransport) -> None:
        self._http = transport
        self.count = 0

    def props(self, url: str, depth: str) -> dav.DavResponse | None:
        """The resource's own properties, or ``None`` when there is no DAV resource there."""
        result = self._propfind(url, depth)
        if result is None:
            return None
        own = dav.canonical_path(url, url).rstrip("/")
        found = [r for r in result.responses if r.path.rstrip("/") == own]
        # After a redirect (/.well-known/caldav -> /) the answer describes where it led.
        return found[0] if found else (result.responses[0] if result.responses else None)

    def members(self, url: str) -> list[dav.DavResponse]:
        result = self._propfind(url, "1")
        own = dav.canonical_path(url, url).rstrip("/")
        return [r for r in (result.responses if result else []) if r.path.rstrip("/") != own]

    def _propfind(self, url: str, depth: str) -> dav.Multistatus | None:
        self.count += 1
        reply = self._http.request("PROPFIND", url, dav.propfind_body(_PROPS), {"Depth": depth})
        if reply.status != 207:  # 404, 405, a redirect not followed: nothing to learn here
            return None
        try:
            return dav.parse_multistatus(reply.tree, url)
        except ValueError:
            return None


def _useful(response: dav.DavResponse) -> bool:
    return bool(
        response.leaves(dav.RESOURCETYPE) & {dav.CALENDAR, dav.clark(dav.DAV, "collection")}
        or CURRENT_USER_PRINCIPAL in response.props
        or CALENDAR_HOME_SET in response.props
    )


def _hrefs(response: dav.DavResponse, name: str, base: str) -> list[str]:
    element = response.props.get(name)
    if element is None:
        return []
    found = [(h.text or "").strip() for h in element.iter(dav.clark(dav.DAV, "href"))]
    return [urljoin(base, h) for h in found if h]


def _entry(url: str, response: dav.DavResponse) -> CalendarEntry:
    components = dav.components_of(response)
    return CalendarEntry(
        url=url if url.endswith("/") else url + "/",
        name=response.text(dav.DISPLAYNAME),
        components=frozenset(components) if components is not None else None,
    )


def _server_root(url: str) -> str:
    parts = urlsplit(strip_userinfo(url))
    return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string

