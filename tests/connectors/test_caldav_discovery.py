"""Finding calendars from a server, principal or home URL (RFC 6764), on a real Radicale on loopback."""

from __future__ import annotations

import base64
import http.client
import itertools
import tomllib
from collections.abc import Iterator
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner
from dav_proxy import DavProxy, dav_proxy
from radicale_server import radicale

from syncd.cli import main
from syncd.connectors.caldav import CalDavConfig, CalDavConnector
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.errors import ConfigError
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Kind

__all__ = ["dav_proxy", "radicale"]  # pytest fixtures

PASSWORD = "s3cret-discovery"
CTX = MappingContext(owner=CrmUser("dora@example.com", "Dora", "Europe/Amsterdam"))
_users = itertools.count(1)


def mkcalendar(radicale: EmbeddedRadicale, user: str, path: str, name: str, components: tuple[str, ...]) -> None:
    comps = "".join(f'<C:comp name="{c}"/>' for c in components)
    body = (f'<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>{escape(name)}</D:displayname>'
            f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set></D:prop></D:set>"
            "</C:mkcalendar>").encode()
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", radicale.port, timeout=5)
    conn.request("MKCALENDAR", f"/{user}/{path}/", body, {"Authorization": f"Basic {token}"})
    assert conn.getresponse().status == 201
    conn.close()


@pytest.fixture
def home(radicale: EmbeddedRadicale, dav_proxy: DavProxy) -> Iterator[tuple[str, str]]:
    """A fresh user with three calendars: "Work" (events), "Private" (events, tasks), "To do" (tasks)."""
    user = f"dora{next(_users)}"
    radicale.add_user(user, PASSWORD)
    mkcalendar(radicale, user, "work-id", "Work", ("VEVENT",))
    mkcalendar(radicale, user, "priv-id", "Private", ("VEVENT", "VTODO"))
    mkcalendar(radicale, user, "todo-id", "To do", ("VTODO",))
    yield user, dav_proxy.url


def discover(url: str, user: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["discover", "--url", url, "--username", user, "--password-env",
                                       "DORA_PASSWORD", *extra], env={"DORA_PASSWORD": PASSWORD})
    return result.exit_code, result.output


@pytest.mark.parametrize("start", ["/", "/.well-known/caldav", "/{user}/", "/{user}/work-id/"])
def test_discover_prints_the_calendars_as_toml_to_paste(home: tuple[str, str], dav_proxy: DavProxy,
                                                        start: str) -> None:
    user, server = home
    dav_proxy.reset()
    code, out = discover(server + start.format(user=user), user)
    assert code == 0, out
    config = tomllib.loads(out)["bindings"]["remote"]
    assert PASSWORD not in out and config["password_env"] == "DORA_PASSWORD" and config["username"] == user
    if start.endswith("work-id/"):
        assert config["url"] == f"{server}/{user}/work-id/" and "1 calendars" in out
        return
    assert '"Work"' in out and '"Private"' in out and '"To do"' in out
    assert f"{server}/{user}/todo-id/" in out and "tasks " in out
    assert config["url"] in {f"{server}/{user}/work-id/", f"{server}/{user}/priv-id/"}
    # The URL (or well-known and where it leads), the principal, the home; the first also meets the
    # server's 401 challenge once.
    asked = {(r.method, r.path, r.headers.get("Depth")) for r in dav_proxy.requests}
    assert len(asked) <= 4 and len(dav_proxy.requests) <= len(asked) + 2, asked


def test_discover_says_what_is_wrong(home: tuple[str, str]) -> None:
    user, server = home
    code, out = discover(server + "/", user, "--password-env", "NOT_SET_ANYWHERE")
    assert code == 2 and "NOT_SET_ANYWHERE" in out
    result = CliRunner().invoke(main, ["discover", "--url", server + "/", "--username", user,
                                       "--password-env", "P"], env={"P": "wrong"})
    assert result.exit_code == 1 and "refused the credentials" in result.output and "wrong" not in result.output


def _connector(url: str, user: str, **named: str) -> CalDavConnector:
    return CalDavConnector(CalDavConfig(url, None, user, PASSWORD, "basic", timeout=5, **named), CTX)


def test_a_binding_names_its_calendars_by_display_name(home: tuple[str, str]) -> None:
    user, server = home
    caldav = _connector(server + "/", user, calendar="work", tasks_calendar=" To do ")
    try:
        assert caldav.check() == []
        assert caldav.location == f"{server}/{user}/work-id/ + {server}/{user}/todo-id/"
        task = Activity(id="t1", kind=Kind.TASK, subject="Call back", owner="dora@example.com")
        assert "/todo-id/" in caldav.create(task).ref
    finally:
        caldav.close()


def test_a_name_is_looked_up_once_not_on_every_pass(home: tuple[str, str], dav_proxy: DavProxy) -> None:
    user, server = home
    first = _connector(server + "/", user, calendar="Private")
    assert first.location == f"{server}/{user}/priv-id/"
    first.close()
    dav_proxy.reset()
    again = _connector(server + "/", user, calendar="Private")  # the next pass's connector
    try:
        assert again.location == f"{server}/{user}/priv-id/" and dav_proxy.requests == []
    finally:
        again.close()


def test_a_missing_or_ambiguous_name_is_a_clear_error(radicale: EmbeddedRadicale, home: tuple[str, str]) -> None:
    user, server = home
    with pytest.raises(ConfigError, match=r'calendar = "Holidays": no calendar of that name .*"Work"') as missing:
        _connector(server + "/", user, calendar="Holidays").check()
    assert '"To do"' in str(missing.value) and '"Private"' in str(missing.value)
    with pytest.raises(ConfigError, match=r"holds tasks, not events"):
        _connector(server + "/", user, calendar="To do").check()
    mkcalendar(radicale, user, "work-2", "Work", ("VEVENT",))
    with pytest.raises(ConfigError, match=r'calendar = "Work": 2 calendars have that name'):
        _connector(server + "/", user, calendar="Work").check()


def test_check_on_a_url_that_is_not_a_calendar_lists_the_calendars(home: tuple[str, str]) -> None:
    user, server = home
    caldav = _connector(f"{server}/{user}/", user)
    try:
        [problem] = caldav.check()
    finally:
        caldav.close()
    assert problem.startswith(f"{server}/{user}/ is not a calendar collection; calendars found from it: ")
    assert f'"To do" {server}/{user}/todo-id/ (tasks)' in problem and 'calendar = "NAME"' in problem
