"""The OData query options the connector uses: $select, $expand (with a nested $filter on extended
property ids), $filter (the few forms listed in README.md), $top / $skip paging, Prefer headers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request, not_served

_MAXPAGESIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.I)
_BODY_TYPE = re.compile(r'outlook\.body-content-type\s*=\s*"?(text|html)"?', re.I)
_EP_ID = re.compile(r"^id\s+eq\s+'([^']*)'$", re.I)
_ANY = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'([^']*)'\s+and\s+\1/value\s+eq\s+'((?:[^']|'')*)'\s*\)$",
    re.I,
)
_EQ = re.compile(r"^(\w+)\s+eq\s+(?:'((?:[^']|'')*)'|(true|false|null))$", re.I)


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside parentheses and quotes."""
    parts, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == sep and depth == 0 and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


@dataclass
class Expand:
    extended_ids: list[str] | None = None  # singleValueExtendedProperties($filter=id eq ...)
    names: set[str] = field(default_factory=set)


def parse_expand(text: str | None, allowed: Iterable[str]) -> Expand:
    expand = Expand()
    allowed_lower = {a.lower(): a for a in allowed}
    for part in split_top(text or ""):
        name, _, inner = part.partition("(")
        name = name.strip()
        canonical = allowed_lower.get(name.lower())
        if canonical is None:
            raise bad_request(f"Could not find a navigation property named '{name}' to expand.", "BadRequest")
        if canonical == "singleValueExtendedProperties":
            inner = inner.rstrip(")").strip()
            if not inner.lower().startswith("$filter="):
                raise bad_request("Expanding singleValueExtendedProperties requires a $filter on id.")
            ids = []
            for clause in re.split(r"\s+or\s+", inner[len("$filter="):].strip(), flags=re.I):
                match = _EP_ID.match(clause.strip())
                if not match:
                    raise not_served(f"the extended property filter {clause!r}")
                ids.append(match[1])
            expand.extended_ids = ids
        elif inner:
            raise not_served(f"nested options in $expand={part}")
        else:
            expand.names.add(canonical)
    return expand


def parse_select(text: str | None, known: Iterable[str], type_name: str) -> set[str] | None:
    if not text:
        return None
    known_lower = {k.lower(): k for k in known}
    selected = set()
    for name in split_top(text):
        canonical = known_lower.get(name.strip().lower())
        if canonical is None:
            raise bad_request(f"Could not find a property named '{name.strip()}' on type '{type_name}'.", "BadRequest")
        selected.add(canonical)
    return selected


def apply_select(rendered: dict[str, Any], selected: set[str] | None, always: Iterable[str]) -> dict[str, Any]:
    if selected is None:
        return rendered
    keep = selected | set(always)
    return {k: v for k, v in rendered.items() if k in keep or k.startswith("@")}


Predicate = Callable[[Any], bool]


def parse_filter(
    text: str | None, properties: Callable[[Any], dict[str, Any]], extended: Callable[[Any, str], str | None]
) -> Predicate | None:
    """A $filter of `and`-joined clauses: `prop eq 'x'` / `prop eq true` or
    `singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`."""
    if not text:
        return None
    tests: list[Predicate] = []
    for clause in _split_and(text):
        any_match = _ANY.match(clause)
        eq_match = _EQ.match(clause)
        if any_match:
            tests.append(_extended_equals(extended, any_match[2], any_match[3].replace("''", "'")))
        elif eq_match:
            name = eq_match[1]
            literal: Any = eq_match[2].replace("''", "'") if eq_match[2] is not None else (
                {"true": True, "false": False, "null": None}[eq_match[3].lower()]
            )
            tests.append(_property_equals(properties, name, literal))
        else:
            raise not_served(f"$filter={text!r}")
    return lambda item: all(test(item) for test in tests)


def _extended_equals(extended: Callable[[Any, str], str | None], prop_id: str, value: str) -> Predicate:
    return lambda item: extended(item, prop_id) == value


def _property_equals(properties: Callable[[Any], dict[str, Any]], name: str, value: Any) -> Predicate:
    return lambda item: properties(item).get(name) == value


def _split_and(text: str) -> list[str]:
    parts, depth, quoted, start = [], 0, False, 0
    lowered = text.lower()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and lowered.startswith(" and ", i):
            parts.append(text[start:i].strip())
            i += 5
            start = i
            continue
        i += 1
    parts.append(text[start:].strip())
    return parts


def page_size(prefer: str | None, top: str | None, default: int) -> int:
    if top:
        try:
            value = int(top)
        except ValueError as err:
            raise bad_request(f"Invalid $top value '{top}'.", "BadRequest") from err
        return max(1, min(value, 1000))
    match = _MAXPAGESIZE.search(prefer or "")
    return max(1, int(match[1])) if match else default


def body_type(prefer: str | None) -> str | None:
    match = _BODY_TYPE.search(prefer or "")
    return match[1].lower() if match else None
