"""HTTP authentication for the CalDAV transport: Basic (RFC 7617) and Digest (RFC 7616), chosen from
the server's first 401 challenge (RFC 7235).

Hand-written rather than taken from an HTTP library: the transport is ``http.client`` (see
:mod:`syncd.connectors.caldav_transport` for the measurements), which has no auth of its own, and
the two schemes are a page of standard code. Digest: MD5, SHA-256 and their ``-sess`` variants,
``qop=auth`` (and RFC 2069's answer without qop for servers that offer none); a nonce is reused with
a growing nonce count, so after the first challenge a pass makes no second request per request.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

SCHEMES = ("basic", "digest")

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})\s*(?:,|$)")
_SCHEME = re.compile(rf"[\s,]*({_TOKEN})(?=\s|,|$)")
_TOKEN68 = re.compile(r"\s*[A-Za-z0-9\-._~+/]+=*\s*(?:,|$)")
_QUOTED_PAIR = re.compile(r"\\(.)")

#: Digest algorithms syncd answers (RFC 7616 3.3), by the name the server gives.
_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str
    """Lower case: ``basic``, ``digest``, ``bearer``..."""
    params: dict[str, str] = field(default_factory=dict)
    """Parameter names in lower case, values unquoted."""


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a WWW-Authenticate value (several fields joined by commas), in order.

    ``Digest realm="a", nonce="b", Basic realm="a"`` is two challenges; a challenge's token68 (as
    Negotiate sends) is skipped. What does not parse ends the list: the challenges before it stand.
    """
    found: list[Challenge] = []
    at = 0
    while at < len(header):
        scheme = _SCHEME.match(header, at)
        if scheme is None:
            break
        at = scheme.end()
        params: dict[str, str] = {}
        while at < len(header):
            param = _PARAM.match(header, at)
            if param is None:
                token68 = None if params else _TOKEN68.match(header, at)
                if token68 is not None:
                    at = token68.end()
                break
            name, value = param.group(1).lower(), param.group(2)
            if value.startswith('"'):
                value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
            params[name] = value
            at = param.end()
        found.append(Challenge(scheme.group(1).lower(), params))
    return found


def basic_header(username: str, password: str) -> str:
    """RFC 7617, in UTF-8 (its ``charset`` and what syncd's earlier HTTP library sent)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class Digest:
    """Answers to one Digest challenge, for every request until the server asks again."""

    def __init__(self, username: str, password: str, challenge: Challenge) -> None:
        self._username = username
        self._password = password
        self._count = 0
        self._challenge = challenge
        self._algorithm = challenge.params.get("algorithm", "MD5")
        self._hash = _HASHES[_base_algorithm(self._algorithm)]
        qops = {q.strip().lower() for q in challenge.params.get("qop", "").split(",") if q.strip()}
        self._qop = "auth" if "auth" in qops else None
        if qops and self._qop is None:
            raise ValueError(f"the server offers Digest only with qop {', '.join(sorted(qops))}, not auth")

    @staticmethod
    def usable(challenge: Challenge) -> bool:
        """Whether syncd can answer this Digest challenge."""
        algorithm = _base_algorithm(challenge.params.get("algorithm", "MD5"))
        qops = {q.strip().lower() for q in challenge.params.get("qop", "").split(",") if q.strip()}
        return algorithm in _HASHES and "nonce" in challenge.params and (not qops or "auth" in qops)

    @property
    def nonce(self) -> str:
        return self._challenge.params["nonce"]

    def header(self, method: str, target: str, cnonce: str | None = None) -> str:
        """The Authorization value for ``method`` on ``target`` (the request-target as sent)."""
        params = self._challenge.params
        realm = params.get("realm", "")
        self._count += 1
        nc = f"{self._count:08x}"
        cnonce = cnonce or os.urandom(16).hex()
        h = self._hash
        a1 = h(f"{self._username}:{realm}:{self._password}".encode())
        if self._algorithm.lower().endswith("-sess"):
            a1 = h(f"{a1}:{self.nonce}:{cnonce}".encode())
        a2 = h(f"{method}:{target}".encode())
        if self._qop is None:
            response = h(f"{a1}:{self.nonce}:{a2}".encode())
        else:
            response = h(f"{a1}:{self.nonce}:{nc}:{cnonce}:{self._qop}:{a2}".encode())
        fields = [_username_field(self._username), f"realm={_quote(realm)}", f"nonce={_quote(self.nonce)}",
                  f"uri={_quote(target)}", f"response={_quote(response)}"]
        if "algorithm" in params:
            fields.append(f"algorithm={self._algorithm}")
        if "opaque" in params:
            fields.append(f"opaque={_quote(params['opaque'])}")
        if self._qop is not None:
            fields += [f"qop={self._qop}", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
        return "Digest " + ", ".join(fields)


def _base_algorithm(name: str) -> str:
    upper = name.upper()
    return upper[: -len("-SESS")] if upper.endswith("-SESS") else upper


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _username_field(username: str) -> str:
    # RFC 7616 3.4.4: a name that is not plain ASCII goes in username* (RFC 5987 encoding).
    if username.isascii() and '"' not in username and "\\" not in username:
        return f"username={_quote(username)}"
    return f"username*=UTF-8''{quote(username, safe='')}"
