"""The finance summary of a settlement date (or of the month to date): what was presented to Algérie Poste,
settled, rejected by reason, still pending or overdue, retried, and what was due but not sent.

``settlement_summary`` and ``month_to_date`` read small aggregated frames from the ledger
(``epay.finance.ledger_data``); ``summarise`` turns them into the report's sections, pure pandas.

The population of a settlement date: the instructions presented for it (their PRLV file was sent: state
sent, presented, settled or rejected). *Pending*: no final status yet; *overdue*: still pending
``overdue_after_business_days`` business days after the settlement date (as of ``as_of``, the end of
that day). Exclusions are those of the build(s) whose batch settles on that date. Amounts are int centimes.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from epay.calendar import BusinessCalendar
from epay.finance import ledger_data
from epay.reports.exceptions import returns_due_by

REASONS_FILE = Path(__file__).resolve().parents[2] / "schemas" / "finance" / "reasons.toml"
OPERATIONS = ("FA", "RA")
TOTAL = "total"
UNKNOWN_REASON = "unknown reason"

SECTION_NAMES = (
    "presented",
    "settled",
    "rejected_by_reason",
    "pending",
    "overdue",
    "retries",
    "exclusions",
)


@cache
def reason_meanings(path: Path = REASONS_FILE) -> dict[str, str]:
    """RETR reject code -> meaning (spec §5), in the order Algérie Poste checks them."""
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    return {str(r["code"]): str(r["meaning"]) for r in raw["reason"]}


@dataclass(frozen=True)
class FinanceSummary:
    """The sections of one settlement date (``first == last``) or of a range of them."""

    first: date
    last: date
    as_of: date
    status: str  # empty | complete | pending | overdue
    presented: pd.DataFrame  # operation (FA, RA, total), count, amount
    settled: pd.DataFrame  # operation, count, amount
    rejected_by_reason: pd.DataFrame  # code, meaning, count, amount
    pending: pd.DataFrame  # operation, count, amount
    overdue: pd.DataFrame  # settlement_date, due_by, operation, count, amount
    retries: pd.DataFrame  # try_number, presented_/settled_/rejected_ count and amount
    exclusions: pd.DataFrame  # reason, count, amount

    def sections(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in SECTION_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts in centimes, dates ISO."""
        document: dict[str, Any] = {
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "as_of": self.as_of.isoformat(),
            "status": self.status,
        }
        for name, frame in self.sections().items():
            document[name] = records(frame)
        return document


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values (int, str, ISO dates)."""
    out = []
    for row in frame.to_dict("records"):
        out.append({str(k): _plain(v) for k, v in row.items()})
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


# --- pure computations ------------------------------------------------------------------------------------


def sum_by(rows: pd.DataFrame, *keys: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(count, amount) summed per value of ``keys``, in plain Python ints (the frames are aggregates)."""
    out: dict[tuple[Any, ...], tuple[int, int]] = {}
    columns = [rows[k].tolist() for k in keys]
    for index, (count, amount) in enumerate(
        zip(rows["count"].tolist(), rows["amount"].tolist(), strict=True)
    ):
        key = tuple(column[index] for column in columns)
        had = out.get(key, (0, 0))
        out[key] = (had[0] + int(count), had[1] + int(amount))
    return out


def by_operation(rows: pd.DataFrame) -> pd.DataFrame:
    """count and amount per operation, FA and RA always listed, then the total."""
    sums = {str(k[0]): v for k, v in sum_by(rows, "operation").items()}
    operations = [*OPERATIONS, *sorted(set(sums) - set(OPERATIONS))]  # another code: listed, not lost
    out = [(operation, *sums.get(operation, (0, 0))) for operation in operations]
    out.append((TOTAL, sum(r[1] for r in out), sum(r[2] for r in out)))
    return _ints(pd.DataFrame(out, columns=["operation", "count", "amount"]), "count", "amount")


def _ints(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].astype("int64")
    return frame


def rejected_by_reason(rows: pd.DataFrame, meanings: dict[str, str]) -> pd.DataFrame:
    sums = {str(k[0]): v for k, v in sum_by(rows[rows["state"] == "rejected"], "reason").items()}
    order = {code: i for i, code in enumerate(meanings)}
    codes = sorted(sums, key=lambda c: (order.get(c, len(order)), c))
    out = [(c, meanings.get(c, UNKNOWN_REASON), *sums[c]) for c in codes]
    return _ints(pd.DataFrame(out, columns=["code", "meaning", "count", "amount"]), "count", "amount")


