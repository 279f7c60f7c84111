"""structlog set-up: JSON lines for journald and log shippers, readable lines on a terminal.

Secrets are scrubbed at the last step, from every event syncd or a library (exchangelib, msal,
urllib3 through the standard ``logging`` module) emits, after a traceback has become text. What is
redacted, in every string of the event and in every format:

* the value of a key that names a secret (``password``, ``secret``, ``token``, ``api_key``,
  ``credential``, ``authorization``, ``cookie``...): an event's own keys, and ``key=value``,
  ``'key': 'value'`` and ``"key": "value"`` inside text (a repr, a query string, a DSN). A key
  naming where a secret is kept (``password_file``, ``password_env``) is not a secret;
* the password of a URL's userinfo (``scheme://user:[redacted]@host``);
* the value of an ``Authorization``, ``Proxy-Authorization``, ``Cookie`` or ``Set-Cookie`` header,
  and a ``Basic`` credential or a long ``Bearer``/``NTLM``/``Negotiate`` token wherever it stands;
  any base64 text that decodes to ``user:<a known secret>`` (a Basic credential without its header);
* a known secret value (from the config, the store URL, a secret file) wherever it appears, with its
  URL-encoded forms, but only when it is safe to replace everywhere: 16 characters or more, or
  8 or more that are not a plain word (letters only, perhaps joined by ``-``, ``_`` or ``.``) nor
  digits only. A short or word-like secret (a database password ``syncd``) would otherwise turn
  ``syncd running`` into ``[redacted] running`` and break file paths; such a secret is still
  redacted where it stands as a secret (the three rules above), and nowhere else.

A library's record is one line unless the level is ``debug``: no traceback (a library that logs a
server's failure with ``exc_info``; syncd reports that failure in its own words), and only the first
line of its message (exchangelib puts whole request and response bodies in its). The exception's
type and message stay, as ``error``. syncd's own records keep their tracebacks: syncd logs one only
for a bug.

When standard error is the journal (``$JOURNAL_STREAM`` names its device and inode, as systemd sets
it for a unit's output), every line starts with the sd-daemon priority prefix (``<3>`` error,
``<4>`` warning, ``<6>`` info, ``<7>`` debug), which journald strips and stores as the entry's
priority: ``journalctl -p err`` finds syncd's errors.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import structlog

_KEY_WORDS = r"passw(?:or)?d|passphrase|secret|token|credential|api[_-]?key"
# "pass" alone, not as a word part: ``pass_id`` names a sync pass and must stay readable. A key
# that says where a secret is kept is not one: "password_file: cannot read /etc/syncd/pw" must keep
# the path.
_SECRET_KEYS = re.compile(rf"(?:{_KEY_WORDS})|authorization|cookie|^pass$|^pwd$", re.IGNORECASE)
_NOT_SECRET_KEYS = re.compile(r"_(?:file|env|path)$", re.IGNORECASE)
# Inside text only with a delimiter that prose does not use: ``password=x``, ``'password': 'x'``.
# "password: wrong" in a sentence keeps its words. Headers have their own rule (_HEADER), which
# keeps the scheme ("Basic", "NTLM") for whoever debugs an authentication.
_KEY_VALUE = re.compile(
    rf"""(?P<key>(?P<q>['"]?)\b[\w.-]*(?:{_KEY_WORDS})[\w.-]*\b(?P=q)|\bpass(?=\s*=)|\bpwd\b)"""
    r"""(?P<sep>\s*=\s*|(?<=['"])\s*:\s*)(?P<val>'[^']*'|"[^"]*"|[^\s&,;)'"\]}]+)""",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://[^\s/?#@:'\"]*):([^\s/?#'\"]*)@", re.IGNORECASE)
_HEADER = re.compile(
    r"""\b((?:Proxy-)?Authorization|(?:Set-)?Cookie|X-[\w-]*(?:Token|Api-?Key|Secret))(['"]?\s*[:=]\s*['"]?)"""
    r"""(?:(Basic|Bearer|NTLM|Negotiate|Digest)\s+)?[^'"\r\n]+""",
    re.IGNORECASE,
)
_BASIC = re.compile(r"\bBasic\s+([A-Za-z0-9+/]{4,}={0,2})")
_TOKEN = re.compile(r"\b(Bearer|NTLM|Negotiate)\s+[A-Za-z0-9._~+/-]{16,}=*")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{8,}={0,2}(?![A-Za-z0-9+/=])")
_PLAIN_WORD = re.compile(r"[A-Za-z]+(?:[-_.][A-Za-z]+)*|[0-9]+")
#: What any of the five rules above needs somewhere in a text to apply (a superset of each one's
#: words): most of what is logged, names, ids, numbers and times, is spared them.
_RULES_MAY_APPLY = re.compile(
    rf"{_KEY_WORDS}|\bpass\s*=|\bpwd\b|authorization|cookie|basic|bearer|ntlm|negotiate|://",
    re.IGNORECASE,
)

REDACTED = "[redacted]"

# Copy-on-write: pass threads register secrets they read while other threads scrub.
_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_everywhere: tuple[str, ...] = ()


def safe_everywhere(secret: str) -> bool:
    """Whether ``secret`` is unusual enough to replace wherever it appears (see the module's doc)."""
    return len(secret) >= 16 or (len(secret) >= 8 and not _PLAIN_WORD.fullmatch(secret))


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that no log line ever shows them."""
    global _secrets, _everywhere
    with _lock:
        known = _secrets | {v for v in values if v}
        if known == _secrets:
            return
        forms = {form for v in known if safe_everywhere(v) for form in (v, quote(v, safe=""), quote_plus(v))}
        # Longest first: a secret that contains another is replaced whole.
        _secrets, _everywhere = frozenset(known), tuple(sorted(forms, key=len, reverse=True))


def _base64_text(token: str) -> str | None:
    """The text ``token`` encodes, if it is base64 of printable text (an ordinary word seldom is)."""
    # Padding restored: a credential cut out of a URL or a header is often written without it.
    try:
        text = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if text.isprintable() else None


def _is_basic_credential(token: str) -> bool:
    decoded = _base64_text(token)
    return decoded is not None and decoded.find(":") > 0  # "user:password"


def _hides_a_secret(match: re.Match[str]) -> str:
    decoded = _base64_text(match.group(0))
    if decoded is not None and decoded.partition(":")[2] in _secrets:
        return REDACTED
    return match.group(0)


def _key_value(match: re.Match[str]) -> str:
    key = match.group("key").strip("'\"")
    if _NOT_SECRET_KEYS.search(key):
        return match.group(0)
    value = match.group("val")
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{match.group('sep')}{quote_char}{REDACTED}{quote_char}"


def _header(match: re.Match[str]) -> str:
    scheme = f"{match.group(3)} " if match.group(3) else ""
    return f"{match.group(1)}{match.group(2)}{scheme}{REDACTED}"


def scrub_text(text: str) -> str:
    """``text`` without the secrets it shows (see the module's doc); for anything syncd prints."""
    if _RULES_MAY_APPLY.search(text):
        text = _HEADER.sub(_header, text)
        text = _BASIC.sub(lambda m: f"Basic {REDACTED}" if _is_basic_credential(m.group(1)) else m.group(0), text)
        text = _TOKEN.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
        text = _KEY_VALUE.sub(_key_value, text)
    secrets, everywhere = _secrets, _everywhere
    if secrets:
        text = _BASE64.sub(_hides_a_secret, text)
    for secret in everywhere:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _is_secret_key(key: object) -> bool:
    return _secret_key_name(str(key))


@functools.lru_cache(maxsize=1024)
def _secret_key_name(name: str) -> bool:
    # An event's keys are a few dozen names, met on every line.
    return bool(_SECRET_KEYS.search(name)) and not _NOT_SECRET_KEYS.search(name)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
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


#: sd-daemon(3) priorities by logging level: SD_CRIT, SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def priority(levelno: int) -> int:
    return next((prio for floor, prio in _PRIORITIES if levelno >= floor), 7)


def on_journal(stream: Any) -> bool:
    """Whether ``stream`` is the journal: systemd puts ``device:inode`` of the stream it connects to
    a unit's standard error in ``$JOURNAL_STREAM`` (systemd.exec(5)). A stream redirected elsewhere
    by the unit's command line keeps the variable but not the device and inode."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class _Formatter(structlog.stdlib.ProcessorFormatter):
    def __init__(self, *args: Any, journal: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journal:
            return text
        # journald reads every line as an entry of its own: a console traceback's lines each need
        # the prefix, or they would land at the default priority, apart from their error.
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        # Plain, never rich's: the traceback is text already (format_exc_info below), and a renderer
        # of its own must not bring one back from an exception left in the event.
        else structlog.dev.ConsoleRenderer(colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback)
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
    formatter = _Formatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), *quiet],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # A traceback becomes text before the scrub, in every format: a rendered one (rich's,
            # with the frames' local variables) would print what the scrub never saw.
            structlog.processors.format_exc_info,
            scrub_secrets,
            renderer,
        ],
        journal=on_journal(stream),
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log request bodies and headers at debug; keep them one level quieter than syncd.
    for noisy in ("exchangelib", "urllib3", "requests_ntlm"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level.upper()), logging.INFO))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
