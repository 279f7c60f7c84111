"""Importing and exporting JSON Lines through the store: lossless, all-or-nothing, errors by line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from syncd.activity_json import InvalidActivities, activity_to_json, read_jsonl
from syncd.store import repository
from syncd.store.changefeed import current_cursor
from syncd.store.importer import export_activities, import_jsonl

EXAMPLE = Path(__file__).parents[2] / "examples" / "activities.jsonl"


def export_text(session: Session) -> str:
    stream = io.StringIO()
    export_activities(session, stream)
    return stream.getvalue()


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every store table, to prove a rejected import changed nothing."""
    tables = ["users", "contacts", "projects", "activities", "activity_participants", "activity_regarding",
              "activity_changes"]
    with engine.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}"))), key=repr) for t in tables}


def test_example_file_imports_on_a_fresh_store(session: Session) -> None:
    """The owners are not CRM users yet; they are named as user participants in the file."""
    result = import_jsonl(session, EXAMPLE.read_text(encoding="utf-8"))

    assert len(result.created) == 8
    assert sorted(result.users_created) == ["anna@example.com", "piotr@example.com"]
    assert "yael.cohen@gesher.example.co.il" in result.contacts_created
    assert repository.list_activity_ids(session, owner="piotr@example.com") == [
        "ACT-1002", "ACT-1004", "ACT-1008"]


def test_export_gives_back_what_was_imported(session: Session) -> None:
    source = EXAMPLE.read_text(encoding="utf-8")
    import_jsonl(session, source)

    exported = read_jsonl(export_text(session))

    def content(activity: object) -> dict:
        data = activity_to_json(activity)  # type: ignore[arg-type]
        del data["updated_at"]  # the example leaves it out; the store sets it
        return data

    assert [content(a) for a in exported] == [content(a) for a in read_jsonl(source)]


def test_export_import_export_is_identical(session: Session, engine: Engine) -> None:
    """Text for text, including updated_at and Hebrew, Polish and Dutch, unescaped."""
    import_jsonl(session, EXAMPLE.read_text(encoding="utf-8"))
    first = export_text(session)
    with engine.begin() as conn:
        for table in ("activities", "activity_changes", "contacts", "users", "projects"):
            conn.execute(text(f"DELETE FROM {table}"))

    import_jsonl(session, first)

    assert export_text(session) == first
    assert "פגישת פתיחה" in first and "Żółw Sp. z o.o." in first and "Dodenherdenking" in first
    ids = [json.loads(line)["id"] for line in first.splitlines()]
    assert ids == sorted(ids)


def test_reimporting_the_same_file_changes_nothing(session: Session) -> None:
    text_ = EXAMPLE.read_text(encoding="utf-8")
    import_jsonl(session, text_)
    cursor = current_cursor(session)

    result = import_jsonl(session, text_)

    assert (len(result.unchanged), result.created, result.updated) == (8, (), ())
    assert current_cursor(session) == cursor


def test_import_updates_by_id(session: Session) -> None:
    import_jsonl(session, EXAMPLE.read_text(encoding="utf-8"))
    line = json.loads(EXAMPLE.read_text(encoding="utf-8").splitlines()[5])
    line["subject"] = "Klant belt opnieuw over levering"

    result = import_jsonl(session, json.dumps(line, ensure_ascii=False))

    assert result.updated == ("ACT-1006",)
    assert repository.get_activity(session, "ACT-1006").subject == "Klant belt opnieuw over levering"  # type: ignore[union-attr]


GOOD = {"id": "N-1", "kind": "call", "subject": "Goed", "owner": "anna@example.com",
        "start": "2026-03-03T14:00:00+01:00", "end": "2026-03-03T14:30:00+01:00"}


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": "N-2", "kind": "call", "owner": ', "line 2: not valid JSON"),
        (json.dumps(GOOD | {"id": "N-2", "kind": "visit"}), 'line 2: field "kind": must be one of'),
        (json.dumps(GOOD | {"id": "N-2", "end": "2026-03-03T13:00:00+01:00"}), 'line 2: field "end": is before "start"'),
        (json.dumps(GOOD | {"id": "N-2", "all_day": "yes"}), 'line 2: field "all_day": must be true or false, not "yes"'),
        (json.dumps(GOOD | {"id": "N-2", "colour": "red"}), 'line 2: field "colour": unknown field'),
        (json.dumps(GOOD | {"id": "N-2", "owner": "ghost@example.com"}),
         'line 2: field "owner": "ghost@example.com" is not a CRM user'),
    ],
)
def test_a_bad_line_rejects_the_whole_file(
    session: Session, engine: Engine, owner: str, bad_line: str, message: str
) -> None:
    import_jsonl(session, EXAMPLE.read_text(encoding="utf-8"))
    before = snapshot(engine)
    changed_good = json.dumps(GOOD | {"id": "ACT-1006", "owner": "anna@example.com"})

    with pytest.raises(InvalidActivities) as caught:
        import_jsonl(session, "\n".join([changed_good, bad_line, json.dumps(GOOD | {"id": "N-3"})]))

    assert message in str(caught.value)
    assert snapshot(engine) == before


def test_every_problem_of_a_file_is_reported(session: Session, owner: str) -> None:
    lines = [
        json.dumps(GOOD | {"owner": "ghost@example.com"}),
        json.dumps(GOOD | {"id": "N-2", "owner": "ghost2@example.com"}),
        json.dumps(GOOD),
    ]

    with pytest.raises(InvalidActivities) as caught:
        import_jsonl(session, "\n".join(lines))

    assert [m.split(":")[0] for m in caught.value.messages] == ["line 1", "line 2", "line 3"]
    assert 'line 3: field "id": "N-1" is already on line 1' in caught.value.messages
