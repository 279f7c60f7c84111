"""Items and folders as a response shape asks for them, in schema order so responses validate."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from . import schema
from .store import Folder, PropKey, StoredItem, prop_key
from .xmlns import Element, local, sub, t

# What Exchange's Default shape returns for calendar items and tasks (a practical subset).
_DEFAULT = frozenset(
    {
        "ItemId",
        "ParentFolderId",
        "ItemClass",
        "Subject",
        "Sensitivity",
        "Importance",
        "HasAttachments",
        "IsAssociated",
        "DateTimeCreated",
        "LastModifiedTime",
        "Start",
        "End",
        "IsAllDayEvent",
        "LegacyFreeBusyStatus",
        "Location",
        "CalendarItemType",
        "Organizer",
        "UID",
        "DueDate",
        "StartDate",
        "Status",
        "PercentComplete",
        "IsComplete",
        "CompleteDate",
    }
)
# Never part of AllProperties in Exchange either.
_NOT_IN_ALL = frozenset({"MimeContent", "UniqueBody", "NormalizedBody", "TextBody"})


@dataclass(frozen=True)
class Shape:
    base: str
    names: frozenset[str]
    extended: frozenset[PropKey]

    @classmethod
    def parse(cls, shape: Element | None) -> Shape:
        if shape is None:
            return cls("IdOnly", frozenset(), frozenset())
        names, extended = set(), set()
        additional = shape.find(t("AdditionalProperties"))
        for path in additional if additional is not None else ():
            if local(path) == "FieldURI":
                names.add(path.get("FieldURI").split(":")[-1])
            elif local(path) == "ExtendedFieldURI":
                extended.add(prop_key(path))
        return cls(shape.findtext(t("BaseShape")), frozenset(names), frozenset(extended))

    def wants(self, name: str) -> bool:
        if name in ("ItemId", "FolderId") or name in self.names:
            return True
        if self.base == "AllProperties":
            return name not in _NOT_IN_ALL
        return self.base == "Default" and name in _DEFAULT

    def wants_extended(self, key: PropKey) -> bool:
        return key in self.extended


def item(parent: Element, stored: StoredItem, shape: Shape) -> Element:
    out = sub(parent, t(stored.kind))
    for name in schema.element_order(f"{stored.kind}Type"):
        if name == "ExtendedProperty":
            out.extend(copy.deepcopy(p) for k, p in stored.extended.items() if shape.wants_extended(k))
        elif name in stored.fields and shape.wants(name):
            out.append(copy.deepcopy(stored.fields[name]))
    return out


def item_id_only(parent: Element, stored: StoredItem) -> Element:
    out = sub(parent, t(stored.kind))
    sub(out, t("ItemId"), Id=stored.id, ChangeKey=stored.change_key)
    return out


def folder(parent: Element, stored: Folder, shape: Shape) -> Element:
    values: dict[str, object] = {
        "FolderId": {"Id": stored.id, "ChangeKey": stored.change_key},
        "ParentFolderId": {"Id": stored.parent.id, "ChangeKey": stored.parent.change_key}
        if stored.parent
        else None,
        "FolderClass": stored.folder_class,
        "DisplayName": stored.display_name,
        "TotalCount": str(len(stored.items)),
        "ChildFolderCount": str(sum(1 for f in stored.mailbox.folders.values() if f.parent is stored)),
        "EffectiveRights": True,
        "DistinguishedFolderId": stored.distinguished,
        "UnreadCount": "0",
    }
    out = sub(parent, t(stored.element))
    for name in schema.element_order(f"{stored.element}Type"):
        value = values.get(name)
        if value is None or not shape.wants(name):
            continue
        if isinstance(value, dict):
            sub(out, t(name), **value)
        elif value is True:
            rights = sub(out, t(name))
            for right in schema.element_order("EffectiveRightsType"):
                sub(rights, t(right), "true")
        else:
            sub(out, t(name), str(value))
    return out
