"""The wire rules of the CalDAV connector, on recorded answers in the shapes different servers send."""

from __future__ import annotations

from urllib.parse import quote, unquote, urljoin, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from syncd.connectors import caldav_protocol as dav

BASE = "https://cal.example.com/dav/alice/work/"


@pytest.mark.parametrize(
    "href",
    [
        "/dav/alice/work/1%40syncd.ics",
        "/dav/alice/work/1@syncd.ics",
        "https://cal.example.com/dav/alice/work/1%40syncd.ics",
        "http://other-name:8443/dav/alice/work/1@syncd.ics",
        "1@syncd.ics",
        " /dav/alice/%77ork/1%40syncd.ics ",
    ],
)
def test_hrefs_in_any_spelling_name_the_same_ref(href: str) -> None:
    """Absolute, relative and differently percent-encoded hrefs all map to one canonical path."""
    assert "/dav/alice/work/1@syncd.ics" == dav.canonical_path(href, BASE)


@given(st.lists(st.sampled_from(["/", ".", "..", "%", "%40", "?", "#", " ", "a", "Z", "0", "@", "~", "-", "_", "+",
                                 "é", "'", ";", "=", "//", "\t"]), max_size=12).map("".join))
def test_an_href_already_canonical_is_taken_as_it_is(tail: str) -> None:
    """The shortcut for hrefs that need no resolving gives what resolving gives, for any href."""
    for href in ("/" + tail, "/dav/alice/work/" + tail, tail):
        resolved = quote(unquote(urlsplit(urljoin(BASE, href.strip())).path or "/"), safe="/:@!$&'()*+,;=")
        assert dav.canonical_path(href, BASE) == resolved


def test_a_uid_with_a_slash_stays_one_path_segment() -> None:
    """A '/' in a UID is escaped, so the item cannot land in a sub-folder."""
    assert "a%2Fb@x.ics" == dav.path_segment("a/b@x.ics")
    assert "a%20b.ics" == dav.path_segment("a b.ics")


def test_membership_is_direct_children_only() -> None:
    """Items of the collection belong to it; the collection itself and deeper paths do not."""
    assert dav.is_member("/dav/alice/work/x.ics", "/dav/alice/work/")
    assert not dav.is_member("/dav/alice/work/", "/dav/alice/work/")
    assert not dav.is_member("/dav/alice/work/sub/x.ics", "/dav/alice/work/")
    assert not dav.is_member("/dav/alice/workshop/x.ics", "/dav/alice/work")


@pytest.mark.parametrize(
    ("given", "expected"),
    [('"abc"', '"abc"'), ("abc", '"abc"'), ('W/"abc"', 'W/"abc"'), (" \"abc\" ", '"abc"'), ("", None), (None, None)],
)
def test_etags_are_normalized_to_the_http_form(given: str | None, expected: str | None) -> None:
    """Bare etags (seen in DAV:getetag of some servers) are quoted; weak ones keep their W/."""
    assert expected == dav.normalize_etag(given)


def test_etag_comparison_is_weak() -> None:
    """A weak and a strong etag with the same opaque tag mean the item did not change."""
    assert dav.same_etag('W/"abc"', '"abc"')
    assert dav.same_etag("abc", '"abc"')
    assert not dav.same_etag('"abc"', '"abd"')
    assert not dav.same_etag(None, '"abc"')


SYNC_ANSWER = b"""<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:">
  <d:response>
    <d:href>https://cal.example.com/dav/alice/work/new%40syncd.ics</d:href>
    <d:propstat><d:prop><d:getetag>W/"1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  </d:response>
  <d:response>
    <d:href>gone.ics</d:href>
    <d:status>HTTP/1.1 404 Not Found</d:status>
  </d:response>
  <d:response>
    <d:href>/dav/alice/work/</d:href>
    <d:status>HTTP/1.1 507 Insufficient Storage</d:status>
    <d:error><d:number-of-matches-within-limits/></d:error>
  </d:response>
  <d:sync-token>http://example.com/sync/42</d:sync-token>
</d:multistatus>"""


def test_sync_answer_gives_changes_deletions_token_and_truncation() -> None:
    """RFC 6578: 200 members changed, 404 members gone, a 507 on the collection means 'ask again'."""
    result = dav.parse_multistatus(etree.fromstring(SYNC_ANSWER), BASE)
    by_path = {r.path: r for r in result.responses}
    assert {"/dav/alice/work/new@syncd.ics", "/dav/alice/work/gone.ics"} == set(by_path)
    assert 'W/"1"' == by_path["/dav/alice/work/new@syncd.ics"].etag
    assert 404 == by_path["/dav/alice/work/gone.ics"].status
    assert "http://example.com/sync/42" == result.sync_token
    assert result.truncated


