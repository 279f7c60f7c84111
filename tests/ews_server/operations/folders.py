"""GetFolder, and ConvertId (which exchangelib sends only to learn the server version)."""

from __future__ import annotations

import re

from .. import render
from ..context import Context
from ..faults import ItemError
from ..render import Shape
from ..xmlns import Element, m, sub
from .common import children, each, response

_SMTP = re.compile(r"^[^@\s]+@[^@\s]+$")


def get_folder(ctx: Context, request: Element) -> Element:
    shape = Shape.parse(request.find(m("FolderShape")))
    root, messages = response("GetFolder")

    def handle(out: Element, folder_id: Element) -> None:
        render.folder(sub(out, m("Folders")), ctx.folder(folder_id), shape)

    each(messages, "GetFolder", children(request.find(m("FolderIds"))), handle, container="Folders")
    return root


def convert_id(ctx: Context, request: Element) -> Element:
    destination = request.get("DestinationFormat")
    root, messages = response("ConvertId")

    def handle(out: Element, source: Element) -> None:
        mailbox = source.get("Mailbox", "")
        if not _SMTP.match(mailbox):
            raise ItemError("ErrorInvalidSmtpAddress", "The SMTP address format is invalid.")
        if ctx.store.mailbox(mailbox) is None:
            raise ItemError("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")
        if source.get("Id") not in ctx.store.items:
            raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.")
        # Ids here have a single form; converting one gives it back in the requested format.
        alt = sub(out, m("AlternateId"), Format=destination, Id=source.get("Id"), Mailbox=mailbox)
        alt.set("{http://www.w3.org/2001/XMLSchema-instance}type", "t:AlternateIdType")

    each(messages, "ConvertId", children(request.find(m("SourceIds"))), handle)
    return root
