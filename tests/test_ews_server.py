"""The test EWS server, driven only through exchangelib over real HTTP, as syncd's connector will."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import timedelta

import pytest
from ews_server import EwsServer
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    Account,
    Attendee,
    Build,
    CalendarItem,
    Configuration,
    Credentials,
    EWSDate,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    FailFast,
    FaultTolerance,
    HTMLBody,
    Mailbox,
    Task,
    Version,
)
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorCalendarEndDateIsEarlierThanStartDate,
    ErrorImpersonateUserDenied,
    ErrorInvalidSyncStateData,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorSchemaValidation,
    ErrorServerBusy,
    RateLimitError,
    UnauthorizedError,
)
from exchangelib.fields import MONDAY
from exchangelib.items import NEVER_OVERWRITE, SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.protocol import Protocol
from exchangelib.recurrence import DailyPattern, Recurrence, WeeklyPattern
from exchangelib.services import GetItem
from exchangelib.util import create_element

USER, PASSWORD = "user@example.com", "secret"
TZ = EWSTimeZone("Europe/Amsterdam")
BUILD = Build(15, 1, 2507, 6)
EXCHANGE_2016 = Version(build=BUILD)


class CrmActivityId(ExtendedProperty):
    """A test-only named property, like the one syncd stamps on items it owns."""

    property_set_id = "c11ff724-aa03-4555-9952-8fa248a11c3e"
    property_name = "X-SYNCD-TEST-ACTIVITY"
    property_type = "String"


@pytest.fixture
def server() -> Iterator[EwsServer]:
    with EwsServer() as srv:
        srv.add_mailbox(USER, PASSWORD, "Ursula User")
        yield srv
        # Every response the server sent during the test validated against messages.xsd.
        assert srv.response_errors == []
        assert srv.server_errors == []


@pytest.fixture
def connect(server: EwsServer) -> Iterator[Callable[..., Account]]:
    accounts: list[Account] = []

    def make(
        smtp: str = USER,
        login: str = USER,
        password: str = PASSWORD,
        *,
        retry_policy=None,
        access_type: str = DELEGATE,
        version: Version | None = EXCHANGE_2016,
    ) -> Account:
        config = Configuration(
            service_endpoint=server.url,
            credentials=Credentials(login, password),
            auth_type=BASIC,
            version=version,
            retry_policy=retry_policy or FailFast(),
        )
        account = Account(
            smtp, config=config, autodiscover=False, access_type=access_type, default_timezone=TZ
        )
        accounts.append(account)
        return account

    yield make
    for account in accounts:
        account.protocol.close()
        # exchangelib caches protocols by (endpoint, credentials); a later server may get the same port.
        with suppress(KeyError):
            del Protocol[account.protocol.config]


@pytest.fixture
def account(connect: Callable[..., Account]) -> Account:
    return connect()


@pytest.fixture
def crm_property() -> Iterator[None]:
    CalendarItem.register("crm_activity_id", CrmActivityId)
    Task.register("crm_activity_id", CrmActivityId)
    yield
    CalendarItem.deregister("crm_activity_id")
    Task.deregister("crm_activity_id")


def at(day: int, hour: int) -> EWSDateTime:
    return EWSDateTime(2030, 1, day, hour, tzinfo=TZ)


def meeting(account: Account, **fields) -> CalendarItem:
    values = {"subject": "CRM meeting", "start": at(7, 9), "end": at(7, 10)} | fields
    return CalendarItem(account=account, folder=account.calendar, **values)


# -- setup ------------------------------------------------------------------------------------------


def test_explicit_setup_sends_only_folder_lookups(server: EwsServer, account: Account) -> None:
    """With version, auth type and endpoint given, exchangelib's first requests are GetFolder."""
    assert account.calendar.name == "Calendar"
    assert account.tasks.name == "Tasks"
    assert set(server.operations()) == {"GetFolder"}
    assert {(r.login, r.anchor_mailbox, r.status) for r in server.requests} == {(USER, USER, 200)}


