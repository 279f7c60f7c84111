"""The ``syncd`` command. Heavy modules are imported inside the commands that use them, so that
``syncd --version`` and ``syncd --help`` start fast and a command loads only the connectors its
config names.

Every command exits with one of the codes below (README.md, "Exit codes"); a failure is one line on
standard error, never a traceback."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from syncd import __version__

if TYPE_CHECKING:
    from syncd.app import App
    from syncd.config import Binding, Config
    from syncd.connectors.caldav_early import EarlyReplies


#: Exit codes, documented in README.md: done (for `sync`: every pass ran and every item synced); a
#: pass failed as a whole (or was skipped, or stopped by a guard), a binding fails `check`, or a
#: command failed; a config or usage error (a restart does not cure it: the unit does not restart on
#: it); every pass ran but some items failed in them (recorded, retried, shown by `syncd status
#: --binding NAME`); the store cannot be reached, a temporary failure (EX_TEMPFAIL of sysexits.h:
#: the unit restarts on it).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ITEM_ERRORS, EXIT_STORE_UNREACHABLE = 0, 1, 2, 3, 75


class _Ctx:
    def __init__(self, config_path: str | None = None, level: str | None = None) -> None:
        self.config_path = config_path
        self.level = level
        """The log level -v (debug) or -q (warning) asked for; else the config's."""
        self._config: Config | None = None
        self._loaded: Config | None = None

    def loaded(self) -> Config:
        """The config as validated, before :attr:`config` sets up logging for it (which loads
        SQLAlchemy, to keep the store's password out of the logs): ``syncd sync`` sends its early
        requests from it."""
        if self._loaded is None:
            from syncd import config as config_module

            self._loaded = config_module.load(self.config_path)
        return self._loaded

    @property
    def config(self) -> Config:
        if self._config is None:
            from syncd import logging as log_setup

            config = self.loaded()
            level = self.level or config.logging.level
            log_setup.configure(level, config.logging.format)
            if level != "debug":
                # Alembic tells every migration step at INFO; `db upgrade` says what it did in one line.
                logging.getLogger("alembic").setLevel(logging.WARNING)
            log_setup.register_secrets([*config.secrets(), *_store_password(config.store.url)])
            self._config = config
        return self._config

    @property
    def store_url(self) -> str:
        return self._config.store.url if self._config is not None else ""

    def app(self, schema: bool = True, create: bool = True, early: EarlyReplies | None = None) -> App:
        """The app on the config; ``create=False`` for commands that must not start an empty
        SQLite store where none is (see :meth:`App.ensure_schema`)."""
        from syncd.app import App

        app = App(self.config, early=early)
        if schema:
            app.ensure_schema(create=create)
        return app


def _store_password(url: str) -> list[str]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except ArgumentError:
        return []
    return [str(password)] if password else []


pass_ctx = click.make_pass_decorator(_Ctx)


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    click.echo(f"syncd: {message}", err=True)
    sys.exit(code)


def _exit_code(exc: Exception) -> int:
    from syncd.errors import ConfigError

    # Only a command that loaded the store module can have met the store's errors; the check
    # does not import sqlalchemy for one that did not (`syncd --version` stays fast).
    if "syncd.store.db" in sys.modules:
        from syncd.store.db import StoreUnreachable

        if isinstance(exc, StoreUnreachable):
            return EXIT_STORE_UNREACHABLE
    return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED


class _Group(click.Group):
    """Turns syncd's own errors, and the store's, into one clear line and an exit code."""

    whole_process = False
    """Whether the command runs as its own process, which ends with it (not called by other Python code)."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **kwargs: Any) -> Any:
        # Its command line is the process's own (sys.argv), and standalone, click exits at the end.
        self.whole_process = args is None and not rest and kwargs.get("standalone_mode", True)
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        from syncd.errors import SyncdError

        try:
            return super().invoke(ctx)
        except SyncdError as exc:
            _fail(str(exc), _exit_code(exc))
        except Exception as exc:
            if "sqlalchemy" not in sys.modules:
                raise
            from sqlalchemy.exc import SQLAlchemyError

            if not isinstance(exc, SQLAlchemyError):
                raise
            from syncd.store.db import store_error

            obj = ctx.find_object(_Ctx)
            error = store_error(exc, obj.store_url if obj is not None else "")
            _fail(str(error), _exit_code(error))


_CONFIG_HELP = "Config file (default: $SYNCD_CONFIG, else /etc/syncd/config.toml)."


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(_Ctx).config_path = value


def _set_level(level: str) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value:
            return
        obj = ctx.ensure_object(_Ctx)
        if obj.level not in (None, level):
            raise click.UsageError("give -v or -q, not both")
        obj.level = level

    return callback


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    """--config, -v and -q, taken after the command's name too: `syncd status --config PATH -v`."""
    command = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_level("warning"),
                           help="Log warnings and errors only; no progress lines.")(command)
    command = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_level("debug"),
                           help="Log at debug level (also each schema migration step).")(command)
    return click.option("--config", type=click.Path(dir_okay=False), expose_value=False, callback=_set_config,
                        help=_CONFIG_HELP)(command)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncd")
@_common
@click.pass_context
def main(ctx: click.Context) -> None:
    """syncd keeps CRM activities and calendars (CalDAV, Exchange) in step.

    Exit codes: 0 done, 1 failed (a pass, a check, a command), 2 config or usage error, 3 sync ran
    with item errors, 75 the store cannot be reached (temporary)."""
    _without_rich()
    if getattr(ctx.command, "whole_process", False):
        _without_pydantic_plugins()
    ctx.ensure_object(_Ctx)


@contextmanager
def _collector_after_start() -> Iterator[Callable[[], None]]:
    """The cyclic garbage collector off while a command starts, until it calls the function given.

    Start-up creates a few hundred thousand objects that live as long as the process (modules,
    classes, SQLAlchemy's mappers, pydantic's validators). The collector went over them some 190
    times while they were made, and again in each of the full collections of the interpreter's
    shutdown: together about a third of the CPU time of a no-change ``syncd sync``. Once
    everything is loaded they are frozen out of its reach (``gc.freeze``) and it runs as usual on
    what the passes make; they stay frozen to the process's end. A command run in another
    program's process (tests, embedders) gives it back its collector as it found it."""
    was_on = gc.isenabled()
    gc.disable()

    def started() -> None:
        gc.freeze()
        if was_on:
            gc.enable()

    try:
        yield started
    finally:
        if not getattr(click.get_current_context().find_root().command, "whole_process", False):
            gc.unfreeze()
        if was_on:
            gc.enable()


def _without_rich() -> None:
    """Keeps rich out of the process. structlog imports it, when it is installed, to offer its
    tracebacks, which syncd never uses: a traceback becomes plain text before the secrets are
    scrubbed from it (:mod:`syncd.logging`). With pygments and attrs, which it brings, it was 80 of
    the 950 modules a ``syncd sync`` imported, about 5 % of its CPU time. None in ``sys.modules`` is
    the import system's switch for "not installed", which structlog handles; a process that
    imported rich already keeps it."""
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]