def overdue_of(
    rows: pd.DataFrame, calendar: BusinessCalendar, business_days: int, as_of: date
) -> pd.DataFrame:
    """Pending instructions whose last day for a final status is ``as_of`` or earlier."""
    pending = rows[rows["state"].isin(ledger_data.OPEN_STATES)]
    out = []
    for (day, operation), (count, amount) in sorted(sum_by(pending, "settlement_date", "operation").items()):
        due_by = returns_due_by(day, calendar, business_days)
        if due_by <= as_of:
            out.append((day, due_by, str(operation), count, amount))
    frame = pd.DataFrame(out, columns=["settlement_date", "due_by", "operation", "count", "amount"])
    return _ints(frame, "count", "amount")


def retries_of(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for try_number in sorted({int(t) for t in rows["try_number"]}):
        of_try = rows[rows["try_number"] == try_number]
        settled = of_try[of_try["state"] == "settled"]
        rejected = of_try[of_try["state"] == "rejected"]
        out.append(
            (
                try_number,
                int(of_try["count"].sum()),
                int(of_try["amount"].sum()),
                int(settled["count"].sum()),
                int(settled["amount"].sum()),
                int(rejected["count"].sum()),
                int(rejected["amount"].sum()),
            )
        )
    columns = [
        "try_number",
        "presented_count",
        "presented_amount",
        "settled_count",
        "settled_amount",
        "rejected_count",
        "rejected_amount",
    ]
    frame = pd.DataFrame(out, columns=columns)
    return _ints(frame, *columns)


def exclusions_of(rows: pd.DataFrame) -> pd.DataFrame:
    out = sorted((str(k[0]), *v) for k, v in sum_by(rows, "reason").items())
    return _ints(pd.DataFrame(out, columns=["reason", "count", "amount"]), "count", "amount")


def summarise(
    first: date,
    last: date,
    instructions: pd.DataFrame,
    exclusions: pd.DataFrame,
    calendar: BusinessCalendar,
    *,
    overdue_after_business_days: int,
    as_of: date,
    meanings: dict[str, str] | None = None,
) -> FinanceSummary:
    """The sections, from ``ledger_data.instruction_totals`` and ``exclusion_totals`` frames."""
    meanings = reason_meanings() if meanings is None else meanings
    presented = by_operation(instructions)
    settled = by_operation(instructions[instructions["state"] == "settled"])
    pending = by_operation(instructions[instructions["state"].isin(ledger_data.OPEN_STATES)])
    overdue = overdue_of(instructions, calendar, overdue_after_business_days, as_of)
    total_presented = int(presented["count"].iloc[-1])
    if total_presented == 0:
        status = "empty"
    elif len(overdue):
        status = "overdue"
    elif int(pending["count"].iloc[-1]):
        status = "pending"
    else:
        status = "complete"
    return FinanceSummary(
        first=first,
        last=last,
        as_of=as_of,
        status=status,
        presented=presented,
        settled=settled,
        rejected_by_reason=rejected_by_reason(instructions, meanings),
        pending=pending,
        overdue=overdue,
        retries=retries_of(instructions),
        exclusions=exclusions_of(exclusions),
    )


# --- from the ledger --------------------------------------------------------------------------------------


def summary_between(
    engine: Engine,
    first: date,
    last: date,
    calendar: BusinessCalendar,
    *,
    overdue_after_business_days: int = 2,
    as_of: date | None = None,
) -> FinanceSummary:
    """The sections aggregated over the settlement dates ``first``..``last``."""
    if as_of is None:
        from epay.settings import business_today

        as_of = business_today()
    with engine.connect() as connection:
        instructions = ledger_data.instruction_totals(connection, first, last)
        exclusions = ledger_data.exclusion_totals(connection, first, last)
    return summarise(
        first,
        last,
        instructions,
        exclusions,
        calendar,
        overdue_after_business_days=overdue_after_business_days,
        as_of=as_of,
    )


def settlement_summary(
    engine: Engine,
    settlement_date: date,
    calendar: BusinessCalendar,
    *,
    overdue_after_business_days: int = 2,
    as_of: date | None = None,
) -> FinanceSummary:
    """The finance summary of one settlement date; ``as_of`` (default: today in Algiers) decides what
    is overdue."""
    return summary_between(
        engine,
        settlement_date,
        settlement_date,
        calendar,
        overdue_after_business_days=overdue_after_business_days,
        as_of=as_of,
    )


def month_to_date(
    engine: Engine,
    day: date,
    calendar: BusinessCalendar,
    *,
    overdue_after_business_days: int = 2,
    as_of: date | None = None,
) -> FinanceSummary:
    """The same sections over the settlement dates from the 1st of ``day``'s month to ``day``."""
    return summary_between(
        engine,
        day.replace(day=1),
        day,
        calendar,
        overdue_after_business_days=overdue_after_business_days,
        as_of=as_of,
    )
