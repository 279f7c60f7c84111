"""Hypothesis strategies for the data real systems send, not only well-formed data.

Shared by the store, mapping and engine tests (``from strategies import messy_activities``; tests/ is
on ``sys.path``). Every optional text may be ``None``, empty, blank, very long (10,000+ characters),
right-to-left, emoji, combining marks or control characters; participant lists mix e-mail and none,
name and none, duplicates and every kind; regarding links have ``None`` names; recurrences have empty
or duplicated exdates and overrides; all-day and timed values use zones with odd offsets and, where
the caller allows, years 1 to 9999.

``messy_activities()`` draws activities the store must accept (:func:`syncd.store.rules.activity_problems`
finds nothing); ``broken_activities()`` draws ones that break exactly one rule, which every path must
refuse with a ValidationError (store) or an ItemError (mapping), never another exception.

Kept cheap on purpose: the suite runs on two cores, so long strings are built by repetition (cheap to
draw and to shrink) rather than drawn character by character, and strategies are built once (cached):
hypothesis validates every strategy made inside a composite again on every draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from syncd.model import (
    EVENT_KINDS,
    Activity,
    Attachment,
    Direction,
    Kind,
    Moment,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
    RegardingKind,
    Response,
    Role,
    Sensitivity,
    ShowAs,
)

OWNER = "owner@example.com"
SYNCED = (Kind.APPOINTMENT, Kind.CALL, Kind.TASK)

#: Zones with every kind of offset: none, half and three-quarter hours, +14 and -11, a 30-minute DST.
ZONES: tuple[str | None, ...] = (
    None, "UTC", "Europe/Amsterdam", "Asia/Jerusalem", "America/St_Johns", "Asia/Kathmandu",
    "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Lord_Howe", "America/Sao_Paulo",
)

#: Text as real systems send it: right-to-left, emoji (with joiners and skin tones), combining marks,
#: iCalendar and JSON specials, Windows line ends, every C0 control but NUL, U+2028, a BOM.
ODD_TEXTS = (
    "פגישה עם לקוח", "اجتماع", "Zażółć gęślą jaźń", "👩🏽‍💻 kick-off 🎉", "e\u0301\u0301", "Ĳsselmeer",
    "a;b,c\\d:e", "\"quoted\" <b>html</b> &amp;", "line\r\nbreak\rold mac", "tab\there",
    "".join(chr(c) for c in range(1, 32)) + "\x7f", "sep\u2028arator\u0085", "\ufeffbom", "x" * 75,
    "mailto:someone@example.com", "{\"json\": [1, 2]}", "ǅungla", "\u200f\u200erlm",
)
WHITESPACE = ("", " ", "   ", "\t", "\n", " \r\n ", "\u00a0", "\u3000")
#: No NUL (PostgreSQL cannot keep it in text) and no lone surrogates (not text at all): the rule set
#: refuses both, see broken_activities().
_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def _long(pieces: Sequence[str], at_least: int = 10_000) -> st.SearchStrategy[str]:
    return st.sampled_from([p for p in pieces if p]).map(lambda s: s * (at_least // len(s) + 1))


@cache
def texts() -> st.SearchStrategy[str]:
    """Any text the store must keep as it is."""
    return st.one_of(st.sampled_from(WHITESPACE), names())


@cache
def optional_texts() -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), texts())


@cache
def names() -> st.SearchStrategy[str]:
    """A text that says something (not blank): what an id or a participant's name needs."""
    return st.one_of(
        st.sampled_from(ODD_TEXTS),
        st.text(_CHARS, min_size=1, max_size=12).map(lambda s: s if s.strip() else s + "x"),
        _long(ODD_TEXTS),
    )


#: E-mail addresses as directories hold them: case variants of one address (duplicates), non-ASCII,
#: quoted local parts, plus addressing, IP literals, the longest a column holds.
EMAILS = (
    "jan@klant.nl", "Jan@Klant.NL", "anna.de.vries+crm@example.com", "ZOË@example.com", "zoë@example.com",
    "用户@例子.广告", "\"a,b;c\"@example.com", "o'brien@example.ie", "x@[127.0.0.1]", "owner@example.com",
    "a" * 64 + "@" + "b" * 251 + ".nl",
)


@cache
def emails() -> st.SearchStrategy[str]:
    return st.sampled_from(EMAILS)


