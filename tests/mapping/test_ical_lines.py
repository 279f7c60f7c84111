"""A pulled item reads exactly as icalendar reads it. syncd.mapping.ical_lines splits plain lines itself
and leaves every other line to icalendar: the same name, parameters (keys, values, lists, order), value
and the same refusal, on tricky lines, generated lines and every line of the corpus; and the mapping's
look-up of a property (syncd.mapping.ical_props.lookup) finds what icalendar's ``get`` finds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Component
from icalendar.parser.content_line import Contentline, Contentlines

from syncd.mapping.ical_lines import _PLAIN, FastLine, content_lines
from syncd.mapping.ical_parse import parse_calendar
from syncd.mapping.ical_props import lookup

DATA = Path(__file__).parent.parent / "data" / "ics"


def _reading(line: Contentline, raw: bool) -> tuple[Any, ...]:
    try:
        name, params, value = line.raw_parts() if raw else line.parts()
    except Exception as exc:  # noqa: BLE001 - refusing the same line the same way is reading it the same
        return "refused", type(exc), str(exc)
    return name, type(params), list(params.items()), value, type(value)


def _assert_same(text: str) -> None:
    for raw in (False, True):
        assert _reading(FastLine(text), raw) == _reading(Contentline(text), raw), (text, raw)


TRICKY = [
    "SUMMARY:plain",
    "SUMMARY:",  # empty value
    "SUMMARY:a\\, b\\; c\\: d\\\\ e\\n f\\N",  # escapes in the value
    "DESCRIPTION:C:\\dir\\file a:b;c,d",
    "SUMMARY;LANGUAGE=nl:Overleg — café ☕ 会议",  # non-ASCII
    'ATTENDEE;CN="Doe, John";ROLE=REQ-PARTICIPANT:mailto:j@x.nl',
    'ATTENDEE;CN="a:b;c,d";PARTSTAT=ACCEPTED:mailto:a@b.c',  # quoted ':' ';' ','
    'DESCRIPTION;ALTREP="cid:part1.0001@example.org":The Fall\'98 Wild',
    'ORGANIZER;CN="":mailto:a@b.c',  # empty quoted value
    "ATTENDEE;CN=:mailto:a@b.c",  # empty value
    "ATTENDEE;DELEGATED-TO=\"mailto:a@x\",\"mailto:b@x\":mailto:c@x",  # a list of quoted values
    "CATEGORIES;X-A=a,,b,:Work",  # empty items in a list
    "X-A;X-B=1;x-b=2;X-C=3:v",  # the same key twice, lower case
    "attendee;cn=Low Case:mailto:a@b.c",
    "ATTENDEE;RSVP:mailto:a@b.c",  # a parameter without a value
    "ATTENDEE;:mailto:a@b.c",  # an empty parameter section
    "ATTENDEE;CN=Jo ;ROLE= CHAIR:mailto:a@b.c",  # spaces at delimiters
    "ATTENDEE;CN=Jo\tDoe:mailto:a@b.c",
    "ATTENDEE;CN=Jo\xa0:mailto:a@b.c",  # a non-ASCII space at the end
    "ATTENDEE;CN=a^nb^'c^^:mailto:a@b.c",  # RFC 6868
    "ATTENDEE;CN=\"x^'y\":mailto:a@b.c",
    "ATTENDEE;CN=50%25 off:mailto:a@b.c",
    "ATTENDEE;CN=Doe\\, John:mailto:a@b.c",  # a backslash before the value
    'ATTENDEE;CN="Doe\\, John":mailto:a@b.c',
    "ATTENDEE;CN=a\\,b:mailto:a@b.c",  # an escaped ',' that is not a list
    "X-A;B=a\\:b:c",  # an escaped ':' that does not end the parameters
    "X-A;B=a\\;C=b:c",
    'ATTENDEE;CN="unclosed:mailto:a@b.c',
    'ATTENDEE;CN=a"b"c:mailto:a@b.c',
    "ATTENDEE;CN=a=b:mailto:a@b.c",
    "ATTENDEE;CN=a\x07b:mailto:a@b.c",
    "ATTENDEE;C_N=x:mailto:a@b.c",
    "X_UNDERSCORE:v",
    "X.DOT;A=b:v",
    "ÄNAME:v",
    " SUMMARY:leading space",
    "SUM MARY:inner space",
    ":no name",
    "NOCOLON",
    "NOCOLON;A=b",
    "DTSTART;TZID=Europe/Amsterdam:20260611T090000",
    "DTSTART;TZID=\"Customized Time Zone\":20260611T090000",
    "DTSTART;VALUE=DATE:20260611",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
]


@pytest.mark.parametrize("text", TRICKY)
def test_a_tricky_line_reads_as_icalendar_reads_it(text: str) -> None:
    _assert_same(text)


#: Names, keys and pieces of text: most as a plain line holds them, some that decide how a line splits.
_NAMES = st.sampled_from(
    ["SUMMARY", "ATTENDEE", "X-A", "dtstart", "RDATE", "CATEGORIES"] * 4 + ["X_B", "ÄÖ", "A B", " A", ""]
)
_KEYS = st.sampled_from(["CN", "cn", "TZID", "VALUE", "X-K"] * 4 + ["K_1", "", "A B", "K "])
_USUAL = st.sampled_from(["a", "Z", "0", "-", "é", "会", ".", "/", "@"] * 2 + [" ", "mailto:x@y.z"])
_UNUSUAL = st.sampled_from([
    "  ", "\t", ":", ";", ",", "=", '"', "\\", "\\,", "\\n", "^", "^n", "^'", "%", "%2C", "\xa0", "\x07", "\r",
])
_USUAL_TEXT = st.lists(_USUAL, max_size=5).map("".join)
#: Usual text, or with one unusual piece somewhere (the edge of a plain line), or any mix.
_TEXT = st.one_of(
    _USUAL_TEXT,
    st.tuples(_USUAL_TEXT, _UNUSUAL, _USUAL_TEXT).map("".join),
    st.tuples(_USUAL_TEXT, _UNUSUAL, _USUAL_TEXT).map("".join),
    st.lists(st.one_of(_USUAL, _UNUSUAL), max_size=6).map("".join),
)


@st.composite
def _lines(draw: st.DrawFn) -> str:
    params = draw(st.lists(st.tuples(_KEYS, st.booleans(), _TEXT, st.integers(0, 9)), max_size=3))
    section = ""
    for key, quoted, value, shape in params:
        shown = f'"{value}"' if quoted else value
        section += f";{key}={shown}" if shape else f";{key}"  # a parameter without "=" now and then
        section += f",{shown}" if shape == 1 else ""
    return draw(_NAMES) + section + draw(st.sampled_from([":"] * 5 + [""])) + draw(_TEXT)


@settings(max_examples=800, deadline=None)
@given(_lines())
def test_a_generated_line_reads_as_icalendar_reads_it(text: str) -> None:
    _assert_same(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('AZ-;:=,"\\^% \tnxé\r')), max_size=30))
def test_any_text_reads_as_icalendar_reads_it(text: str) -> None:
    _assert_same(text)


def test_every_line_of_the_corpus_reads_as_icalendar_reads_it_most_without_its_loop() -> None:
    fast = total = 0
    for path in sorted(DATA.rglob("*.ics")):
        text = path.read_bytes().decode("utf-8", errors="replace")
        theirs, ours = Contentlines.from_ical(text), content_lines(text)
        assert ours == theirs and all(type(line) is FastLine for line in ours if line), path.name
        for line in theirs:
            if line:
                _assert_same(line)
                total += 1
                fast += _PLAIN.match(line) is not None
    assert total > 5000
    assert fast > 0.9 * total  # the fast reading is what the corpus exercises


def _structure(component: Component) -> list[Any]:
    """Everything icalendar read: each property's name, value type, value and parameters, in order."""
    props = []
    for name, value in component.items():
        values = value if isinstance(value, list) else [value]
        props.append([name, [(type(v), v.to_ical(), list(getattr(v, "params", {}).items())) for v in values]])
    return [component.name, props, component.errors, [_structure(c) for c in component.subcomponents]]


