"""The configuration file: one TOML file, one typed schema (pydantic), errors that name the key.

Where the file is: ``--config PATH``, else ``$SYNCD_CONFIG``, else ``/etc/syncd/config.toml``. Secrets
are given inline, as ``*_file`` (systemd's ``LoadCredential=`` puts them in ``$CREDENTIALS_DIRECTORY``,
which may be written in the path) or as ``*_env``, each a :class:`pydantic.SecretStr` that never
prints. A ``*_file`` or ``*_env`` secret is read when a command talks to that remote, not when the
config is read: ``syncd status`` from an admin's shell, where ``$CREDENTIALS_DIRECTORY`` is not set,
needs none of them.

A relative SQLite path in ``[store] url`` is taken from the config file's folder, so a command run
from any directory finds the same store; the embedded default (no ``url`` written) stays in the
working directory, which the systemd unit sets to its state directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from syncd.errors import ConfigError
from syncd.mapping.options import MappingOptions
from syncd.model import SYNCED_KINDS, Kind

DEFAULT_PATH = Path("/etc/syncd/config.toml")
DEFAULT_STORE_URL = "sqlite:///syncd.sqlite3"
#: ``Config.source`` when no config file was found.
DEFAULTS_SOURCE = "defaults"


class _Section(BaseModel):
    # Built when first validated, not when the module is imported: a config is validated as a whole
    # (Config), so the sections' own validators and serializers were built at every start for nothing.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


#: ``$NAME`` or ``${NAME}`` left in a path after :func:`os.path.expandvars`: a variable that is not set.
_UNSET_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


class DeferredSecret(SecretStr):
    """A secret named by ``*_file`` or ``*_env``, read each time it is used.

    Reading it at use lets every command that never talks to the remote run where the secret is not
    readable, and a rotated credential file is picked up by the next pass. Each value read is
    handed to the log scrubber before anyone can print it."""

    def __init__(self, key: str, file: str | None, env: str | None) -> None:
        super().__init__("")
        self.key, self.file, self.env = key, file, env
        self.where = ""
        """Whose secret it is, e.g. ``binding 'anna': ``; set once the bindings are known."""

    def get_secret_value(self) -> str:
        value = _read_secret(self.where, self.key, self.file, self.env)
        from syncd import logging as log_setup

        log_setup.register_secrets([value])
        return value

    def _display(self) -> str:
        return "**********"

    def __len__(self) -> int:
        return len(self.get_secret_value())

    # Two configs are compared (a reload) without reading any secret: same source, same secret.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeferredSecret) and (self.file, self.env) == (other.file, other.env)

    def __hash__(self) -> int:
        return hash((self.file, self.env))


def _read_secret(where: str, key: str, file: str | None, env: str | None) -> str:
    if file:
        expanded = os.path.expandvars(file)
        if unset := _UNSET_VARIABLE.search(expanded):
            hint = (" (systemd sets it for the service, from LoadCredential=)"
                    if unset.group(1) == "CREDENTIALS_DIRECTORY" else "")
            raise ConfigError(f"{where}{key}_file {file!r} names ${unset.group(1)}, which is not set{hint}")
        try:
            return Path(expanded).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{where}{key}_file {expanded!r} cannot be read: {exc.strerror}") from None
    assert env
    if env not in os.environ:
        raise ConfigError(f"{where}{key}_env names the environment variable {env!r}, which is not set")
    return os.environ[env]


def _defer_secret(key: str, inline: SecretStr | None, file: str | None, env: str | None) -> SecretStr | None:
    given = [name for name, value in (("", inline), ("_file", file), ("_env", env)) if value]
    if len(given) > 1:
        raise ValueError(f"give only one of {key}, {key}_file, {key}_env")
    if file or env:
        return DeferredSecret(key, file, env)
    return inline


class _WithPassword(_Section):
    password: SecretStr | None = None
    password_file: str | None = None
    password_env: str | None = None

    @model_validator(mode="after")
    def _password(self) -> _WithPassword:
        deferred = _defer_secret("password", self.password, self.password_file, self.password_env)
        object.__setattr__(self, "password", deferred)
        return self

    @field_serializer("password", when_used="json")
    def _masked(self, value: SecretStr | None) -> str | None:
        # pydantic's own masking reads the value (to show "" for an empty one): a deferred secret
        # would be read, or fail, for a dump.
        return None if value is None else "**********"


class CalDavRemote(_WithPassword):
    type: Literal["caldav"]
    url: str
    """The calendar collection for events (and tasks, unless ``tasks_url`` is given)."""
    tasks_url: str | None = None
    username: str | None = None
    auth: Literal["auto", "basic", "digest"] = "auto"
    verify_tls: bool | str = True
    """``true`` (the system's CAs), ``false`` (never in production) or a CA bundle path."""
    timeout: float = Field(30.0, gt=0)
    max_backoff: float = Field(60.0, ge=0)
    """Seconds of the server's Retry-After (429, 503) a pass waits out in all before it fails."""
    full_check_interval: float = Field(24.0, ge=0)
    """Hours between full etag listings that check what the change feed reports; 0: every pass."""
    send_invitations: bool = False
    """Let a server with implicit scheduling (RFC 6638) mail the attendees; false: SCHEDULE-AGENT=CLIENT."""
    calendar: str | None = None
    """The events calendar by display name; ``url`` then names the server, principal or calendar home."""
    tasks_calendar: str | None = None
    """The task list by display name, found from ``url`` like ``calendar``."""

    @field_validator("url", "tasks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _named_calendars(self) -> CalDavRemote:
        if self.tasks_calendar and self.tasks_url:
            raise ValueError("give tasks_url or tasks_calendar, not both")
        return self


class ExchangeRemote(_WithPassword):
    type: Literal["exchange"]
    service_endpoint: str | None = None
    """The EWS URL, e.g. https://mail.example.com/EWS/Exchange.asmx; omit to use autodiscover."""
    autodiscover: bool = False
    username: str | None = None
    auth_type: Literal["ntlm", "basic", "oauth2"] = "ntlm"
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: str | None = None
    client_secret_env: str | None = None
    primary_smtp_address: str
    access_type: Literal["delegate", "impersonation"] = "delegate"
    version: str | None = None
    """Exchange build, e.g. "15.1" for Exchange 2016; omit to let syncd ask the server."""
    send_invitations: bool = False
    verify_tls: bool | str = True
    timeout: float = Field(30.0, gt=0)
    max_backoff: float = Field(60.0, ge=0)
    """How long a pass waits out Exchange throttling (ErrorServerBusy) before failing."""

    @field_serializer("client_secret", when_used="json")
    def _masked_client_secret(self, value: SecretStr | None) -> str | None:
        return None if value is None else "**********"

    @model_validator(mode="after")
    def _auth(self) -> ExchangeRemote:
        secret = _defer_secret("client_secret", self.client_secret, self.client_secret_file, self.client_secret_env)
        object.__setattr__(self, "client_secret", secret)
        if self.auth_type == "oauth2":
            missing = [k for k in ("client_id", "tenant_id") if not getattr(self, k)]
            if secret is None:
                missing.append("client_secret")
            if missing:
                raise ValueError(f"auth_type = \"oauth2\" needs {', '.join(missing)}")
        elif not self.username or self.password is None:
            raise ValueError(f'auth_type = "{self.auth_type}" needs username and password')
        if not self.service_endpoint and not self.autodiscover:
            raise ValueError("give service_endpoint, or set autodiscover = true")
        return self


class GraphRemote(_Section):
    """Exchange Online through Microsoft Graph, as an Entra app with application permissions."""

    type: Literal["graph"]
    tenant_id: str
    client_id: str
    client_secret: SecretStr | None = None
    client_secret_file: str | None = None
    client_secret_env: str | None = None
    certificate_path: str | None = None
    """A PEM (private key and certificate) or PFX file; instead of a client secret."""
    certificate_password: SecretStr | None = None
    certificate_password_file: str | None = None
    certificate_password_env: str | None = None
    user: str
    """The mailbox: a user principal name or an Entra object id."""
    calendar: str = "default"
    """``default`` (the primary calendar), or a calendar's name or id."""
    tasks: str | Literal[False] = "default"
    """``default`` (To Do's default list), a list's name or id, or ``false`` for no tasks."""
    send_invitations: bool = False
    authority_url: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    verify_tls: bool | str = True
    timeout: float = Field(30.0, gt=0)
    max_backoff: float = Field(60.0, ge=0)
    """How long a pass waits out Graph throttling (429/503 with Retry-After) before failing."""

    @field_serializer("client_secret", "certificate_password", when_used="json")
    def _masked_secret(self, value: SecretStr | None) -> str | None:
        return None if value is None else "**********"

    @field_validator("authority_url", "graph_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value.rstrip("/")

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks(cls, value: object) -> object:
        if value is True:
            return "default"
        return value

    @model_validator(mode="after")
    def _credential(self) -> GraphRemote:
        secret = _defer_secret("client_secret", self.client_secret, self.client_secret_file, self.client_secret_env)
        object.__setattr__(self, "client_secret", secret)
        password = _defer_secret(
            "certificate_password", self.certificate_password, self.certificate_password_file,
            self.certificate_password_env,
        )
        object.__setattr__(self, "certificate_password", password)
        if (secret is None) == (self.certificate_path is None):
            raise ValueError("give either client_secret (or client_secret_file / _env) or certificate_path")
        return self


Remote = Annotated[CalDavRemote | ExchangeRemote | GraphRemote, Field(discriminator="type")]

Direction = Literal["both", "crm-to-remote", "remote-to-crm"]
ConflictPolicy = Literal["crm-wins", "remote-wins", "newest-wins", "merge", "manual"]


class Binding(_Section):
    """One CRM user's activities joined to one calendar (and task list)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    owner: str
    """The CRM user's e-mail."""
    remote: Remote
    direction: Direction = "both"
    conflict: ConflictPolicy = "merge"
    merge_winner: Literal["crm", "remote"] = "crm"
    """With ``conflict = "merge"``: who wins a field that changed on both sides."""
    past_days: int = Field(30, ge=0)
    future_days: int = Field(365, ge=0)
    kinds: tuple[Kind, ...] = (Kind.APPOINTMENT, Kind.CALL, Kind.TASK)
    import_remote: Literal["all", "category", "none"] = "all"
    """Which items created in the calendar become CRM activities."""
    import_category: str | None = None
    on_remote_delete: Literal["delete", "cancel"] = "delete"
    """An open activity deleted in the calendar is deleted in the CRM, or set to ``cancel_status``."""
    cancel_status: str = "cancelled"
    on_remote_delete_completed: Literal["recreate", "unlink"] = "recreate"
    """A completed activity deleted in the calendar is put back there, or just no longer synced."""
    registered_statuses: tuple[str, ...] = ()
    """Statuses of a registered activity (a contact that happened): its times are the CRM's, and a
    calendar edit of them is reverted and reported (the date is editable only while planned)."""
    mass_delete_ratio: float = Field(0.5, gt=0, le=1)
    """Stop the pass when one side lost at least this share of the linked items at once ..."""
    mass_delete_min: int = Field(5, ge=1)
    """... and at least this many of them."""
    mass_delete_all: bool = True
    """Stop the pass when the calendar lost all of two or more synced items at once, however few: a
    wrong URL or account, or a server that stored every item under another name, looks like that."""
    interval: float | None = Field(None, gt=0)
    """Seconds between passes; defaults to ``[daemon] interval``."""
    enabled: bool = True

    @field_validator("owner")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("must be the CRM user's e-mail address")
        return value

    @field_validator("kinds")
    @classmethod
    def _synced_kinds(cls, value: tuple[Kind, ...]) -> tuple[Kind, ...]:
        unsynced = [k.value for k in value if k not in SYNCED_KINDS]
        if unsynced:
            raise ValueError(f"{', '.join(unsynced)} are never synced; use appointment, call, task")
        return value

    @model_validator(mode="after")
    def _import_category(self) -> Binding:
        if self.import_remote == "category" and not self.import_category:
            raise ValueError('import_remote = "category" needs import_category')
        return self


class StoreSection(_Section):
    url: str = DEFAULT_STORE_URL
    """SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db."""
    completed_statuses: tuple[str, ...] = ("done", "completed", "succeeded")
    """CRM statuses that make an activity completed (it can then never be deleted)."""
    change_log_days: int = Field(90, ge=1)
    """How long the change log keeps entries every binding has read (``syncd db prune``)."""


class DaemonSection(_Section):
    listen: str | None = "127.0.0.1:9465"
    """Address of /healthz and /metrics; empty to turn the listener off."""
    interval: float = Field(300, gt=0)
    jitter: float = Field(30, ge=0)
    max_backoff: float = Field(3600, gt=0)
    lease_ttl: float = Field(90, gt=0)
    stop_timeout: float = Field(30, gt=0)
    concurrency: int | None = Field(None, ge=1, le=256)
    """Passes of different bindings that run at once in one worker; default from the CPU count."""

    @property
    def passes_at_once(self) -> int:
        # A pass mostly waits on the calendar and the store: a few per core keep both busy without
        # one worker holding more database connections than a small PostgreSQL allows.
        return self.concurrency or min(32, 4 * (os.cpu_count() or 1))


class LoggingSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Config(_Section):
    store: StoreSection = Field(default_factory=StoreSection)
    daemon: DaemonSection = Field(default_factory=DaemonSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    mapping: MappingOptions = Field(default_factory=MappingOptions)
    bindings: tuple[Binding, ...] = ()
    source: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for binding in self.bindings:
            if binding.name in seen:
                raise ValueError(f"binding name {binding.name!r} is used twice")
            seen.add(binding.name)
            for attr in ("password", "client_secret", "certificate_password"):
                secret = getattr(binding.remote, attr, None)
                if isinstance(secret, DeferredSecret):
                    secret.where = f"binding {binding.name!r}: "
        return self

    @property
    def from_file(self) -> bool:
        """False when no config file was found and the embedded defaults apply."""
        return self.source != DEFAULTS_SOURCE

    def binding(self, name: str) -> Binding:
        for binding in self.bindings:
            if binding.name == name:
                return binding
        raise ConfigError(f"no binding named {name!r} in {self.source or 'the config'}")

    def secrets(self, read: bool = False) -> list[str]:
        """Every inline secret, so logging can scrub them from anything it prints (a secret from a
        file or the environment is handed to logging when it is read). With ``read``, also those of
        files and environment variables that can be read now; one that cannot is left to fail its
        binding when a pass needs it."""
        found = []
        for binding in self.bindings:
            for attr in ("password", "client_secret", "certificate_password"):
                value = getattr(binding.remote, attr, None)
                if value is None or (isinstance(value, DeferredSecret) and not read):
                    continue
                try:
                    secret = value.get_secret_value()
                except ConfigError:
                    continue
                if secret:
                    found.append(secret)
        return found


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source}: the configuration is not valid:"]
    for item in error.errors():
        parts = [str(p) for p in item["loc"] if not str(p).startswith(("function-after", "tagged-union"))]
        # A discriminated union puts the chosen type name in the path; it is not a key the user wrote
        # (dropped as a whole part: "graph" is also the start of the key graph_url).
        loc = ".".join(p for i, p in enumerate(parts)
                       if not (i and parts[i - 1] == "remote" and p in ("caldav", "exchange", "graph")))
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc or '(top level)'}: {message}")
    return "\n".join(lines)


def parse(data: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def find_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The config file to read, and whether the user named it (then it must exist)."""
    if explicit:
        return Path(explicit), True
    if os.environ.get("SYNCD_CONFIG"):
        return Path(os.environ["SYNCD_CONFIG"]), True
    return DEFAULT_PATH, False


def no_file_found() -> str:
    """What to tell a user whose command found no config file."""
    return (f"no config file found: tried {DEFAULT_PATH} (give --config PATH or set $SYNCD_CONFIG; "
            "config.example.toml shows every key)")


def _anchor_sqlite(url: str, folder: Path) -> str:
    """``url`` with a relative SQLite path made absolute against ``folder``; other URLs as given.
    (Plain string work: sqlalchemy is not imported to read a config.)"""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return url
    path, question, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith("file:") or os.path.isabs(path):
        return url
    return f"{scheme}:///{folder / path}{question}{query}"


def load(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config. Without a file anywhere, the embedded defaults apply."""
    path, named = find_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named:
            raise ConfigError(f"{path}: no such config file") from None
        config = parse({}, source=DEFAULTS_SOURCE)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        store = data.get("store")
        if isinstance(store, dict) and isinstance(store.get("url"), str):
            data = {**data, "store": {**store, "url": _anchor_sqlite(store["url"], path.resolve().parent)}}
        config = parse(data, source=str(path))
    override = os.environ.get("SYNCD_STORE_URL")
    if override:
        config = config.model_copy(update={"store": config.store.model_copy(update={"url": override})})
    return config
