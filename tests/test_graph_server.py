"""The Graph test server itself, driven through msal and plain requests over real HTTPS, as syncd's
graph connector will drive it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import msal
import pytest
import requests
from graph_fixture import APP_ID, SECRET, TENANT, USER, Outlook, graph_fixture  # noqa: F401 - the fixture
from graph_server import GraphServer, client_certificate

from syncd.mapping.graph_props import CRM_ID

SCOPE = ["https://graph.microsoft.com/.default"]
PROP = "String {00020329-0000-0000-C000-000000000046} Name syncd-crm-id"
WINDOW = "startDateTime=2026-01-01T00:00:00Z&endDateTime=2028-01-01T00:00:00Z"


def http(server: GraphServer) -> requests.Session:
    session = requests.Session()
    session.verify = str(server.ca_path)
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify` (see graph_server/README.md)
    return session


def msal_app(
    server: GraphServer, client_id: str = APP_ID, credential: Any = SECRET
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=f"{server.authority_url}/{TENANT}",
        instance_discovery=False,
        http_client=http(server),
    )


def token(server: GraphServer, client_id: str = APP_ID, credential: Any = SECRET) -> dict[str, Any]:
    return msal_app(server, client_id, credential).acquire_token_for_client(SCOPE)


def claims(access_token: str) -> dict[str, Any]:
    body = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


class Api:
    """The app's view: a session with a bearer token, paths relative to the mailbox."""

    def __init__(self, server: GraphServer, client_id: str = APP_ID, credential: Any = SECRET,
                 user: str = USER) -> None:
        self.server = server
        self.session = http(server)
        self.session.headers["Authorization"] = "Bearer " + token(server, client_id, credential)["access_token"]
        self.base = f"{server.graph_url}/v1.0/users/{user}/"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else self.base + path
        return self.session.request(method, url, **kwargs)


@pytest.fixture(name="api")
def api_fixture(graph: GraphServer) -> Iterator[Api]:
    yield Api(graph)


def event_body(subject: str = "Call", start: str = "2026-12-01T10:00:00", end: str = "2026-12-01T11:00:00",
               zone: str = "Europe/Berlin", **extra: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        **extra,
    }


def app_requests(server: GraphServer) -> list[tuple[str, str, int]]:
    return [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in server.requests if r.path.startswith("/v1.0")]


# -- Entra -----------------------------------------------------------------------------------------------


def test_token_carries_the_apps_roles_and_opens_the_mailbox(graph: GraphServer) -> None:
    result = token(graph)
    assert set(claims(result["access_token"])["roles"]) == {"Calendars.ReadWrite", "Tasks.ReadWrite.All"}
    api = Api(graph)
    calendars = api("GET", "calendars").json()["value"]
    assert [(c["name"], c["isDefaultCalendar"]) for c in calendars] == [("Calendar", True)]
    assert [(r.method, r.path, r.status) for r in graph.requests][:2] == [
        ("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration", 200),
        ("POST", f"/{TENANT}/oauth2/v2.0/token", 200),
    ]


def test_wrong_secret_and_unknown_app_answer_like_entra(graph: GraphServer) -> None:
    wrong = token(graph, credential="not-it")
    assert wrong["error"] == "invalid_client"
    assert wrong["error_codes"] == [7000215]
    assert "not-it" not in json.dumps(wrong)
    unknown = token(graph, client_id="nobody")
    assert (unknown["error"], unknown["error_codes"]) == ("unauthorized_client", [700016])


def test_certificate_sign_in(graph: GraphServer) -> None:
    cert = client_certificate()
    graph.add_app("cert-app", secret=None, certificate=cert.cert_pem)
    registered = {"private_key": cert.key_pem.decode(), "public_certificate": cert.cert_pem.decode()}
    good = token(graph, "cert-app", registered)
    assert "access_token" in good
    other = client_certificate()
    mismatched = {"private_key": other.key_pem.decode(), "public_certificate": other.cert_pem.decode()}
    bad = token(graph, "cert-app", mismatched)
    assert bad["error_codes"] == [700027]
    # Legacy form: the SHA-1 thumbprint Entra lists, RS256.
    legacy = token(graph, "cert-app", {"private_key": cert.key_pem.decode(), "thumbprint": cert.sha1_thumbprint})
    assert "access_token" in legacy