def test_version_guess_reads_server_version_info(server: EwsServer, connect) -> None:
    """Without a configured version exchangelib asks with ConvertId and learns the build from the header."""
    account = connect(version=None)
    assert account.version.build == BUILD
    assert account.version.api_version == "Exchange2016"
    assert server.operations()[0] == "ConvertId"


# -- calendar items ----------------------------------------------------------------------------------


def test_calendar_item_round_trip(server: EwsServer, account: Account, crm_property: None) -> None:
    """What exchangelib writes comes back on GetItem, with the fields Exchange fills in itself."""
    item = meeting(
        account,
        location="Room 1",
        body=HTMLBody("<p>Agenda</p>"),
        categories=["crm"],
        required_attendees=[Attendee(mailbox=Mailbox(email_address="guest@example.org", name="Guest"))],
        crm_activity_id="activity-42",
    )
    item.save()  # SendToNone by default

    fetched = account.calendar.get(id=item.id)
    assert (fetched.subject, fetched.location, fetched.categories) == ("CRM meeting", "Room 1", ["crm"])
    assert fetched.body == "<p>Agenda</p>"
    assert fetched.start == at(7, 9) and fetched.end == at(7, 10)
    assert fetched.crm_activity_id == "activity-42"
    assert [a.mailbox.email_address for a in fetched.required_attendees] == ["guest@example.org"]
    assert fetched.organizer.email_address == USER
    assert fetched.type == "Single" and fetched.is_meeting and not fetched.meeting_request_was_sent
    assert fetched.uid and fetched.changekey == item.changekey and fetched.duration == "PT1H"
    stored = server.item(item.id)
    assert (
        stored.extended_value(
            PropertySetId=CrmActivityId.property_set_id,
            PropertyName="X-SYNCD-TEST-ACTIVITY",
            PropertyType="String",
        )
        == "activity-42"
    )
    assert stored.text("Start") == "2030-01-07T08:00:00Z"  # Exchange keeps UTC
    assert server.mailbox(USER).sent == []
    [create] = [r for r in server.requests if r.operation == "CreateItem"]
    assert create.attributes["SendMeetingInvitations"] == "SendToNone"


def test_invitations_are_recorded_when_requested(server: EwsServer, account: Account) -> None:
    item = meeting(account, required_attendees=[Attendee(mailbox=Mailbox(email_address="guest@example.org"))])
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    [sent] = server.mailbox(USER).sent
    assert (sent.kind, sent.item_id, sent.recipients) == ("invitation", item.id, ("guest@example.org",))
    assert account.calendar.get(id=item.id).meeting_request_was_sent


def test_update_sets_and_deletes_fields_and_changes_the_changekey(
    server: EwsServer, account: Account, crm_property: None
) -> None:
    item = meeting(account, location="Room 1", crm_activity_id="a-1")
    item.save()
    first_key = item.changekey

    item.subject, item.location, item.crm_activity_id = "Moved", None, "a-2"
    item.start, item.end = at(8, 14), at(8, 15)
    item.save(update_fields=["subject", "location", "crm_activity_id", "start", "end"])

    assert item.changekey != first_key
    fetched = account.calendar.get(id=item.id)
    assert (fetched.subject, fetched.location, fetched.crm_activity_id) == ("Moved", None, "a-2")
    assert (fetched.start, fetched.end) == (at(8, 14), at(8, 15))
    assert "Location" not in server.item(item.id).fields


def test_full_save_without_update_fields_round_trips(account: Account) -> None:
    """save() with no field list sends every writable field, deleting the empty ones: all accepted."""
    item = meeting(account)
    item.save()
    item.subject = "Renamed"
    item.save()
    assert account.calendar.get(id=item.id).subject == "Renamed"


def test_stale_changekey_with_never_overwrite_is_an_irresolvable_conflict(
    server: EwsServer, account: Account
) -> None:
    item = meeting(account)
    item.save()
    server.edit_item(item.id, Subject="Edited in Outlook")  # the user's edit: new ChangeKey

    item.subject = "Edited by syncd"
    with pytest.raises(ErrorIrresolvableConflict):
        item.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)
    assert server.item(item.id).text("Subject") == "Edited in Outlook"

    item.save(update_fields=["subject"])  # exchangelib's default, AutoResolve, overwrites
    assert server.item(item.id).text("Subject") == "Edited by syncd"