@cache
@st.composite
def participants(draw: st.DrawFn) -> Participant:
    kind = draw(st.sampled_from(list(ParticipantKind)))
    email = draw(st.one_of(st.none(), emails()))
    if kind is ParticipantKind.USER and email is None:
        email = draw(emails())  # a CRM user is known by e-mail
    name = draw(optional_texts()) if email else draw(names())
    return Participant(kind, email, name, draw(st.sampled_from(list(Role))), draw(st.sampled_from(list(Response))))


@cache
def participant_lists() -> st.SearchStrategy[tuple[Participant, ...]]:
    """Mixed lists; duplicates come from the small e-mail pool and from repeating a drawn entry."""
    return st.lists(participants(), max_size=5).flatmap(
        lambda people: st.just(tuple(people)) if not people else st.sampled_from(
            [tuple(people), tuple(people) + (people[0],)]
        )
    )


#: The seeds' "dictionaries": categories in every script, with iCalendar's specials (the comma, CATEGORIES'
#: separator, too); none is the call category or differs only in case.
CATEGORIES = (
    "Klant", "Meeting, John", "a,b,", "VIP", "Offerte ✓", "שיווק", "spotkanie; ważne", "back\\slash", "\"cytat\"", "👩🏽‍💻", "Ĳ" * 300,
)
URLS = (
    "https://crm.example.com/files/offer.pdf", "https://example.com/a%20b?x=1&y=%C3%BC#frag", "ftp://files.example/x",
    "urn:uuid:6f1c1c5e-8d3b-4f5e-9a56-0f3a4b1c2d3e", "https://example.com/" + "p" * 2000, "cid:part1@example.com",
)
EXTRA_KEYS = ("amount", "product", "Betrag ✓", "מוצר", "k" * 255)
#: The CRM's own fields: every JSON scalar, the extremes JSON and both stores keep exactly.
EXTRA_VALUES: st.SearchStrategy[object] = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.sampled_from([0.1, -0.5, 9.999e15, 12345.678, 2.5e-300, 2.0]),
    st.sampled_from(ODD_TEXTS + WHITESPACE),
)
#: Organizers from outside the CRM (the store's users and the owner are never one).
ORGANIZERS = ("stranger@elsewhere.org", "Board@Partner.example", "用户@例子.广告")


@cache
def categories() -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(CATEGORIES), max_size=4, unique_by=str.casefold).map(tuple)


@cache
def attachments() -> st.SearchStrategy[tuple[Attachment, ...]]:
    return st.lists(
        st.builds(Attachment, st.sampled_from(URLS), optional_texts()), max_size=3, unique_by=lambda a: a.url
    ).map(tuple)


@cache
def extras() -> st.SearchStrategy[dict[str, object]]:
    return st.dictionaries(st.sampled_from(EXTRA_KEYS), EXTRA_VALUES, max_size=4)


@cache
def organizers() -> st.SearchStrategy[Participant | None]:
    return st.one_of(st.none(), st.builds(
        Participant, st.sampled_from([ParticipantKind.EXTERNAL, ParticipantKind.CONTACT]), st.sampled_from(ORGANIZERS),
        optional_texts(),
    ))


@cache
def regardings() -> st.SearchStrategy[Regarding]:
    return st.builds(Regarding, st.sampled_from(list(RegardingKind)), names().map(lambda s: s[:255]), optional_texts())


def _year_range(extreme: bool) -> tuple[int, int]:
    return (1, 9999) if extreme else (1990, 2100)


@cache
@st.composite
def days(draw: st.DrawFn, extreme: bool = False) -> date:
    low, high = _year_range(extreme)
    edges = [date(low, 1, 1), date(high, 12, 31), date(2024, 2, 29), date(2026, 3, 29), date(2026, 10, 25)]
    if not extreme:
        edges = [d for d in edges if low <= d.year <= high]
    return draw(st.one_of(st.sampled_from(edges), st.dates(date(low, 1, 1), date(high, 12, 31))))


@cache
@st.composite
def instants(draw: st.DrawFn, zone: str | None, extreme: bool = False) -> datetime:
    """An aware time shown in ``zone``; near year 1 or 9999 it stays where UTC can still show it."""
    day = draw(days(extreme))
    tz = ZoneInfo(zone) if zone else UTC
    wall = datetime.combine(day, time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 1, 15, 30, 45, 59]))))
    if draw(st.booleans()):
        wall = wall.replace(second=draw(st.integers(0, 59)), microsecond=draw(st.sampled_from([0, 1, 999_999])))
    if day.year <= 1:
        wall = max(wall, datetime(1, 1, 2))  # a day's margin: no zone is more than 24 hours off UTC
    if day.year >= 9999:
        wall = min(wall, datetime(9999, 12, 30))
    return wall.replace(tzinfo=tz)


