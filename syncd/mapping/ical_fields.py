"""Sensitivity, show-as, attachments and the CRM's own fields <-> CLASS, TRANSP, ATTACH and X-SYNCD-EXTRA.

* sensitivity: ``CLASS`` PUBLIC/PRIVATE/CONFIDENTIAL; a value syncd does not know reads as private,
  as RFC 5545 3.8.1.3 asks. No CLASS is ``None`` (not stated).
* show-as (events only; RFC 5545 has no TRANSP on a VTODO, so a task's stays the CRM's): ``TRANSP``
  says busy or free, Outlook's ``X-MICROSOFT-CDO-BUSYSTATUS`` the rest (tentative, out of office).
  Both are written; inbound TRANSPARENT is free whatever the other says (a client that knows only
  TRANSP changed it), an explicit OPAQUE beside a stale FREE is busy. Neither is ``None``.
* attachments: ``ATTACH`` with a URI, the name in ``FILENAME`` (RFC 8607, written as
  :mod:`.ical_params` writes CRM text) or another client's ``X-FILENAME``. A file
  inline (``VALUE=BINARY``) or a link the CRM's rules cannot keep (no scheme, a ``data:`` URI) is not
  carried: it stays on the calendar item as it was, and is not in the CRM.
* extra: ``X-SYNCD-EXTRA``, one JSON object of scalars. Missing (or unreadable) means not carried.
* an occurrence's own CLASS and TRANSP (``Override.sensitivity``/``show_as``): read as the
  occurrence shows, ``None`` while that is the series'; written over the series' values.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from icalendar import vText, vUri

from syncd.mapping.ical_params import hidden_key, set_text_param, text_param
from syncd.mapping.ical_props import X_CDO_BUSY, X_EXTRA, all_values, lookup, x_text
from syncd.model import Activity, Attachment, JsonScalar, Sensitivity, ShowAs
from syncd.store.rules import URL_MAX, extra_problems

log = structlog.get_logger(__name__)

#: Master properties these fields own: a previous version's values are replaced (ATTACH: see above).
OWNED = frozenset({"CLASS", "TRANSP", X_CDO_BUSY, "ATTACH"})
#: What an occurrence (a RECURRENCE-ID component) has of its own here: the CRM's, never kept from before.
OCCURRENCE_OWNED = frozenset({"CLASS", "TRANSP", X_CDO_BUSY})

_CLASS = {Sensitivity.NORMAL: "PUBLIC", Sensitivity.PRIVATE: "PRIVATE", Sensitivity.CONFIDENTIAL: "CONFIDENTIAL"}
_SENSITIVITY = {v: k for k, v in _CLASS.items()}
_CDO = {ShowAs.BUSY: "BUSY", ShowAs.FREE: "FREE", ShowAs.TENTATIVE: "TENTATIVE", ShowAs.OUT_OF_OFFICE: "OOF"}
_SHOW_AS = {**{v: k for k, v in _CDO.items()}, "WORKINGELSEWHERE": ShowAs.BUSY}
_NAME_PARAMS = ("FILENAME", "X-FILENAME")


def write_fields(component: Any, activity: Activity, base: Any | None) -> None:
    if activity.sensitivity is not None:
        component.add("CLASS", _CLASS[activity.sensitivity])
    if activity.is_event and activity.show_as is not None:
        component.add("TRANSP", "TRANSPARENT" if activity.show_as is ShowAs.FREE else "OPAQUE")
        component.add(X_CDO_BUSY, vText(_CDO[activity.show_as]))
    previous = all_values(base, "ATTACH") if base is not None else []
    by_url = {str(a).strip(): a for a in previous if _carried(a)}
    for attachment in activity.attachments:
        value = vUri(attachment.url)
        before = by_url.get(attachment.url)
        for key, param in getattr(before, "params", {}).items():
            if key.upper() not in (*_NAME_PARAMS, hidden_key("FILENAME"), "VALUE"):
                value.params[key] = param  # MANAGED-ID, FMTTYPE, SIZE: another client's
        set_text_param(value, "FILENAME", attachment.name)
        component.add("ATTACH", value)
    for kept in previous:
        if not _carried(kept):
            component.add("ATTACH", kept)
    if activity.extra:
        payload = json.dumps(dict(activity.extra), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        component.add(X_EXTRA, vText(payload))


def write_occurrence_fields(component: Any, sensitivity: Sensitivity | None, show_as: ShowAs | None,
                            is_event: bool) -> None:
    """An occurrence's own CLASS and TRANSP, over the series' values its component was given."""
    if sensitivity is not None:
        component.pop("CLASS", None)
        component.add("CLASS", _CLASS[sensitivity])
    if is_event and show_as is not None:
        component.pop("TRANSP", None)
        component.pop(X_CDO_BUSY, None)
        component.add("TRANSP", "TRANSPARENT" if show_as is ShowAs.FREE else "OPAQUE")
        component.add(X_CDO_BUSY, vText(_CDO[show_as]))


def occurrence_sensitivity(component: Any, series: Sensitivity | None) -> Sensitivity | None:
    """An occurrence's own sensitivity: ``None`` while it shows as the series does (no CLASS is public,
    RFC 5545 3.8.1.3, so an occurrence without one of a private series is normal)."""
    own = read_sensitivity(component) or Sensitivity.NORMAL
    return None if own == (series or Sensitivity.NORMAL) else own


def occurrence_show_as(component: Any, series: ShowAs | None) -> ShowAs | None:
    """An occurrence's own show-as: ``None`` while it shows as the series does. Without TRANSP an
    occurrence is opaque (RFC 5545's default), so of a free series it is busy."""
    shown, only_opaque = read_show_as(component)
    if only_opaque:
        return None if opaque(series) else ShowAs.BUSY
    return None if shown == series else shown


def read_sensitivity(component: Any) -> Sensitivity | None:
    value = lookup(component, "CLASS")
    if value is None or not str(value).strip():
        return None
    return _SENSITIVITY.get(str(value).strip().upper(), Sensitivity.PRIVATE)


def read_show_as(component: Any) -> tuple[ShowAs | None, bool]:
    """(show-as, whether only "not free" is known): without Outlook's property an opaque event may be
    busy, tentative or out of office, so the CRM's value stands unless it is free."""
    transp = str(lookup(component, "TRANSP", "")).strip().upper()
    if transp == "TRANSPARENT":
        return ShowAs.FREE, False
    cdo = (x_text(component, X_CDO_BUSY) or "").strip().upper()
    if not cdo:
        return None, True
    shown = _SHOW_AS.get(cdo, ShowAs.BUSY)
    if shown is ShowAs.FREE and transp == "OPAQUE":
        return ShowAs.BUSY, False
    return shown, False


def opaque(show_as: ShowAs | None) -> bool:
    return show_as is not ShowAs.FREE


def read_attachments(component: Any) -> tuple[Attachment, ...]:
    result = []
    for value in all_values(component, "ATTACH"):
        if not _carried(value):
            continue
        result.append(Attachment(str(value).strip(), text_param(value, *_NAME_PARAMS)))
    return tuple(result)


def read_extra(component: Any, item: str) -> dict[str, JsonScalar] | None:
    """The CRM's own fields; ``None`` when the item does not carry them (or they do not read)."""
    raw = x_text(component, X_EXTRA)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or extra_problems(value):
        log.warning("X-SYNCD-EXTRA is no JSON object of values the CRM keeps; the CRM keeps its own", item=item)
        return None
    return value


def _carried(value: Any) -> bool:
    """A link the CRM can keep: a URI with a scheme, not a file's bytes (VALUE=BINARY, data:)."""
    params = getattr(value, "params", {})
    if str(params.get("VALUE", "URI")).upper() != "URI" or "ENCODING" in params:
        return False
    text = str(value).strip()
    scheme, colon, _ = text.partition(":")
    return (
        bool(colon) and scheme.isascii() and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()
        and scheme.casefold() != "data" and len(text) <= URL_MAX and not any(c.isspace() for c in text)
    )
