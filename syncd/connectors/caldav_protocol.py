"""WebDAV/CalDAV on the wire, without I/O: request bodies, multistatus parsing, href and etag rules.

Written to RFC 4918 (WebDAV), RFC 4791 (CalDAV) and RFC 6578 (sync-collection), not to one server:
hrefs may come back absolute or relative and percent-encoded either way, etags weak or strong, quoted
or (wrongly) bare, and a server may or may not report sync tokens, ctags and privileges.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.sax.saxutils import escape

from lxml import etree

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"

_NSMAP = f'xmlns:D="{DAV}" xmlns:C="{CALDAV}" xmlns:CS="{CS}"'
#: RFC 3986 pchar sub-delims and ':' '@' stay literal; everything else outside unreserved is escaped.
_PATH_SAFE = "/:@!$&'()*+,;="
#: An absolute path of only the characters quote() leaves as they are (no %, no query, no fragment,
#: no ";", which urljoin reads as the start of parameters).
_CANONICAL = re.compile(r"[A-Za-z0-9_.~/:@!$&'()*+,=-]+", re.ASCII)


def clark(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


GETETAG = clark(DAV, "getetag")
GETCTAG = clark(CS, "getctag")
SYNC_TOKEN = clark(DAV, "sync-token")
RESOURCETYPE = clark(DAV, "resourcetype")
DISPLAYNAME = clark(DAV, "displayname")
SUPPORTED_REPORT_SET = clark(DAV, "supported-report-set")
CURRENT_USER_PRIVILEGE_SET = clark(DAV, "current-user-privilege-set")
SUPPORTED_COMPONENTS = clark(CALDAV, "supported-calendar-component-set")
CALENDAR_DATA = clark(CALDAV, "calendar-data")
CALENDAR = clark(CALDAV, "calendar")
SYNC_COLLECTION = clark(DAV, "sync-collection")
VALID_SYNC_TOKEN = clark(DAV, "valid-sync-token")
SUPPORTED_REPORT = clark(DAV, "supported-report")
NO_UID_CONFLICT = clark(CALDAV, "no-uid-conflict")
UNIQUE_SCHEDULING_OBJECT = clark(CALDAV, "unique-scheduling-object-resource")

_PREFIXES = {DAV: "D", CALDAV: "C", CS: "CS"}


# --- hrefs and etags -------------------------------------------------------------------------------


def canonical_path(href: str, base: str) -> str:
    """The path an ``href`` names, resolved against ``base`` and percent-encoded one canonical way.

    ``/a/b%40c.ics``, ``/a/b@c.ics``, ``http://host/a/b@c.ics`` and ``b@c.ics`` (relative to
    ``/a/``) all give ``/a/b@c.ics``; refs are paths so a changed host name or port keeps them valid.
    """
    if href[:1] == "/" and href[1:2] != "/" and "/." not in href and _CANONICAL.fullmatch(href):
        # Already canonical (most servers' hrefs): what the resolving below gives back unchanged, at
        # a tenth of its cost, which was a fifth of reading a first pull's listing.
        return href
    path = urlsplit(urljoin(base, href.strip())).path or "/"
    return quote(unquote(path), safe=_PATH_SAFE)


def path_segment(name: str) -> str:
    """``name`` escaped as one path segment (a ``/`` in a UID must not open a folder)."""
    return quote(name, safe=_PATH_SAFE.replace("/", ""))


def is_member(path: str, collection_path: str) -> bool:
    """Whether ``path`` is a direct member of the collection at ``collection_path``."""
    prefix = collection_path if collection_path.endswith("/") else collection_path + "/"
    rest = path[len(prefix) :]
    return path.startswith(prefix) and bool(rest) and "/" not in rest.rstrip("/")


def normalize_etag(value: str | None) -> str | None:
    """An entity tag as HTTP sends it (``"x"`` or ``W/"x"``), repairing servers that drop the quotes."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    weak = value.startswith(("W/", "w/"))
    opaque = value[2:] if weak else value
    if not (len(opaque) >= 2 and opaque.startswith('"') and opaque.endswith('"')):
        opaque = '"' + opaque.strip('"') + '"'
    return ("W/" if weak else "") + opaque