def test_a_listing_read_as_it_is_parsed_says_what_the_whole_tree_says() -> None:
    """A first sync's listing of a whole calendar is read member by member (never held as a tree):
    the same members, etags, statuses, token and truncation; what is not a multistatus is refused."""
    seen: dict[str, tuple[int, str | None]] = {}
    token, truncated = dav.read_listing(SYNC_ANSWER, BASE, lambda r: seen.__setitem__(r.path, (r.status, r.etag)))
    whole = dav.parse_multistatus(etree.fromstring(SYNC_ANSWER), BASE)
    assert seen == {r.path: (r.status, r.etag) for r in whole.responses}
    assert (token, truncated) == (whole.sync_token, whole.truncated) == ("http://example.com/sync/42", True)
    for garbage in (b"<d:error xmlns:d='DAV:'/>", b"<d:multistatus xmlns:d='DAV:'><d:response>", b""):
        with pytest.raises(ValueError):
            dav.read_listing(garbage, BASE, lambda r: None)


def test_properties_not_found_are_dropped() -> None:
    """Only the propstat with a 2xx status counts; a server that lacks getctag says so with 404."""
    body = b"""<multistatus xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><response>
      <href>/dav/alice/work/</href>
      <propstat><prop><sync-token>tok</sync-token></prop><status>HTTP/1.1 200 OK</status></propstat>
      <propstat><prop><CS:getctag/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
    </response></multistatus>"""
    [response] = dav.parse_multistatus(etree.fromstring(body), BASE).responses
    assert response.text(dav.GETCTAG) is None
    assert "tok" == response.text(dav.SYNC_TOKEN)


def test_reports_privileges_and_components_are_read() -> None:
    """supported-report-set, current-user-privilege-set and the component set are understood."""
    body = b"""<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response>
      <D:href>/dav/alice/work/</D:href><D:propstat><D:prop>
        <D:resourcetype><D:collection/><C:calendar/></D:resourcetype>
        <D:supported-report-set><D:supported-report><D:report><D:sync-collection/></D:report>
        </D:supported-report></D:supported-report-set>
        <D:current-user-privilege-set><D:privilege><D:read/></D:privilege></D:current-user-privilege-set>
        <C:supported-calendar-component-set><C:comp name="vtodo"/></C:supported-calendar-component-set>
      </D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"""
    [response] = dav.parse_multistatus(etree.fromstring(body), BASE).responses
    assert dav.CALENDAR in response.leaves(dav.RESOURCETYPE)
    assert dav.SYNC_COLLECTION in response.leaves(dav.SUPPORTED_REPORT_SET)
    assert {dav.clark(dav.DAV, "read")} == response.leaves(dav.CURRENT_USER_PRIVILEGE_SET)
    assert {"VTODO"} == dav.components_of(response)


def test_error_body_names_its_preconditions() -> None:
    """A DAV:error body is read for conditions; anything else yields none."""
    body = b'<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>'
    assert {dav.VALID_SYNC_TOKEN} == dav.error_conditions(body)
    assert set() == dav.error_conditions(b"<html>Forbidden</html>")
    assert set() == dav.error_conditions(b"not xml at all")


def test_a_non_multistatus_answer_is_refused() -> None:
    """An HTML error page with status 207 is not taken for an empty result."""
    with pytest.raises(ValueError, match="multistatus"):
        dav.parse_multistatus(etree.fromstring(b"<html><body>oops</body></html>"), BASE)


def test_request_bodies_are_well_formed_xml() -> None:
    """Every body the connector sends parses, with hrefs and UIDs escaped."""
    for body in (
        dav.propfind_body([dav.GETETAG, dav.GETCTAG, dav.SUPPORTED_COMPONENTS]),
        dav.sync_collection_body("tok&<1>"),
        dav.sync_collection_body(None),
        dav.multiget_body(["/a/b&c.ics"]),
        dav.uid_query_body("VEVENT", "x<y>@syncd"),
    ):
        etree.fromstring(body)
    root = etree.fromstring(dav.sync_collection_body("tok&<1>"))
    assert "tok&<1>" == root.findtext(dav.SYNC_TOKEN)
