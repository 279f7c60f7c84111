"""The CalDAV transport's authentication, redirects and proxies against the real Radicale on loopback.

Radicale speaks Basic only; :class:`DigestGate` in front of it (tests/dav_proxy.py) demands Digest
(RFC 7616), checks each answer by the RFC's own formulas and passes the request on with Basic. The
client's Digest is also held to the worked examples of RFC 7616 3.9.1.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from dav_proxy import Answer, DavProxy, Request, dav_proxy
from radicale_server import PASSWORD, USER, radicale, unique_name

from syncd.connectors import caldav_protocol as dav
from syncd.connectors.caldav_transport import DavTransport
from syncd.connectors.http_auth import Challenge, Digest, basic_header, parse_challenges
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.errors import AuthError, ConfigError

__all__ = ["dav_proxy", "radicale"]  # pytest fixtures

REALM = "syncd-test@127.0.0.1"
PROPFIND = dav.propfind_body([dav.GETETAG])
_PARAM = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\s]+)')


class DigestGate:
    """A server-side Digest check (RFC 7616 3.4.1), written apart from the client's code."""

    def __init__(self, algorithm: str = "MD5", *, also_basic: bool = False, password: str = PASSWORD) -> None:
        self.algorithm = algorithm
        self.also_basic = also_basic
        self.password = password
        self.nonce = os.urandom(12).hex()
        self.opaque = os.urandom(6).hex()
        self.challenges = 0
        self.stale = 0
        self.counts: dict[str, int] = {}

    def rotate(self) -> None:
        """A new nonce, as a server does when the old one expires."""
        self.nonce = os.urandom(12).hex()

    def _hash(self, text: str) -> str:
        name = {"MD5": "md5", "SHA-256": "sha256"}[self.algorithm.upper().removesuffix("-SESS")]
        return hashlib.new(name, text.encode()).hexdigest()

    def _valid(self, request: Request, p: dict[str, str]) -> bool:
        if p.get("username") != USER or p.get("realm") != REALM or p.get("uri") != request.path:
            return False
        if p.get("qop") != "auth" or p.get("opaque") != self.opaque:
            return False
        nc = int(p.get("nc", "0"), 16)
        if nc <= self.counts.get(p["nonce"], 0):  # a replayed or repeated count
            return False
        a1 = self._hash(f"{USER}:{REALM}:{self.password}")
        if self.algorithm.upper().endswith("-SESS"):
            a1 = self._hash(f"{a1}:{p['nonce']}:{p['cnonce']}")
        a2 = self._hash(f"{request.method}:{request.path}")
        expected = self._hash(f"{a1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{a2}")
        if p.get("response") != expected:
            return False
        self.counts[p["nonce"]] = nc
        return True

    def __call__(self, request: Request) -> Answer | None:
        sent = request.header("Authorization") or ""
        stale = False
        if sent.startswith("Digest "):
            params = {k: v[1:-1] if v.startswith('"') else v for k, v in _PARAM.findall(sent[7:])}
            if self._valid(request, params):
                if params["nonce"] == self.nonce:
                    for name in [k for k in request.headers if k.lower() == "authorization"]:
                        del request.headers[name]
                    request.headers["Authorization"] = basic_header(USER, PASSWORD)
                    return None
                stale = True
                self.stale += 1
        self.challenges += 1
        challenge = (f'Digest realm="{REALM}", qop="auth", algorithm={self.algorithm}, nonce="{self.nonce}", '
                     f'opaque="{self.opaque}"' + (", stale=true" if stale else ""))
        headers = [("WWW-Authenticate", f'Basic realm="{REALM}"')] if self.also_basic else []
        return Answer(401, [*headers, ("WWW-Authenticate", challenge), ("Content-Type", "text/plain")],
                      b"authenticate\n")


@pytest.fixture
def calendar(radicale: EmbeddedRadicale) -> str:
    name = unique_name("auth")
    radicale.make_calendar(USER, name, ("VEVENT", "VTODO"))
    return f"/{USER}/{name}/"


def transport(base: str, path: str, password: str = PASSWORD, **settings: object) -> DavTransport:
    return DavTransport(base + path, username=USER, password=password, timeout=5, **settings)  # type: ignore[arg-type]


def propfind(http: DavTransport, url: str) -> int:
    return http.request("PROPFIND", url, PROPFIND, {"Depth": "0"}).status