def same_etag(a: str | None, b: str | None) -> bool:
    """Weak comparison (RFC 9110 8.8.3.2): good enough to tell whether an item changed."""
    if a is None or b is None:
        return False
    return _opaque(a) == _opaque(b)


def _opaque(etag: str) -> str:
    etag = normalize_etag(etag) or ""
    return etag.removeprefix("W/")


# --- request bodies ------------------------------------------------------------------------------


def _prop_xml(props: Iterable[str]) -> str:
    parts = []
    for name in props:
        namespace, _, local = name[1:].partition("}")
        parts.append(f"<{_PREFIXES[namespace]}:{local}/>")
    return "<D:prop>" + "".join(parts) + "</D:prop>"


def propfind_body(props: Iterable[str]) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:propfind {_NSMAP}>{_prop_xml(props)}</D:propfind>'
    ).encode()


def sync_collection_body(token: str | None, data: bool = False) -> bytes:
    """RFC 6578 3.2: an empty token asks for every member (the initial sync); ``data``: with each
    member's calendar-data (RFC 6578 3.2 lets the request name any property)."""
    token_xml = f"<D:sync-token>{escape(token)}</D:sync-token>" if token else "<D:sync-token/>"
    props = [GETETAG, CALENDAR_DATA] if data else [GETETAG]
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection {_NSMAP}>{token_xml}'
        f"<D:sync-level>1</D:sync-level>{_prop_xml(props)}</D:sync-collection>"
    ).encode()


def multiget_body(hrefs: Sequence[str]) -> bytes:
    items = "".join(f"<D:href>{escape(h)}</D:href>" for h in hrefs)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><C:calendar-multiget {_NSMAP}>'
        f"{_prop_xml([GETETAG, CALENDAR_DATA])}{items}</C:calendar-multiget>"
    ).encode()


