"""Offline exchangelib plumbing for the EWS mapping tests: an account that never connects, request
payloads as exchangelib would send them, and items parsed from recorded EWS responses."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from exchangelib import DELEGATE, NTLM, Account, Build, Configuration, Credentials, Version
from exchangelib.ewsdatetime import EWSTimeZone
from exchangelib.fields import BooleanField
from exchangelib.items import CalendarItem, Task
from exchangelib.properties import DistinguishedFolderId, ItemId, Mailbox
from exchangelib.services import CreateItem, UpdateItem
from lxml import etree

from syncd.mapping.ews import register_extended_properties

MAILBOX = "owner@example.com"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "ews-samples"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"


@cache
def account() -> Account:
    """Constructing it sends nothing: explicit endpoint, auth type and version, no autodiscover."""
    config = Configuration(
        service_endpoint="https://127.0.0.1/EWS/Exchange.asmx",
        credentials=Credentials("owner", "not-a-secret"),
        auth_type=NTLM,
        version=Version(build=Build(15, 1)),
    )
    return Account(
        MAILBOX,
        config=config,
        autodiscover=False,
        access_type=DELEGATE,
        default_timezone=EWSTimeZone("Europe/Amsterdam"),
    )


def folder(name: str) -> DistinguishedFolderId:
    return DistinguishedFolderId(id=name, mailbox=Mailbox(email_address=MAILBOX))


def create_payload(item: CalendarItem | Task) -> etree._Element:
    target = folder("calendar" if isinstance(item, CalendarItem) else "tasks")
    return CreateItem(account=account()).get_payload(
        items=[item], folder=target, message_disposition="SaveOnly", send_meeting_invitations="SendToNone"
    )


def update_payload(item: CalendarItem | Task, fieldnames: list[str]) -> etree._Element:
    return UpdateItem(account=account()).get_payload(
        items=[(item, fieldnames)],
        conflict_resolution="NeverOverwrite",
        message_disposition="SaveOnly",
        send_meeting_invitations_or_cancellations="SendToNone",
        suppress_read_receipts=True,
    )


def reparse(item: CalendarItem | Task, item_id: str = "AAMkAGI2", changekey: str = "DwAAABYA") -> CalendarItem | Task:
    """The item as exchangelib serialises it and parses it back, with a server-assigned id: what a
    GetItem would hand the mapping after a CreateItem."""
    register_extended_properties()
    item.account = item.account or account()
    elem = item.to_xml(version=account().version)
    # exchangelib writes xs:boolean as 1/0, Exchange answers true/false (and exchangelib reads only those).
    booleans = {f.response_tag() for f in type(item).FIELDS if isinstance(f, BooleanField)}
    for child in elem:
        if child.tag in booleans and child.text in ("0", "1"):
            child.text = "true" if child.text == "1" else "false"
    parsed = type(item).from_xml(elem=elem, account=None)
    parsed._id = ItemId(id=item_id, changekey=changekey)
    return parsed


def items_in(sample: str) -> list[CalendarItem | Task]:
    """CalendarItem/Task elements of a recorded response in ews-samples/msdocs, parsed by exchangelib."""
    register_extended_properties()
    tree = etree.parse(str(SAMPLES / "msdocs" / sample))
    found: list[CalendarItem | Task] = []
    top = [e for e in tree.iter(f"{T}CalendarItem", f"{T}Task") if e.getparent().tag.endswith("}Items")]
    for elem in top:  # collected first: exchangelib's from_xml clears what it read
        cls = CalendarItem if elem.tag == f"{T}CalendarItem" else Task
        found.append(cls.from_xml(elem=elem, account=None))
    return found