# -- Digest ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-256-sess"])
def test_digest_is_learnt_from_the_first_challenge_and_answered_from_then_on(
    dav_proxy: DavProxy, calendar: str, algorithm: str
) -> None:
    gate = DigestGate(algorithm)
    dav_proxy.before.append(gate)
    http = transport(dav_proxy.url, calendar)
    try:
        assert [propfind(http, dav_proxy.url + calendar) for _ in range(4)] == [207] * 4
    finally:
        http.close()
    assert http.scheme == "digest"
    assert gate.challenges == 1  # the nonce is reused with a growing count: no 401 per request
    assert dav_proxy.count("PROPFIND") == 5


def test_digest_is_preferred_when_the_server_offers_basic_too(dav_proxy: DavProxy, calendar: str) -> None:
    dav_proxy.before.append(DigestGate(also_basic=True))
    http = transport(dav_proxy.url, calendar)
    try:
        assert propfind(http, dav_proxy.url + calendar) == 207
    finally:
        http.close()
    assert http.scheme == "digest"


def test_a_stale_nonce_is_answered_again_without_an_error(dav_proxy: DavProxy, calendar: str) -> None:
    gate = DigestGate("SHA-256")
    dav_proxy.before.append(gate)
    http = transport(dav_proxy.url, calendar)
    try:
        assert propfind(http, dav_proxy.url + calendar) == 207
        gate.rotate()
        assert propfind(http, dav_proxy.url + calendar) == 207
    finally:
        http.close()
    assert gate.stale == 1 and gate.challenges == 2


def test_a_wrong_digest_password_is_an_auth_error_that_does_not_show_it(dav_proxy: DavProxy, calendar: str) -> None:
    dav_proxy.before.append(DigestGate())
    http = transport(dav_proxy.url, calendar, password="not-the-password")
    try:
        with pytest.raises(AuthError, match=f"refused the credentials of user '{USER}'") as failure:
            propfind(http, dav_proxy.url + calendar)
    finally:
        http.close()
    assert "not-the-password" not in str(failure.value)
    assert dav_proxy.count("PROPFIND") == 2  # asked, answered once, refused: no loop


def test_digest_configured_against_a_basic_only_server_says_what_the_server_offers(
    radicale: EmbeddedRadicale, calendar: str
) -> None:
    http = transport(radicale.url, calendar, auth="digest")
    try:
        with pytest.raises(AuthError, match=r"offers no Digest authentication .*\(it offers basic\)"):
            propfind(http, radicale.url + calendar)
    finally:
        http.close()