def test_bad_missing_and_revoked_tokens_answer_401(graph: GraphServer, api: Api) -> None:
    session = http(graph)
    answer = session.get(api.base + "events")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in answer.headers
    forged = session.get(api.base + "events", headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401
    assert api("GET", "events").status_code == 200
    graph.revoke_tokens(APP_ID)
    assert api("GET", "events").status_code == 401
    graph.token_lifetime = 0
    assert Api(graph)("GET", "events").status_code == 401  # expired as soon as issued


def test_missing_role_and_mailbox_outside_the_apps_scope_answer_403(graph: GraphServer) -> None:
    graph.add_mailbox("bob@example.com")
    graph.add_app("tasks-only", secret="x", roles=("Tasks.ReadWrite.All",))
    graph.add_app("scoped", secret="y", mailboxes={"bob@example.com"})
    denied = Api(graph, "tasks-only", "x")("GET", "events")
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "ErrorAccessDenied")
    scoped = Api(graph, "scoped", "y")
    assert scoped("GET", "events").status_code == 403
    assert scoped("GET", f"{scoped.base}../bob@example.com/events").status_code == 200
    # RBAC for Applications covers Exchange only: To Do stays reachable.
    assert scoped("GET", "todo/lists").status_code == 200


def test_unknown_user_and_item_answer_404(graph: GraphServer, api: Api) -> None:
    user = api("GET", f"{graph.graph_url}/v1.0/users/nobody@example.com/events")
    assert (user.status_code, user.json()["error"]["code"]) == (404, "ErrorInvalidUser")
    item = api("GET", "events/AAMkAGI2nothere")
    assert (item.status_code, item.json()["error"]["code"]) == (404, "ErrorItemNotFound")
    graph.add_mailbox("onprem@example.com", in_cloud=False)
    onprem = api("GET", f"{graph.graph_url}/v1.0/users/onprem@example.com/calendar")
    assert (onprem.status_code, onprem.json()["error"]["code"]) == (404, "MailboxNotEnabledForRESTAPI")


# -- events ------------------------------------------------------------------------------------------------


def test_create_read_update_delete_with_change_keys(graph: GraphServer, api: Api) -> None:
    created = api("POST", "events", json=event_body(singleValueExtendedProperties=[{"id": PROP, "value": "42"}]))
    assert created.status_code == 201
    event = created.json()
    assert event["start"] == {"dateTime": "2026-12-01T09:00:00.0000000", "timeZone": "UTC"}
    assert event["originalStartTimeZone"] == "Europe/Berlin"
    assert "singleValueExtendedProperties" not in event
    path = f"events/{event['id']}"
    read = api("GET", path, params={"$select": "subject,start",
                                    "$expand": f"singleValueExtendedProperties($filter=id eq '{PROP}')"}).json()
    assert read["subject"] == "Call" and "end" not in read
    assert read["singleValueExtendedProperties"] == [{"id": PROP, "value": "42"}]
    updated = api("PATCH", path, json={"subject": "Moved"}, headers={"If-Match": event["@odata.etag"]})
    assert updated.status_code == 200
    assert updated.json()["changeKey"] != event["changeKey"]
    stale = api("PATCH", path, json={"subject": "Lost"}, headers={"If-Match": event["@odata.etag"]})
    assert (stale.status_code, stale.json()["error"]["code"]) == (412, "ErrorIrresolvableConflict")
    assert graph.event(event["id"])["subject"] == "Moved"
    assert api("DELETE", path, headers={"If-Match": event["@odata.etag"]}).status_code == 412
    assert api("DELETE", path).status_code == 204
    assert api("GET", path).status_code == 404


def test_preferred_time_zone_and_unknown_zone(api: Api) -> None:
    event = api("POST", "events", json=event_body(), headers={"Prefer": 'outlook.timezone="W. Europe Standard Time"'})
    assert event.json()["start"] == {"dateTime": "2026-12-01T10:00:00.0000000", "timeZone": "W. Europe Standard Time"}
    assert event.headers.get("Preference-Applied") is None or "timezone" in event.headers["Preference-Applied"]
    bad = api("POST", "events", json=event_body(zone="Mars/Olympus"))
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "TimeZoneNotSupportedException")