def _later(start: Moment, draw: st.DrawFn) -> Moment:
    """A value not before ``start`` of the same type, where the calendar still has room."""
    if isinstance(start, datetime):
        room = datetime(9999, 12, 30, tzinfo=UTC) - start
        span = timedelta(minutes=draw(st.sampled_from([0, 1, 15, 60, 24 * 60, 90 * 24 * 60])))
        # Elapsed time: on the wall clock, 15 minutes after a time in a spring-forward gap is an earlier instant.
        return (start.astimezone(UTC) + min(span, max(room, timedelta()))).astimezone(start.tzinfo)
    room_days = (date(9999, 12, 31) - start).days
    return start + timedelta(days=min(draw(st.sampled_from([0, 1, 2, 7, 366])), room_days))


RULES = (
    "FREQ=DAILY", "FREQ=DAILY;COUNT=3", "FREQ=WEEKLY;BYDAY=MO,WE,FR", "FREQ=WEEKLY;INTERVAL=2;WKST=SU",
    "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "FREQ=HOURLY;INTERVAL=1", "FREQ=MINUTELY",
    "FREQ=SECONDLY", "FREQ=YEARLY;COUNT=1000000",
)


@st.composite
def rrules(draw: st.DrawFn, start: Moment) -> str:
    """A valid rule, some of which expand (almost) forever; UNTIL in the form RFC 5545 asks."""
    rule = draw(st.sampled_from(RULES))
    if "COUNT" not in rule and draw(st.booleans()):
        until = _later(start, draw)
        rule += ";UNTIL=" + _until(until)
    return rule


def _until(value: Moment) -> str:
    # strftime("%Y") leaves years before 1000 unpadded on glibc
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        return f"{utc.year:04d}{utc:%m%dT%H%M%S}Z"
    return f"{value.year:04d}{value:%m%d}"


@st.composite
def _occurrence_own(draw: st.DrawFn) -> tuple[int | None, bool, Sensitivity | None, ShowAs | None]:
    """An occurrence's own reminder (or none while the series rings), sensitivity and show-as."""
    reminder = draw(st.one_of(st.none(), st.sampled_from([0, 5, 15, -30, 2**31 - 1])))
    off = reminder is None and draw(st.booleans())
    return (reminder, off, draw(st.one_of(st.none(), st.sampled_from(list(Sensitivity)))),
            draw(st.one_of(st.none(), st.sampled_from(list(ShowAs)))))


@st.composite
def recurrences(draw: st.DrawFn, start: Moment, zone: str | None, extreme: bool) -> Recurrence:
    timed = isinstance(start, datetime)
    moment: st.SearchStrategy[Moment] = instants(zone, extreme) if timed else days(extreme)
    # An occurrence of the other kind: a timed series' day off, an all-day series' meeting at two.
    other: st.SearchStrategy[Moment] = days(extreme) if timed else instants(zone, extreme)
    rdates = tuple(draw(st.lists(moment, max_size=2)))
    extra_rules = tuple(draw(st.lists(rrules(start), max_size=1)))
    rule = draw(rrules(start)) if not rdates or draw(st.booleans()) else ""  # a series of added dates only
    endless = bool(rule) and not any(part in r for r in (rule, *extra_rules) for part in ("COUNT", "UNTIL"))
    exdates = draw(st.lists(moment, max_size=3))
    if exdates and draw(st.booleans()):
        exdates.append(exdates[0])
    overrides = []
    for _ in range(draw(st.integers(0, 3))):
        rid = draw(moment)
        new_start = draw(st.one_of(st.none(), moment, other))
        end = _later(new_start if new_start is not None else rid, draw) if draw(st.booleans()) else None
        same_kind = new_start is None or isinstance(new_start, datetime) == timed
        overrides.append(Override(
            rid, new_start, end, draw(optional_texts()), draw(optional_texts()), draw(optional_texts()),
            draw(st.one_of(st.none(), st.sampled_from(["cancelled", "done", "eigen status", ""]))),
            *draw(_occurrence_own()),
            # RANGE=THISANDFUTURE is kept as such on a series without end (a bounded one gets an override each).
            this_and_future=endless and same_kind and draw(st.booleans()),
        ))
    return Recurrence(rule, tuple(exdates), tuple(overrides), rdates, extra_rules if rule else ())