def _without_pydantic_plugins() -> None:
    """Spares the process pydantic's search for plugins: at its first model it reads the entry
    points of every installed distribution (about 8 ms of a no-change ``syncd sync``, some 1 % of
    its CPU) for plugins that would watch syncd validate its own config. Set only for a process of
    its own (it is inherited by the processes it starts, syncd's parse workers), and never over a
    value the user gave (pydantic's documented switch)."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def _no_bindings(config: Config) -> str:
    """Why there is nothing to sync."""
    from syncd.config import no_file_found

    if not config.from_file:
        return no_file_found()
    if config.bindings:
        return f"every binding in {config.source} is disabled (enabled = false)"
    return f"no bindings in {config.source}: add a [[bindings]] table (see config.example.toml)"


def _selected(config: Config, names: tuple[str, ...]) -> list[Binding]:
    """The named bindings, or all of them; a usage error when there is none to act on."""
    if not config.from_file:
        _fail(_no_bindings(config), EXIT_USAGE)
    bindings = [config.binding(n) for n in names] if names else list(config.bindings)
    if not bindings:
        _fail(_no_bindings(config), EXIT_USAGE)
    return bindings


# -- db --------------------------------------------------------------------------------------------


@main.group()
@_common
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@_common
@pass_ctx
def db_upgrade(obj: _Ctx) -> None:
    """Create the store or bring its schema up to date (safe to run again; -v shows each step)."""
    from syncd.store.db import make_engine, safe_url, schema_revision, upgrade

    url = obj.config.store.url
    engine = make_engine(url)
    try:
        before = schema_revision(engine)
        upgrade(url)
        after = schema_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"store {safe_url(url)}: at schema revision {after}, up to date")
    else:
        click.echo(f"store {safe_url(url)}: upgraded from schema revision {before or 'none (a new store)'} to {after}")


@db.command("prune")
@_common
@pass_ctx
def db_prune(obj: _Ctx) -> None:
    """Drop change-log entries every binding has read (older than [store] change_log_days) and old passes."""
    from syncd.engine.housekeeping import (
        PASS_HISTORY_DAYS,
        prune_change_log,
        prune_passes,
    )

    app = obj.app(create=False)
    with app.session() as session:
        pruned = prune_change_log(session, [b.name for b in app.config.bindings], app.config.store.change_log_days)
        passes = prune_passes(session)
    click.echo(f"change log: {pruned} entries pruned; {passes} passes older than {PASS_HISTORY_DAYS} days dropped")


# -- users -----------------------------------------------------------------------------------------


@main.group()
@_common
def users() -> None:
    """CRM users (the people whose calendars are synced)."""


def _timezone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from syncd.mapping.timezones import is_iana

    # The name the mapping will look up for every floating time of this user: refused now, not at a pass.
    if not is_iana(value):
        raise click.BadParameter(f"{value!r} is not an IANA time zone name, e.g. Europe/Amsterdam or America/New_York")
    return value


@users.command("add")
@click.argument("email")
@click.option("--name", help="Display name.")
@click.option("--timezone", "tz", callback=_timezone, help="IANA time zone, e.g. Europe/Amsterdam.")
@_common
@pass_ctx
def users_add(obj: _Ctx, email: str, name: str | None, tz: str | None) -> None:
    """Add a CRM user, or update an existing user's name and time zone (an option not given is kept)."""
    from sqlalchemy import func, literal, select

    from syncd.model import CrmUser
    from syncd.store import repository
    from syncd.store.models import UserRow

    if "@" not in email:
        raise click.BadParameter(f"{email!r} is not an e-mail address", param_hint="EMAIL")
    app = obj.app()
    with app.session() as session:
        # Matched as the repository matches e-mails: lower() on both sides, in the database.
        row = session.scalar(select(UserRow).where(func.lower(UserRow.email) == func.lower(literal(email))))
        if row is None:
            repository.add_user(session, CrmUser(email, name, tz))
            done = "added"
        else:
            row.name = name if name is not None else row.name
            row.timezone = tz if tz is not None else row.timezone
            done, email = "updated", row.email
        session.commit()
    click.echo(f"user {email} {done}")


@users.command("list")
@_common
@pass_ctx
def users_list(obj: _Ctx) -> None:
    """List CRM users."""
    from syncd.store import repository

    app = obj.app(create=False)
    with app.session() as session:
        for user in repository.list_users(session):
            click.echo(f"{user.email}\t{user.name or ''}\t{user.timezone or ''}")


# -- activities ------------------------------------------------------------------------------------


