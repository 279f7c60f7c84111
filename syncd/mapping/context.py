"""What a mapping needs beyond the item itself: the tables, the CRM's people and the calendar's owner."""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.mapping.options import MappingOptions
from syncd.model import CrmUser, Directory


@dataclass(frozen=True, slots=True)
class MappingContext:
    owner: CrmUser
    """The CRM user whose calendar this is; floating times are read in their zone."""
    options: MappingOptions = field(default_factory=MappingOptions)
    directory: Directory = field(default_factory=Directory)
    send_invitations: bool = False
    """The binding lets the calendar server invite, update and cancel attendees by mail (RFC 6638)."""
    fingerprinted: frozenset[str] | None = None
    """The fields a link's calendar-side fingerprint covers (``syncd.engine.plan.Policy.compared``).
    Given, a connector that parses in worker processes fingerprints each item there, beside the pass's
    store writes: on a first pull of thousands of items, a quarter of those writes' time."""

    @property
    def default_timezone(self) -> str:
        return self.owner.timezone or "UTC"