def test_invalid_body_answers_400_naming_the_problem(graph: GraphServer, api: Api) -> None:
    answer = api("POST", "events", json=event_body(syncdCrmId="42"))
    assert answer.status_code == 400
    assert "syncdCrmId" in answer.json()["error"]["message"]
    backwards = api("POST", "events", json=event_body(start="2026-12-01T12:00:00"))
    assert backwards.json()["error"]["code"] == "ErrorCalendarEndDateIsEarlierThanStartDate"
    assert graph.events(USER) == []


def test_transaction_id_makes_a_repeated_create_return_the_first_event(graph: GraphServer, api: Api) -> None:
    first = api("POST", "events", json=event_body(transactionId="crm-7-create"))
    again = api("POST", "events", json=event_body(transactionId="crm-7-create"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert len(graph.events(USER)) == 1


def test_lost_answer_commits_and_the_retry_with_the_transaction_id_finds_it(graph: GraphServer, api: Api) -> None:
    graph.fault("POST", r"/events$", lose_answer=True)
    with pytest.raises(requests.ConnectionError):
        api("POST", "events", json=event_body(transactionId="crm-8-create"))
    assert len(graph.events(USER)) == 1
    retry = api("POST", "events", json=event_body(transactionId="crm-8-create"))
    assert retry.status_code == 201
    assert len(graph.events(USER)) == 1


def test_throttling_fault_answers_429_with_retry_after_then_clears(graph: GraphServer, api: Api) -> None:
    graph.fault("GET", r"/events$", status=429, headers={"Retry-After": "2"}, times=2)
    assert [api("GET", "events").status_code for _ in range(3)] == [429, 429, 200]
    throttled = api("POST", "events", json=event_body())
    assert throttled.status_code == 201  # the fault was for GET only
    graph.fault(None, r"/events$", status=503)
    busy = api("GET", "events")
    assert (busy.status_code, busy.headers["Retry-After"]) == (503, "1")
    assert app_requests(graph)[-5:] == [
        ("GET", "events", 429), ("GET", "events", 429), ("GET", "events", 200), ("POST", "events", 201),
        ("GET", "events", 503),
    ]


def test_invitations_are_recorded_only_for_events_with_attendees(graph: GraphServer, api: Api) -> None:
    plain = api("POST", "events", json=event_body()).json()
    api("PATCH", f"events/{plain['id']}", json={"subject": "Still alone"})
    attendee = {"emailAddress": {"address": "bob@example.com", "name": "Bob"}, "type": "required"}
    meeting = api("POST", "events", json=event_body("Meeting", attendees=[attendee])).json()
    api("PATCH", f"events/{meeting['id']}", json={"subject": "Meeting moved"})
    api("DELETE", f"events/{meeting['id']}")
    assert [(i["kind"], i["subject"], i["recipients"]) for i in graph.invitations] == [
        ("invitation", "Meeting", ("bob@example.com",)),
        ("update", "Meeting moved", ("bob@example.com",)),
        ("cancellation", "Meeting moved", ("bob@example.com",)),
    ]


def test_filter_on_an_extended_property_finds_syncds_items(api: Api) -> None:
    api("POST", "events", json=event_body("Mine", singleValueExtendedProperties=[{"id": PROP, "value": "7"}]))
    api("POST", "events", json=event_body("Other"))
    found = api("GET", "events", params={
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROP}' and ep/value eq '7')"}).json()
    assert [e["subject"] for e in found["value"]] == ["Mine"]


# -- series ------------------------------------------------------------------------------------------------


def weekly(count: int = 5) -> dict[str, Any]:
    return {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"], "firstDayOfWeek": "monday"},
        "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": count},
    }


def test_series_occurrences_exceptions_and_cancellations(graph: GraphServer, api: Api) -> None:
    master = api("POST", "events", json=event_body("Weekly", recurrence=weekly())).json()
    assert master["type"] == "seriesMaster"
    view = api("GET", f"calendarView?{WINDOW}").json()["value"]
    assert [(v["type"], v["start"]["dateTime"][:16]) for v in view] == [
        ("occurrence", f"2026-12-{day:02d}T09:00") for day in (1, 8, 15, 22, 29)
    ]
    second, third = view[1], view[2]
    moved = api("PATCH", f"events/{second['id']}", json={
        "subject": "Moved once", "start": {"dateTime": "2026-12-09T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-09T11:00:00", "timeZone": "UTC"}}).json()
    assert (moved["type"], moved["seriesMasterId"], moved["originalStart"]) == (
        "exception", master["id"], "2026-12-08T09:00:00.0000000Z")
    assert api("DELETE", f"events/{third['id']}").status_code == 204
    assert api("GET", f"events/{third['id']}").status_code == 404
    instances = api("GET", f"events/{master['id']}/instances?{WINDOW}").json()["value"]
    assert [(i["type"], i["subject"], i["start"]["dateTime"][:16]) for i in instances] == [
        ("occurrence", "Weekly", "2026-12-01T09:00"),
        ("exception", "Moved once", "2026-12-09T10:00"),
        ("occurrence", "Weekly", "2026-12-22T09:00"),
        ("occurrence", "Weekly", "2026-12-29T09:00"),
    ]
    expanded = api("GET", f"events/{master['id']}", params={
        "$select": "subject,cancelledOccurrences", "$expand": "exceptionOccurrences"}).json()
    assert [e["subject"] for e in expanded["exceptionOccurrences"]] == ["Moved once"]
    assert expanded["cancelledOccurrences"] == [f"OID.{master['id']}.2026-12-15"]


@pytest.mark.parametrize(
    ("recurrence", "expected"),
    [
        ({"pattern": {"type": "daily", "interval": 2},
          "range": {"type": "endDate", "startDate": "2026-12-01", "endDate": "2026-12-07"}},
         ["2026-12-01", "2026-12-03", "2026-12-05", "2026-12-07"]),
        ({"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
          "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 3}},
         ["2026-12-31", "2027-01-31", "2027-03-31"]),
        ({"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
          "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 2}},
         ["2026-12-25", "2027-01-29"]),
        ({"pattern": {"type": "absoluteYearly", "interval": 2, "month": 2, "dayOfMonth": 3},
          "range": {"type": "noEnd", "startDate": "2026-12-01"}},
         ["2027-02-03"]),
        ({"pattern": {"type": "relativeYearly", "interval": 1, "month": 3, "daysOfWeek": ["monday"], "index": "first"},
          "range": {"type": "noEnd", "startDate": "2026-12-01"}},
         ["2027-03-01"]),
    ],
)
def test_recurrence_patterns_expand_as_outlook_counts(
    api: Api, recurrence: dict[str, Any], expected: list[str]
) -> None:
    api("POST", "events", json=event_body(zone="UTC", recurrence=recurrence))
    view = api("GET", "calendarView?startDateTime=2026-11-01T00:00:00Z&endDateTime=2028-01-01T00:00:00Z",
               params={"$top": "50"}).json()["value"]
    assert [v["start"]["dateTime"][:10] for v in view] == expected


# -- delta -------------------------------------------------------------------------------------------------


def delta_round(api: Api, url: str, page_size: int = 10) -> tuple[list[dict[str, Any]], str, int]:
    """Every row of one round, its deltaLink, and how many pages it took."""
    rows, pages = [], 0
    while True:
        answer = api("GET", url, headers={"Prefer": f"odata.maxpagesize={page_size}"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rows += body["value"]
        pages += 1
        if "@odata.deltaLink" in body:
            return rows, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


def test_calendar_view_delta_round_trip(graph: GraphServer, api: Api) -> None:
    outlook = graph.client(USER)
    ids = [outlook.post("events", json=event_body(f"E{i}", start=f"2026-12-0{i}T10:00:00",
                                                   end=f"2026-12-0{i}T11:00:00")).json()["id"] for i in (1, 2, 3)]
    rows, link, pages = delta_round(api, f"calendarView/delta?{WINDOW}", page_size=2)
    assert (sorted(r["subject"] for r in rows), pages) == (["E1", "E2", "E3"], 2)
    again, link, _ = delta_round(api, link)
    assert again == []
    outlook.patch(f"events/{ids[0]}", json={"subject": "E1 edited"})
    outlook.delete(f"events/{ids[1]}")
    outlook.patch(f"events/{ids[2]}", json={"start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
                                            "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"}})
    changes, link, _ = delta_round(api, link)
    assert sorted((r["id"], r.get("subject", ""), "@removed" in r) for r in changes) == sorted(
        [(ids[0], "E1 edited", False), (ids[1], "", True), (ids[2], "", True)]
    )
    assert delta_round(api, link)[0] == []
    # The Outlook session is the user, not the app: none of its requests count.
    assert all(r.client_id == APP_ID for r in graph.requests if r.path.startswith("/v1.0"))


def test_series_change_reports_its_occurrences_in_delta(graph: GraphServer, api: Api) -> None:
    master = api("POST", "events", json=event_body("Weekly", recurrence=weekly(3))).json()
    rows, link, _ = delta_round(api, f"calendarView/delta?{WINDOW}")
    assert {(r["type"], r["seriesMasterId"]) for r in rows} == {("occurrence", master["id"])}
    api("DELETE", f"events/{rows[0]['id']}")
    changes, _, _ = delta_round(api, link)
    assert sorted((r.get("type", ""), "@removed" in r) for r in changes) == [
        ("", True), ("occurrence", False), ("occurrence", False)]


def test_expired_delta_token_answers_410(graph: GraphServer, api: Api) -> None:
    api("POST", "events", json=event_body())
    _, link, _ = delta_round(api, f"calendarView/delta?{WINDOW}")
    graph.expire_delta_tokens()
    gone = api("GET", link)
    assert (gone.status_code, gone.json()["error"]["code"]) == (410, "SyncStateNotFound")
    rows, _, _ = delta_round(api, f"calendarView/delta?{WINDOW}")
    assert len(rows) == 1


# -- $batch ------------------------------------------------------------------------------------------------


def test_batch_serves_up_to_20_requests_each_answered_on_its_own(graph: GraphServer, api: Api) -> None:
    event = api("POST", "events", json=event_body()).json()
    graph.fault("GET", r"/calendars$", status=429)
    answer = api("POST", f"{graph.graph_url}/v1.0/$batch", json={"requests": [
        {"id": "1", "method": "GET", "url": f"/users/{USER}/events/{event['id']}?$select=subject"},
        {"id": "2", "method": "GET", "url": f"/users/{USER}/events/AAMkAGI2gone"},
        {"id": "3", "method": "GET", "url": f"/users/{USER}/calendars"},
        {"id": "4", "method": "PATCH", "url": f"/users/{USER}/events/{event['id']}", "body": {"subject": "B"},
         "headers": {"Content-Type": "application/json"}},
    ]})
    assert answer.status_code == 200
    by_id = {r["id"]: r for r in answer.json()["responses"]}
    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["subject"] == "Call"
    assert by_id["2"]["status"] == 404
    assert (by_id["3"]["status"], by_id["3"]["headers"]["Retry-After"]) == (429, "1")
    assert by_id["4"]["status"] == 200 and graph.event(event["id"])["subject"] == "B"
    assert sum(r.batch for r in graph.requests) == 4
    too_many = api("POST", f"{graph.graph_url}/v1.0/$batch", json={"requests": [
        {"id": str(i), "method": "GET", "url": f"/users/{USER}/events"} for i in range(21)]})
    assert too_many.status_code == 400


# -- To Do -------------------------------------------------------------------------------------------------


def test_todo_tasks_with_linked_resources_extensions_and_delta(graph: GraphServer, api: Api) -> None:
    [default] = [t for t in api("GET", "todo/lists").json()["value"] if t["wellknownListName"] == "defaultList"]
    tasks = f"todo/lists/{default['id']}/tasks"
    created = api("POST", tasks, json={
        "title": "Call back",
        "dueDateTime": {"dateTime": "2026-12-02T00:00:00", "timeZone": "Europe/Berlin"},
        "linkedResources": [{"webUrl": "https://crm.example.com/a/42", "applicationName": "syncd",
                             "displayName": "CRM 42", "externalId": "42"}],
        "extensions": [{"@odata.type": "microsoft.graph.openTypeExtension", "extensionName": "org.syncd",
                        "crmId": "42"}],
    })
    assert created.status_code == 201, created.text
    task = created.json()
    rows, link, _ = delta_round(api, f"{tasks}/delta")
    assert [r["title"] for r in rows] == ["Call back"]
    read = api("GET", f"{tasks}/{task['id']}", params={"$expand": "linkedResources,extensions"}).json()
    assert read["linkedResources"][0]["externalId"] == "42"
    assert read["extensions"][0]["crmId"] == "42"
    assert api("GET", f"{tasks}/{task['id']}/extensions/org.syncd").json()["crmId"] == "42"
    done = api("PATCH", f"{tasks}/{task['id']}", json={"status": "completed"},
               headers={"If-Match": task["@odata.etag"]}).json()
    assert done["status"] == "completed" and done["completedDateTime"]["timeZone"] == "UTC"
    stale = api("PATCH", f"{tasks}/{task['id']}", json={"title": "x"}, headers={"If-Match": task["@odata.etag"]})
    assert stale.status_code == 412
    changed, link, _ = delta_round(api, link)
    assert [r["status"] for r in changed] == ["completed"]
    graph.client(USER).delete(f"{tasks}/{task['id']}")
    removed, _, _ = delta_round(api, link)
    assert removed == [{"@removed": {"reason": "deleted"}, "id": task["id"]}]


def test_peak_in_flight_counts_concurrent_requests_per_app(graph: GraphServer, api: Api) -> None:
    # Long enough that the six requests overlap on a loaded machine too (at 0.2 s, a CI run saw 4).
    graph.latency = 1.0
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: api("GET", "calendars").status_code, range(6)))
    assert statuses == [200] * 6
    assert graph.peak_in_flight[APP_ID] == 6
    graph.concurrency_limit = 4
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: api("GET", "calendars").status_code, range(6)))
    assert sorted(statuses) == [200] * 4 + [429] * 2


def test_outlook_helper_acts_on_series_and_tasks(graph: GraphServer) -> None:
    outlook = Outlook(graph)
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    master = outlook.create_event("Weekly", start, start + timedelta(hours=1), recurrence=weekly(3),
                                  singleValueExtendedProperties=[{"id": CRM_ID, "value": "a-1"}])
    assert outlook.by_crm_id("a-1")["id"] == master["id"]
    outlook.modify_occurrence(master["id"], start + timedelta(days=7), subject="Second")
    outlook.delete_occurrence(master["id"], start + timedelta(days=14))
    subjects = [o["subject"] for o in outlook.occurrences(master["id"], start, start + timedelta(days=30))]
    assert subjects == ["Weekly", "Second"]
    task = outlook.create_task("Call back")
    outlook.complete_task(task["id"])
    assert [t["status"] for t in outlook.tasks()] == ["completed"]
    with pytest.raises(requests.HTTPError, match="crmId"):
        outlook.create_task("Bad", crmId="1")


def test_outlook_client_edits_are_visible_and_not_counted(graph: GraphServer) -> None:
    outlook = graph.client(USER)
    event = outlook.post("events", json=event_body("From Outlook")).json()
    assert graph.event(event["id"])["subject"] == "From Outlook"
    assert graph.requests == []
    assert datetime.fromisoformat(event["createdDateTime"][:19]).replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(
        minutes=1
    )


def test_collections_page_with_next_links_that_keep_the_query(api: Api) -> None:
    for day in range(1, 4):
        api("POST", "events", json=event_body(f"E{day}", start=f"2026-12-0{day}T10:00:00",
                                              end=f"2026-12-0{day}T11:00:00"))
    url = "calendarView?startDateTime=2026-12-01T00:00:00%2B01:00&endDateTime=2026-12-31T00:00:00Z&$top=2"
    subjects = []
    while url:
        body = api("GET", url).json()
        subjects += [e["subject"] for e in body["value"]]
        url = body.get("@odata.nextLink")
    assert subjects == ["E1", "E2", "E3"]
