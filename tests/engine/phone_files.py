"""A phone's events written straight into a Radicale calendar's folder, as Radicale stores them (as
bench/ does): a pull of dozens of items without dozens of PUTs, which cost a loaded machine a minute."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from radicale_server import USER
from world import Phone, World


def calendar_folder(world: World, phone: Phone) -> Path:
    return world.radicale.storage_dir / "collections" / "collection-root" / USER / phone.calendar_url.split("/")[-2]


def phone_event(uid: str, subject: str, at: datetime, *lines: str) -> bytes:
    """A one-hour event at ``at`` (UTC) as a phone writes it, with ``lines`` added to the VEVENT."""
    extra = "".join(f"{line}\r\n" for line in lines)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{at:%Y%m%dT%H%M%SZ}\r\nDURATION:PT1H\r\n"
        f"SUMMARY:{subject}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
