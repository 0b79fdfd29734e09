"""The cash view (``epay.finance.vocabulary``), per debit date (spec §5, §7): what Algérie Poste debited
from the subscribers' CCP accounts and credited to AT's that day — the ACSC returns whose debit date
(RETR positions 75–82) is that day, of which *late* (due on an earlier settlement date, reported late) —
against what the RELV statements credited for it; every difference is a *break*, with its explanation.

The RELV details are not copied into the ledger: the files the ledger registered are read back from the
data folder (and checked against their recorded sha256). ``assess`` is the pure rule.

Break kinds (their meanings: ``vocabulary.BREAKS``):

- ``missing_relv``: the day is closed and its own RELV statement is not in;
- ``not_credited``: ACSC returns in the ledger not (or not wholly) credited by the statements received;
- ``returns_outstanding``: credited more than the ACSC returns, by no more than what still waits for its
  final status — the returns have not come yet (AP reports up to two business days late). The only kind
  that keeps the day *pending* instead of in *breaks*;
- ``credit_difference``: credited more than the ACSC returns, and late returns cannot explain it;
- ``count_mismatch``: amounts equal, numbers of debits different;
- ``unknown_credit``: a RELV line for a debit date the ledger presented nothing for;
- ``relv_unreadable``: a RELV registered in the ledger that cannot be read back as it was received.

Status: ``pending`` (the day is not closed yet — no RELV stating it or a later day, and ``as_of`` not
past it — or returns outstanding), ``reconciled`` (its statement is in and there is no break),
``breaks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from epay.calendar import BusinessCalendar
from epay.finance import ledger_data
from epay.finance.summary import records, sum_by
from epay.finance.vocabulary import BREAKS, CASH_STATUSES, meaning

EXPLAINED = frozenset({"returns_outstanding"})  # a break the day's late returns account for


@dataclass(frozen=True)
class DayFigures:
    """What is known of one debit date, from the ledger and the statements."""

    day: date
    presented_count: int = 0
    presented_amount: int = 0
    settled_count: int = 0  # presented for this settlement date and settled (whatever the debit date)
    settled_amount: int = 0
    rejected_count: int = 0
    rejected_amount: int = 0
    open_count: int = 0  # presented for this settlement date, no final status yet
    open_amount: int = 0
    acsc_count: int = 0  # ACSC in the ledger with this debit date (RETR positions 75–82): debited
    acsc_amount: int = 0
    late_count: int = 0  # of which due on an earlier settlement date
    late_amount: int = 0
    unreturned_count: int = 0  # presented for this date or before, no final status yet: late returns
    unreturned_amount: int = 0
    credited_count: int = 0  # RELV lines for this debit date
    credited_amount: int = 0
    credit_lines: int = 0
    statement_present: bool = False  # a RELV stating this very day was received
    reached: bool = False  # the day is closed at AP (a RELV of this day or later, or as_of past it)
    unreadable: tuple[str, ...] = ()


def _money(centimes: int) -> str:
    sign = "-" if centimes < 0 else ""
    centimes = abs(centimes)
    return f"{sign}{centimes // 100:,}.{centimes % 100:02d} DZD".replace(",", " ")


def assess(f: DayFigures) -> tuple[str, list[tuple[date, str, int, int, str]]]:
    """(status, breaks) of one debit date; a break is (debit_date, kind, amount, count, explanation) with
    amount = credited - expected, in centimes."""
    breaks: list[tuple[date, str, int, int, str]] = []
    for name in f.unreadable:
        breaks.append((f.day, "relv_unreadable", 0, 0, f"{name} cannot be read back as received"))
    difference = f.credited_amount - f.acsc_amount
    if f.credit_lines and f.presented_count == 0 and f.acsc_count == 0:
        breaks.append(
            (
                f.day,
                "unknown_credit",
                f.credited_amount,
                f.credited_count,
                f"RELV credited {_money(f.credited_amount)} for a debit date the ledger presented "
                "nothing for",
            )
        )
    elif f.reached:
        if f.acsc_count and not f.credit_lines and not f.statement_present:
            breaks.append(
                (
                    f.day,
                    "missing_relv",
                    -f.acsc_amount,
                    -f.acsc_count,
                    f"no RELV statement for {f.day}: {f.acsc_count} ACSC returns "
                    f"({_money(f.acsc_amount)}) not credited",
                )
            )
        elif difference < 0:
            breaks.append(
                (
                    f.day,
                    "not_credited",
                    difference,
                    f.credited_count - f.acsc_count,
                    f"ACSC returns in the ledger {_money(f.acsc_amount)}, credited "
                    f"{_money(f.credited_amount)}: {_money(-difference)} not credited",
                )
            )
        elif difference > 0 and f.unreturned_count and difference <= f.unreturned_amount:
            breaks.append(
                (
                    f.day,
                    "returns_outstanding",
                    difference,
                    f.credited_count - f.acsc_count,
                    f"credited {_money(difference)} more than the ACSC returns so far: {f.unreturned_count} "
                    f"instruction(s) ({_money(f.unreturned_amount)}) still wait for their final status",
                )
            )
        elif difference > 0:
            breaks.append(
                (
                    f.day,
                    "credit_difference",
                    difference,
                    f.credited_count - f.acsc_count,
                    f"credited {_money(f.credited_amount)}, ACSC returns {_money(f.acsc_amount)}: "
                    f"{_money(difference)} more, not explained by returns still to come "
                    f"({_money(f.unreturned_amount)})",
                )
            )
        elif f.credited_count != f.acsc_count:
            breaks.append(
                (
                    f.day,
                    "count_mismatch",
                    0,
                    f.credited_count - f.acsc_count,
                    f"amounts agree but RELV counts {f.credited_count} debits, the ledger {f.acsc_count}",
                )
            )
        expected = f.presented_count or f.acsc_count or f.credit_lines  # something to state that day
        if expected and not f.statement_present and not any(b[1] == "missing_relv" for b in breaks):
            breaks.append(
                (
                    f.day,
                    "missing_relv",
                    0,
                    0,
                    f"no RELV statement stating {f.day}"
                    + (" (its credits came in a later statement)" if f.credit_lines else ""),
                )
            )
    if not f.reached and not any(b[1] == "unknown_credit" for b in breaks):
        return "pending", breaks
    if any(b[1] not in EXPLAINED for b in breaks):
        return "breaks", breaks
    if any(b[1] in EXPLAINED for b in breaks):  # credits for returns still to come
        return "pending", breaks
    if not f.statement_present:  # never reconciled without its statement
        return "pending", breaks
    return "reconciled", breaks


BREAK_FRAME_COLUMNS = ("debit_date", "kind", "meaning", "amount", "count", "explanation")
DEBITED_COLUMNS = ("settlement_date", "late", "count", "amount")


def breaks_frame(rows: list[tuple[date, str, int, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(d, k, meaning(BREAKS, k), a, n, e) for d, k, a, n, e in rows], columns=list(BREAK_FRAME_COLUMNS)
    )
    for column in ("amount", "count"):
        frame[column] = frame[column].astype("int64")
    return frame


@dataclass(frozen=True)
class Reconciliation:
    """The cash view of one debit date."""

    debit_date: date
    status: str  # reconciled | breaks | pending
    figures: DayFigures
    debited: pd.DataFrame  # DEBITED_COLUMNS: the day's ACSC by the settlement date they belong to
    credits: pd.DataFrame  # file, statement_date, debit_date, credited_count, amount (RELV lines)
    breaks: pd.DataFrame  # BREAK_FRAME_COLUMNS; amount = credited - debited
    refunds: pd.DataFrame  # refunds owed for debits of that date (epay.reports.refunds)

    @property
    def settlement_date(self) -> date:  # the name before the two views were separated
        return self.debit_date

    @property
    def difference(self) -> int:
        return self.figures.credited_amount - self.figures.acsc_amount

    def overview(self) -> pd.DataFrame:
        """One row: the day's cash figures, difference and status."""
        f = self.figures
        row = {
            "debit_date": f.day,
            "status": self.status,
            "status_meaning": meaning(CASH_STATUSES, self.status),
            "statement_present": f.statement_present,
            "debited_count": f.acsc_count,
            "debited_amount": f.acsc_amount,
            "due_that_day_count": f.acsc_count - f.late_count,
            "due_that_day_amount": f.acsc_amount - f.late_amount,
            "late_count": f.late_count,
            "late_amount": f.late_amount,
            "credited_count": f.credited_count,
            "credited_amount": f.credited_amount,
            "difference_amount": self.difference,
            "break_count": len(self.breaks),
            "refund_count": len(self.refunds),
            "refund_amount": int(self.refunds["amount"].sum()) if len(self.refunds) else 0,
        }
        return pd.DataFrame([row])

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"view": "cash", **records(self.overview())[0]}
        # the nightly JSON's earlier names of the day's ACSC returns (= debited_*), for its readers
        document["acsc_count"] = self.figures.acsc_count
        document["acsc_amount"] = self.figures.acsc_amount
        document["debited_by_settlement_date"] = records(self.debited)
        document["credits"] = records(self.credits)
        document["breaks"] = records(self.breaks)
        document["refunds"] = records(self.refunds)
        return document


