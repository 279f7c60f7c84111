"""What of syncd's hidden data a calendar item did not carry, and keeping the CRM's value for it.

Some fields travel where calendar users never see them: ``X-SYNCD-*`` properties on iCalendar items,
syncd's extended property (the "blob") on Exchange items. A user cannot clear what they cannot see,
so when such a carrier is missing a client rewrote the item without it (several drop every
X-property they do not know): the field was *not carried*, not cleared. The mappings report that in
an :class:`Uncarried`, and the engine applies :func:`keep_crm` before it compares anything, so the
CRM keeps its value. Fields a user sees and edits (subject, times, location, CLASS, TRANSP,
CATEGORIES, attendees) keep their two-way meaning and are never listed here.

A field that a calendar side cannot represent at all (show-as on a to-do) is reported the same way:
the CRM's value stands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.model import Activity, Participant


@dataclass(frozen=True, slots=True)
class Uncarried:
    fields: frozenset[str] = frozenset()
    """Hidden fields whose carrier is missing: the CRM's value stands."""
    shown: Mapping[str, Callable[[Activity], bool]] = field(default_factory=dict)
    """Fields read from what the item shows because their exact CRM value was not carried (a status
    behind a many-to-one table): the CRM's value stands while the CRM's version shows as the item
    shows, which the predicate tells; else the user changed it and the shown value is taken."""
    type_category: Callable[[str], str] | None = None
    """The category a CRM type shows as: kept with the CRM's type, it is no category of the CRM's own."""
    kinds: frozenset[str] = frozenset()
    """Attendees (casefolded e-mail) read without their carried participant kind: the CRM's kind stands."""
    hidden_people: Callable[[Participant], bool] | None = None
    """Which participants travel hidden on this side; set when none were carried: the CRM's stand."""

    def __bool__(self) -> bool:
        return bool(self.fields or self.shown or self.kinds or self.hidden_people)


NOTHING = Uncarried()


def keep_crm(remote: Activity, crm: Activity, uncarried: Uncarried) -> Activity:
    """``remote`` with the CRM's values where the calendar item did not carry syncd's."""
    if not uncarried:
        return remote
    changes: dict[str, Any] = {name: getattr(crm, name) for name in uncarried.fields}
    for name, agrees in uncarried.shown.items():
        value = getattr(crm, name)
        if agrees(crm):
            changes[name] = value
            if name == "type" and value and uncarried.type_category is not None:
                shown_as = uncarried.type_category(value).casefold()
                categories = changes.get("categories", remote.categories)
                changes["categories"] = tuple(c for c in categories if c.casefold() != shown_as)
    if "participants" not in changes and (uncarried.kinds or uncarried.hidden_people):
        changes["participants"] = _people(remote.participants, crm.participants, uncarried)
    return remote.replace(**changes)


def _people(
    remote: tuple[Participant, ...], crm: tuple[Participant, ...], uncarried: Uncarried
) -> tuple[Participant, ...]:
    kinds = {p.key: p.kind for p in crm if p.email}
    people = [
        p.__class__(kinds[p.key], p.email, p.name, p.role, p.response)
        if p.email and p.key in uncarried.kinds and p.key in kinds else p
        for p in remote
    ]
    hidden = uncarried.hidden_people
    if hidden is not None:
        present = {p.key for p in people}
        for at, p in enumerate(crm):
            if hidden(p) and p.key not in present:
                people.insert(min(at, len(people)), p)
    return tuple(people)
