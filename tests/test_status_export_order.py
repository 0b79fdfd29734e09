"""Every status change reaches billing exactly once, whatever order the nights and their exports run in
and whatever dates they are run with: a first export made by a later day, an unpause after a gap, a
backfill, a re-run of an old night, a date in the future, before the latest export, on a weekend or
outside the calendar (refused, nothing marked exported), a change made after the export's day (in a later
export)."""

from __future__ import annotations

import csv
import itertools
import shutil
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from epay.billing.status_export import (
    ExportDateError,
    ExportSupersededError,
    day_end,
    export_date_problem,
    export_statuses,
)
from epay.calendar import BusinessCalendar, load_calendar
from epay.clock import ALGIERS
from epay.ledger import audit
from epay.ledger.db import open_ledger, transaction
from epay.ledger.models import AuditEvent
from tests.conftest import set_clock
from tests.ledger_helpers import TinyWorld

WED = date(2026, 11, 25)
NIGHTS = (WED, date(2026, 11, 26), date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 6))
CALENDAR = load_calendar()
# export dates a person or a scheduler may give: nights, a weekend day, the issue's 1900-01-01, a year
# outside the calendar, and days after the clock's today
EXPORT_DAYS = (
    *NIGHTS,
    date(2026, 11, 27),  # Friday
    date(2026, 11, 28),  # Saturday
    date(1900, 1, 1),
    date(2150, 1, 1),
    date(2026, 12, 7),
    date(2026, 12, 10),
)
# moments the clock is set to (and changes are made at): evenings, just before and at midnight
MOMENTS = tuple(
    datetime.combine(day, moment, tzinfo=ALGIERS)
    for day in (date(2026, 11, 24), *NIGHTS, date(2026, 11, 27), date(2026, 12, 7))
    for moment in (time(20, 0), time(23, 59, 59, 999_999), time(0, 0))
)
FLUSH = date(2026, 12, 31)  # a Thursday after every moment above
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


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_exactly_once(engine: Engine, folder: Path) -> None:
    with engine.connect() as c:
        when = {
            i: _utc(at)
            for i, at in c.execute(
                select(AuditEvent.id, AuditEvent.at).where(
                    AuditEvent.entity == "item", AuditEvent.to_state != "loaded"
                )
            ).all()
        }
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
        day = (
            export.business_date
            if isinstance(export.business_date, date)
            else date.fromisoformat(str(export.business_date))
        )
        # no change made after the export's day is in it: it belongs to a later export
        assert all(
            when[i] < day_end(day) for i, _ in changes if export.after_event_id < i <= export.last_event_id
        )
    covered = exports[-1].last_event_id if exports else 0
    assert all(i <= covered for i, _ in changes)  # after a final export, nothing is left out
    changed = {key.split(":")[1] for _, key in changes}
    assert replay(folder) == {number: final[number] for number in changed}


def export(engine: Engine, folder: Path, day: date) -> Path:
    """The export of ``day`` as the night's step makes it: today by the test's clock."""
    from epay.clock import process_clock

    today = process_clock().now().astimezone(ALGIERS).date()
    return export_statuses(engine, folder, day, today=today, calendar=CALENDAR)


def test_a_first_export_made_by_a_later_night_reports_the_earlier_changes(tmp_path: Path) -> None:
    """Unpausing started 6 December before 25 November's export ran: the first export ever is
    6 December's, and it carries 25 November's changes (the old code started after them: lost)."""
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        small_world(engine, tmp_path / "in")
        change(engine, 0, "in_collection", WED)
        change(engine, 1, "paid", WED)
        set_clock(datetime(2026, 12, 6, 20, 0, tzinfo=ALGIERS))
        december = export(engine, tmp_path / "out", date(2026, 12, 6))
        assert {row["item_number"] for row in csv.DictReader(december.open(encoding="utf-8"))} == {"F0", "F1"}
        with pytest.raises(ExportSupersededError, match=r"STATUS_20261206\.csv"):
            export(engine, tmp_path / "out", WED)  # the old night, run later: no second report
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["STATUS_20261206.csv"]
        check_exactly_once(engine, tmp_path / "out")
    finally:
        engine.dispose()


def test_an_export_dated_1900_is_refused_and_the_next_export_reports_everything(tmp_path: Path) -> None:
    """The issue's case: ``--date 1900-01-01`` used to take every pending change into STATUS_19000101.csv
    and mark it exported, so the next correctly dated export was empty."""
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        small_world(engine, tmp_path / "in")
        change(engine, 0, "in_collection", WED)
        with pytest.raises(ExportDateError, match="outside the supported range"):
            export(engine, tmp_path / "out", date(1900, 1, 1))
        with pytest.raises(ExportDateError, match="in the future"):
            export(engine, tmp_path / "out", date(2026, 11, 26))  # the clock is at Wednesday 20:00
        with pytest.raises(ExportDateError, match="not a business day"):
            export(engine, tmp_path / "out", date(2026, 11, 20))  # a Friday
        assert not (tmp_path / "out").exists()
        wednesday = export(engine, tmp_path / "out", WED)
        assert [row["item_number"] for row in csv.DictReader(wednesday.open(encoding="utf-8"))] == ["F0"]
        check_exactly_once(engine, tmp_path / "out")
    finally:
        engine.dispose()


