"""The ``syncd`` command. Heavy modules are imported inside the commands that use them, so that
``syncd --version`` and ``syncd --help`` start fast and a command loads only the connectors its
config names."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from syncd import __version__

if TYPE_CHECKING:
    from syncd.app import App
    from syncd.config import Config


class _Ctx:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from syncd import config as config_module
            from syncd import logging as log_setup

            self._config = config_module.load(self.config_path)
            log_setup.configure(self._config.logging.level, self._config.logging.format)
            log_setup.register_secrets(self._config.secrets())
        return self._config

    def app(self, schema: bool = True) -> App:
        from syncd.app import App

        app = App(self.config)
        if schema:
            app.ensure_schema()
        return app


pass_ctx = click.make_pass_decorator(_Ctx)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"syncd: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns syncd's own errors into one clear line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from syncd.errors import ConfigError, SyncdError

        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(str(exc), 2)
        except SyncdError as exc:
            _fail(str(exc))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncd")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $SYNCD_CONFIG, else /etc/syncd/config.toml).",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """syncd keeps CRM activities and calendars (CalDAV, Exchange) in step."""
    ctx.obj = _Ctx(config_path)


# -- db --------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(obj: _Ctx) -> None:
    """Create the store or bring its schema up to date (safe to run again)."""
    from syncd.store.db import current_revision, upgrade

    url = obj.config.store.url
    upgrade(url)
    click.echo(f"store at schema revision {current_revision(url)}")


@db.command("prune")
@pass_ctx
def db_prune(obj: _Ctx) -> None:
    """Drop change-log entries every binding has read (older than [store] change_log_days) and old passes."""
    from syncd.engine.housekeeping import (
        PASS_HISTORY_DAYS,
        prune_change_log,
        prune_passes,
    )

    app = obj.app()
    with app.session() as session:
        pruned = prune_change_log(session, [b.name for b in app.config.bindings], app.config.store.change_log_days)
        passes = prune_passes(session)
    click.echo(f"change log: {pruned} entries pruned; {passes} passes older than {PASS_HISTORY_DAYS} days dropped")


# -- users -----------------------------------------------------------------------------------------


@main.group()
def users() -> None:
    """CRM users (the people whose calendars are synced)."""


@users.command("add")
@click.argument("email")
@click.option("--name", help="Display name.")
@click.option("--timezone", "tz", help="IANA time zone, e.g. Europe/Amsterdam.")
@pass_ctx
def users_add(obj: _Ctx, email: str, name: str | None, tz: str | None) -> None:
    """Add a CRM user, or update their name and time zone."""
    from syncd.model import CrmUser
    from syncd.store import repository

    app = obj.app()
    with app.session() as session:
        repository.add_user(session, CrmUser(email, name, tz))
        session.commit()
    click.echo(f"user {email} saved")


@users.command("list")
@pass_ctx
def users_list(obj: _Ctx) -> None:
    """List CRM users."""
    from syncd.store import repository

    app = obj.app()
    with app.session() as session:
        for user in repository.list_users(session):
            click.echo(f"{user.email}\t{user.name or ''}\t{user.timezone or ''}")


# -- activities ------------------------------------------------------------------------------------


@main.group()
def activities() -> None:
    """Import and export activities as JSON Lines (one activity per line)."""


@activities.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
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
@pass_ctx
def activities_export(obj: _Ctx) -> None:
    """Write every activity to standard output, ordered by id."""
    from syncd.store.importer import export_activities

    app = obj.app()
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
    tail = f" ({report.seconds:.2f}s)"
    line = f"{head}: {body}{tail}"
    if report.error:
        line += f"\n  error: {report.error}"
    for error in report.errors[:20]:
        line += f"\n  item: {error}"
    if len(report.errors) > 20:
        line += f"\n  ... and {len(report.errors) - 20} more (see `syncd status --binding {report.binding}`)"
    return line


#: `syncd sync` exit codes, documented in README.md: every pass ran and every item synced; a pass
#: failed as a whole (or was skipped, or stopped by a guard); a config or usage error; every pass ran
#: but some items failed in them (recorded, retried, shown by `syncd status --binding NAME`).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ITEM_ERRORS = 0, 1, 2, 3


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
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = None

        def rich_progress(done: int, total: int) -> None:
            nonlocal task
            if total < PROGRESS_FROM:
                return
            if task is None:
                task = bar.add_task(name, total=total)
            bar.update(task, completed=done)

        yield rich_progress


@main.command()
@click.option("--binding", "names", multiple=True, help="Only this binding (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what a pass would do, change nothing.")
@pass_ctx
def sync(obj: _Ctx, names: tuple[str, ...], dry_run: bool) -> None:
    """Run one pass of every binding (or the named ones) and print a summary."""
    app = obj.app()
    bindings = app.bindings(names)
    if not bindings:
        _fail("no bindings in the config: add a [[bindings]] table (see config.example.toml)", 2)
    from syncd.service.leases import holding, worker_id

    failed = partial = False
    for binding in bindings:
        # The binding's lease, as a daemon worker would take it: never two passes of one binding at once.
        with holding(app.engine, worker_id(), binding.name, app.config.daemon.lease_ttl) as held:
            if not held:
                click.echo(f"{binding.name}: skipped: a running syncd worker is syncing it (see `syncd status`)")
                failed = True
                continue
            with _progress(binding.name) as progress:
                report = app.run_pass(binding, dry_run=dry_run, progress=progress)
        failed |= report.failed
        partial |= report.partial
        if dry_run:
            click.echo(f"{binding.name}: plan of {len(report.plan)} actions")
            for line in report.plan:
                click.echo(f"  {line}")
            if report.error:
                click.echo(f"  error: {report.error}")
        else:
            click.echo(_summary(report))
    sys.exit(EXIT_FAILED if failed else EXIT_ITEM_ERRORS if partial else EXIT_OK)


@main.command()
@pass_ctx
def run(obj: _Ctx) -> None:
    """Run as a service: every binding on its schedule, /healthz and /metrics, systemd notify.

    SIGHUP reloads the config; SIGTERM stops after the passes under way. Several `syncd run` on one
    PostgreSQL store share the bindings."""
    from syncd.service.daemon import serve

    sys.exit(serve(obj.config, obj.config_path))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--binding", "name", help="Only this binding, with every item in error and why.")
@pass_ctx
def status(obj: _Ctx, as_json: bool, name: str | None) -> None:
    """Each binding: last pass, result, counts, pending conflicts, items in error, and why it fails."""
    from syncd.engine.status import binding_status

    app = obj.app()
    bindings = [app.config.binding(name)] if name else app.config.bindings
    with app.session() as session:
        rows = [binding_status(session, b, all_errors=bool(name)) for b in bindings]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no bindings configured")
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
            click.echo(f"  why: {row['last_error']} ({failures} failed passes in a row, the last by {row['last_worker']})")
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
def conflicts() -> None:
    """Conflicts kept for a decision (bindings with conflict = "manual") and how others were settled."""


@conflicts.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also conflicts already settled.")
@pass_ctx
def conflicts_list(obj: _Ctx, show_all: bool) -> None:
    from syncd.engine.status import list_conflicts

    app = obj.app()
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
@pass_ctx
def conflicts_resolve(obj: _Ctx, conflict_id: int, keep: str) -> None:
    """Settle a pending conflict; the next pass writes the kept version to the other side."""
    from syncd.engine.status import resolve_conflict

    app = obj.app()
    with app.session() as session:
        binding = resolve_conflict(session, conflict_id, keep)
    click.echo(f"conflict #{conflict_id} settled: keep {keep}; the next pass of {binding} applies it")


@main.command()
@pass_ctx
def check(obj: _Ctx) -> None:
    """Validate the config and test every binding's connection and permissions."""
    app = obj.app()
    bad = False
    for binding in app.config.bindings:
        with app.session() as session:
            from syncd.errors import SyncdError

            try:
                connector = app.connector(binding, app.context(session, binding))
                try:
                    problems = connector.check()
                finally:
                    connector.close()
            except SyncdError as exc:
                problems = [str(exc)]
        bad |= bool(problems)
        click.echo(f"{binding.name}: " + ("ok" if not problems else "FAILING: " + "; ".join(problems)))
    click.echo(f"config ok: {len(app.config.bindings)} bindings" if not bad else "some bindings fail")
    sys.exit(1 if bad else 0)


@main.command()
@click.option("--keep", is_flag=True, help="Keep the demo server running until Ctrl-C.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False), help="Where to keep the demo files.")
def demo(keep: bool, workdir: str | None) -> None:
    """Sync sample activities with a throw-away CalDAV server on 127.0.0.1, both ways."""
    from syncd.demo import run_demo

    sys.exit(run_demo(keep=keep, workdir=workdir))


if __name__ == "__main__":
    main()
