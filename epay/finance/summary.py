"""The settlement view (``epay.finance.vocabulary``): for a settlement date, or the settlement dates of a
month to date, what was due and what became of it.

- presented / settled / rejected / pending, by operation (FA, RA, total): presented = settled + rejected +
  pending, always;
- rejected by reason, with the reason's meaning; overdue (pending past AP's reporting deadline); retries by
  try number;
- not presented: the PRLV files for that date AP never processed (rejected at ACK, expired unsent, held,
  cancelled) and what became of their instructions (re-filed for a later date, held, cancelled, waiting);
- exclusions: what the build(s) for that date found due but did not put in a file, as *distinct items*
  (an invoice held by three builds is one item, held by 3 builds), by reason with its meaning.

``summarise`` is pure pandas on the small aggregated frames of ``ledger_data``; ``summary_between`` and
``settlement_days`` read them. Amounts are int centimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from epay.calendar import BusinessCalendar
from epay.finance import ledger_data
from epay.finance.vocabulary import (
    EXCLUSIONS,
    FILE_REASONS,
    FILE_STATES,
    INSTRUCTION_STATES,
    OPERATIONS,
    SETTLEMENT_STATUSES,
    UNKNOWN,
    meaning,
    reason_meanings,
)
from epay.reports.exceptions import returns_due_by

OPERATION_CODES = ("FA", "RA")
TOTAL = "total"
UNKNOWN_REASON = UNKNOWN
STATES = ("presented", "settled", "rejected", "pending")
BY_OPERATION_COLUMNS = (
    "operation",
    "operation_meaning",
    *(f"{s}_{k}" for s in STATES for k in ("count", "amount")),
)
NOT_PRESENTED_COLUMNS = (
    "file",
    "built_on",
    "settlement_date",
    "state",
    "state_meaning",
    "reason",
    "reason_meaning",
    "count",
    "amount",
    "re_filed_count",
    "re_filed_amount",
    "waiting_count",
    "waiting_amount",
    "held_count",
    "held_amount",
    "cancelled_count",
    "cancelled_amount",
)
RE_FILED_COLUMNS = (
    "file",
    "now_in_file",
    "now_settlement_date",
    "now_state",
    "now_state_meaning",
    "count",
    "amount",
)
EXCLUSION_COLUMNS = ("reason", "meaning", "items", "amount", "builds", "item_builds")
EXCLUDED_ITEM_COLUMNS = (
    "item_number",
    "kind",
    "kind_meaning",
    "amount",
    "reason",
    "reason_meaning",
    "builds",
    "first_build",
    "last_build",
)
SECTION_NAMES = (
    "by_operation",
    "rejected_by_reason",
    "overdue",
    "retries",
    "not_presented",
    "re_filed",
    "exclusions",
    "excluded_items",
)
PRESENTED_STATES = frozenset(ledger_data.AT_POSTE_STATES)


@dataclass(frozen=True)
class FinanceSummary:
    """The settlement view of one settlement date (``first == last``) or of a range of them."""

    first: date
    last: date
    as_of: date
    status: str  # empty | not_presented | complete | pending | overdue
    by_operation: pd.DataFrame  # BY_OPERATION_COLUMNS, FA, RA (and any other), total
    rejected_by_reason: pd.DataFrame  # code, meaning, count, amount
    overdue: pd.DataFrame  # settlement_date, due_by, operation, count, amount
    retries: pd.DataFrame  # try_number, presented_/settled_/rejected_ count and amount
    not_presented: pd.DataFrame  # NOT_PRESENTED_COLUMNS, one row per file
    re_filed: pd.DataFrame  # RE_FILED_COLUMNS: where a not-presented file's instructions are now
    exclusions: pd.DataFrame  # EXCLUSION_COLUMNS, one row per reason
    excluded_items: pd.DataFrame  # EXCLUDED_ITEM_COLUMNS, one row per distinct item

    def sections(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in SECTION_NAMES}

    def figure(self, state: str, what: str = "amount", operation: str = TOTAL) -> int:
        """A figure of ``by_operation``: ``figure("settled")`` is the settled amount, all operations."""
        rows = self.by_operation[self.by_operation["operation"] == operation]
        return int(rows[f"{state}_{what}"].iloc[0]) if len(rows) else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts in centimes, dates ISO."""
        document: dict[str, Any] = {
            "view": "settlement",
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "as_of": self.as_of.isoformat(),
            "status": self.status,
            "status_meaning": meaning(SETTLEMENT_STATUSES, self.status),
        }
        for name, frame in self.sections().items():
            document[name] = records(frame)
        return document


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values (int, str, bool, ISO dates)."""
    out = []
    for row in frame.to_dict("records"):
        out.append({str(k): _plain(v) for k, v in row.items()})
    return out


def _plain(value: Any) -> Any:
    if value is None:
        return None
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


def _ints(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].astype("int64")
    return frame


def _state_of(state: str) -> str | None:
    if state == "settled":
        return "settled"
    if state == "rejected":
        return "rejected"
    if state in ledger_data.OPEN_STATES:
        return "pending"
    return None


def by_operation(rows: pd.DataFrame) -> pd.DataFrame:
    """Presented, settled, rejected and pending (count, amount) per operation, FA and RA always listed,
    then the total row. ``rows``: ``ledger_data.instruction_totals``."""
    sums: dict[str, dict[str, list[int]]] = {}
    for (operation, state), (count, amount) in sum_by(rows, "operation", "state").items():
        bucket = _state_of(str(state))
        if bucket is None:
            continue
        per = sums.setdefault(str(operation), {s: [0, 0] for s in STATES})
        for name in ("presented", bucket):
            per[name][0] += count
            per[name][1] += amount
    operations = [*OPERATION_CODES, *sorted(set(sums) - set(OPERATION_CODES))]  # another code: not lost
    out = []
    totals = {s: [0, 0] for s in STATES}
    for operation in operations:
        per = sums.get(operation, {s: [0, 0] for s in STATES})
        row: list[Any] = [operation, meaning(OPERATIONS, operation)]
        for s in STATES:
            row += per[s]
            totals[s][0] += per[s][0]
            totals[s][1] += per[s][1]
        out.append(row)
    out.append([TOTAL, OPERATIONS[TOTAL], *(v for s in STATES for v in totals[s])])
    return _ints(pd.DataFrame(out, columns=list(BY_OPERATION_COLUMNS)), *BY_OPERATION_COLUMNS[2:])


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
            out.append((day, due_by, str(operation), meaning(OPERATIONS, str(operation)), count, amount))
    columns = ["settlement_date", "due_by", "operation", "operation_meaning", "count", "amount"]
    frame = pd.DataFrame(out, columns=columns)
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
    return _ints(pd.DataFrame(out, columns=columns), *columns)


def _outcome(state: str, now_in_file: str, file: str) -> str:
    if state == "cancelled":
        return "cancelled"
    if state == "held":
        return "held"
    if now_in_file and now_in_file != file:
        return "re_filed"
    if now_in_file == file:
        return "held"  # still in its held file
    return "waiting"


def not_presented_of(files: pd.DataFrame, outcomes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per file AP never processed, with what became of its instructions; and the files (and
    settlement dates) they were re-filed into."""
    rows = []
    moved = []
    for f in files.to_dict("records"):
        of_file = outcomes[outcomes["file_id"] == f["file_id"]]
        sums = {k: [0, 0] for k in ("re_filed", "waiting", "held", "cancelled")}
        for o in of_file.to_dict("records"):
            kind = _outcome(str(o["state"]), str(o["now_in_file"]), str(f["file"]))
            sums[kind][0] += int(o["count"])
            sums[kind][1] += int(o["amount"])
            if kind == "re_filed":
                moved.append(
                    (
                        f["file"],
                        o["now_in_file"],
                        o["now_settlement_date"],
                        str(o["state"]),
                        meaning(INSTRUCTION_STATES, str(o["state"])),
                        int(o["count"]),
                        int(o["amount"]),
                    )
                )
        if not len(of_file):  # no instruction event names the file: its instructions are still in it
            sums["held" if f["state"] == "held" else "waiting"] = [int(f["count"]), int(f["amount"])]
        rows.append(
            (
                f["file"],
                f["built_on"],
                f["settlement_date"],
                f["state"],
                meaning(FILE_STATES, str(f["state"])),
                f["reason"],
                meaning(FILE_REASONS, str(f["reason"])),
                int(f["count"]),
                int(f["amount"]),
                *(v for k in ("re_filed", "waiting", "held", "cancelled") for v in sums[k]),
            )
        )
    frame = _ints(pd.DataFrame(rows, columns=list(NOT_PRESENTED_COLUMNS)), *NOT_PRESENTED_COLUMNS[7:])
    return frame, _ints(pd.DataFrame(moved, columns=list(RE_FILED_COLUMNS)), "count", "amount")


