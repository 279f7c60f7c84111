"""The link between a CRM activity and its calendar item in one binding: the merge base of a sync."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from syncd.model import Activity, Kind


class LinkStatus(StrEnum):
    SYNCED = "synced"
    CREATING = "creating"
    """A create was started; if the process died, the next pass looks the item up before creating."""
    CONFLICT = "conflict"
    """A manual conflict waits for ``syncd conflicts resolve``; the item is left alone until then."""
    RESOLVE_CRM = "resolve-crm"
    RESOLVE_REMOTE = "resolve-remote"


class StoredBases(Protocol):
    """Where the merge bases of a store's links are read when a merge asks for one."""

    def base_of(self, link: Link) -> Activity | None: ...


@dataclass(frozen=True, slots=True)
class Link:
    binding: str
    activity_id: str
    kind: Kind
    ref: str | None
    etag: str | None
    crm_fp: str | None
    remote_fp: str | None
    stored_base: Activity | StoredBases | None
    """The merge base (see :attr:`base`), or the store that holds it: a store gives every link of a
    binding to each pass, which looks at the bases of only the items that changed, so a base is read
    when a merge asks for it, not when its link is loaded (at 50,000 links the bases were most of a
    pass's memory)."""
    status: LinkStatus = LinkStatus.SYNCED

    @property
    def base(self) -> Activity | None:
        """The activity as both sides last agreed on it: the base of a three-way merge."""
        base = self.stored_base
        return base if base is None or isinstance(base, Activity) else base.base_of(self)

    # Any, not object: see Activity.replace.
    def with_(self, **changes: Any) -> Link:
        return replace(self, **changes)
