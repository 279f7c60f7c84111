"""The server's limit: a plain keep-alive HTTP client (http.client) that does nothing but the requests.
Also the "phone" that edits events on the server between two passes."""

from __future__ import annotations

import base64
import http.client
from collections.abc import Iterable, Iterator
from urllib.parse import quote, unquote, urlsplit

from lxml import etree

_DAV = "{DAV:}"
_CALDAV = "{urn:ietf:params:xml:ns:caldav}"
_QUERY = b"""<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"/></C:filter>
</C:calendar-query>"""
_PROPFIND = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'


class PlainClient:
    def __init__(self, collection_url: str, user: str, password: str, timeout: float = 300) -> None:
        parts = urlsplit(collection_url)
        self.base = parts.path if parts.path.endswith("/") else parts.path + "/"
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._auth = {"Authorization": f"Basic {token}"}

    def close(self) -> None:
        self._conn.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        self._conn.request(method, path, body=body, headers={**self._auth, **(headers or {})})
        response = self._conn.getresponse()
        data = response.read()
        return response.status, data, {k.lower(): v for k, v in response.getheaders()}

    def put_all(self, items: Iterable[tuple[str, bytes]]) -> int:
        """PUT each (name, body) as a new resource; returns how many were created."""
        created = 0
        for name, body in items:
            status, _, _ = self.request("PUT", self.base + quote(name), body,
                                        {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"})
            if status not in (201, 204):
                raise RuntimeError(f"PUT {name}: HTTP {status}")
            created += 1
        return created

    def report_all(self) -> int:
        """One calendar-query REPORT for every object with its data; returns how many came back."""
        return len(self.fetch_all())

    def fetch_all(self) -> list[tuple[str, bytes]]:
        """(file name, body) of every object, by one calendar-query REPORT."""
        status, data, _ = self.request("REPORT", self.base, _QUERY,
                                       {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        if status != 207:
            raise RuntimeError(f"REPORT: HTTP {status}")
        found = []
        for response in etree.fromstring(data).iter(f"{_DAV}response"):
            href, body = response.findtext(f"{_DAV}href"), response.findtext(f".//{_CALDAV}calendar-data")
            if href and body is not None:
                found.append((unquote(href).rsplit("/", 1)[-1], body.encode()))
        return found

    def sync_token(self, token: str | None = None) -> str:
        """One sync-collection REPORT (RFC 6578); returns the new token. With the current token
        this is exactly the one request a no-change pass needs: the server's floor for it."""
        token_xml = f"<D:sync-token>{token}</D:sync-token>" if token else "<D:sync-token/>"
        body = (f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">{token_xml}'
                "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>").encode()
        status, data, _ = self.request("REPORT", self.base, body,
                                       {"Depth": "0", "Content-Type": "application/xml; charset=utf-8"})
        if status != 207:
            raise RuntimeError(f"sync-collection REPORT: HTTP {status}")
        found = etree.fromstring(data).find(f"{_DAV}sync-token")
        if found is None or not found.text:
            raise RuntimeError("sync-collection REPORT: no sync-token in the answer")
        return found.text

    def hrefs(self) -> list[str]:
        status, data, _ = self.request("PROPFIND", self.base, _PROPFIND,
                                       {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        if status != 207:
            raise RuntimeError(f"PROPFIND: HTTP {status}")
        found = (unquote(h.text or "") for h in etree.fromstring(data).iter(f"{_DAV}href"))
        return sorted(h for h in found if h.rstrip("/") != self.base.rstrip("/"))

    def edit(self, paths: Iterable[str], change) -> Iterator[str]:
        """GET each path, apply ``change`` to its body and PUT it back with If-Match."""
        for path in paths:
            quoted = quote(path)
            status, body, headers = self.request("GET", quoted)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}")
            status, _, _ = self.request("PUT", quoted, change(body),
                                        {"Content-Type": "text/calendar; charset=utf-8",
                                         "If-Match": headers.get("etag", "*")})
            if status not in (201, 204):
                raise RuntimeError(f"PUT {path}: HTTP {status}")
            yield path
