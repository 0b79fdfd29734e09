"""The cash view (issue #15): per debit date, what was debited (ACSC, of which late) and credited (RELV),
against the independent count from the exchanged files — a missing RELV, a hand-edited RELV, days with
only late debits; a day is ``reconciled`` only with its own statement in and no break; the settlement
view's settled total and the cash view's debited total are the same money."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path

from epay.finance.reconciliation import DayFigures, assess, cash_days, reconcile
from epay.finance.summary import settlement_days
from epay.finance.vocabulary import BREAKS, CASH_STATUSES
from epay.reports.refunds import refunds_owed
from tests.finance_count import cash_count, read_files
from tests.finance_world import (  # noqa: F401 - the shared fixture
    AS_OF,
    BROKEN_BY,
    BROKEN_DAY,
    MISSING_RELV_DAY,
    ONLY_LATE_DAYS,
    RECONCILED_DAY,
    World,
    world,
)


def test_every_debit_date_against_the_files(world: World) -> None:  # noqa: F811
    files = read_files(world.settings.home)
    days = cash_days(world.engine, world.calendar, home=world.settings.home, as_of=AS_OF)
    expected_days = {d for s, _, d, _ in files.retr.values() if s == "ACSC"} | {
        d for _, d, _, _ in files.relv
    }
    assert set(expected_days) <= set(days["debit_date"])
    statuses = {}
    for row in days.to_dict("records"):
        day = row["debit_date"]
        count = cash_count(files, day)
        cash = reconcile(world.engine, day, home=world.settings.home, as_of=AS_OF)
        f = cash.figures
        assert [f.acsc_count, f.acsc_amount] == count.debited
        assert [f.late_count, f.late_amount] == count.late
        assert [f.credited_count, f.credited_amount] == count.credited
        assert cash.difference == count.credited[1] - count.debited[1]
        assert f.statement_present == count.statement_in
        late = cash.debited[cash.debited["late"]]
        assert set(late["settlement_date"]) == count.late_from
        assert int(cash.debited["amount"].sum()) == count.debited[1]
        # the index row says the same
        assert (row["debited_amount"], row["late_amount"], row["credited_amount"]) == (
            count.debited[1],
            count.late[1],
            count.credited[1],
        )
        assert row["late_from"] == ", ".join(d.isoformat() for d in sorted(count.late_from))
        # reconciled: its statement in, credits equal to the debits, and nothing else
        agrees = count.statement_in and count.credited == count.debited
        assert (cash.status == "reconciled") == agrees, (day, cash.status, count)
        assert cash.status == row["status"] and cash.status in CASH_STATUSES
        assert set(cash.breaks["meaning"]) <= set(BREAKS.values())
        statuses[day] = cash.status
    assert statuses[RECONCILED_DAY] == "reconciled"
    assert statuses[MISSING_RELV_DAY] == "breaks" and statuses[BROKEN_DAY] == "breaks"
    for day in ONLY_LATE_DAYS:  # days when only late statuses were debited
        count = cash_count(files, day)
        assert count.debited == count.late and count.debited[0] > 0


def test_a_missing_statement_is_a_break(world: World) -> None:  # noqa: F811
    cash = reconcile(world.engine, MISSING_RELV_DAY, home=world.settings.home, as_of=AS_OF)
    assert cash.status == "breaks" and not cash.figures.statement_present
    assert list(cash.breaks["kind"]) == ["missing_relv"]
    assert int(cash.breaks["amount"].iloc[0]) == -cash.figures.acsc_amount < 0


def test_a_tampered_relv_is_a_break(world: World) -> None:  # noqa: F811
    result = reconcile(world.engine, BROKEN_DAY, home=world.settings.home, as_of=AS_OF)
    assert result.status == "breaks"
    assert result.difference == BROKEN_BY
    assert list(result.breaks["kind"]) == ["credit_difference"]
    assert int(result.breaks["amount"].iloc[0]) == BROKEN_BY
    assert "0.07 DZD" in str(result.breaks["explanation"].iloc[0])
    assert list(result.credits["file"]) == [f"RELV_100237_{BROKEN_DAY:%Y%m%d}_01.txt"]
    good = reconcile(world.engine, RECONCILED_DAY, home=world.settings.home, as_of=AS_OF)
    assert good.status == "reconciled" and good.breaks.empty and good.difference == 0
    assert good.figures.statement_present and good.figures.acsc_amount > 0


def test_the_two_views_total_the_same_money(world: World) -> None:  # noqa: F811
    """Every ACSC has one settlement date and one debit date: settled over all settlement dates equals
    debited over all debit dates; and presented = settled + rejected + pending on every row."""
    settlement = settlement_days(world.engine, world.calendar, as_of=AS_OF)
    cash = cash_days(world.engine, world.calendar, home=world.settings.home, as_of=AS_OF)
    assert int(settlement["settled_amount"].sum()) == int(cash["debited_amount"].sum()) > 0
    assert int(settlement["settled_count"].sum()) == int(cash["debited_count"].sum())
    for row in settlement.to_dict("records"):
        parts = row["settled_amount"] + row["rejected_amount"] + row["pending_amount"]
        assert row["presented_amount"] == parts
    files = read_files(world.settings.home)
    assert int(cash["credited_amount"].sum()) == sum(a for _, _, _, a in files.relv)


def test_refunds_owed_are_listed_with_their_debit_date(world: World) -> None:  # noqa: F811
    owed = refunds_owed(world.engine)
    assert len(owed) >= 1  # a few invoices were paid at a counter while debited (the world's billing)
    for day in sorted({d.date() if hasattr(d, "date") else d for d in owed["debited_on"]}):
        result = reconcile(world.engine, day, home=world.settings.home, as_of=AS_OF)
        expected = owed[[str(d)[:10] == day.isoformat() for d in owed["debited_on"]]]
        assert len(result.refunds) == len(expected) > 0
        assert int(result.refunds["amount"].sum()) == int(expected["amount"].sum())
        assert "refund" not in set(result.breaks["kind"])  # a refund is not a break


def test_a_day_not_closed_yet_is_pending(world: World) -> None:  # noqa: F811
    later = reconcile(world.engine, date(2026, 12, 6), home=world.settings.home)
    assert later.status == "pending" and later.breaks.empty


def test_a_relv_changed_on_disk_is_a_break(world: World) -> None:  # noqa: F811
    """A statement that no longer reads back as received: never trusted silently."""
    copy = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(world.settings.home / "files", copy / "files")
        (relv,) = (copy / "files").rglob(f"RELV_*_{RECONCILED_DAY:%Y%m%d}_*.txt")
        relv.write_bytes(relv.read_bytes().replace(b"\n", b"\r\n", 1))
        result = reconcile(world.engine, RECONCILED_DAY, home=copy, as_of=AS_OF)
        assert result.status == "breaks" and "relv_unreadable" in set(result.breaks["kind"])
    finally:
        shutil.rmtree(copy)


def _day(**values: object) -> DayFigures:
    fields: dict[str, object] = {"reached": True, "statement_present": True, **values}
    return DayFigures(day=date(2026, 11, 26), **fields)  # type: ignore[arg-type]


def test_assess_rules() -> None:
    equal = {"presented_count": 2, "acsc_count": 2, "acsc_amount": 500, "credited_count": 2}
    assert assess(_day(**equal, credited_amount=500, credit_lines=1))[0] == "reconciled"
    # the same figures without the day's own statement (its credits came in a later one): never reconciled
    status, breaks = assess(_day(**equal, credited_amount=500, credit_lines=1, statement_present=False))
    assert status == "breaks" and [b[1] for b in breaks] == ["missing_relv"]
    # a closed day with nothing debited and no statement either
    status, breaks = assess(_day(presented_count=2, statement_present=False))
    assert status == "breaks" and [b[1] for b in breaks] == ["missing_relv"]
    status, breaks = assess(_day(acsc_count=2, acsc_amount=500, presented_count=2, statement_present=False))
    assert status == "breaks" and [b[1] for b in breaks] == ["missing_relv"] and breaks[0][2] == -500
    status, breaks = assess(
        _day(
            presented_count=2,
            acsc_count=2,
            acsc_amount=500,
            credited_count=1,
            credited_amount=300,
            credit_lines=1,
        )
    )
    assert status == "breaks" and [b[1] for b in breaks] == ["not_credited"] and breaks[0][2] == -200
    late = _day(
        presented_count=3,
        open_count=1,
        open_amount=200,
        unreturned_count=1,
        unreturned_amount=200,
        acsc_count=2,
        acsc_amount=500,
        credited_count=3,
        credited_amount=700,
        credit_lines=1,
    )
    status, breaks = assess(late)
    assert status == "pending" and [b[1] for b in breaks] == ["returns_outstanding"]
    # statuses still to come for this settlement date do not keep a closed, equal cash day pending
    still_open = _day(**equal, credited_amount=500, credit_lines=1, open_count=1, unreturned_count=1)
    assert assess(still_open)[0] == "reconciled"
    status, breaks = assess(_day(credited_count=1, credited_amount=900, credit_lines=1))
    assert status == "breaks" and [b[1] for b in breaks] == ["unknown_credit"] and breaks[0][2] == 900
    status, breaks = assess(_day(**{**equal, "credited_count": 3}, credited_amount=500, credit_lines=1))
    assert status == "breaks" and [b[1] for b in breaks] == ["count_mismatch"]
    assert (
        assess(DayFigures(day=date(2026, 11, 26), presented_count=2, open_count=2, open_amount=9))[0]
        == "pending"
    )