def test_the_rfc_7616_examples() -> None:
    """RFC 7616 3.9.1: GET /dir/index.html by Mufasa, password "Circle of Life"."""
    params = {"realm": "http-auth@example.org", "qop": "auth, auth-int",
              "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
              "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"}
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    for algorithm, response in (("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
                                ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")):
        digest = Digest("Mufasa", "Circle of Life", Challenge("digest", {**params, "algorithm": algorithm}))
        header = digest.header("GET", "/dir/index.html", cnonce=cnonce)
        assert f'response="{response}"' in header and "nc=00000001" in header and "qop=auth," in header
    # RFC 2069 2.4, a server that offers no qop: GET /dir/index.html by Mufasa, password "CircleOfLife".
    legacy = Digest("Mufasa", "CircleOfLife", Challenge("digest", {"realm": "testrealm@host.com",
                                                                   "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093"}))
    header = legacy.header("GET", "/dir/index.html")
    assert 'response="1949323746fe6a43ef61f9606e7febea"' in header and "qop" not in header


def test_challenges_are_read_from_one_field_or_several() -> None:
    found = parse_challenges('Negotiate, Digest realm="a, b", nonce="n\\"1", qop="auth,auth-int", '
                             'algorithm=SHA-256, Basic realm="a"')
    assert [c.scheme for c in found] == ["negotiate", "digest", "basic"]
    assert found[1].params == {"realm": "a, b", "nonce": 'n"1', "qop": "auth,auth-int", "algorithm": "SHA-256"}


# -- Basic -----------------------------------------------------------------------------------------


def test_basic_learnt_once_is_sent_up_front_by_the_next_session(radicale: EmbeddedRadicale, calendar: str,
                                                                dav_proxy: DavProxy) -> None:
    refused: list[int] = []

    def count_401(request: Request, answer: Answer) -> Answer:
        if answer.status == 401:
            refused.append(answer.status)
        return answer

    dav_proxy.after.append(count_401)
    first = transport(dav_proxy.url, calendar)
    try:
        assert propfind(first, dav_proxy.url + calendar) == 207
    finally:
        first.close()
    assert first.scheme == "basic" and len(refused) == 1
    second = transport(dav_proxy.url, calendar)
    second.use_scheme("basic")  # what the connector does with the scheme kept in its state
    try:
        assert propfind(second, dav_proxy.url + calendar) == 207
    finally:
        second.close()
    assert len(refused) == 1


# -- redirects and proxies -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_followed_with_the_method_and_body(dav_proxy: DavProxy, calendar: str, status: int) -> None:
    dav_proxy.before.append(lambda r: Answer(status, [("Location", calendar)]) if r.path == "/old/" else None)
    http = transport(dav_proxy.url, calendar, auth="basic")
    try:
        reply = http.request("PROPFIND", dav_proxy.url + "/old/", PROPFIND, {"Depth": "0"})
    finally:
        http.close()
    assert reply.status == 207 and reply.tree is not None
    assert [r.body for r in dav_proxy.requests if r.method == "PROPFIND"] == [PROPFIND, PROPFIND]


def test_credentials_do_not_follow_a_redirect_to_another_server(radicale: EmbeddedRadicale, dav_proxy: DavProxy,
                                                                calendar: str) -> None:
    elsewhere = DavProxy(radicale.port)
    try:
        dav_proxy.before.append(lambda r: Answer(307, [("Location", elsewhere.url + calendar)]))
        http = transport(dav_proxy.url, calendar, auth="basic")
        try:
            with pytest.raises(AuthError):
                propfind(http, dav_proxy.url + calendar)
        finally:
            http.close()
        assert [r.header("Authorization") for r in elsewhere.requests] == [None]
    finally:
        elsewhere.stop()


@pytest.fixture
def forward_proxy(radicale: EmbeddedRadicale) -> Iterator[tuple[DavProxy, list[str]]]:
    """An HTTP proxy: takes requests in absolute form and passes them to Radicale."""
    seen: list[str] = []
    proxy = DavProxy(radicale.port)

    def absolute(request: Request) -> None:
        seen.append(request.path)
        request.path = urlsplit(request.path).path

    proxy.before.append(absolute)
    yield proxy, seen
    proxy.stop()


def test_http_proxy_from_the_environment(radicale: EmbeddedRadicale, calendar: str, monkeypatch: pytest.MonkeyPatch,
                                         forward_proxy: tuple[DavProxy, list[str]]) -> None:
    proxy, seen = forward_proxy
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    http = transport(radicale.url, calendar, auth="basic")
    try:
        assert propfind(http, radicale.url + calendar) == 207
    finally:
        http.close()
    assert seen == [radicale.url + calendar]

    monkeypatch.setenv("NO_PROXY", "localhost, 127.0.0.1")
    http = transport(radicale.url, calendar, auth="basic")
    try:
        assert propfind(http, radicale.url + calendar) == 207
    finally:
        http.close()
    assert len(seen) == 1


@pytest.mark.parametrize(("remembered", "server"), [("basic", "digest"), ("digest", "basic")])
def test_a_remembered_scheme_the_server_no_longer_offers_gives_way_to_the_one_it_offers(
    dav_proxy: DavProxy, calendar: str, remembered: str, server: str
) -> None:
    """The scheme kept from an earlier pass is a head start, not a setting: the server's challenge wins."""
    if server == "digest":
        dav_proxy.before.append(DigestGate())
    http = transport(dav_proxy.url, calendar)
    http.use_scheme(remembered)
    try:
        assert propfind(http, dav_proxy.url + calendar) == 207
    finally:
        http.close()
    assert http.scheme == server


def test_a_ca_bundle_that_holds_no_certificate_is_a_config_error(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    http = DavTransport("https://127.0.0.1:9/cal/", username=USER, password=PASSWORD, verify_tls=str(bundle))
    with pytest.raises(ConfigError, match=r"cannot read CA certificates from it .* give a PEM file"):
        propfind(http, "https://127.0.0.1:9/cal/")
