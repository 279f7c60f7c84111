"""syncd's own data on an Outlook item, read the same way whether EWS or Graph carried it: both keep
it in one extended property (the same property set), so an item one connector wrote reads through the
other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncd.mapping.options import MappingOptions, crm_value
from syncd.model import Direction, Regarding, RegardingKind

DIRECTION_CATEGORY = {Direction.INBOUND: "Inbound", Direction.OUTBOUND: "Outbound"}


def text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def enum(cls: Any, value: object) -> Any:
    try:
        return cls(value) if value is not None else None
    except ValueError:
        return None


def direction_in(
    categories: Sequence[str], options: MappingOptions, extra: dict[str, Any], carried: bool
) -> Direction | None:
    if carried:
        return enum(Direction, extra.get("direction"))
    if options.direction_categories:
        shown = {c.casefold() for c in categories}
        for direction, cat in DIRECTION_CATEGORY.items():
            if cat.casefold() in shown:
                return direction
    return None


def regarding_in(extra: dict[str, Any]) -> tuple[Regarding, ...]:
    out: list[Regarding] = []
    for entry in extra.get("regarding") or ():
        if isinstance(entry, dict):
            kind = enum(RegardingKind, entry.get("kind"))
            ident = text(entry.get("id"))
            if kind and ident:
                out.append(Regarding(kind, ident, text(entry.get("name"))))
    return tuple(out)


def carried_or_shown(carried: bool, value: str | None, shown: Any, forward: Any, inbound: Any) -> str | None:
    """:func:`crm_value`, where a carried ``None`` (no CRM value) counts as carried too."""
    if carried and forward(value) == shown:
        return value
    return crm_value(value, shown, forward, inbound)
