"""The links a pass writes in batches (new ones inserted, existing ones written over, in the
transaction of their activities) read back as written, on SQLite and PostgreSQL alike; and a link
written with its activity keeps that write out of the binding's CRM changes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from syncd.engine.crm_store import SqlCrmSide
from syncd.engine.links import Link, LinkStatus
from syncd.engine.sqlstate import SqlSyncState
from syncd.engine.store_writes import StoreWrites
from syncd.model import Activity
from syncd.store import repository
from syncd.store.changefeed import changes_concerning, current_cursor

from .helpers import meeting

BINDING = "anna-calendar"


def _link(activity: Activity, etag: str, status: LinkStatus = LinkStatus.SYNCED) -> Link:
    return Link(BINDING, activity.id, activity.kind, f"/cal/{activity.id}.ics", etag, f"crm-{etag}", f"cal-{etag}",
                activity, status)


def _read(session: Session) -> dict[str, tuple[object, ...]]:
    links = SqlSyncState(session).links(BINDING)
    return {i: (k.ref, k.etag, k.crm_fp, k.remote_fp, k.status, k.base) for i, k in links.items()}


def test_new_and_existing_links_in_one_batch_read_back_as_written(session: Session, owner: str) -> None:
    first, second, third = (meeting(f"A-{n}", owner=owner, subject=f"Meeting {n}") for n in (1, 2, 3))
    state = SqlSyncState(session)
    with state.transaction():
        state.save_links(BINDING, [_link(first, "1"), _link(second, "1")])
        state.save_link(Link(BINDING, "A-9", first.kind, None, None, None, None, None, LinkStatus.CREATING))

    moved = second.replace(subject="Meeting 2, moved")
    with state.transaction():
        # Existing links written over, and a new one given twice (the last one counts).
        state.save_links(BINDING, [_link(moved, "2"), _link(third, "x"), _link(first, "2"), _link(third, "1")])
        state.save_link(Link(BINDING, "A-9", first.kind, "/cal/A-9.ics", "1", "c", "r", None))

    assert _read(session) == {
        "A-1": ("/cal/A-1.ics", "2", "crm-2", "cal-2", LinkStatus.SYNCED, first),
        "A-2": ("/cal/A-2.ics", "2", "crm-2", "cal-2", LinkStatus.SYNCED, moved),
        "A-3": ("/cal/A-3.ics", "1", "crm-1", "cal-1", LinkStatus.SYNCED, third),
        "A-9": ("/cal/A-9.ics", "1", "c", "r", LinkStatus.SYNCED, None),
    }


def test_activities_written_with_their_links_are_no_crm_change_for_the_binding(session: Session, owner: str) -> None:
    start = current_cursor(session)
    pulled = [meeting(f"P-{n}", owner=owner) for n in range(3)]
    crm = SqlCrmSide(session, ("done",))
    state = SqlSyncState(session)
    StoreWrites(save=pulled, links=[_link(a, "1") for a in pulled]).commit(crm, state, BINDING)

    assert changes_concerning(session, start, owner, BINDING).changed == ()
    # Another binding of the same user did not write them: to it they are the CRM's changes.
    assert set(changes_concerning(session, start, owner, "other").changed) == {"P-0", "P-1", "P-2"}

    cursor = current_cursor(session)
    repository.save_activity(session, pulled[1].replace(subject="Edited in the CRM"))
    session.commit()
    assert changes_concerning(session, cursor, owner, BINDING).changed == ("P-1",)