# --- from the ledger --------------------------------------------------------------------------------------


def _home(home: Path | None) -> Path:
    if home is not None:
        return home
    from epay.settings import Settings

    return Settings().home


def _figures(
    day: date,
    instructions: pd.DataFrame,
    debits: pd.DataFrame,
    statements: ledger_data.Statements,
    as_of: date | None,
    open_before: pd.DataFrame,
) -> DayFigures:
    of_day = instructions[instructions["settlement_date"] == day]
    settled_ = of_day[of_day["state"] == "settled"]
    rejected = of_day[of_day["state"] == "rejected"]
    open_ = of_day[of_day["state"].isin(ledger_data.OPEN_STATES)]
    unreturned = open_before[open_before["settlement_date"] <= day]
    acsc = debits[debits["debit_date"] == day]
    late = acsc[acsc["settlement_date"] < day]
    credits = statements.credits[statements.credits["debit_date"] == day]
    reached = any(d >= day for d in statements.days) or (as_of is not None and as_of > day)
    return DayFigures(
        day=day,
        presented_count=int(of_day["count"].sum()),
        presented_amount=int(of_day["amount"].sum()),
        settled_count=int(settled_["count"].sum()),
        settled_amount=int(settled_["amount"].sum()),
        rejected_count=int(rejected["count"].sum()),
        rejected_amount=int(rejected["amount"].sum()),
        open_count=int(open_["count"].sum()),
        open_amount=int(open_["amount"].sum()),
        acsc_count=int(acsc["count"].sum()),
        acsc_amount=int(acsc["amount"].sum()),
        late_count=int(late["count"].sum()),
        late_amount=int(late["amount"].sum()),
        unreturned_count=int(unreturned["count"].sum()),
        unreturned_amount=int(unreturned["amount"].sum()),
        credited_count=int(credits["credited_count"].sum()),
        credited_amount=int(credits["amount"].sum()),
        credit_lines=len(credits),
        statement_present=day in statements.days,
        reached=reached,
        unreadable=tuple(n for n in statements.unreadable if _stated(n) == day),
    )


