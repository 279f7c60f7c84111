"""Request and response bodies checked against the JSON Schema derived from Graph's CSDL
(`schema.py`, loaded once per process: about a second)."""

from __future__ import annotations

from typing import Any

from .schema import load_schema


def request_problems(type_name: str, body: dict[str, Any], *, partial: bool = False) -> list[str]:
    return list(load_schema().check(type_name, body, request=True, partial=partial))


def response_problems(type_name: str, body: dict[str, Any], *, partial: bool = False) -> list[str]:
    return list(load_schema().check(type_name, body, request=False, partial=partial))
