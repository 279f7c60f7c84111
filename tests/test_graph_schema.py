"""The JSON Schema derived from Graph's metadata: bodies from Microsoft's documentation pass, and each kind
of mistake a connector could make is refused with the JSON path of the offending value."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from graph_server.schema import GraphSchema, load_schema

_SAMPLES = Path(__file__).parent / "data" / "graph-schema" / "msdocs"
_INDEX = json.loads((_SAMPLES / "_index.json").read_text())
EVENT = "microsoft.graph.event"
TASK = "microsoft.graph.todoTask"


@pytest.fixture(scope="module")
def schema() -> GraphSchema:
    return load_schema()


def sample(name: str) -> dict[str, Any]:
    return json.loads((_SAMPLES / name).read_text())


@pytest.mark.parametrize("entry", _INDEX, ids=[e["file"].removesuffix(".json") for e in _INDEX])
def test_documented_bodies_are_valid(schema: GraphSchema, entry: dict[str, Any]) -> None:
    body = sample(entry["file"])
    assert schema.check(entry["type"], body, request=entry["request"]) == []


def _recurring_response() -> dict[str, Any]:
    return sample("user-post-events__create_event_recurring__response.json")


def _one_problem(schema: GraphSchema, type_name: str, body: object, path: str, *, request: bool = False) -> str:
    problems = schema.check(type_name, body, request=request)
    assert len(problems) == 1, problems
    assert problems[0].startswith(path + ": "), problems
    return problems[0]


def test_a_value_outside_an_enum_is_refused(schema: GraphSchema) -> None:
    body = _recurring_response()
    body["showAs"] = "sometimes"
    problem = _one_problem(schema, EVENT, body, "$.showAs")
    assert "microsoft.graph.freeBusyStatus" in problem and "busy" in problem


def test_enum_members_match_in_any_case_in_requests_only(schema: GraphSchema) -> None:
    # The service takes "Monday" and "HTML" from clients (its documentation sends them) and answers
    # "monday" and "html": a server that answered "Monday" would not be answering like Graph.
    request = sample("user-post-events__create_event_recurring__request.json")
    assert request["recurrence"]["pattern"]["daysOfWeek"] == ["Monday"]
    assert schema.check(EVENT, request, request=True) == []
    response = _recurring_response()
    response["recurrence"]["pattern"]["daysOfWeek"] = ["Monday"]
    _one_problem(schema, EVENT, response, "$.recurrence.pattern.daysOfWeek[0]")
    request["recurrence"]["pattern"]["daysOfWeek"] = ["Mon"]
    _one_problem(schema, EVENT, request, "$.recurrence.pattern.daysOfWeek[0]", request=True)


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        (("recurrence", "range", "startDate"), "2017-9-4", "$.recurrence.range.startDate"),
        (("recurrence", "range", "endDate"), "2017-12-31T00:00:00Z", "$.recurrence.range.endDate"),
        (("createdDateTime",), "2017-10-07T04:59:12", "$.createdDateTime"),  # an offset is required
        (("start", "dateTime"), "2017-09-04 12:00", "$.start.dateTime"),
        (("end", "dateTime"), "2017-09-04T14:00:00Z", "$.end.dateTime"),  # the zone is in timeZone
    ],
    ids=["Edm.Date", "Edm.Date-with-time", "Edm.DateTimeOffset", "local-dateTime", "local-dateTime-with-Z"],
)
def test_a_malformed_date_is_refused(schema: GraphSchema, where: tuple[str, ...], value: str, path: str) -> None:
    body = _recurring_response()
    parent = body
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value
    assert value in _one_problem(schema, EVENT, body, path)


def test_an_undeclared_property_is_refused_although_event_is_an_open_type(schema: GraphSchema) -> None:
    body = sample("user-post-events__create_event_recurring__request.json")
    body["crmId"] = "42"
    body["attendees"][0]["emailAddress"]["displayName"] = "Adele"
    problems = schema.check(EVENT, body)
    assert problems == [
        "$.attendees[0].emailAddress.displayName: microsoft.graph.emailAddress declares no property 'displayName'",
        "$.crmId: microsoft.graph.event declares no property 'crmId'",
    ]


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        (("attendees", 0, "emailAddress", "address"), 42, "$.attendees[0].emailAddress.address"),
        (("recurrence", "pattern", "interval"), "1", "$.recurrence.pattern.interval"),
        (("recurrence", "range", "numberOfOccurrences"), 2**31, "$.recurrence.range.numberOfOccurrences"),
        (("location", "coordinates", "latitude"), "47.6", "$.location.coordinates.latitude"),
        (("recurrence", "pattern"), "weekly", "$.recurrence.pattern"),
        (("isAllDay",), "false", "$.isAllDay"),
        (("categories",), "Red", "$.categories"),
        (("changeKey",), 5, "$.changeKey"),  # declared on outlookItem, event's base type
        (("id",), None, "$.id"),  # entity.id: Nullable="false"
        (("recurrence", "pattern", "daysOfWeek"), None, "$.recurrence.pattern.daysOfWeek"),  # a collection
    ],
)
def test_a_value_of_the_wrong_type_is_refused(
    schema: GraphSchema, where: tuple[str | int, ...], value: object, path: str
) -> None:
    body: Any = _recurring_response()
    body["location"]["coordinates"] = {"latitude": 47.6105, "longitude": -122.321}
    assert schema.check(EVENT, body, request=False) == []
    parent = body
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value
    problem = _one_problem(schema, EVENT, body, path)
    assert "declares no property" not in problem  # refused for its value, as a declared property


def test_nullable_properties_take_null_and_others_do_not(schema: GraphSchema) -> None:
    body = sample("todotasklist-post-tasks__create_todotask_from_tasks__response.json")
    body["dueDateTime"] = None
    body["body"] = None
    assert schema.check(TASK, body, request=False) == []
    body["status"] = None  # taskStatus, Nullable="false"
    assert _one_problem(schema, TASK, body, "$.status").endswith("null is not allowed here (Nullable=false)")


def test_delta_rows_and_their_control_information(schema: GraphSchema) -> None:
    page = sample("delta-query-events__next-round-first-response.json")
    page["value"][0]["@removed"] = {"reason": "gone"}
    page["value"][1]["subject@odata.type"] = "#String"
    page["nextLink"] = "https://graph.microsoft.com/v1.0/me/calendarView/delta?$skiptoken=x"
    problems = schema.check("Collection(microsoft.graph.event)", page, request=False)
    assert [p.split(":")[0] for p in problems] == ["$.nextLink", "$.value[0].@removed.reason"]


def test_a_derived_type_is_chosen_by_odata_type(schema: GraphSchema) -> None:
    # syncd keeps its data on a To Do task in an open extension: custom properties are its purpose.
    body = sample("todotasklist-post-tasks__create_todotask_from_tasks__request.json")
    body["extensions"] = [
        {"@odata.type": "microsoft.graph.openTypeExtension", "extensionName": "io.syncd", "crmId": "42", "v": [1]}
    ]
    assert schema.check(TASK, body) == []
    body["extensions"][0]["extensionName"] = None  # declared by openTypeExtension, Nullable="false"
    _one_problem(schema, TASK, body, "$.extensions[0].extensionName")
    # Without @odata.type the value is the abstract extension, which declares no custom property.
    body["extensions"] = [{"extensionName": "io.syncd", "crmId": "42"}]
    assert schema.check(TASK, body) == [
        "$.extensions[0].crmId: microsoft.graph.extension declares no property 'crmId'",
        "$.extensions[0].extensionName: microsoft.graph.extension declares no property 'extensionName'",
    ]
    body["extensions"] = [{"@odata.type": "#microsoft.graph.event", "id": "x"}]
    problem = _one_problem(schema, TASK, body, "$.extensions[0].@odata.type")
    assert "microsoft.graph.extension or a type derived from it" in problem


def test_expanded_navigation_properties_are_checked_as_their_type(schema: GraphSchema) -> None:
    body = _recurring_response()
    body["singleValueExtendedProperties"] = [{"id": "String {66f5a359-4659-4830-9070-00040ec6ac6e} Name Fun"}]
    body["exceptionOccurrences"] = [
        {"id": "AAMkADQwMDE=", "type": "exception", "originalStart": "2017-09-11T19:00:00Z"}
    ]
    body["linkedResources"] = []  # a todoTask's, not an event's
    body["singleValueExtendedProperties"][0]["value"] = 7  # the value of a single-value property is a string
    body["exceptionOccurrences"][0]["type"] = "modified"
    problems = schema.check(EVENT, body, request=False)
    assert [p.split(":")[0] for p in problems] == [
        "$.exceptionOccurrences[0].type",
        "$.linkedResources",
        "$.singleValueExtendedProperties[0].value",
    ]


def test_task_linked_resources_are_checked(schema: GraphSchema) -> None:
    body = sample("todotasklist-post-tasks__create_todotask_from_tasks__request.json")
    body["linkedResources"][0]["externalId"] = "crm:42"
    assert schema.check(TASK, body) == []
    body["linkedResources"][0]["url"] = "https://crm.example.com/42"
    _one_problem(schema, TASK, body, "$.linkedResources[0].url")


def test_the_derived_schema_is_draft_2020_12(schema: GraphSchema) -> None:
    derived = schema.json_schema(EVENT)
    jsonschema.Draft202012Validator.check_schema(derived)
    # Inheritance flattened: entity's id and outlookItem's changeKey beside event's own properties.
    assert {"id", "changeKey", "subject", "attendees"} <= set(derived["$defs"][EVENT]["properties"])
    with pytest.raises(KeyError, match=r"microsoft\.graph\.nosuchType"):
        schema.check("microsoft.graph.nosuchType", {})


_TINY_CSDL = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="microsoft.graph" Alias="graph" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="entity" Abstract="true"><Property Name="id" Type="Edm.String" Nullable="false" /></EntityType>
      <EntityType Name="event" BaseType="graph.entity" OpenType="true">
        <Property Name="subject" Type="Edm.String" />
        <Property Name="syncdProbe" Type="Edm.Int32" />
      </EntityType>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""


@pytest.mark.parametrize("form", ["file", "gzip", "folder"])
def test_syncd_graph_schema_names_another_metadata_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    if form == "gzip":
        target = tmp_path / "v1.0-Test.csdl.gz"
        target.write_bytes(gzip.compress(_TINY_CSDL.encode()))
    else:
        target = tmp_path / "v1.0-Test.csdl"
        target.write_text(_TINY_CSDL)
    monkeypatch.setenv("SYNCD_GRAPH_SCHEMA", str(tmp_path if form == "folder" else target))
    tiny = load_schema()
    assert tiny.source == target.resolve()
    assert tiny.check(EVENT, {"subject": "x", "syncdProbe": 1}) == []
    _one_problem(tiny, EVENT, {"subject": "x", "start": {}}, "$.start")
    # ... and the repository's copy knows no syncdProbe.
    monkeypatch.delenv("SYNCD_GRAPH_SCHEMA")
    assert [p.split(":")[0] for p in load_schema().check(EVENT, {"syncdProbe": 1})] == ["$.syncdProbe"]


def test_a_missing_metadata_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_GRAPH_SCHEMA", str(tmp_path / "absent.csdl"))
    with pytest.raises(FileNotFoundError, match=r"SYNCD_GRAPH_SCHEMA=.*absent\.csdl"):
        load_schema()
    monkeypatch.setenv("SYNCD_GRAPH_SCHEMA", str(tmp_path))  # a folder without one
    with pytest.raises(FileNotFoundError, match=r"expected one \.csdl"):
        load_schema()


def test_partial_bodies_are_checked_like_whole_ones(schema: GraphSchema) -> None:
    patch: dict[str, Any] = {"subject": "Moved", "start": {"dateTime": "2017-09-05T12:00:00", "timeZone": "UTC"}}
    assert schema.check(EVENT, patch, partial=True) == []
    bad = copy.deepcopy(patch)
    bad["start"]["timeZone"] = 0
    _one_problem(schema, EVENT, bad, "$.start.timeZone")
