"""A whole ``syncd sync`` process with nothing to do loads no code for work it does not do: no
iCalendar parser (nothing is read or written), no PostgreSQL dialect (the store is SQLite), no
schema migrator (the store is at the head revision). When something did change, the same process
loads them and syncs it."""

from __future__ import annotations

import gc

from click.testing import CliRunner
from sync_process import sync_process
from world import World, meeting, uid

from syncd.cli import main

#: What a no-change CalDAV pass on a SQLite store at the head revision must not import.
NOT_NEEDED = ("icalendar", "dateutil.rrule", "syncd.mapping.ical", "sqlalchemy.dialects.postgresql", "alembic",
              "difflib")


def test_a_no_change_pass_loads_no_parser_dialect_or_migrator_and_a_change_still_syncs(world: World) -> None:
    phone = world.bind()
    world.save(meeting("n1", "Kick-off"), meeting("n2", "Review", days=4))
    assert world.sync().counts["remote_created"] == 2

    summary, loaded = sync_process(world, NOT_NEEDED)
    assert "anna: ok: to calendar 0 created, 0 updated, 0 deleted; to CRM 0 created, 0 updated, 0 deleted" in summary
    assert loaded == []

    # A phone's edit: the process reads the item, so it loads the parser, and the CRM gets the edit.
    phone.edit(uid("n2"), summary="Review (moved)")
    summary, loaded = sync_process(world, NOT_NEEDED)
    assert "to CRM 0 created, 1 updated" in summary
    assert "icalendar" in loaded
    assert world.get("n2").subject == "Review (moved)"


def test_sync_run_in_process_leaves_the_callers_garbage_collector_as_it_was(world: World) -> None:
    """`syncd sync` turns the cyclic collector off while it starts; run in another program's process
    (as tests and embedders do), it gives that program its collector back, on and unfrozen."""
    world.bind()
    world.save(meeting("g1", "Kick-off"))
    result = CliRunner().invoke(main, ["--config", str(world.config_file()), "sync"])
    assert result.exit_code == 0, result.output
    assert "to calendar 1 created" in result.output
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