def test_delete_then_delete_again_is_item_not_found(server: EwsServer, account: Account) -> None:
    item = meeting(account)
    item.save()
    item_id, changekey = item.id, item.changekey
    item.delete()
    assert server.items(USER) == []
    again = CalendarItem(account=account, folder=account.calendar, id=item_id, changekey=changekey)
    with pytest.raises(ErrorItemNotFound):
        again.delete()


def test_get_item_is_batched_and_reports_missing_ids_in_place(account: Account) -> None:
    items = [meeting(account, subject=f"m{i}") for i in range(3)]
    for item in items:
        item.save()
    gone = items[1]
    ids = [(i.id, i.changekey) for i in items]
    gone.delete()
    results = list(account.fetch(ids=ids))
    assert [r.subject for r in (results[0], results[2])] == ["m0", "m2"]
    assert isinstance(results[1], ErrorItemNotFound)


def test_end_before_start_is_refused_and_changes_nothing(server: EwsServer, account: Account) -> None:
    item = meeting(account)
    item.save()
    before = server.item(item.id).change_key
    item.start, item.end = at(7, 9), at(7, 8)
    with pytest.raises(ErrorCalendarEndDateIsEarlierThanStartDate):
        item.save(update_fields=["start", "end"])
    stored = server.item(item.id)
    assert (stored.change_key, stored.text("End")) == (before, "2030-01-07T09:00:00Z")


# -- tasks -------------------------------------------------------------------------------------------


def test_task_round_trip_and_completion(server: EwsServer, account: Account, crm_property: None) -> None:
    task = Task(
        account=account,
        folder=account.tasks,
        subject="Call back",
        due_date=EWSDate(2030, 1, 8),
        crm_activity_id="t-1",
    )
    task.save()
    fetched = account.tasks.get(id=task.id)
    assert (fetched.subject, fetched.status, fetched.percent_complete) == ("Call back", "NotStarted", 0)
    assert fetched.due_date == EWSDate(2030, 1, 8) and fetched.crm_activity_id == "t-1"
    assert not fetched.is_complete

    fetched.status = "Completed"
    fetched.save(update_fields=["status"])
    done = account.tasks.get(id=task.id)
    assert (done.status, done.is_complete, done.percent_complete) == ("Completed", True, 100)
    assert done.complete_date is not None
    assert server.item(task.id).text("StatusDescription") == "Completed"


# -- sync ----------------------------------------------------------------------------------------


def test_sync_items_reports_creates_updates_and_deletes_since_a_state(
    server: EwsServer, account: Account
) -> None:
    calendar = account.calendar
    kept, changed, removed = (meeting(account, subject=s) for s in ("kept", "changed", "removed"))
    for item in (kept, changed, removed):
        item.save()
    assert sorted((c, i.subject) for c, i in calendar.sync_items()) == [
        ("create", "changed"),
        ("create", "kept"),
        ("create", "removed"),
    ]
    state = calendar.item_sync_state

    assert list(calendar.sync_items(sync_state=state)) == []
    server.edit_item(changed.id, Subject="changed in Outlook")
    removed_id = removed.id
    removed.delete()
    added = meeting(account, subject="added")
    added.save()

    changes = list(calendar.sync_items(sync_state=state))
    summary = sorted((c, getattr(i, "subject", None) or i.id) for c, i in changes)
    assert summary == [("create", "added"), ("delete", removed_id), ("update", "changed in Outlook")]
    assert calendar.item_sync_state != state


def test_sync_items_pages_with_max_changes_returned(server: EwsServer, account: Account) -> None:
    for i in range(5):
        meeting(account, subject=f"m{i}").save()
    changes = list(account.calendar.sync_items(max_changes_returned=2))
    assert sorted(i.subject for _, i in changes) == [f"m{i}" for i in range(5)]
    assert (
        server.operations().count("SyncFolderItems") == 3
    )  # 2 + 2 + 1, the last with IncludesLastItemInRange