def _stated(name: str) -> date | None:
    from epay.reports.exceptions import statement_day

    return statement_day(name)


def debited_by_settlement_date(debits: pd.DataFrame, day: date) -> pd.DataFrame:
    of_day = debits[debits["debit_date"] == day]
    sums = sum_by(of_day, "settlement_date")
    rows = [(d, d < day, *sums[(d,)]) for (d,) in sorted(sums)]
    frame = pd.DataFrame(rows, columns=list(DEBITED_COLUMNS))
    frame["late"] = frame["late"].astype(bool)
    for column in ("count", "amount"):
        frame[column] = frame[column].astype("int64")
    return frame


def reconcile(
    engine: Engine, debit_date: date, *, home: Path | None = None, as_of: date | None = None
) -> Reconciliation:
    """The cash view of one debit date. ``home``: the data folder the RELV files were received into
    (default: the settings'); ``as_of``: a day after which the date counts as closed even without a RELV
    (default: closed once a RELV stating it or a later day is in)."""
    with engine.connect() as connection:
        instructions = ledger_data.instruction_totals(connection, debit_date, debit_date)
        debits = ledger_data.debits(connection, debit_date, debit_date)
        statements = ledger_data.statements(connection, _home(home), since=debit_date)
        open_before = ledger_data.open_by_settlement_date(connection, debit_date)
    figures = _figures(debit_date, instructions, debits, statements, as_of, open_before)
    status, rows = assess(figures)
    credits = statements.credits[statements.credits["debit_date"] == debit_date].reset_index(drop=True)
    return Reconciliation(
        debit_date=debit_date,
        status=status,
        figures=figures,
        debited=debited_by_settlement_date(debits, debit_date),
        credits=credits,
        breaks=breaks_frame(rows),
        refunds=ledger_data.refunds_for(engine, debit_date, debit_date),
    )