@main.group()
@_common
def activities() -> None:
    """Import and export activities as JSON Lines (one activity per line)."""


@activities.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@_common
@pass_ctx
def activities_import(obj: _Ctx, file: Any) -> None:
    """Upsert the activities in FILE by id. One bad line rejects the whole file."""
    from syncd.store.importer import import_jsonl

    text = file.read()
    app = obj.app()
    with app.session() as session:
        result = import_jsonl(session, text)
    total = len(result.created) + len(result.updated) + len(result.unchanged)
    click.echo(
        f"imported {total} activities: {len(result.created)} new, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged; {len(result.users_created)} users and "
        f"{len(result.contacts_created)} contacts created"
    )


@activities.command("export")
@_common
@pass_ctx
def activities_export(obj: _Ctx) -> None:
    """Write every activity to standard output, ordered by id."""
    from syncd.store.importer import export_activities

    app = obj.app(create=False)
    with app.session() as session:
        export_activities(session, sys.stdout)


# -- sync ------------------------------------------------------------------------------------------


def _summary(report: Any) -> str:
    c = report.counts
    head = f"{report.binding}: {'ok with item errors' if report.partial else report.result}"
    body = (
        f"to calendar {c['remote_created']} created, {c['remote_updated']} updated, {c['remote_deleted']} deleted; "
        f"to CRM {c['crm_created']} created, {c['crm_updated']} updated, {c['crm_deleted']} deleted; "
        f"{c['conflicts']} conflicts, {c['errors']} errors"
    )
    if c["reverted"]:
        body += f"; {c['reverted']} calendar edits of a registered activity's times reverted"
    tail = f" ({report.seconds:.2f}s)"
    line = f"{head}: {body}{tail}"
    if report.error:
        line += f"\n  error: {report.error}"
    for error in report.errors[:20]:
        line += f"\n  item: {error}"
    if len(report.errors) > 20:
        line += f"\n  ... and {len(report.errors) - 20} more (see `syncd status --binding {report.binding}`)"
    return line


def _report_json(report: Any, dry_run: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "binding": report.binding,
        "pass_id": report.pass_id,
        "result": report.result,
        "item_errors": report.partial,
        "counts": dict(sorted(report.counts.items())),
        "errors": list(report.errors),
        "items_in_error": report.items_in_error,
        "error": report.error,
        "seconds": round(report.seconds, 3),
    }
    if dry_run:
        row["plan"] = list(report.plan)
    return row


#: A plan this large gets progress output (a first sync of a full calendar takes a while).
PROGRESS_FROM = 50


