"""Just enough JWT: access tokens the server signs (HS256) and client assertions it verifies
(RS256 / PS256, as MSAL signs them with an app's certificate)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class InvalidToken(Exception):
    pass


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_hs256(claims: dict[str, Any], key: bytes, kid: str = "syncd-test") -> str:
    header = {"typ": "JWT", "alg": "HS256", "kid": kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS; InvalidToken if malformed."""
    try:
        head, body, signature = token.split(".")
        header = json.loads(unb64url(head))
        claims = json.loads(unb64url(body))
        return header, claims, f"{head}.{body}".encode(), unb64url(signature)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidToken(f"malformed token: {err}") from err


def decode_hs256(token: str, key: bytes) -> dict[str, Any]:
    header, claims, signing_input, signature = split(token)
    expected = hmac.new(key, signing_input, hashlib.sha256).digest()
    if header.get("alg") != "HS256" or not hmac.compare_digest(expected, signature):
        raise InvalidToken("signature")
    return claims


def verify_rsa(header: dict[str, Any], signing_input: bytes, signature: bytes, key: rsa.RSAPublicKey) -> None:
    alg = header.get("alg")
    if alg == "RS256":
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
    elif alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    else:
        raise InvalidToken(f"algorithm {alg!r}")
    try:
        key.verify(signature, signing_input, pad, hashes.SHA256())
    except InvalidSignature as err:
        raise InvalidToken("signature") from err