CASH_DAY_COLUMNS = (
    "debit_date",
    "status",
    "status_meaning",
    "statement_present",
    "debited_count",
    "debited_amount",
    "late_count",
    "late_amount",
    "credited_count",
    "credited_amount",
    "difference_amount",
    "break_count",
    "late_from",
)


def cash_days(
    engine: Engine, calendar: BusinessCalendar, *, home: Path | None = None, as_of: date | None = None
) -> pd.DataFrame:
    """One row per debit date, oldest first: a date with ACSC returns debited, a RELV credit, or a
    settlement date with presented instructions that is closed (whose statement is then expected).
    ``late_from``: the earlier settlement dates whose late statuses were debited that day (ISO, comma
    separated)."""
    with engine.connect() as connection:
        presented = set(ledger_data.settlement_dates(connection))
        statements = ledger_data.statements(connection, _home(home))
        debits = ledger_data.debits(connection, None, None)
        days = set(debits["debit_date"]) | set(statements.credits["debit_date"])
        days |= {
            d for d in presented if any(s >= d for s in statements.days) or (as_of is not None and as_of > d)
        }
        if not days:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in CASH_DAY_COLUMNS})
        first, last = min(days), max(days)
        instructions = ledger_data.instruction_totals(connection, first, last)
        open_before = ledger_data.open_by_settlement_date(connection, last)
    out = []
    for day in sorted(days):
        f = _figures(day, instructions, debits, statements, as_of, open_before)
        status, rows = assess(f)
        late_from = sorted({d for d in debits[debits["debit_date"] == day]["settlement_date"] if d < day})
        out.append(
            (
                day,
                status,
                meaning(CASH_STATUSES, status),
                f.statement_present,
                f.acsc_count,
                f.acsc_amount,
                f.late_count,
                f.late_amount,
                f.credited_count,
                f.credited_amount,
                f.credited_amount - f.acsc_amount,
                len(rows),
                ", ".join(d.isoformat() for d in late_from),
            )
        )
    frame = pd.DataFrame(out, columns=list(CASH_DAY_COLUMNS))
    for column in CASH_DAY_COLUMNS[4:-1]:
        frame[column] = frame[column].astype("int64")
    frame["statement_present"] = frame["statement_present"].astype(bool)
    return frame