def _parsed(parse: Any, text: str) -> Any:
    try:
        return [_structure(parse(text))]
    except Exception as exc:  # noqa: BLE001 - the same refusal is part of reading the same
        return "refused", type(exc), str(exc)


@pytest.mark.filterwarnings("ignore")
def test_every_file_parses_to_the_components_icalendar_makes() -> None:
    for path in sorted(DATA.rglob("*.ics")):
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert _parsed(parse_calendar, text) == _parsed(Calendar.from_ical, text), path.name


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["\r\n", "\r\n", "\n", "\r", " ", "\t", "a", "B:c", "\r\n ", "\r\n\t"]), max_size=12))
def test_any_text_unfolds_and_splits_as_icalendar_does_it(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert content_lines(text) == Contentlines.from_ical(text)


def test_folded_lines_unfold_as_icalendar_unfolds_them() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:f@x\r\nDTSTART:20260101T100000Z\r\n"
        'ATTENDEE;CN="Doe\r\n , John";PARTSTAT=ACC\r\n\tEPTED:mailto:j@x.\r\n nl\r\n'
        "SUMMARY:caf\r\n é\\\r\n , ok\n\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    for variant in (text, text.replace("\n\n", "\r\n")):  # with an LF and an empty line, and without
        assert content_lines(variant) == Contentlines.from_ical(variant)
        assert _parsed(parse_calendar, variant) == _parsed(Calendar.from_ical, variant)
    event = parse_calendar(text).events[0]
    assert event["ATTENDEE"].params["CN"] == "Doe, John" and str(event["SUMMARY"]) == "café, ok"


@pytest.mark.filterwarnings("ignore")
def test_a_property_looked_up_is_the_one_icalendar_gets() -> None:
    names = ["SUMMARY", "summary", "Dtstart", "X-SYNCD-ID", "X-WR-TIMEZONE", "ATTENDEE", "RRULE", "TZID", ""]
    compared = 0
    for path in sorted((DATA / "corpus").rglob("*.ics"))[:40]:
        try:
            calendar = parse_calendar(path.read_bytes().decode("utf-8", errors="replace"))
        except ValueError:
            continue
        for component in calendar.walk():
            for name in [*names, *component.keys()]:
                assert lookup(component, name) is component.get(name), (path.name, name)
                assert lookup(component, name, "-") is component.get(name, "-"), (path.name, name)
                compared += 1
    assert compared > 1000


@pytest.mark.parametrize("line", [
    "DTSTART;VALUE=DATE,DATE-TIME:20260101",  # a list where one value type belongs
    "DTSTART;value=date:20260101",
    "DTSTART;VALUE=FANCY:20260101",
    "X-SYNCD-PLACE:Hall\\, 2\\nfloor",  # an X- property keeps its escapes
    "X-SYNCD-PLACE;VALUE=TEXT:Hall\\, 2",
    "CATEGORIES:Work\\,Home,Call",
    "RDATE:",
])
@pytest.mark.filterwarnings("ignore")
def test_an_odd_property_parses_or_fails_as_with_icalendar(line: str) -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:o@x\r\nDTSTAMP:20260101T000000Z\r\n"
        f"{line}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert _parsed(parse_calendar, text) == _parsed(Calendar.from_ical, text)
