"""structlog set-up: JSON lines for journald and log shippers, readable lines on a terminal.

Secrets are scrubbed at the last step, from every event syncd or a library (exchangelib, caldav,
urllib3 through the standard ``logging`` module) emits: values of keys that name a secret, and every
resolved secret value from the config wherever it appears in a string.

A library's record is one line unless the level is ``debug``: no traceback (the caldav library logs
malformed XML from a server on the root logger with ``exc_info``; syncd reports that failure in its
own words), and only the first line of its message (exchangelib and caldav put whole request and
response bodies in theirs). The exception's type and message stay, as ``error``. syncd's own records
keep their tracebacks: syncd logs one only for a bug.
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


#: Longest message kept of a library's record below debug level.
LIBRARY_LINE = 300


def _is_syncd(name: str) -> bool:
    return name == "syncd" or name.startswith("syncd.")


def _one_line(text: str) -> str:
    lines = text.strip().splitlines() or [""]
    line = lines[0]
    if len(line) > LIBRARY_LINE or len(lines) > 1:
        line = line[:LIBRARY_LINE].rstrip() + " [...]"
    return line


def library_records_one_line(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """For a record of another library (not a ``syncd`` logger): its message's first line, and its
    exception as ``error`` (type and first line) instead of a traceback."""
    record = event_dict.get("_record")
    if record is None or _is_syncd(record.name):
        return event_dict
    event_dict["event"] = _one_line(str(event_dict.get("event", "")))
    exc_info = event_dict.pop("exc_info", None)
    event_dict.pop("stack_info", None)
    if exc_info:
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info if isinstance(exc_info, BaseException) else None
        if exc is not None:
            event_dict.setdefault("error", _one_line(f"{type(exc).__name__}: {exc}"))
    return event_dict


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
    quiet = [library_records_one_line] if logging.getLevelName(level.upper()) > logging.DEBUG else []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), *quiet],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # A traceback becomes text before the scrub, in every format: a rendered one (rich's,
            # with the frames' local variables) would print what the scrub never saw.
            structlog.processors.format_exc_info,
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