def test_a_change_made_after_the_days_end_goes_into_the_next_days_export(tmp_path: Path) -> None:
    """Wednesday's night is exported late, on Thursday at 00:30 (a re-run): a change made at 00:10 on
    Thursday is not Wednesday's; Thursday's export reports it, and the changes of Wednesday are in
    Wednesday's."""
    engine = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        small_world(engine, tmp_path / "in")
        change(engine, 0, "in_collection", WED)
        set_clock(datetime(2026, 11, 25, 23, 59, 59, 999_999, tzinfo=ALGIERS), speed=0)
        change(engine, 1, "paid", WED)
        set_clock(datetime(2026, 11, 26, 0, 0, tzinfo=ALGIERS), speed=0)  # Thursday has begun
        change(engine, 2, "paid", WED)
        change(engine, 3, "paid", WED)
        set_clock(datetime(2026, 11, 26, 0, 30, tzinfo=ALGIERS), speed=0)
        wednesday = export(engine, tmp_path / "out", WED)
        assert [r["item_number"] for r in csv.DictReader(wednesday.open(encoding="utf-8"))] == ["F0", "F1"]
        thursday = export(engine, tmp_path / "out", date(2026, 11, 26))
        assert [r["item_number"] for r in csv.DictReader(thursday.open(encoding="utf-8"))] == ["F2", "F3"]
        check_exactly_once(engine, tmp_path / "out")
    finally:
        engine.dispose()


def refused_because(day: date, today: date, exported: set[date]) -> str | None:
    """The oracle: why an export of ``day`` must be refused, None when it must be made (or returned)."""
    if day in exported:
        return None
    if not 2000 <= day.year <= 2100:
        return "calendar"
    if day > today:
        return "future"
    if not CALENDAR.is_business_day(day):
        return "weekend"
    if exported and day < max(exported):
        return "superseded"
    return None


operation = st.one_of(
    st.tuples(st.just("clock"), st.sampled_from(MOMENTS)),
    st.tuples(st.just("change"), st.integers(0, ITEMS - 1), st.sampled_from(STATES)),
    st.tuples(st.just("export"), st.sampled_from(EXPORT_DAYS)),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(operations=st.lists(operation, max_size=16))
def test_every_change_is_exported_exactly_once_whatever_dates_the_exports_are_run_with(
    operations: list[tuple[object, ...]], sqlite_template_path: Path
) -> None:
    """Changes at random moments (the clock even goes back, as a settable clock can), exports at random
    dates, some of them refused: no change is reported zero times or twice, none in an export of a day
    before it was made, and a refused export writes and registers nothing."""
    set_clock(MOMENTS[0], speed=0)
    exported: set[date] = set()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        shutil.copyfile(sqlite_template_path, home / "ledger.sqlite3")
        engine = open_ledger(f"sqlite:///{home / 'ledger.sqlite3'}")
        now = MOMENTS[0]
        try:
            for op in operations:
                if op[0] == "clock":
                    now = op[1]  # type: ignore[assignment]
                    set_clock(now, speed=0)
                elif op[0] == "change":
                    _, item, state = op
                    change(engine, int(str(item)), str(state), now.astimezone(ALGIERS).date())
                else:
                    day: date = op[1]  # type: ignore[assignment]
                    today = now.astimezone(ALGIERS).date()
                    expected = refused_because(day, today, exported)
                    names = (
                        sorted(p.name for p in (home / "out").glob("*")) if (home / "out").exists() else []
                    )
                    try:
                        export(engine, home / "out", day)
                        refused = None
                    except ExportDateError:
                        refused = "date"
                    except ExportSupersededError:
                        refused = "superseded"
                    assert (refused is None) == (expected is None), (day, today, exported, refused)
                    if refused is None:
                        exported.add(day)
                    else:
                        assert (refused == "superseded") == (expected == "superseded")
                        now_names = (
                            sorted(p.name for p in (home / "out").glob("*"))
                            if (home / "out").exists()
                            else []
                        )
                        assert now_names == names  # nothing written
            set_clock(datetime.combine(FLUSH, time(20), tzinfo=ALGIERS), speed=0)
            export(engine, home / "out", FLUSH)  # the next night flushes the rest
            check_exactly_once(engine, home / "out")
        finally:
            engine.dispose()


def test_the_date_rule_alone(calendar: BusinessCalendar) -> None:
    assert export_date_problem(WED, WED, calendar) is None
    assert "future" in (export_date_problem(date(2026, 11, 26), WED, calendar) or "")
    assert "not a business day" in (
        export_date_problem(date(2026, 11, 27), date(2026, 11, 29), calendar) or ""
    )
    assert "outside the supported range" in (export_date_problem(date(1900, 1, 1), WED, calendar) or "")
    assert day_end(WED) == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # midnight in Algiers
    assert day_end(WED) - timedelta(microseconds=1) < day_end(WED)


@pytest.fixture(scope="module")
def sqlite_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with the small world loaded once; each example starts from a copy."""
    folder = tmp_path_factory.mktemp("export-template")
    engine = open_ledger(f"sqlite:///{folder / 'ledger.sqlite3'}")
    small_world(engine, folder / "in")
    engine.dispose()
    return folder / "ledger.sqlite3"