def exclusions_of(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Distinct excluded items (each with its latest reason and the number of builds that held it) and
    the per-reason totals of those items. ``rows``: ``ledger_data.exclusion_rows`` (one per build and
    item)."""
    if not len(rows):
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in EXCLUDED_ITEM_COLUMNS})
        by_reason = pd.DataFrame({c: pd.Series([], dtype=object) for c in EXCLUSION_COLUMNS})
        return _ints(by_reason, "items", "amount", "builds", "item_builds"), _ints(empty, "amount", "builds")
    ordered = rows.assign(day=[d.toordinal() for d in rows["build"]])  # ints: grouped in C, not Python
    ordered = ordered.sort_values(["item_id", "day"], kind="stable")
    per_item = ordered.groupby("item_id", sort=False)
    items = pd.DataFrame(
        {
            "item_number": per_item["item_number"].last().astype(str),
            "kind": per_item["kind"].last().astype(str),
            "amount": per_item["amount"].last().astype("int64"),
            "reason": per_item["reason"].last().astype(str),  # the latest build's reason
            "builds": per_item["day"].nunique().astype("int64"),
            "item_builds": per_item["day"].size().astype("int64"),
            "first_build": [date.fromordinal(int(d)) for d in per_item["day"].min()],
            "last_build": [date.fromordinal(int(d)) for d in per_item["day"].max()],
        }
    )
    items["kind_meaning"] = [meaning(OPERATIONS, k) for k in items["kind"]]
    items["reason_meaning"] = [meaning(EXCLUSIONS, r) for r in items["reason"]]
    detail = items.sort_values(["reason", "item_number"], kind="stable")[list(EXCLUDED_ITEM_COLUMNS)]
    with_reason = ordered.merge(items[["reason"]], left_on="item_id", right_index=True, suffixes=("_row", ""))
    builds = with_reason.groupby("reason")["day"].nunique()
    grouped = items.groupby("reason")
    by_reason = pd.DataFrame(
        {
            "items": grouped.size(),
            "amount": grouped["amount"].sum(),
            "builds": builds,
            "item_builds": grouped["item_builds"].sum(),
        }
    ).reset_index()
    by_reason.insert(1, "meaning", [meaning(EXCLUSIONS, str(r)) for r in by_reason["reason"]])
    by_reason["reason"] = by_reason["reason"].astype(str)
    by_reason = by_reason[list(EXCLUSION_COLUMNS)].sort_values("reason", kind="stable").reset_index(drop=True)
    return (
        _ints(by_reason, "items", "amount", "builds", "item_builds"),
        _ints(detail.reset_index(drop=True), "amount", "builds"),
    )


def status_of(by_op: pd.DataFrame, overdue: pd.DataFrame, not_presented: pd.DataFrame) -> str:
    total = by_op[by_op["operation"] == TOTAL].iloc[0]
    if int(total["presented_count"]) == 0:
        return "not_presented" if len(not_presented) else "empty"
    if len(overdue):
        return "overdue"
    if int(total["pending_count"]):
        return "pending"
    return "complete"


def summarise(
    first: date,
    last: date,
    instructions: pd.DataFrame,
    exclusions: pd.DataFrame,
    calendar: BusinessCalendar,
    *,
    overdue_after_business_days: int,
    as_of: date,
    failed: pd.DataFrame | None = None,
    outcomes: pd.DataFrame | None = None,
    meanings: dict[str, str] | None = None,
) -> FinanceSummary:
    """The sections, from ``ledger_data`` frames already limited to ``first``..``last`` (exclusion rows:
    of the builds settling in that range; failed files: settling in that range)."""
    meanings = reason_meanings() if meanings is None else meanings
    by_op = by_operation(instructions)
    overdue = overdue_of(instructions, calendar, overdue_after_business_days, as_of)
    if failed is None:
        failed = pd.DataFrame({c: pd.Series([], dtype=object) for c in ledger_data.FAILED_FILE_COLUMNS})
    if outcomes is None:
        outcomes = pd.DataFrame({c: pd.Series([], dtype=object) for c in ledger_data.OUTCOME_COLUMNS})
    not_presented, re_filed = not_presented_of(failed, outcomes)
    by_reason, items = exclusions_of(exclusions)
    return FinanceSummary(
        first=first,
        last=last,
        as_of=as_of,
        status=status_of(by_op, overdue, not_presented),
        by_operation=by_op,
        rejected_by_reason=rejected_by_reason(instructions, meanings),
        overdue=overdue,
        retries=retries_of(instructions),
        not_presented=not_presented,
        re_filed=re_filed,
        exclusions=by_reason,
        excluded_items=items,
    )


# --- from the ledger --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettlementFrames:
    """Everything the settlement view reads, for settlement dates ``first``..``last``."""

    instructions: pd.DataFrame
    exclusions: pd.DataFrame  # with a ``settlement_date`` column: the build's
    failed: pd.DataFrame
    outcomes: pd.DataFrame


def read_frames(
    engine: Engine, first: date, last: date, calendar: BusinessCalendar, *, exclusions: bool = True
) -> SettlementFrames:
    with engine.connect() as connection:
        instructions = ledger_data.instruction_totals(connection, first, last)
        # a build settles on the next business day: the builds for first..last started at most a few
        # weeks of holidays before ``first``; without ``exclusions`` (the index, which counts them in
        # the database), an empty range
        since = first - timedelta(days=40) if exclusions else date.max
        rows = ledger_data.exclusion_rows(connection, since, last)
        failed = ledger_data.failed_files(connection)
        outcomes = ledger_data.failed_file_outcomes(connection)
    settles = {b: calendar.next_business_day(b) for b in set(rows["build"])}  # once per build
    rows["settlement_date"] = pd.Series([settles[b] for b in rows["build"]], index=rows.index, dtype=object)
    rows = _where(rows, [first <= d <= last for d in rows["settlement_date"]])
    failed = _where(failed, [d is not None and first <= d <= last for d in failed["settlement_date"]])
    return SettlementFrames(instructions, rows, failed, outcomes)


def excluded_per_settlement_date(engine: Engine, calendar: BusinessCalendar) -> dict[date, tuple[int, int]]:
    """Distinct excluded items (count, amount) per settlement date, aggregated in the database: one
    build per settlement date is the rule; a date two builds settle on gets the union of their items."""
    with engine.connect() as connection:
        per_build = ledger_data.excluded_per_build(connection)
        builds: dict[date, list[date]] = {}
        for build in per_build["build"]:
            builds.setdefault(calendar.next_business_day(build), []).append(build)
        sums = dict(
            zip(per_build["build"], zip(per_build["items"], per_build["amount"], strict=True), strict=True)
        )
        out: dict[date, tuple[int, int]] = {}
        for day, of_day in builds.items():
            if len(of_day) == 1:
                items, amount = sums[of_day[0]]
                out[day] = (int(items), int(amount))
            else:
                union = ledger_data.excluded_items_of(connection, of_day)
                out[day] = (len(union), int(union["amount"].sum()))
    return out


def _where(frame: pd.DataFrame, keep: list[bool]) -> pd.DataFrame:
    """The rows where ``keep`` is true (an empty list keeps the columns of an empty frame)."""
    return frame[pd.Series(keep, index=frame.index, dtype=bool)].reset_index(drop=True)


def _slice(frames: SettlementFrames, first: date, last: date) -> SettlementFrames:
    def within(frame: pd.DataFrame) -> pd.DataFrame:
        return _where(frame, [first <= d <= last for d in frame["settlement_date"]])

    return SettlementFrames(
        within(frames.instructions), within(frames.exclusions), within(frames.failed), frames.outcomes
    )


def _summary(
    frames: SettlementFrames,
    first: date,
    last: date,
    calendar: BusinessCalendar,
    overdue_after_business_days: int,
    as_of: date,
) -> FinanceSummary:
    return summarise(
        first,
        last,
        frames.instructions,
        frames.exclusions,
        calendar,
        overdue_after_business_days=overdue_after_business_days,
        as_of=as_of,
        failed=frames.failed,
        outcomes=frames.outcomes,
    )


def _as_of(as_of: date | None) -> date:
    if as_of is not None:
        return as_of
    from epay.settings import business_today

    return business_today()


def summary_between(
    engine: Engine,
    first: date,
    last: date,
    calendar: BusinessCalendar,
    *,
    overdue_after_business_days: int = 2,
    as_of: date | None = None,
) -> FinanceSummary:
    """The settlement view aggregated over the settlement dates ``first``..``last``."""
    frames = read_frames(engine, first, last, calendar)
    return _summary(frames, first, last, calendar, overdue_after_business_days, _as_of(as_of))


def settlement_summary(
    engine: Engine,
    settlement_date: date,
    calendar: BusinessCalendar,
    *,
    overdue_after_business_days: int = 2,
    as_of: date | None = None,
) -> FinanceSummary:
    """The settlement view of one settlement date; ``as_of`` (default: today in Algiers) decides what is
    overdue."""
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
    """The settlement view over the settlement dates from the 1st of ``day``'s month to ``day``."""
    return summary_between(
        engine,
        day.replace(day=1),
        day,
        calendar,
        overdue_after_business_days=overdue_after_business_days,
        as_of=as_of,
    )


SETTLEMENT_DAY_COLUMNS = (
    "settlement_date",
    "status",
    "status_meaning",
    *BY_OPERATION_COLUMNS[2:],
    "not_presented_count",
    "not_presented_amount",
    "excluded_items",
    "excluded_amount",
)


def settlement_days(
    engine: Engine,
    calendar: BusinessCalendar,
    *,
    overdue_after_business_days: int = 2,
    as_of: date | None = None,
) -> pd.DataFrame:
    """One row per settlement date (presented for, or with a file AP never processed, or with
    exclusions), oldest first: the settlement view's figures and status. Never a debit-only date."""
    as_of = _as_of(as_of)
    with engine.connect() as connection:
        days = set(ledger_data.settlement_dates(connection))
        failed = ledger_data.failed_files(connection)
        exclusion_days = ledger_data.build_dates(connection)
    days |= {d for d in failed["settlement_date"] if d is not None}
    days |= {calendar.next_business_day(b) for b in set(exclusion_days)}
    if not days:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in SETTLEMENT_DAY_COLUMNS})
    frames = read_frames(engine, min(days), max(days), calendar, exclusions=False)
    excluded = excluded_per_settlement_date(engine, calendar)
    out = []
    for day in sorted(days):
        s = _summary(_slice(frames, day, day), day, day, calendar, overdue_after_business_days, as_of)
        total = s.by_operation.iloc[-1]
        out.append(
            (
                day,
                s.status,
                meaning(SETTLEMENT_STATUSES, s.status),
                *(int(total[c]) for c in BY_OPERATION_COLUMNS[2:]),
                int(s.not_presented["count"].sum()),
                int(s.not_presented["amount"].sum()),
                *excluded.get(day, (0, 0)),
            )
        )
    frame = pd.DataFrame(out, columns=list(SETTLEMENT_DAY_COLUMNS))
    return _ints(frame, *SETTLEMENT_DAY_COLUMNS[3:])
