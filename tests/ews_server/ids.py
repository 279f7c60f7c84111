"""Opaque identifiers as Exchange hands them out: ItemIds, ChangeKeys, UIDs and sync states."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass


def item_id() -> str:
    return base64.b64encode(b"\x00\x00\x00\x00syncd-test" + os.urandom(24)).decode()


def change_key() -> str:
    return base64.b64encode(b"\x07\x00\x00\x00" + os.urandom(12)).decode()


def uid() -> str:
    # Exchange's own UIDs are a hex-encoded Global Object ID with this fixed prefix.
    return "040000008200E00074C5B7101A82E00800000000" + os.urandom(24).hex().upper()


@dataclass(frozen=True)
class SyncState:
    """What a SyncFolderItems state stands for: every change in one folder up to sequence `seq`."""

    folder_id: str
    seq: int
    epoch: int


class SyncStateCodec:
    """Signs sync states so that a garbled, foreign or revoked one is recognised as invalid."""

    def __init__(self) -> None:
        self._key = os.urandom(32)

    def encode(self, state: SyncState) -> str:
        payload = json.dumps([state.folder_id, state.seq, state.epoch]).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.b64encode(mac + payload).decode()

    def decode(self, token: str) -> SyncState | None:
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        mac, payload = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(self._key, payload, hashlib.sha256).digest()[:16]):
            return None
        folder_id, seq, epoch = json.loads(payload)
        return SyncState(folder_id, seq, epoch)