def uid_query_body(component: str, uid: str) -> bytes:
    """calendar-query (RFC 4791 7.8) for the items of one component type with this exact UID."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><C:calendar-query {_NSMAP}>'
        f"{_prop_xml([GETETAG, CALENDAR_DATA])}"
        f'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="{escape(component)}">'
        f'<C:prop-filter name="UID"><C:text-match collation="i;octet">{escape(uid)}</C:text-match>'
        f"</C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    ).encode()


# --- responses -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DavResponse:
    """One DAV:response of a multistatus: its canonical path, status and the properties found (200)."""

    path: str
    status: int
    props: dict[str, etree._Element] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        element = self.props.get(name)
        if element is None:
            return None
        return "".join(element.itertext()).strip() or None

    @property
    def etag(self) -> str | None:
        return normalize_etag(self.text(GETETAG))

    @property
    def calendar_data(self) -> bytes | None:
        element = self.props.get(CALENDAR_DATA)
        if element is None:
            return None
        text = "".join(element.itertext())
        return text.encode("utf-8") if text.strip() else None

    def leaves(self, name: str) -> set[str]:
        """Clark names of the empty elements inside a property.

        That is the resource types in ``resourcetype``, the privileges in
        ``current-user-privilege-set`` and the reports in ``supported-report-set``.
        """
        element = self.props.get(name)
        if element is None:
            return set()
        return {
            leaf.tag for leaf in element.iterdescendants() if isinstance(leaf.tag, str) and len(leaf) == 0
        }


@dataclass(frozen=True, slots=True)
class Multistatus:
    responses: list[DavResponse]
    sync_token: str | None = None
    truncated: bool = False
    """RFC 6578 3.6: the server left members out (507 on the request-URI); ask again with the token."""


def parse_status(line: str | None) -> int:
    """``HTTP/1.1 404 Not Found`` -> 404; a missing or garbled status line counts as 200 (RFC 4918)."""
    if not line:
        return 200
    parts = line.split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return 200


def parse_multistatus(root: etree._Element | None, request_url: str) -> Multistatus:
    """Parse a 207 body; property values are kept as elements, only those found (200) are kept."""
    if root is None or root.tag != clark(DAV, "multistatus"):
        raise ValueError("the server did not answer with a DAV:multistatus")
    request_path = canonical_path(request_url, request_url)
    responses: list[DavResponse] = []
    truncated = False
    for element in root.iterchildren(clark(DAV, "response")):
        found = _response_of(element)
        for href in element.iterchildren(clark(DAV, "href")):
            path = canonical_path(href.text or "", request_url)
            if found.status == 507 and path.rstrip("/") == request_path.rstrip("/"):
                truncated = True
                continue
            responses.append(DavResponse(path, found.status, found.props))
    token = root.findtext(SYNC_TOKEN)
    return Multistatus(responses, token.strip() if token else None, truncated)


def read_listing(body: bytes, request_url: str, member: Callable[[DavResponse], None]) -> tuple[str | None, bool]:
    """A 207 body that lists members (sync-collection, PROPFIND Depth 1), read as it is parsed: each
    response goes to ``member`` (its property elements valid during the call only) and is dropped at
    once, so that a listing of 50,000 items never stands as a tree of them. Returns the sync token and
    whether the server truncated the answer, as :func:`parse_multistatus` does."""
    request_path = canonical_path(request_url, request_url)
    response_tag, token_tag = clark(DAV, "response"), SYNC_TOKEN
    token: str | None = None
    truncated = False
    events = etree.iterparse(
        io.BytesIO(body), events=("start", "end"), resolve_entities=False, no_network=True
    )
    try:
        _, root = next(events)
        if root.tag != clark(DAV, "multistatus"):
            raise ValueError("the server did not answer with a DAV:multistatus")
        for event, element in events:
            if event != "end" or element.getparent() is not root:
                continue
            if element.tag == token_tag:
                token = (element.text or "").strip() or None
            elif element.tag == response_tag:
                response = _response_of(element)
                for href in element.iterchildren(clark(DAV, "href")):
                    path = canonical_path(href.text or "", request_url)
                    if response.status == 507 and path.rstrip("/") == request_path.rstrip("/"):
                        truncated = True
                    else:
                        member(DavResponse(path, response.status, response.props))
            # What was read is let go (the root keeps no child it has done with).
            element.clear()
            while element.getprevious() is not None:
                del root[0]
    except etree.XMLSyntaxError:
        raise ValueError("the server sent malformed XML") from None
    except StopIteration:
        raise ValueError("the server did not answer with a DAV:multistatus") from None
    return token, truncated


def _response_of(element: etree._Element) -> DavResponse:
    """One DAV:response's status and found properties (its path is the caller's)."""
    status = parse_status(element.findtext(clark(DAV, "status")))
    props: dict[str, etree._Element] = {}
    for propstat in element.iterchildren(clark(DAV, "propstat")):
        if parse_status(propstat.findtext(clark(DAV, "status"))) // 100 != 2:
            continue
        prop = propstat.find(clark(DAV, "prop"))
        for value in prop if prop is not None else ():
            if isinstance(value.tag, str):
                props[value.tag] = value
    return DavResponse("", status, props)


def error_conditions(body: bytes | str | None) -> set[str]:
    """The pre-/postconditions a DAV:error body names (RFC 4918 16), e.g. ``{DAV:}valid-sync-token``."""
    if not body:
        return set()
    data = body.encode() if isinstance(body, str) else body
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return set()
    if root.tag != clark(DAV, "error"):
        return set()
    return {child.tag for child in root if isinstance(child.tag, str)}


def condition_hrefs(body: bytes | None, condition: str) -> list[str]:
    """The DAV:href values inside one condition of a DAV:error body (no-uid-conflict names the item)."""
    if not body:
        return []
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return []
    return [(h.text or "").strip() for c in root.iterchildren(condition) for h in c.iter(clark(DAV, "href"))
            if (h.text or "").strip()]


def components_of(response: DavResponse) -> set[str] | None:
    """Component names a calendar accepts; ``None`` when unreported (RFC 4791: then any)."""
    element = response.props.get(SUPPORTED_COMPONENTS)
    if element is None:
        return None
    return {
        (comp.get("name") or "").upper() for comp in element.iterchildren(clark(CALDAV, "comp"))
    }
