"""syncd's own MAPI named properties on Exchange items, and the JSON blob that rides in one of them.

EWS has no place for several CRM fields (place, project, direction, close reason, participants without an
e-mail, regarding links, the exact CRM status/type/priority behind a many-to-one table). They travel in
string-named properties of one syncd property set, which Exchange keeps on the item across edits in
Outlook and OWA. ``register_extended_properties`` makes them ordinary attributes of exchangelib's
``CalendarItem`` and ``Task`` (``item.syncd_crm_id``), so GetItem returns them and CreateItem/UpdateItem
write them.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from exchangelib import CalendarItem, ExtendedProperty, Task

#: The property set of every syncd property (a fixed, syncd-owned GUID; never change it).
PROPERTY_SET_ID = "5f3c2b1e-8d4a-4e6b-9c1f-73796e636400"


class _SyncdString(ExtendedProperty):
    property_set_id = PROPERTY_SET_ID
    property_type = "String"


class CrmIdProperty(_SyncdString):
    property_name = "syncd-crm-id"


class KindProperty(_SyncdString):
    property_name = "syncd-kind"


class ExtraProperty(_SyncdString):
    """JSON object (see :func:`dump_extra`) with the fields EWS has no element for."""

    property_name = "syncd-extra"


class UrlProperty(_SyncdString):
    """Link back to the activity in the CRM (``MappingOptions.crm_url``)."""

    property_name = "syncd-url"


#: attribute name on the exchangelib item -> property class
PROPERTIES: dict[str, type[ExtendedProperty]] = {
    "syncd_crm_id": CrmIdProperty,
    "syncd_kind": KindProperty,
    "syncd_extra": ExtraProperty,
    "syncd_url": UrlProperty,
}

_lock = threading.Lock()


def register_extended_properties() -> None:
    """Register syncd's properties on ``CalendarItem`` and ``Task``; calling it again does nothing."""
    with _lock:
        for item_cls in (CalendarItem, Task):
            known = {f.name for f in item_cls.FIELDS}
            for attr, prop_cls in PROPERTIES.items():
                if attr not in known:
                    item_cls.register(attr, prop_cls)


#: What XML cannot carry and JSON leaves as it is (JSON escapes C0 itself): exchangelib would send "?".
_NOT_IN_XML = re.compile("[\x7f-\x84\x86-\x9f\ufdd0-\ufddf\ufffe\uffff]")


def dump_extra(extra: dict[str, Any]) -> str:
    # sort_keys: the same activity always gives the same string, so an unchanged item is not rewritten.
    text = json.dumps(extra, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    # Only inside JSON strings can such characters occur, where \uXXXX means the same character.
    return _NOT_IN_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
