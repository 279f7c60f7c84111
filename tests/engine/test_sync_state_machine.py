"""Random interleavings of CRM edits, calendar edits and passes: whatever happens, two passes later
both sides hold the same activities, each exactly once (nothing lost, nothing duplicated)."""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from memory_calendar import MemoryCalendar

from syncd import config as config_module
from syncd.engine.crm_store import SqlCrmSide
from syncd.engine.runner import PassReport, Runner
from syncd.engine.sqlstate import SqlSyncState
from syncd.mapping.identity import activity_id_for_uid
from syncd.model import Activity, CrmUser, Kind, Participant, ParticipantKind, Response
from syncd.store import repository
from syncd.store.db import make_engine, session_factory, upgrade

OWNER = "anna@example.com"
BASE = datetime(2026, 1, 5, 9, tzinfo=UTC)
SUBJECTS = st.sampled_from(["Kick-off", "Review", "Lunch", "Demo", "Call back"])
LOCATIONS = st.sampled_from([None, "Room A", "Room B", "Online"])


def _activity(activity_id: str, subject: str, location: str | None, slot: int) -> Activity:
    start = BASE + timedelta(hours=slot)
    return Activity(id=activity_id, kind=Kind.APPOINTMENT, subject=subject, owner=OWNER, start=start,
                    end=start + timedelta(hours=1), location=location, status="planned")