@st.composite
def messy_activities(
    draw: st.DrawFn,
    kinds: Sequence[Kind] = tuple(Kind),
    *,
    extreme_years: bool = True,
    undated_events: bool = True,
    owner: str = OWNER,
) -> Activity:
    """An activity the store accepts, with messy content in every field.

    ``kinds`` narrows the kinds (mappings take only :data:`SYNCED`); ``extreme_years`` allows years 1
    and 9999; ``undated_events`` allows appointments and calls without a start (the CRM keeps them, a
    calendar cannot show them).
    """
    kind = draw(st.sampled_from(list(kinds)))
    all_day = draw(st.booleans())
    zone = draw(st.sampled_from(ZONES))
    undated = draw(st.integers(0, 5)) == 3 and (kind not in EVENT_KINDS or (undated_events and not all_day))
    start: Moment | None = None
    if not undated:
        start = draw(days(extreme_years)) if all_day else draw(instants(zone, extreme_years))
    end = _later(start, draw) if start is not None and draw(st.booleans()) else None
    due: Moment | None = None
    if draw(st.booleans()):
        due = draw(days(extreme_years)) if all_day else draw(instants(zone, extreme_years))
        if kind is Kind.TASK and start is not None:
            due = _later(start, draw)  # a to-do is due after it starts (RFC 5545)
    completed = draw(st.one_of(st.none(), instants(None, extreme_years)))
    recurrence = None
    if start is not None and draw(st.booleans()):
        recurrence = draw(recurrences(start, zone, extreme_years))
    return Activity(
        id=draw(st.one_of(st.sampled_from(["1", "ACT-1005", "ü/ß,1 ;x", "a" * 255]), names().map(lambda s: s[:255]))),
        kind=kind,
        subject=draw(texts()),
        owner=owner,
        description=draw(optional_texts()),
        start=start,
        end=end,
        all_day=all_day,
        timezone=zone,
        due=due,
        completed_at=completed,
        status=draw(st.one_of(optional_texts(), st.sampled_from(["planned", "done", "cancelled", "Done"]))),
        type=draw(optional_texts()),
        priority=draw(st.one_of(optional_texts(), st.sampled_from(["high", "normal", "low"]))),
        direction=draw(st.one_of(st.none(), st.sampled_from(list(Direction)))),
        location=draw(optional_texts()),
        place=draw(optional_texts()),
        project=draw(optional_texts()),
        reminder_minutes=draw(st.one_of(st.none(), st.sampled_from([0, 1, 15, 60 * 24 * 7 * 4]))),
        recurrence=recurrence,
        participants=draw(participant_lists()),
        regarding=tuple(draw(st.lists(regardings(), max_size=3))),
        parent_id=draw(st.one_of(st.none(), names().map(lambda s: s[:255]))),
        close_reason=draw(optional_texts()),
        sensitivity=draw(st.one_of(st.none(), st.sampled_from(list(Sensitivity)))),
        show_as=draw(st.one_of(st.none(), st.sampled_from(list(ShowAs)))),
        categories=draw(categories()),
        attachments=draw(attachments()),
        extra=draw(extras()),
        organizer=draw(organizers()),
        updated_at=draw(st.one_of(st.none(), instants(None, extreme_years))),
        created_at=draw(st.one_of(st.none(), st.just(datetime(1, 1, 1, tzinfo=UTC)), instants(None, extreme_years))),
    )


