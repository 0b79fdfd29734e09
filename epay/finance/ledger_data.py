"""The SQL side of the finance reports: small aggregated frames read from the ledger (and the RELV files the
ledger registered). Everything computed from them lives in ``summary`` and ``reconciliation``, as pure
functions of these frames.

Amounts are int centimes; date columns hold ``datetime.date`` values whatever the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine

from epay.finance.vocabulary import CHANNELS, OPERATIONS, meaning
from epay.ledger.bulk import fetch_frame
from epay.reports.exceptions import statement_day

# Instructions that reached Algérie Poste (the file was sent): the population of a settlement date.
AT_POSTE_STATES = ("sent", "presented", "settled", "rejected")
OPEN_STATES = ("sent", "presented")  # at the post office, final status not known yet

INSTRUCTION_COLUMNS = ("settlement_date", "operation", "try_number", "state", "reason", "count", "amount")
EXCLUSION_COLUMNS = ("settlement_date", "reason", "count", "amount")
CREDIT_COLUMNS = ("file", "statement_date", "debit_date", "credited_count", "amount")


def _day(value: object) -> date | None:
    if value is None or pd.isna(value):  # type: ignore[call-overload]
        return None
    return pd.Timestamp(value).date()  # type: ignore[arg-type]


def _as_dates(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        if len(frame):
            frame[column] = [
                None if v is None or pd.isna(v) else pd.Timestamp(v).date() for v in frame[column]
            ]
        else:
            frame[column] = pd.Series([], dtype=object)
    return frame


def _as_ints(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].fillna(0).astype("int64")
    return frame


def instruction_totals(connection: Connection, first: date, last: date) -> pd.DataFrame:
    """Count and amount of the instructions presented for settlement dates ``first``..``last``, by
    settlement date, operation (FA/RA), try number, state and reason ('' when none)."""
    marks = ", ".join("?" for _ in AT_POSTE_STATES)
    frame = fetch_frame(
        connection,
        "SELECT settlement_date, operation, try_number, state, coalesce(reason, '') AS reason, count(*), "
        "coalesce(sum(amount), 0) FROM instruction "
        f"WHERE settlement_date >= ? AND settlement_date <= ? AND state IN ({marks}) "
        "GROUP BY settlement_date, operation, try_number, state, reason "
        "ORDER BY settlement_date, operation, try_number, state, reason",
        (first, last, *AT_POSTE_STATES),
        INSTRUCTION_COLUMNS,
    )
    frame = _as_ints(_as_dates(frame, "settlement_date"), "try_number", "count", "amount")
    for column in ("operation", "state", "reason"):
        frame[column] = frame[column].astype(str)
    return frame


def exclusion_totals(connection: Connection, first: date, last: date) -> pd.DataFrame:
    """What the builds for settlement dates ``first``..``last`` found due but did not send, by reason
    (the build's business date is tied to its settlement date by its batch)."""
    frame = fetch_frame(
        connection,
        "SELECT b.settlement_date, e.reason, count(*), coalesce(sum(i.amount), 0) FROM exclusion e "
        "JOIN billing_item i ON i.id = e.item_id "
        "JOIN (SELECT DISTINCT business_date, settlement_date FROM batch) b "
        "ON b.business_date = e.business_date "
        "WHERE b.settlement_date >= ? AND b.settlement_date <= ? "
        "GROUP BY b.settlement_date, e.reason ORDER BY b.settlement_date, e.reason",
        (first, last),
        EXCLUSION_COLUMNS,
    )
    frame = _as_ints(_as_dates(frame, "settlement_date"), "count", "amount")
    frame["reason"] = frame["reason"].astype(str)
    return frame


def settlement_dates(connection: Connection) -> list[date]:
    """Every settlement date the ledger presented instructions for."""
    marks = ", ".join("?" for _ in AT_POSTE_STATES)
    frame = fetch_frame(
        connection,
        f"SELECT DISTINCT settlement_date FROM instruction WHERE state IN ({marks}) ORDER BY settlement_date",
        AT_POSTE_STATES,
        ("settlement_date",),
    )
    return list(_as_dates(frame, "settlement_date")["settlement_date"])


@dataclass(frozen=True)
class Statements:
    """The RELV statements the ledger received: their credit lines, the days they state, and any file
    that could not be read back as it was received (moved, changed on disk)."""

    credits: pd.DataFrame  # CREDIT_COLUMNS
    days: frozenset[date]
    unreadable: tuple[str, ...]


def statements(connection: Connection, home: Path, since: date | None = None) -> Statements:
    """Every RELV registered in the ledger (stating ``since`` or later, when given), read back from the
    data folder and checked against the sha256 recorded when it was received."""
    from epay.formats import read_file

    files = fetch_frame(
        connection,
        "SELECT name, path, sha256 FROM exchange_file WHERE direction = 'in' AND kind = 'RELV' "
        "AND state = 'applied' ORDER BY name",
        (),
        ("name", "path", "sha256"),
    )
    rows: list[tuple[str, date, date, int, int]] = []
    days: set[date] = set()
    unreadable: list[str] = []
    for name, stored, sha256 in files.itertuples(index=False):
        day = statement_day(str(name))
        if day is None or (since is not None and day < since):
            continue
        days.add(day)
        path = Path(str(stored))
        path = path if path.is_absolute() else home / path
        try:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise ValueError("changed since it was received")
            details = read_file(path).details
        except Exception:  # any reason: the statement cannot be trusted, a break says so
            unreadable.append(str(name))
            continue
        assert details is not None
        for line in details.to_pylist():
            rows.append((str(name), day, line["debit_date"], int(line["settled_count"]), int(line["amount"])))
    credits = pd.DataFrame(rows, columns=list(CREDIT_COLUMNS))
    credits = _as_ints(_as_dates(credits, "statement_date", "debit_date"), "credited_count", "amount")
    return Statements(credits, frozenset(days), tuple(unreadable))


def refunds_for(engine: Engine, first: date, last: date) -> pd.DataFrame:
    """Refunds owed (paid elsewhere and debited too) whose debit was on ``first``..``last``."""
    from epay.reports.refunds import refunds_owed

    refunds = refunds_owed(engine)
    refunds = _as_ints(_as_dates(refunds, "paid_elsewhere_on", "debited_on"), "amount")
    keep = pd.Series([first <= d <= last for d in refunds["debited_on"]], index=refunds.index, dtype=bool)
    refunds = refunds.loc[keep].reset_index(drop=True)
    for code, table in (("kind", OPERATIONS), ("channel", CHANNELS)):  # the meaning beside each code
        refunds.insert(
            list(refunds.columns).index(code) + 1,
            f"{code}_meaning",
            pd.Series([meaning(table, str(c)) for c in refunds[code]], index=refunds.index, dtype=object),
        )
    return refunds


def open_by_settlement_date(connection: Connection, last: date) -> pd.DataFrame:
    """Instructions without a final status yet, settling on ``last`` or before, by settlement date."""
    marks = ", ".join("?" for _ in OPEN_STATES)
    frame = fetch_frame(
        connection,
        "SELECT settlement_date, count(*), coalesce(sum(amount), 0) FROM instruction "
        f"WHERE settlement_date <= ? AND state IN ({marks}) "
        "GROUP BY settlement_date ORDER BY settlement_date",
        (last, *OPEN_STATES),
        ("settlement_date", "count", "amount"),
    )
    return _as_ints(_as_dates(frame, "settlement_date"), "count", "amount")


DEBIT_COLUMNS = ("debit_date", "settlement_date", "operation", "count", "amount")


def debits(connection: Connection, first: date | None, last: date | None) -> pd.DataFrame:
    """ACSC returns by debit date (RETR positions 75–82), settlement date and operation: the cash view's
    debits, each tied to the settlement date it belongs to."""
    where: list[str] = ["state = ?"]
    params: list[object] = ["settled"]
    if first is not None:
        where.append("status_date >= ?")
        params.append(first)
    if last is not None:
        where.append("status_date <= ?")
        params.append(last)
    frame = fetch_frame(
        connection,
        "SELECT status_date, settlement_date, operation, count(*), coalesce(sum(amount), 0) FROM instruction "
        f"WHERE {' AND '.join(where)} GROUP BY status_date, settlement_date, operation "
        "ORDER BY status_date, settlement_date, operation",
        tuple(params),
        DEBIT_COLUMNS,
    )
    frame = _as_ints(_as_dates(frame, "debit_date", "settlement_date"), "count", "amount")
    frame["operation"] = frame["operation"].astype(str)
    return frame


EXCLUSION_ROW_COLUMNS = ("build", "item_id", "item_number", "kind", "amount", "reason")


def exclusion_rows(connection: Connection, first_build: date, last_build: date) -> pd.DataFrame:
    """Every exclusion recorded by the builds of business dates ``first_build``..``last_build``: one row
    per build and item (the same item held by two builds is two rows here, one item in the reports)."""
    frame = fetch_frame(
        connection,
        "SELECT e.business_date, e.item_id, i.number, i.kind, i.amount, e.reason FROM exclusion e "
        "JOIN billing_item i ON i.id = e.item_id WHERE e.business_date >= ? AND e.business_date <= ? "
        "ORDER BY e.business_date, e.item_id",
        (first_build, last_build),
        EXCLUSION_ROW_COLUMNS,
    )
    frame = _as_ints(_as_dates(frame, "build"), "item_id", "amount")
    for column in ("item_number", "kind", "reason"):
        frame[column] = frame[column].astype(str)
    return frame


def build_dates(connection: Connection) -> list[date]:
    """The business dates of the builds that recorded exclusions."""
    frame = fetch_frame(
        connection, "SELECT DISTINCT business_date FROM exclusion ORDER BY business_date", (), ("build",)
    )
    return [d for d in _as_dates(frame, "build")["build"] if d is not None]


def excluded_per_build(connection: Connection) -> pd.DataFrame:
    """Per build (business date): its distinct excluded items and their amount."""
    frame = fetch_frame(
        connection,
        "SELECT e.business_date, count(*), coalesce(sum(i.amount), 0) FROM "
        "(SELECT DISTINCT business_date, item_id FROM exclusion) e JOIN billing_item i ON i.id = e.item_id "
        "GROUP BY e.business_date ORDER BY e.business_date",
        (),
        ("build", "items", "amount"),
    )
    return _as_ints(_as_dates(frame, "build"), "items", "amount")


def excluded_items_of(connection: Connection, builds: list[date]) -> pd.DataFrame:
    """The distinct items the builds of ``builds`` excluded, with their amounts."""
    marks = ", ".join("?" for _ in builds)
    frame = fetch_frame(
        connection,
        "SELECT DISTINCT e.item_id, i.amount FROM exclusion e JOIN billing_item i ON i.id = e.item_id "
        f"WHERE e.business_date IN ({marks})",
        tuple(builds),
        ("item_id", "amount"),
    )
    return _as_ints(frame, "item_id", "amount")


FAILED_FILE_COLUMNS = (
    "file_id",
    "file",
    "built_on",
    "settlement_date",
    "state",
    "reason",
    "count",
    "amount",
)
NOT_PRESENTED_STATES = ("rejected", "expired", "held", "cancelled")


def failed_files(connection: Connection) -> pd.DataFrame:
    """The PRLV files AP never processed: rejected at ACK, expired unsent, held, cancelled."""
    marks = ", ".join("?" for _ in NOT_PRESENTED_STATES)
    frame = fetch_frame(
        connection,
        "SELECT id, name, business_date, settlement_date, state, coalesce(reason, ''), detail_count, amount "
        f"FROM exchange_file WHERE direction = 'out' AND kind = 'PRLV' AND state IN ({marks}) ORDER BY name",
        NOT_PRESENTED_STATES,
        FAILED_FILE_COLUMNS,
    )
    frame = _as_ints(_as_dates(frame, "built_on", "settlement_date"), "file_id", "count", "amount")
    for column in ("file", "state", "reason"):
        frame[column] = frame[column].astype(str)
    return frame


OUTCOME_COLUMNS = ("file_id", "state", "now_in_file", "now_settlement_date", "count", "amount")


def failed_file_outcomes(connection: Connection) -> pd.DataFrame:
    """What became of the instructions of each file AP never processed: their state now, the file they
    are in now (if any) and its settlement date; from the audit trail's instruction events of the file."""
    marks = ", ".join("?" for _ in NOT_PRESENTED_STATES)
    frame = fetch_frame(
        connection,
        "SELECT m.file_id, i.state, coalesce(nf.name, ''), nf.settlement_date, count(*), "
        "coalesce(sum(i.amount), 0) FROM "
        "(SELECT DISTINCT a.file_id, a.entity_key FROM audit_event a WHERE a.entity = 'instruction' "
        "AND a.file_id IN (SELECT id FROM exchange_file WHERE direction = 'out' AND kind = 'PRLV' "
        f"AND state IN ({marks}))) m "
        "JOIN instruction i ON i.reference = m.entity_key "
        "LEFT JOIN exchange_file nf ON nf.id = i.file_id "
        "GROUP BY m.file_id, i.state, nf.name, nf.settlement_date ORDER BY m.file_id, nf.name",
        NOT_PRESENTED_STATES,
        OUTCOME_COLUMNS,
    )
    frame = _as_ints(_as_dates(frame, "now_settlement_date"), "file_id", "count", "amount")
    for column in ("state", "now_in_file"):
        frame[column] = frame[column].astype(str)
    return frame