class SyncMachine(RuleBasedStateMachine):
    @initialize(policy=st.sampled_from(["merge", "crm-wins", "remote-wins", "newest-wins"]),
                merge_winner=st.sampled_from(["crm", "remote"]))
    def setup(self, policy: str, merge_winner: str) -> None:
        directory = Path(tempfile.mkdtemp(prefix="syncd-sm-"))
        url = f"sqlite:///{directory / 'crm.sqlite3'}"
        upgrade(url)
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        with self.sessions() as session:
            repository.add_user(session, CrmUser(OWNER, "Anna", "UTC"))
            session.commit()
        self.binding = config_module.parse({"bindings": [{
            "name": "m", "owner": OWNER, "past_days": 3650, "future_days": 3650, "mass_delete_min": 10_000,
            "mass_delete_all": False, "conflict": policy, "merge_winner": merge_winner,
            "remote": {"type": "caldav", "url": "http://127.0.0.1/unused/"},
        }]}).bindings[0]
        self.calendar = MemoryCalendar()
        self.numbers = itertools.count()

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.dispose()

    def _sync(self, must_succeed: bool = True) -> PassReport:
        with self.sessions() as session:
            runner = Runner(self.binding, self.calendar, SqlCrmSide(session, ("done",)), SqlSyncState(session),
                            clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
            report = runner.run()
        if not must_succeed:
            return report
        assert report.result == "ok", report.error
        assert not report.errors, report.errors
        return report

    def _crm(self) -> dict[str, Activity]:
        with self.sessions() as session:
            return {a.id: a for a in repository.iter_activities(session)}

    # -- the CRM -----------------------------------------------------------------------------------

    @rule(subject=SUBJECTS, location=LOCATIONS, slot=st.integers(0, 40))
    def crm_creates(self, subject: str, location: str | None, slot: int) -> None:
        with self.sessions() as session:
            repository.save_activity(session, _activity(f"c{next(self.numbers)}", subject, location, slot))
            session.commit()

    @precondition(lambda self: bool(self._crm()))
    @rule(data=st.data(), subject=SUBJECTS, location=LOCATIONS)
    def crm_edits(self, data: st.DataObject, subject: str, location: str | None) -> None:
        current = self._crm()
        activity = current[data.draw(st.sampled_from(sorted(current)))]
        with self.sessions() as session:
            repository.save_activity(session, activity.replace(subject=subject, location=location))
            session.commit()

    @precondition(lambda self: bool(self._crm()))
    @rule(data=st.data())
    def crm_deletes(self, data: st.DataObject) -> None:
        victim = data.draw(st.sampled_from(sorted(self._crm())))
        with self.sessions() as session:
            repository.delete_activity(session, victim)
            session.commit()

    # -- the phone ---------------------------------------------------------------------------------

    @rule(subject=SUBJECTS, location=LOCATIONS, slot=st.integers(0, 40))
    def phone_creates(self, subject: str, location: str | None, slot: int) -> None:
        uid = f"p{next(self.numbers)}@phone.example"
        activity = _activity(activity_id_for_uid(uid), subject, location, slot)
        self.calendar.put(f"/{uid}.ics", uid, None, activity)

    @precondition(lambda self: bool(self.calendar.items))
    @rule(data=st.data(), subject=SUBJECTS, location=LOCATIONS)
    def phone_edits(self, data: st.DataObject, subject: str, location: str | None) -> None:
        ref = data.draw(st.sampled_from(sorted(self.calendar.items)))
        stored = self.calendar.items[ref]
        self.calendar.put(ref, stored.uid, stored.crm_id, stored.activity.replace(subject=subject, location=location))

    @precondition(lambda self: bool(self.calendar.items))
    @rule(data=st.data())
    def phone_deletes(self, data: st.DataObject) -> None:
        self.calendar.remove(data.draw(st.sampled_from(sorted(self.calendar.items))))

    # -- passes ------------------------------------------------------------------------------------

    @rule()
    def a_pass(self) -> None:
        self._sync()

    @rule(writes=st.integers(0, 3), answer_lost=st.booleans())
    def a_pass_the_server_breaks_off(self, writes: int, answer_lost: bool) -> None:
        """The server fails at some write (done or not done); the pass fails or ends early; nothing
        written so far may be lost or come back twice."""
        self.calendar.fail_at, self.calendar.answer_lost = writes, answer_lost
        report = self._sync(must_succeed=False)
        self.calendar.fail_at = None
        assert report.result in ("ok", "failed"), report.error

    @rule()
    def both_sides_agree_after_two_passes(self) -> None:
        self._sync()
        settled = self._sync()
        assert sum(settled.counts.values()) == 0, f"a settled pass still acts: {dict(settled.counts)}"
        remote: dict[str, Activity] = {}
        for stored in self.calendar.items.values():
            key = stored.crm_id or activity_id_for_uid(stored.uid)
            assert key not in remote, f"two calendar items for activity {key}"
            remote[key] = stored.activity
        crm = self._crm()
        assert set(crm) == set(remote), f"CRM only: {set(crm) - set(remote)}; calendar only: {set(remote) - set(crm)}"
        for key, activity in crm.items():
            theirs = remote[key]
            assert (activity.subject, activity.location, activity.start) == (theirs.subject, theirs.location, theirs.start)


SyncMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_sync_converges_without_loss_or_duplicates = SyncMachine.TestCase


BOB = "bob@example.com"


class CopiesMachine(RuleBasedStateMachine):
    """Anna's activities, some with Bob taking part, in both their calendars: Bob's copy follows the
    CRM, only his answer comes back, and a declined meeting leaves his calendar."""

    @initialize()
    def setup(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="syncd-sm-"))
        url = f"sqlite:///{directory / 'crm.sqlite3'}"
        upgrade(url)
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        with self.sessions() as session:
            repository.add_user(session, CrmUser(OWNER, "Anna", "UTC"))
            repository.add_user(session, CrmUser(BOB, "Bob", "UTC"))
            session.commit()
        self.bindings = {
            b.name: b
            for b in config_module.parse({"bindings": [
                {"name": name, "owner": owner, "past_days": 3650, "future_days": 3650, "mass_delete_min": 10_000,
                 "mass_delete_all": False, "remote": {"type": "caldav", "url": f"http://127.0.0.1/{name}/"}}
                for name, owner in (("anna", OWNER), ("bob", BOB))
            ]}).bindings
        }
        self.calendars = {"anna": MemoryCalendar(), "bob": MemoryCalendar()}
        self.numbers = itertools.count()

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.dispose()

    def _sync(self, name: str) -> PassReport:
        with self.sessions() as session:
            runner = Runner(self.bindings[name], self.calendars[name], SqlCrmSide(session, ("done",)),
                            SqlSyncState(session), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
            report = runner.run()
        assert report.result == "ok" and not report.errors, (report.error, report.errors)
        return report

    def _crm(self) -> dict[str, Activity]:
        with self.sessions() as session:
            return {a.id: a for a in repository.iter_activities(session)}

    @rule(subject=SUBJECTS, slot=st.integers(0, 40), bob_takes_part=st.booleans())
    def crm_creates(self, subject: str, slot: int, bob_takes_part: bool) -> None:
        people = (Participant(ParticipantKind.USER, BOB, "Bob"),) if bob_takes_part else ()
        activity = _activity(f"c{next(self.numbers)}", subject, None, slot).replace(participants=people)
        with self.sessions() as session:
            repository.save_activity(session, activity)
            session.commit()

    @precondition(lambda self: bool(self._crm()))
    @rule(data=st.data(), subject=SUBJECTS, bob_takes_part=st.booleans())
    def crm_edits(self, data: st.DataObject, subject: str, bob_takes_part: bool) -> None:
        current = self._crm()
        activity = current[data.draw(st.sampled_from(sorted(current)))]
        people = (Participant(ParticipantKind.USER, BOB, "Bob"),) if bob_takes_part else ()
        with self.sessions() as session:
            repository.save_activity(session, activity.replace(subject=subject, participants=people))
            session.commit()

    @precondition(lambda self: bool(self.calendars["bob"].items))
    @rule(data=st.data(), subject=SUBJECTS, response=st.sampled_from([Response.ACCEPTED, Response.TENTATIVE]))
    def bob_edits_his_copy(self, data: st.DataObject, subject: str, response: Response) -> None:
        calendar = self.calendars["bob"]
        ref = data.draw(st.sampled_from(sorted(calendar.items)))
        stored = calendar.items[ref]
        people = tuple(Participant(p.kind, p.email, p.name, p.role, response) if p.key == BOB else p
                       for p in stored.activity.participants)
        calendar.put(ref, stored.uid, stored.crm_id, stored.activity.replace(subject=subject, participants=people))

    @precondition(lambda self: bool(self.calendars["bob"].items))
    @rule(data=st.data())
    def bob_deletes_his_copy(self, data: st.DataObject) -> None:
        calendar = self.calendars["bob"]
        calendar.remove(data.draw(st.sampled_from(sorted(calendar.items))))

    @rule(name=st.sampled_from(["anna", "bob"]))
    def a_pass(self, name: str) -> None:
        self._sync(name)

    @rule()
    def calendars_show_what_the_crm_says(self) -> None:
        for _ in range(2):
            self._sync("anna")
            self._sync("bob")
        assert sum(self._sync("anna").counts.values()) == 0
        assert sum(self._sync("bob").counts.values()) == 0
        crm = self._crm()
        shown = {name: {s.crm_id: s.activity for s in cal.items.values()} for name, cal in self.calendars.items()}
        assert all(len(shown[n]) == len(c.items) for n, c in self.calendars.items()), "two items for one activity"
        assert set(shown["anna"]) == set(crm)
        bobs = {i for i, a in crm.items()
                if any(p.key == BOB and p.response != Response.DECLINED for p in a.participants)}
        assert set(shown["bob"]) == bobs
        for name in ("anna", "bob"):
            for key, theirs in shown[name].items():
                assert theirs.subject == crm[key].subject, (name, key)


CopiesMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_copies_follow_the_crm_and_bring_back_only_answers = CopiesMachine.TestCase
