"""Every status change reaches billing exactly once, whatever order the nights and their exports run in:
a first export made by a later day, an unpause after a gap, a backfill, a re-run of an old night."""

from __future__ import annotations

import contextlib
import csv
import itertools
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from epay.billing.status_export import ExportSupersededError, export_statuses
from epay.ledger import audit
from epay.ledger.db import open_ledger, transaction
from tests.ledger_helpers import TinyWorld

WED = date(2026, 11, 25)
NIGHTS = (WED, date(2026, 11, 26), date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 6))
ITEMS = 6
STATES = ("in_collection", "paid", "due", "stopped")


def small_world(engine: Engine, folder: Path) -> None:
    w = TinyWorld().subscriber("0000000001", "Mohamed Benali")
    for i in range(ITEMS):
        w.invoice(f"F{i}", "0000000001", 1_000 + i, WED)
    w.load(engine, folder, WED)


def change(engine: Engine, item: int, state: str, night: date) -> None:
    """An item's state changes on ``night`` the way every writer does it: the row and its audit event."""
    with transaction(engine) as connection:
        connection.execute(
            text("UPDATE billing_item SET state = :s WHERE number = :n"), {"s": state, "n": f"F{item}"}
        )
        audit.record(connection, "item", f"FA:F{item}", state, actor="test", business_date=night)


def replay(folder: Path) -> dict[str, str]:
    """What billing ends with, applying the exports in name order."""
    states: dict[str, str] = {}
    for path in sorted(folder.glob("STATUS_*.csv")):
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                states[row["item_number"]] = row["state"]
    return states


def check_exactly_once(engine: Engine, folder: Path) -> None:
    with engine.connect() as c:
        exports = c.execute(
            text(
                "SELECT business_date, after_event_id, last_event_id, name FROM status_export "
                "ORDER BY after_event_id"
            )
        ).all()
        changes = c.execute(
            text(
                "SELECT id, entity_key FROM audit_event WHERE entity = 'item' AND to_state <> 'loaded' "
                "ORDER BY id"
            )
        ).all()
        final = dict(c.execute(text("SELECT number, state FROM billing_item")).all())
    # contiguous, non-overlapping ranges from the first event, in business-date order
    assert [e.after_event_id for e in exports[:1]] in ([], [0])
    for earlier, later in itertools.pairwise(exports):
        assert later.after_event_id == earlier.last_event_id
        assert str(later.business_date) > str(earlier.business_date)
    for export in exports:
        in_range = {
            key.split(":")[1] for i, key in changes if export.after_event_id < i <= export.last_event_id
        }
        with (folder / export.name).open(encoding="utf-8") as handle:
            assert {row["item_number"] for row in csv.DictReader(handle)} == in_range
    covered = exports[-1].last_event_id if exports else 0
    assert all(i <= covered for i, _ in changes)  # after a final export, nothing is left out
    changed = {key.split(":")[1] for _, key in changes}
    assert replay(folder) == {number: final[number] for number in changed}


def test_a_first_export_made_by_a_later_night_reports_the_earlier_changes(tmp_path: Path) -> None:
    """Unpausing started 6 December before 25 November's export ran: the first export ever is
    6 December's, and it carries 25 November's changes (the old code started after them: lost)."""
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        small_world(engine, tmp_path / "in")
        change(engine, 0, "in_collection", WED)
        change(engine, 1, "paid", WED)
        december = export_statuses(engine, tmp_path / "out", date(2026, 12, 6))
        assert {row["item_number"] for row in csv.DictReader(december.open(encoding="utf-8"))} == {"F0", "F1"}
        with pytest.raises(ExportSupersededError, match=r"STATUS_20261206\.csv"):
            export_statuses(engine, tmp_path / "out", WED)  # the old night, run later: no second report
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["STATUS_20261206.csv"]
        check_exactly_once(engine, tmp_path / "out")
    finally:
        engine.dispose()


operation = st.one_of(
    st.tuples(st.just("change"), st.integers(0, ITEMS - 1), st.sampled_from(STATES), st.sampled_from(NIGHTS)),
    st.tuples(st.just("export"), st.sampled_from(NIGHTS)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(operation, max_size=14))
def test_every_change_is_exported_exactly_once_in_any_order_of_nights(
    operations: list[tuple[object, ...]], sqlite_template_path: Path
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        shutil.copyfile(sqlite_template_path, home / "ledger.sqlite3")
        engine = open_ledger(f"sqlite:///{home / 'ledger.sqlite3'}")
        try:
            for op in operations:
                if op[0] == "change":
                    _, item, state, night = op
                    change(engine, int(str(item)), str(state), night)  # type: ignore[arg-type]
                else:
                    with contextlib.suppress(ExportSupersededError):  # an older night after a newer export
                        export_statuses(engine, home / "out", op[1])  # type: ignore[arg-type]
            export_statuses(engine, home / "out", date(2026, 12, 31))  # the next night flushes the rest
            check_exactly_once(engine, home / "out")
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def sqlite_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with the small world loaded once; each example starts from a copy."""
    folder = tmp_path_factory.mktemp("export-template")
    engine = open_ledger(f"sqlite:///{folder / 'ledger.sqlite3'}")
    small_world(engine, folder / "in")
    engine.dispose()
    return folder / "ledger.sqlite3"