def test_invalid_sync_state_is_reported(server: EwsServer, account: Account) -> None:
    calendar = account.calendar
    with pytest.raises(ErrorInvalidSyncStateData):
        list(calendar.sync_items(sync_state="bm90IGEgc3RhdGU="))
    list(calendar.sync_items())
    state = calendar.item_sync_state
    server.invalidate_sync_states(USER, "calendar")
    with pytest.raises(ErrorInvalidSyncStateData):
        list(calendar.sync_items(sync_state=state))
    with pytest.raises(ErrorInvalidSyncStateData):  # a state of another folder
        list(account.tasks.sync_items(sync_state=state))


# -- recurring series --------------------------------------------------------------------------------


def test_outlook_moving_and_deleting_occurrences_shows_on_the_master(
    server: EwsServer, account: Account
) -> None:
    """A user moves one occurrence and deletes another: the master changes, and reads back as Exchange does."""
    master = meeting(
        account,
        subject="Weekly",
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[MONDAY]), start=EWSDate(2030, 1, 7), number=5
        ),
    )
    master.save()
    calendar = account.calendar
    list(calendar.sync_items())
    state = calendar.item_sync_state

    server.modify_occurrence(master.id, at(14, 9), Start=at(15, 11), End=at(15, 12), Subject="Moved")
    server.delete_occurrence(master.id, at(21, 9))

    [(change, updated)] = list(calendar.sync_items(sync_state=state))
    assert change == "update" and updated.id == master.id and updated.type == "RecurringMaster"
    assert [(o.original_start, o.start, o.end) for o in updated.modified_occurrences] == [
        (at(14, 9), at(15, 11), at(15, 12))
    ]
    assert [d.start for d in updated.deleted_occurrences] == [at(21, 9)]
    assert (updated.first_occurrence.start, updated.last_occurrence.start) == (
        at(7, 9),
        at(4, 9) + timedelta(days=31),
    )

    second = master.occurrence(2)
    second.refresh()  # GetItem with an OccurrenceItemId
    assert (second.subject, second.type, second.start, second.original_start) == (
        "Moved",
        "Exception",
        at(15, 11),
        at(14, 9),
    )

    view = list(calendar.view(start=at(1, 0), end=EWSDateTime(2030, 2, 28, tzinfo=TZ)))
    assert [(v.type, v.start) for v in view] == [
        ("Occurrence", at(7, 9)),
        ("Exception", at(15, 11)),
        ("Occurrence", at(28, 9)),
        ("Occurrence", at(4, 9) + timedelta(days=31)),
    ]


def test_editing_and_deleting_an_occurrence_through_exchangelib(server: EwsServer, account: Account) -> None:
    """UpdateItem/DeleteItem on an OccurrenceItemId turn into an exception and a deleted occurrence."""
    master = meeting(
        account,
        subject="Daily",
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=EWSDate(2030, 1, 7), number=3),
    )
    master.save()
    third = master.occurrence(3)
    third.refresh()
    third.subject = "Third, renamed"
    third.save(update_fields=["subject"])
    second = master.occurrence(2)
    second.refresh()
    second.delete()

    master.refresh()
    assert [o.original_start for o in master.modified_occurrences] == [at(9, 9)]
    assert [d.start for d in master.deleted_occurrences] == [at(8, 9)]
    assert account.calendar.get(id=master.modified_occurrences[0].id).subject == "Third, renamed"
    assert server.item(master.id).text("Subject") == "Daily"


# -- throttling, auth, bad requests ---------------------------------------------------------------


def test_server_busy_is_retried_after_the_back_off_with_fault_tolerance(server: EwsServer, connect) -> None:
    account = connect(retry_policy=FaultTolerance(max_wait=5))
    server.busy(count=2, back_off_ms=200, operation="GetFolder")
    started = time.monotonic()
    assert account.calendar.name == "Calendar"
    assert time.monotonic() - started >= 0.4
    busy = [r for r in server.requests if r.status == 500]
    assert len(busy) == 2 and all(r.operation == "GetFolder" for r in busy)


def test_server_busy_fails_fast_with_failfast(server: EwsServer, account: Account) -> None:
    server.busy(back_off_ms=30_000)
    with pytest.raises(ErrorServerBusy) as raised:
        account.calendar  # noqa: B018 (the lookup is the request)
    assert raised.value.back_off == 30.0
    assert len(server.requests) == 1