@contextmanager
def _progress(name: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal; otherwise a plain line at every tenth of a large plan."""
    if not sys.stdout.isatty():
        def plain(done: int, total: int) -> None:
            if total >= PROGRESS_FROM and (done == total or done % max(1, total // 10) == 0):
                click.echo(f"{name}: {done}/{total} actions")

        yield plain
        return
    from contextlib import ExitStack

    with ExitStack() as stack:
        bar: Any = None

        def bar_progress(done: int, total: int) -> None:
            nonlocal bar
            if total < PROGRESS_FROM:
                return
            if bar is None:
                # click's bar needs its length up front; the plan's size is known at the first call.
                bar = stack.enter_context(click.progressbar(length=total, label=name))
            bar.update(max(0, done - bar.pos))

        yield bar_progress


@main.command()
@click.option("--binding", "names", multiple=True, help="Only this binding (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what a pass would do, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: one report per binding.")
@_common
@pass_ctx
def sync(obj: _Ctx, names: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Run one pass of every enabled binding (or the named ones) and print a summary.

    Exit code 0: every pass ran and every item synced; 3: some items failed; 1: a pass failed."""
    with _collector_after_start() as started:
        early = _early_requests(obj.loaded(), names)
        config = obj.config
        if not config.from_file:
            _fail(_no_bindings(config), EXIT_USAGE)
        app = obj.app(schema=False, early=early)
        bindings = app.bindings(names)
        if not bindings:
            _fail(_no_bindings(config), EXIT_USAGE)
        app.ensure_schema()
        app.load_pass_code(bindings)
        started()
        _sync(obj, app, bindings, dry_run, as_json)


def _early_requests(config: Config, names: tuple[str, ...]) -> EarlyReplies | None:
    """The first requests of the CalDAV passes to come, sent now, before logging, the store's and the
    passes' code are loaded, so that the server answers while this process starts (see
    :mod:`syncd.connectors.caldav_early`); ``None`` when no binding to run is a CalDAV one."""
    from syncd.errors import ConfigError

    try:
        # The bindings App.bindings picks, without the app (its module loads SQLAlchemy).
        bindings = [config.binding(n) for n in names] if names else [b for b in config.bindings if b.enabled]
    except ConfigError:
        return None  # the app says which name is unknown
    if not any(b.remote.type == "caldav" for b in bindings):
        return None
    from syncd.connectors.caldav_early import send_early
    from syncd.store.peek import saved

    # Only the binding run first may get an early first pull: asked about alone.
    return send_early(bindings, saved(config.store.url, asked=[bindings[0].name]))


def _sync(obj: _Ctx, app: App, bindings: list[Binding], dry_run: bool, as_json: bool) -> None:
    from syncd.service.leases import holding, worker_id

    failed = partial = False
    reports: list[dict[str, Any]] = []
    for binding in bindings:
        # The binding's lease, as a daemon worker would take it: never two passes of one binding at once.
        with holding(app.engine, worker_id(), binding.name, app.config.daemon.lease_ttl) as held:
            if not held:
                why = "a running syncd worker is syncing it (see `syncd status`)"
                if as_json:
                    reports.append({"binding": binding.name, "result": "skipped", "error": why})
                else:
                    click.echo(f"{binding.name}: skipped: {why}")
                failed = True
                continue
            if as_json or obj.level == "warning":
                report = app.run_pass(binding, dry_run=dry_run)
            else:
                with _progress(binding.name) as progress:
                    report = app.run_pass(binding, dry_run=dry_run, progress=progress)
        failed |= report.failed
        partial |= report.partial
        if as_json:
            reports.append(_report_json(report, dry_run))
        elif dry_run:
            click.echo(f"{binding.name}: plan of {len(report.plan)} actions")
            for line in report.plan:
                click.echo(f"  {line}")
            if report.error:
                click.echo(f"  error: {report.error}")
        else:
            click.echo(_summary(report))
    if as_json:
        click.echo(json.dumps(reports, indent=2, default=str))
    sys.exit(EXIT_FAILED if failed else EXIT_ITEM_ERRORS if partial else EXIT_OK)


@main.command()
@_common
@pass_ctx
def run(obj: _Ctx) -> None:
    """Run as a service: every binding on its schedule, /healthz and /metrics, systemd notify.

    SIGHUP reloads the config; SIGTERM stops after the passes under way. Several `syncd run` on one
    PostgreSQL store share the bindings. A store that cannot be reached at start exits 75, which
    the systemd unit restarts on."""
    config = obj.config
    if not config.bindings:
        # An idle daemon with nothing to do looks healthy to every check; say why it will not start.
        _fail(_no_bindings(config), EXIT_USAGE)
    from syncd.service.daemon import serve

    sys.exit(serve(config, obj.config_path))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--binding", "name", help="Only this binding, with every item in error and why.")
@_common
@pass_ctx
def status(obj: _Ctx, as_json: bool, name: str | None) -> None:
    """Each binding: last pass, result, counts, pending conflicts, items in error, and why it fails."""
    from syncd.engine.status import binding_status

    config = obj.config
    if not config.from_file:
        _fail(_no_bindings(config), EXIT_USAGE)
    bindings = [config.binding(name)] if name else config.bindings
    app = obj.app(create=False)
    with app.session() as session:
        rows = [binding_status(session, b, all_errors=bool(name)) for b in bindings]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo(f"no bindings configured in {config.source}")
    for row in rows:
        state = row["state"]
        click.echo(
            f"{row['name']}: {state}; last pass {row['last_pass_at'] or 'never'}"
            f" ({row['last_result'] or '-'}); last success {row['last_success_at'] or 'never'};"
            f" {row['links']} linked items; {row['pending_conflicts']} pending conflicts;"
            f" {row['item_errors']} items in error"
        )
        counts = ", ".join(f"{k} {v}" for k, v in sorted(row["last_counts"].items()) if v)
        if counts:
            click.echo(f"  last pass: {counts}")
        if row["lease_owner"]:
            click.echo(f"  held by worker {row['lease_owner']} (lease until {row['lease_expires']:%H:%M:%S})")
        if row["last_error"]:
            failures = row["consecutive_failures"]
            click.echo(
                f"  why: {row['last_error']} ({failures} failed passes in a row, the last by {row['last_worker']})"
            )
        for error in row["errors"]:
            click.echo(
                f"  item {error['item']}: {error['message']} (failed {error['failures']} passes in a row"
                f" since {error['first_at']:%Y-%m-%d %H:%M}; next try {error['next_try']:%Y-%m-%d %H:%M} UTC"
                " or when either side changes it)"
            )
        if not name and row["item_errors"]:
            click.echo(f"  items in error: see `syncd status --binding {row['name']}`")


# -- conflicts -------------------------------------------------------------------------------------


@main.group()
@_common
def conflicts() -> None:
    """Conflicts kept for a decision (bindings with conflict = "manual") and how others were settled."""


@conflicts.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also conflicts already settled.")
@_common
@pass_ctx
def conflicts_list(obj: _Ctx, show_all: bool) -> None:
    """Pending conflicts (with --all, settled ones too), each with both versions of the fields."""
    from syncd.engine.status import list_conflicts

    app = obj.app(create=False)
    with app.session() as session:
        rows = list_conflicts(session, pending_only=not show_all)
    if not rows:
        click.echo("no conflicts" if show_all else "no pending conflicts")
    for row in rows:
        click.echo(
            f"#{row['id']} {row['binding']} activity {row['activity_id']}: fields {', '.join(row['fields']) or '-'}; "
            f"{row['resolution']} ({row['detected_at']:%Y-%m-%d %H:%M})"
        )
        for name in row["fields"]:
            click.echo(f"    {name}: CRM {row['crm'].get(name)!r} / calendar {row['remote'].get(name)!r}")


@conflicts.command("resolve")
@click.argument("conflict_id", type=int)
@click.option("--keep", type=click.Choice(["crm", "remote"]), required=True, help="Which version wins.")
@_common
@pass_ctx
def conflicts_resolve(obj: _Ctx, conflict_id: int, keep: str) -> None:
    """Settle a pending conflict; the next pass writes the kept version to the other side."""
    from syncd.engine.status import resolve_conflict

    app = obj.app(create=False)
    with app.session() as session:
        binding = resolve_conflict(session, conflict_id, keep)
    click.echo(f"conflict #{conflict_id} settled: keep {keep}; the next pass of {binding} applies it")


@main.command()
@click.option("--binding", "name", required=True, help="The binding to start over.")
@_common
@pass_ctx
def forget(obj: _Ctx, name: str) -> None:
    """Forget what a binding synced (links, cursors, item errors, pending conflicts), as after its
    calendar was changed: the next pass starts over, pairing by content what both sides hold.
    Neither the CRM nor any calendar is changed."""
    from syncd.engine.status import forget_binding

    app = obj.app(create=False)
    binding = app.config.binding(name)
    with app.session() as session:
        links = forget_binding(session, binding.name)
    click.echo(f"{binding.name}: forgot {links} links; the next pass starts over with {binding.remote.type} "
               "calendar as configured")


@main.command()
@click.option("--binding", "names", multiple=True, help="Only this binding (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_common
@pass_ctx
def check(obj: _Ctx, names: tuple[str, ...], as_json: bool) -> None:
    """Validate the config, reach the store, and test every binding's connection and permissions.

    Exit code 0: all good; 1: a binding fails; 2: config error; 75: the store cannot be reached."""
    from syncd.errors import SyncdError
    from syncd.store.db import SCHEMA_HEAD, safe_url

    config = obj.config
    bindings = _selected(config, names)
    app = obj.app(create=False)
    results: list[dict[str, Any]] = []
    for binding in bindings:
        with app.session() as session:
            try:
                connector = app.connector(binding, app.context(session, binding))
                try:
                    problems = connector.check()
                finally:
                    connector.close()
            except SyncdError as exc:
                problems = [str(exc)]
        results.append({"binding": binding.name, "enabled": binding.enabled, "ok": not problems,
                        "problems": list(problems)})
    failing = [r for r in results if not r["ok"]]
    if as_json:
        click.echo(json.dumps({
            "config": config.source,
            "store": {"url": safe_url(config.store.url), "schema_revision": SCHEMA_HEAD},
            "bindings": results,
            "ok": not failing,
        }, indent=2))
    else:
        click.echo(f"config {config.source}: ok, {len(config.bindings)} bindings")
        click.echo(f"store {safe_url(config.store.url)}: ok, schema revision {SCHEMA_HEAD}")
        for row in results:
            state = "ok" if row["ok"] else "FAILING: " + "; ".join(row["problems"])
            click.echo(f"{row['binding']}: {state}" + ("" if row["enabled"] else " (disabled)"))
        click.echo(f"{len(failing)} of {len(results)} bindings fail" if failing else f"all {len(results)} bindings ok")
    sys.exit(EXIT_FAILED if failing else EXIT_OK)


@main.command()
@click.option("--url", required=True, help="A CalDAV server, principal or calendar-home URL.")
@click.option("--username", help="The account to log in as.")
@click.option("--password-env", "password_env", metavar="VAR", help="Environment variable holding the password.")
@click.option("--verify-tls", "verify_tls", default="true", metavar="true|false|CA.pem",
              help="Check the server's certificate (default), don't, or against this CA bundle.")
def discover(url: str, username: str | None, password_env: str | None, verify_tls: str) -> None:
    """Find the calendars and task lists at URL (RFC 6764) and print them as TOML for the config."""
    import os

    from syncd import logging as log_setup
    from syncd.connectors.caldav_discovery import as_toml
    from syncd.connectors.caldav_discovery import discover as find_calendars
    from syncd.connectors.caldav_transport import DavTransport
    from syncd.errors import ConfigError

    password = None
    if password_env:
        if password_env not in os.environ:
            raise ConfigError(f"--password-env names the environment variable {password_env!r}, which is not set")
        password = os.environ[password_env]
        log_setup.register_secrets([password])
    verify: bool | str = {"true": True, "false": False}.get(verify_tls.casefold(), verify_tls)
    transport = DavTransport(url, username=username, password=password, verify_tls=verify)
    try:
        found = find_calendars(transport, url)
    finally:
        transport.close()
    click.echo(as_toml(found, username=username, password_env=password_env), nl=False)
    if not found.calendars:
        sys.exit(EXIT_FAILED)


@main.command()
@click.option("--keep", is_flag=True, help="Keep the demo server running until Ctrl-C.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False), help="Where to keep the demo files.")
def demo(keep: bool, workdir: str | None) -> None:
    """Sync sample activities with a throw-away CalDAV server on 127.0.0.1, both ways."""
    from syncd.demo import run_demo

    sys.exit(run_demo(keep=keep, workdir=workdir))


if __name__ == "__main__":
    main()
