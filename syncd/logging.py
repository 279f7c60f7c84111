"""structlog set-up: JSON lines for journald and log shippers, readable lines on a terminal.

Secrets are scrubbed at the last step, from every event syncd or a library (exchangelib, caldav,
urllib3 through the standard ``logging`` module) emits: values of keys that name a secret, and every
resolved secret value from the config wherever it appears in a string.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import structlog

# "pass" alone, not as a word part: ``pass_id`` names a sync pass and must stay readable.
_SECRET_KEYS = re.compile(r"passw(or)?d|passphrase|^pass$|secret|token|authorization|credential|api[_-]?key", re.I)
_AUTH_HEADER = re.compile(r"(Authorization['\"]?\s*[:=]\s*['\"]?)(Basic|Bearer|NTLM|Negotiate|Digest)\s+[^'\",\s]+", re.I)
_secrets: set[str] = set()
REDACTED = "[redacted]"


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that no log line ever shows them."""
    _secrets.update(v for v in values if v and len(v) >= 3)


def _scrub_text(text: str) -> str:
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)} {REDACTED}", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def scrub_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return _scrub(event_dict)


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if fmt == "json" else (lambda _l, _n, e: e),
            scrub_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log request bodies and headers at debug; keep them one level quieter than syncd.
    for noisy in ("exchangelib", "caldav", "urllib3", "requests_ntlm", "niquests"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level.upper()), logging.INFO))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