#: One broken rule each, as (what it breaks, how to break an activity).
BREAKS: tuple[tuple[str, object], ...] = (
    ("participant with neither e-mail nor name", lambda a: a.replace(participants=(Participant(ParticipantKind.EXTERNAL),))),
    ("participant with a blank name only", lambda a: a.replace(participants=(Participant(ParticipantKind.CONTACT, None, " "),))),
    ("user participant without e-mail", lambda a: a.replace(participants=(Participant(ParticipantKind.USER, None, "Bart"),))),
    ("blank e-mail", lambda a: a.replace(participants=(Participant(ParticipantKind.CONTACT, " ", "Bart"),))),
    ("e-mail too long", lambda a: a.replace(participants=(Participant(ParticipantKind.CONTACT, "a" * 400 + "@x.nl"),))),
    ("empty rule", lambda a: a.replace(recurrence=Recurrence(""))),
    ("rule without FREQ", lambda a: a.replace(recurrence=Recurrence("BYDAY=MO"))),
    ("NUL in the subject", lambda a: a.replace(subject="a\x00b")),
    ("lone surrogate in the description", lambda a: a.replace(description="\ud800")),
    ("blank id", lambda a: a.replace(id=" ")),
    ("id too long", lambda a: a.replace(id="x" * 256)),
    ("blank owner", lambda a: a.replace(owner="")),
    ("unknown zone", lambda a: a.replace(timezone="Mars/Olympus")),
    ("empty zone", lambda a: a.replace(timezone="")),
    ("reminder beyond 32 bits after the start", lambda a: a.replace(reminder_minutes=-(2**31))),
    ("task due before its start", lambda a: a.replace(
        kind=Kind.TASK, all_day=False, start=datetime(2026, 3, 2, 9, tzinfo=UTC), end=None,
        due=datetime(2026, 3, 1, 9, tzinfo=UTC), recurrence=None)),
    ("reminder beyond 32 bits", lambda a: a.replace(reminder_minutes=2**31)),
    ("regarding with a blank id", lambda a: a.replace(regarding=(Regarding(RegardingKind.ACCOUNT, ""),))),
    ("naive updated_at", lambda a: a.replace(updated_at=datetime(2026, 1, 1))),
    ("instant before year 1 in UTC", lambda a: a.replace(completed_at=datetime(1, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo")))),
    ("control character in a category", lambda a: a.replace(categories=("a\tb",))),
    ("blank category", lambda a: a.replace(categories=(" ",))),
    ("attachment holding a file", lambda a: a.replace(attachments=(Attachment("data:text/plain;base64,aGk="),))),
    ("attachment without a scheme", lambda a: a.replace(attachments=(Attachment("offer.pdf", "offer.pdf"),))),
    ("a list among the CRM's own fields", lambda a: a.replace(extra={"amount": [1, 2]})),
    ("NaN among the CRM's own fields", lambda a: a.replace(extra={"amount": float("nan")})),
    ("a float PostgreSQL cannot give back", lambda a: a.replace(extra={"amount": 1e300})),
    ("organizer without e-mail", lambda a: a.replace(organizer=Participant(ParticipantKind.EXTERNAL, None, "Bob"))),
)


@st.composite
def broken_activities(draw: st.DrawFn, kinds: Sequence[Kind] = SYNCED) -> tuple[str, Activity]:
    """(what is broken, an otherwise messy activity that breaks that one rule)."""
    what, breaks = draw(st.sampled_from(BREAKS))
    activity = draw(messy_activities(kinds, extreme_years=False, undated_events=False))
    if what.endswith("rule") or what.startswith("rule"):
        start = activity.start or (date(2026, 3, 2) if activity.all_day else datetime(2026, 3, 2, 9, tzinfo=UTC))
        activity = activity.replace(start=start, end=None)
    return what, breaks(activity)  # type: ignore[operator]


# Built once: hypothesis re-validates (and st.timezones() re-lists the zone files for) every strategy
# made inside a composite, on every draw.
_ANY_MOMENT: st.SearchStrategy[Moment | None] = st.one_of(
    st.none(), st.dates(), st.datetimes(), st.datetimes(timezones=st.timezones()), st.datetimes(timezones=st.just(UTC)),
)
_SOME_MOMENT = _ANY_MOMENT.filter(lambda m: m is not None)
#: Any text at all, NUL and lone surrogates included.
_ANY_TEXT = st.one_of(st.text(max_size=8), st.sampled_from(ODD_TEXTS + WHITESPACE + ("\x00", "\ud800x")))
_ANY_OPT = st.one_of(st.none(), _ANY_TEXT)
_ANY_PEOPLE = st.lists(st.builds(Participant, st.sampled_from(list(ParticipantKind)), _ANY_OPT, _ANY_OPT,
                                 st.sampled_from(list(Role)), st.sampled_from(list(Response))), max_size=4).map(tuple)
_ANY_LINKS = st.lists(st.builds(Regarding, st.sampled_from(list(RegardingKind)), _ANY_TEXT, _ANY_OPT), max_size=3).map(tuple)
_ANY_OVERRIDES = st.lists(
    st.builds(Override, _SOME_MOMENT, _ANY_MOMENT, _ANY_MOMENT, _ANY_OPT, _ANY_OPT, _ANY_OPT, _ANY_OPT), max_size=3
).map(tuple)
_ANY_RECURRENCE = st.one_of(st.none(), st.builds(Recurrence, _ANY_TEXT, st.lists(_SOME_MOMENT, max_size=3).map(tuple), _ANY_OVERRIDES))


def arbitrary_activities() -> st.SearchStrategy[Activity]:
    """Any activity the types allow, valid or not: naive and aware times mixed, dates where times
    belong, None beside text in every list. For code that must never raise on content (fingerprints)."""
    return st.builds(
        Activity,
        id=_ANY_TEXT, kind=st.sampled_from(list(Kind)), subject=_ANY_TEXT, owner=_ANY_TEXT,
        description=_ANY_OPT, start=_ANY_MOMENT, end=_ANY_MOMENT, all_day=st.booleans(),
        timezone=st.one_of(_ANY_OPT, st.sampled_from(ZONES)), due=_ANY_MOMENT,
        completed_at=st.one_of(st.none(), st.datetimes(timezones=st.one_of(st.none(), st.timezones()))),
        status=_ANY_OPT, type=_ANY_OPT, priority=_ANY_OPT,
        direction=st.one_of(st.none(), st.sampled_from(list(Direction))),
        location=_ANY_OPT, place=_ANY_OPT, project=_ANY_OPT,
        reminder_minutes=st.one_of(st.none(), st.integers()),
        recurrence=_ANY_RECURRENCE, participants=_ANY_PEOPLE, regarding=_ANY_LINKS,
        parent_id=_ANY_OPT, close_reason=_ANY_OPT,
    )


# ------------------------------------------------------------------------------ raw iCalendar


#: Each property as clients and servers really write it: absent (None), empty, odd, broken.
RAW_PROPERTIES: dict[str, tuple[str | None, ...]] = {
    "UID": (None, "UID:", "UID:abc-123", "UID:ACT-1005@syncd", "UID:" + "u" * 300 + "@syncd", "UID: @syncd"),
    "DTSTART": (
        None, "DTSTART:", "DTSTART:20260302T090000Z", "DTSTART;VALUE=DATE:20260302", "DTSTART:20260302T090000",
        "DTSTART;TZID=Europe/Amsterdam:20260329T023000", "DTSTART;TZID=Mars/Olympus:20260302T090000",
        "DTSTART;TZID=\"W. Europe Standard Time\":20260302T090000", "DTSTART:00010101T000000Z",
        "DTSTART;TZID=Asia/Tokyo:00010101T000000", "DTSTART:99991231T235959Z", "DTSTART;VALUE=DATE:99991231",
        "DTSTART:garbage", "DTSTART;VALUE=DATE:00010101",
    ),
    "END": (
        None, "DTEND:", "DTEND:20260302T100000Z", "DTEND;VALUE=DATE:20260303", "DTEND:20260302T080000Z",
        "DURATION:PT1H", "DURATION:-PT1H", "DURATION:P99999999W", "DURATION:junk", "DUE:20260302T100000Z",
        "DUE;VALUE=DATE:20260301", "DTEND:99991231T235959Z",
    ),
    "SUMMARY": (None, "SUMMARY:", "SUMMARY:Overleg", "SUMMARY:פגישה \\; עם\\, לקוח", "SUMMARY:" + "Ж" * 5000,
                "SUMMARY:tab\there", "SUMMARY;LANGUAGE=nl:Zażółć"),
    "DESCRIPTION": (None, "DESCRIPTION:", "DESCRIPTION:line\\nbreak\\\\n", "DESCRIPTION:\x01\x02bell\x07"),
    "LOCATION": (None, "LOCATION:", "LOCATION;ALTREP=\"cid:x\":Zaal 2"),
    "STATUS": (None, "STATUS:", "STATUS:CONFIRMED", "STATUS:CANCELLED", "STATUS:WEIRD", "STATUS:COMPLETED"),
    "PRIORITY": (None, "PRIORITY:", "PRIORITY:1", "PRIORITY:99", "PRIORITY:high"),
    "RRULE": (
        None, "RRULE:", "RRULE:FREQ=DAILY;COUNT=3", "RRULE:BYDAY=MO", "RRULE:FREQ=FORTNIGHTLY", "RRULE:FREQ=SECONDLY",
        "RRULE:FREQ=DAILY;UNTIL=garbage", "RRULE:FREQ=DAILY;COUNT=2;UNTIL=20260310T000000Z",
        "RRULE:FREQ=WEEKLY\r\nRRULE:FREQ=DAILY", "RRULE:FREQ=YEARLY;BYMONTH=13", "RRULE:FREQ=DAILY;X-FOO=1",
        "RRULE:FREQ=DAILY;UNTIL=20260310", "RDATE:20260305T090000Z",
    ),
    "EXDATE": (None, "EXDATE:", "EXDATE:20260303T090000Z", "EXDATE;VALUE=DATE:20260303", "EXDATE:20260303T090000Z,junk"),
    "ATTENDEE": (
        None, "ATTENDEE:", "ATTENDEE:mailto:", "ATTENDEE;CN=Jan:mailto:jan@klant.nl",
        "ATTENDEE;CN=Jan:mailto:jan@klant.nl\r\nATTENDEE;CN=JAN:MAILTO:Jan@Klant.NL",
        "ATTENDEE:urn:uuid:5c7a1b02-1d3e-4f5a-9b6c-7d8e9f0a1b2c", "ATTENDEE;CN=Room 1:urn:uuid:room-1",
        "ATTENDEE;X-SYNCD-KIND=user;CN=Bart:urn:uuid:bart", "ATTENDEE;X-SYNCD-KIND=user:urn:uuid:bart",
        "ATTENDEE;CN=\"Doe, \"\"John\"\"\":mailto:john@example.com", "ATTENDEE;PARTSTAT=WHATEVER;ROLE=CHAIR:mailto:a@b.c",
        "ATTENDEE:mailto:" + "a" * 330 + "@x.nl", "ATTENDEE:MAILTO: spaced@example.com ",
        "ATTENDEE;CN=bad\x05name:mailto:c@d.e",
    ),
    "ORGANIZER": (None, "ORGANIZER:", "ORGANIZER;CN=Owner:mailto:owner@example.com", "ORGANIZER:mailto:jan@klant.nl"),
    "X-SYNCD-PARTICIPANT": (
        None, "X-SYNCD-PARTICIPANT:", "X-SYNCD-PARTICIPANT:{\"kind\":\"external\"}",
        "X-SYNCD-PARTICIPANT:{\"kind\":\"user\"\\,\"name\":\"Bart\"}", "X-SYNCD-PARTICIPANT:{\"kind\":\"robot\"}",
        "X-SYNCD-PARTICIPANT:not json", "X-SYNCD-PARTICIPANT:[1\\,2]", "X-SYNCD-PARTICIPANT:{\"kind\":\"contact\"\\,\"name\":\" \"}",
    ),
    "X-SYNCD-REGARDING": (None, "X-SYNCD-REGARDING:{\"kind\":\"account\"\\,\"id\":\"\"}",
                          "X-SYNCD-REGARDING:{\"kind\":\"account\"\\,\"id\":\"A-1\"\\,\"name\":null}"),
    "X-SYNCD-ID": (None, "X-SYNCD-ID:", "X-SYNCD-ID:   ", "X-SYNCD-ID:ACT-1005", "X-SYNCD-ID:" + "i" * 300),
    "X-SYNCD-END": (None, "X-SYNCD-END:", "X-SYNCD-END:garbage", "X-SYNCD-END:2026-03-01"),
    "X-SYNCD-DIRECTION": (None, "X-SYNCD-DIRECTION:sideways", "X-SYNCD-DIRECTION:inbound"),
    "CREATED": (None, "CREATED:00010101T000000Z", "CREATED:garbage", "CREATED;VALUE=DATE:20260101"),
    "LAST-MODIFIED": (None, "LAST-MODIFIED:99991231T235959Z", "LAST-MODIFIED:"),
    "COMPLETED": (None, "COMPLETED:20260302T100000Z", "COMPLETED;VALUE=DATE:20260302"),
    "CATEGORIES": (None, "CATEGORIES:", "CATEGORIES:Call,,Inbound", "CATEGORIES:" + "c" * 300),
    "RELATED-TO": (None, "RELATED-TO:", "RELATED-TO;RELTYPE=PARENT:ACT-1@syncd", "RELATED-TO;RELTYPE=SIBLING:x"),
    "CLASS": (None, "CLASS:", "CLASS:PRIVATE", "CLASS:x-owner-only", "CLASS:PUBLIC"),
    "TRANSP": (None, "TRANSP:TRANSPARENT", "TRANSP:", "TRANSP:junk\r\nX-MICROSOFT-CDO-BUSYSTATUS:OOF"),
    "ATTACH": (
        None, "ATTACH:", "ATTACH:https://files.example/a.pdf", "ATTACH;VALUE=BINARY;ENCODING=BASE64:aGk=",
        "ATTACH:data:text/plain,hi", "ATTACH;FILENAME=a\x05b:https://x.example/b", "ATTACH:relative.pdf",
        "ATTACH:https://x.example/" + "p" * 9000,
    ),
    "X-SYNCD-EXTRA": (None, "X-SYNCD-EXTRA:", "X-SYNCD-EXTRA:{\"amount\":1.5}", "X-SYNCD-EXTRA:[1\\,2]",
                      "X-SYNCD-EXTRA:not json", "X-SYNCD-EXTRA:{\"a\":{\"b\":1}}", "X-SYNCD-EXTRA:{\"a\":NaN}"),
    "VALARM": (
        None, "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM",
        "BEGIN:VALARM\r\nTRIGGER;VALUE=DATE-TIME:00010101T000000Z\r\nEND:VALARM",
        "BEGIN:VALARM\r\nTRIGGER:-P99999W\r\nEND:VALARM", "BEGIN:VALARM\r\nTRIGGER:soon\r\nEND:VALARM",
        "BEGIN:VALARM\r\nEND:VALARM",
    ),
}
_OVERRIDES = (
    "", "BEGIN:VEVENT\r\nUID:abc-123\r\nRECURRENCE-ID:20260303T090000Z\r\nDTSTART:20260303T110000Z\r\nSUMMARY:moved\r\nEND:VEVENT",
    "BEGIN:VEVENT\r\nUID:abc-123\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20260304T090000Z\r\nEND:VEVENT",
    "BEGIN:VEVENT\r\nUID:other\r\nRECURRENCE-ID:20260303T090000Z\r\nEND:VEVENT",
    "BEGIN:VEVENT\r\nRECURRENCE-ID:garbage\r\nDTSTART:20260303T110000Z\r\nEND:VEVENT",
    "BEGIN:VTODO\r\nUID:abc-123\r\nEND:VTODO",
)


#: A sound value per property, so an item is mostly well formed and a few properties are odd.
_SOUND = {
    "UID": "UID:abc-123", "DTSTART": "DTSTART:20260302T090000Z", "END": "DTEND:20260302T100000Z",
    "SUMMARY": "SUMMARY:Overleg", "ATTENDEE": "ATTENDEE;CN=Jan:mailto:jan@klant.nl",
    "ORGANIZER": "ORGANIZER;CN=Owner:mailto:owner@example.com",
}


@st.composite
def raw_icalendars(draw: st.DrawFn) -> bytes:
    """One calendar object resource as some client may have written it, in some encoding: sound but
    for a few odd properties (absent, empty, broken, duplicated)."""
    component = draw(st.sampled_from(["VEVENT", "VTODO"]))
    odd = set(draw(st.lists(st.sampled_from(sorted(RAW_PROPERTIES)), max_size=5, unique=True)))
    lines = ["BEGIN:VCALENDAR"]
    if draw(st.booleans()):
        lines += ["VERSION:2.0", "PRODID:-//odd//client//EN"]
    lines += [draw(st.sampled_from(["", "X-WR-TIMEZONE:Europe/Warsaw", "X-WR-TIMEZONE:Nowhere/Land"]))]
    lines.append(f"BEGIN:{component}")
    for name, choices in RAW_PROPERTIES.items():
        value = draw(st.sampled_from(choices)) if name in odd else _SOUND.get(name)
        if component == "VTODO" and value and value.startswith("DTEND"):
            value = "DUE" + value[len("DTEND"):]
        lines.append(value or "")
    lines.append(f"END:{component}")
    if draw(st.integers(0, 3)) == 2:
        lines.append(draw(st.sampled_from(_OVERRIDES)))
    lines.append("END:VCALENDAR")
    text = "\r\n".join(line for line in lines if line) + "\r\n"
    if draw(st.booleans()):
        text = text.replace("\r\n", "\n")
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 9)) == 7:  # not 0: hypothesis favours the smallest value
        data = data.replace(b"Overleg", b"Over\x00leg")  # a NUL byte some exporters leave
    return data