def test_server_busy_beyond_max_wait_gives_up(server: EwsServer, connect) -> None:
    account = connect(retry_policy=FaultTolerance(max_wait=1))
    server.busy(back_off_ms=60_000)
    with pytest.raises(RateLimitError):
        account.calendar  # noqa: B018
    assert len(server.requests) == 1


def test_wrong_password_is_http_401(server: EwsServer, connect) -> None:
    account = connect(password="wrong")
    with pytest.raises(UnauthorizedError):
        account.calendar  # noqa: B018
    assert [(r.status, r.login) for r in server.requests] == [(401, None)]


def test_rejected_login_is_http_401_despite_the_right_password(server: EwsServer, account: Account) -> None:
    server.reject_login(USER)
    with pytest.raises(UnauthorizedError):
        account.calendar  # noqa: B018


def test_injected_401_fails_one_request_only(server: EwsServer, account: Account) -> None:
    server.unauthorized(count=1)
    with pytest.raises(UnauthorizedError):
        account.calendar  # noqa: B018
    assert account.calendar.name == "Calendar"
    statuses = [r.status for r in server.requests]
    assert statuses[0] == 401 and set(statuses[1:]) == {200}


class _GetItemWithJunk(GetItem):
    """A request exchangelib would never send: an element messages.xsd does not allow."""

    def get_payload(self, items, additional_fields, shape):
        payload = super().get_payload(items, additional_fields, shape)
        payload.append(create_element("m:NotAnEwsElement"))
        return payload


def test_request_that_fails_schema_validation_is_an_error_schema_validation_fault(
    server: EwsServer, account: Account
) -> None:
    with pytest.raises(ErrorSchemaValidation, match="NotAnEwsElement"):
        list(
            _GetItemWithJunk(account=account).call(
                items=[("x", "y")], additional_fields=set(), shape="IdOnly"
            )
        )
    assert server.requests[-1].status == 500


def test_response_validation_catches_an_invalid_response(server: EwsServer, account: Account) -> None:
    """The debug switch is real: a stored value the schema refuses is reported, not sent silently."""
    item = server.put_item(
        USER,
        "calendar",
        "<t:CalendarItem><t:Sensitivity>Secret-ish</t:Sensitivity>"
        "<t:Start>2030-01-07T08:00:00Z</t:Start><t:End>2030-01-07T09:00:00Z</t:End>"
        "</t:CalendarItem>",
    )
    list(account.fetch(ids=[(item.id, item.change_key)], only_fields=["sensitivity"]))
    assert len(server.response_errors) == 1 and "Sensitivity" in server.response_errors[0]
    server.response_errors.clear()


# -- whose mailbox -----------------------------------------------------------------------------------


def test_impersonation_acts_on_the_impersonated_mailbox(server: EwsServer, connect) -> None:
    server.add_service_account("svc-syncd", "svc-secret", can_impersonate=True)
    account = connect(login="svc-syncd", password="svc-secret", access_type=IMPERSONATION)
    meeting(account).save()
    assert [i.text("Subject") for i in server.items(USER)] == ["CRM meeting"]
    assert {r.impersonated for r in server.requests} == {USER}


def test_impersonation_without_the_right_is_denied(server: EwsServer, connect) -> None:
    server.add_service_account("svc-plain", "pw")
    account = connect(login="svc-plain", password="pw", access_type=IMPERSONATION)
    with pytest.raises(ErrorImpersonateUserDenied):
        account.calendar  # noqa: B018


def test_delegate_access_needs_a_grant(server: EwsServer, connect) -> None:
    server.add_mailbox("assistant@example.com", "pw2")
    assistant_view = connect(smtp=USER, login="assistant@example.com", password="pw2")
    with pytest.raises(ErrorAccessDenied):
        assistant_view.calendar  # noqa: B018
    server.grant_delegate(USER, "assistant@example.com")
    delegate = connect(smtp=USER, login="assistant@example.com", password="pw2")
    meeting(delegate).save()
    assert len(server.items(USER)) == 1 and server.items("assistant@example.com") == []
