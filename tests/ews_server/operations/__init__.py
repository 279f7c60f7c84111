"""The EWS operations this server answers, by request element name."""

from __future__ import annotations

from collections.abc import Callable

from ..context import Context
from ..xmlns import Element
from .find import find_item
from .folders import convert_id, get_folder
from .items import create_item, delete_item, get_item, update_item
from .sync import sync_folder_items

Operation = Callable[[Context, Element], Element]

OPERATIONS: dict[str, Operation] = {
    "ConvertId": convert_id,
    "GetFolder": get_folder,
    "SyncFolderItems": sync_folder_items,
    "GetItem": get_item,
    "CreateItem": create_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "FindItem": find_item,
}
