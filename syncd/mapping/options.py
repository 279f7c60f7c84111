"""The mapping tables: how the CRM's own lists (status, type, priority) appear on each calendar side.

CRMs let every customer define these lists, so they are configuration (``[mapping]`` in the config
file), with defaults that fit the lists the seed manuals show (open/planned/scheduled, postponed,
done/succeeded/completed, cancelled).

Outbound, a CRM value is looked up here. Inbound, the calendar's standard value is read back through
:func:`crm_value`: the exact CRM value travels in a syncd X-property / extended property, and it is
kept as long as it still maps onto what the calendar shows now; only when a user changed the standard
property (cancelled the meeting on the phone, completed the task in Outlook) does the inbound table
pick the CRM value. So a many-to-one table still round-trips exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

IcalEventStatus = Literal["TENTATIVE", "CONFIRMED", "CANCELLED"]
IcalTodoStatus = Literal["NEEDS-ACTION", "IN-PROCESS", "COMPLETED", "CANCELLED"]
EwsFreeBusy = Literal["Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData"]
EwsTaskStatus = Literal["NotStarted", "InProgress", "Completed", "WaitingOnOthers", "Deferred"]

_Shown = TypeVar("_Shown")


# Plain dataclasses, not pydantic models: the options are pickled to every parse worker, and a worker
# that must rebuild pydantic models to unpickle them carries pydantic in its memory (about 8 MB a
# worker, measured on a 50,000-event pull). The config file is still validated: pydantic reads
# dataclasses as it reads its models, and ``__pydantic_config__`` keeps unknown keys an error.
_STRICT: dict[str, Any] = {"extra": "forbid"}


@dataclass(frozen=True)
class StatusTarget:
    """What one CRM status looks like on each side."""

    ical_event: IcalEventStatus = "CONFIRMED"
    ical_todo: IcalTodoStatus = "NEEDS-ACTION"
    ews_free_busy: EwsFreeBusy = "Busy"
    ews_cancelled: bool = False
    ews_task_status: EwsTaskStatus = "NotStarted"

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT


def _default_status() -> dict[str, StatusTarget]:
    open_ = StatusTarget()
    done = StatusTarget(ical_todo="COMPLETED", ews_task_status="Completed")
    cancelled = StatusTarget(
        ical_event="CANCELLED",
        ical_todo="CANCELLED",
        ews_free_busy="Free",
        ews_cancelled=True,
        ews_task_status="Deferred",
    )
    return {
        "open": open_,
        "planned": open_,
        "scheduled": open_,
        "postponed": StatusTarget(ical_event="TENTATIVE", ews_free_busy="Tentative", ews_task_status="Deferred"),
        "in-progress": StatusTarget(ical_todo="IN-PROCESS", ews_task_status="InProgress"),
        "done": done,
        "succeeded": done,
        "completed": done,
        "cancelled": cancelled,
    }


@dataclass(frozen=True)
class StatusInbound:
    """Which CRM status a calendar's standard value becomes, when it no longer matches the CRM's."""

    ical_event: dict[str, str] = field(
        default_factory=lambda: {"TENTATIVE": "postponed", "CONFIRMED": "planned", "CANCELLED": "cancelled"}
    )
    ical_todo: dict[str, str] = field(
        default_factory=lambda: {
            "NEEDS-ACTION": "open",
            "IN-PROCESS": "in-progress",
            "COMPLETED": "done",
            "CANCELLED": "cancelled",
        }
    )
    ews_free_busy: dict[str, str] = field(
        default_factory=lambda: {"Tentative": "postponed", "Busy": "planned", "Free": "planned", "OOF": "planned"}
    )
    ews_cancelled: str = "cancelled"
    ews_task_status: dict[str, str] = field(
        default_factory=lambda: {
            "NotStarted": "open",
            "InProgress": "in-progress",
            "Completed": "done",
            "WaitingOnOthers": "in-progress",
            "Deferred": "postponed",
        }
    )

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT


def _default_priority() -> dict[str, int]:
    return {"high": 1, "urgent": 1, "normal": 5, "medium": 5, "low": 9}


@dataclass(frozen=True)
class MappingOptions:
    """``[mapping]`` in the config file. Every key has a default; see config.example.toml."""

    call_category: str = "Phone call"
    """Category that marks a calendar event as a CRM call (with the X-SYNCD-KIND property)."""
    crm_url: str | None = None
    """Template of a link back to the activity in the CRM, e.g. ``https://crm.example/act/{id}``."""
    status: dict[str, StatusTarget] = field(default_factory=_default_status)
    status_default: StatusTarget = field(default_factory=StatusTarget)
    """Used for a CRM status the table does not name."""
    status_inbound: StatusInbound = field(default_factory=StatusInbound)
    priority: dict[str, int] = field(default_factory=_default_priority)
    """CRM priority -> RFC 5545 PRIORITY (1 highest .. 9 lowest). EWS Importance follows from it."""
    priority_inbound: dict[int, str] = field(
        default_factory=lambda: {
            1: "high", 2: "high", 3: "high", 4: "high", 5: "normal", 6: "low", 7: "low", 8: "low", 9: "low"
        }
    )
    type_categories: dict[str, str] = field(default_factory=dict)
    """CRM type -> calendar category; a type not named here is shown as a category of its own name."""
    direction_categories: bool = False
    """Also show the direction (Inbound/Outbound) as a category."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    def status_target(self, status: str | None) -> StatusTarget:
        if status is None:
            return self.status_default
        return self.status.get(status, self.status.get(status.casefold(), self.status_default))

    def type_category(self, type_: str) -> str:
        return self.type_categories.get(type_, type_)

    def type_from_categories(self, categories: list[str]) -> str | None:
        """The CRM type a list of calendar categories names, if any (first match wins)."""
        reverse = {cat.casefold(): typ for typ, cat in self.type_categories.items()}
        for cat in categories:
            if cat.casefold() in reverse:
                return reverse[cat.casefold()]
        return None


def crm_value(
    carried: str | None,
    shown: _Shown | None,
    forward: Callable[[str | None], object],
    inbound: Mapping[_Shown, str],
) -> str | None:
    """The CRM value for what a calendar shows now.

    ``carried`` is the CRM value syncd stored on the item (X-property / extended property), ``shown``
    the calendar's standard value, ``forward`` the outbound table and ``inbound`` the inbound one. The
    carried value wins while it still maps onto what is shown, so many-to-one tables round-trip.
    """
    if carried is not None and forward(carried) == shown:
        return carried
    if shown is None:
        return carried
    return inbound.get(shown, carried)


def priority_value(options: MappingOptions, carried: str | None, shown: int | None) -> str | None:
    """Inbound priority: like :func:`crm_value`, on the 1..9 scale (0 means undefined)."""
    if shown in (None, 0):
        # Nothing shown: keep a CRM priority that never had a calendar form, drop one that had.
        return carried if carried is not None and carried not in options.priority else None
    return crm_value(carried, shown, lambda v: options.priority.get(v) if v else None, options.priority_inbound)


def importance_from_priority(priority: int | None) -> str:
    """EWS Importance for an RFC 5545 priority: 1-4 High, 5 or unset Normal, 6-9 Low (RFC 5545 3.8.1.9)."""
    if priority is None or priority in (0, 5):
        return "Normal"
    return "High" if priority < 5 else "Low"


def priority_from_importance(importance: str | None) -> int | None:
    return {"High": 1, "Low": 9, "Normal": 5}.get(importance or "")
