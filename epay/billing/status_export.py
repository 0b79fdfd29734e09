"""The payment statuses sent back to billing (``STATUS_YYYYMMDD.csv``), each change reported exactly once.

An export covers the item changes of the audit events after the previous export's last event, up to
the newest one, whatever business date they carry: returns applied late in the evening, after the debit
run's export, or over a weekend, go in the next export instead of being lost between two days. The first
export ever covers every change since the ledger began, whichever day makes it (a first night run after
a gap, or an unpause that starts the latest night first, loses nothing).

Exports are made in business-date order, so billing can apply them in name order and end with each
item's latest state: once the export of a day exists, an earlier day that has none yet (a backfill, a
re-run of a failed night) makes none — its changes are in the later export or go into the next one
(``ExportSupersededError`` says which). The
export takes the ledger's writer lock to read that newest event, so no change is still being committed
below it (every writer of items takes the same lock; SQLite admits one writer at a time anyway).

An export's date must be plausible (``export_date_problem``): a business day of the calendar, not after
today by epay's clock (a night's export is made on its night or later, never ahead of it), and not before
the latest export (``ExportSupersededError``). A refused date registers and writes nothing, so nothing is
marked exported by it. An export of D reports the changes made up to the end of D (midnight Algiers) by
the clock: a change whose event time is after D belongs to a later day's export, which reports it (the
cut is the first such event: the ranges stay contiguous, so no change is ever skipped or reported twice,
whatever dates the exports are run with).

Steps, each safe to crash after: the file is written as ``.part``; the export (range, sha256) is
registered in one transaction with the lock held; the ``.part`` is renamed. A re-run of a registered
export returns its file (renaming a ``.part`` left by a crash), never a different one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, insert, select

from epay.calendar import BusinessCalendar
from epay.clock import ALGIERS
from epay.faults import fault_point
from epay.ledger.bulk import fetch_frame, now_utc
from epay.ledger.db import lock_ledger, transaction
from epay.ledger.models import AuditEvent, StatusExport

COLUMNS = (
    "kind",
    "item_number",
    "subscriber_number",
    "amount",
    "state",
    "tries",
    "last_reason",
    "paid_by",
    "paid_on",
)
CHANGED_ITEMS_SQL = (
    "SELECT b.kind, b.number, b.subscriber_number, b.amount, b.state, b.tries, b.last_reason, b.paid_by, "
    "b.paid_on FROM billing_item b WHERE b.kind || ':' || b.number IN (SELECT entity_key FROM audit_event "
    "WHERE entity = 'item' AND id > ? AND id <= ? AND to_state <> 'loaded') ORDER BY b.kind, b.number"
)


class ExportSupersededError(ValueError):
    """A later day's export already exists: this day makes none (nothing is lost; the message says where
    its changes went)."""


class ExportDateError(ValueError):
    """A date no export can be made for: outside the calendar, not a business day, or in the future by
    epay's clock. Nothing is written or registered."""


class StatusExportIncidentError(RuntimeError):
    """A registered export whose file is gone or altered: it cannot be written again identically."""


def export_name(business_date: date) -> str:
    return f"STATUS_{business_date:%Y%m%d}.csv"


def export_date_problem(business_date: date, today: date, calendar: BusinessCalendar) -> str | None:
    """Why no export can be made for ``business_date`` when today (by the clock) is ``today``; None when
    it can. Pure."""
    try:
        business = calendar.is_business_day(business_date)
    except ValueError as error:  # a year outside the calendar's
        return f"no status export for {business_date}: {error}"
    if business_date > today:
        return (
            f"no status export for {business_date}: that day is in the future (today is {today} by epay's "
            "clock); a day's export is made on that day or later"
        )
    if not business:
        return (
            f"no status export for {business_date}: not a business day (exports are made for the nights' "
            "business days; its changes go into the next business day's export)"
        )
    return None


def day_end(business_date: date) -> datetime:
    """The end of ``business_date``: midnight after it in Algiers, as UTC."""
    return datetime.combine(business_date + timedelta(days=1), time(0), tzinfo=ALGIERS).astimezone(UTC)


def render(business_date: date, rows: pd.DataFrame) -> bytes:
    """The CSV bytes: header, then one line per item; missing values are empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["business_date", *COLUMNS])
    for record in rows.itertuples(index=False):
        writer.writerow([business_date.isoformat(), *("" if v is None or v != v else str(v) for v in record)])
    return buffer.getvalue().encode("utf-8")


def export_statuses(
    engine: Engine, folder: Path, business_date: date, *, today: date, calendar: BusinessCalendar
) -> Path:
    """Write (or find again) the export of ``business_date`` in ``folder``; return its path. ``today`` is
    the business date by epay's clock; a date that cannot be right raises ``ExportDateError`` (an earlier
    day than the latest export ``ExportSupersededError``), having written and registered nothing."""
    path = folder / export_name(business_date)
    part = path.with_name(path.name + ".part")
    with transaction(engine) as connection:
        lock_ledger(connection)
        done = connection.execute(
            select(StatusExport.sha256).where(StatusExport.business_date == business_date)
        ).scalar_one_or_none()
        if done is None:
            problem = export_date_problem(business_date, today, calendar)
            if problem is not None:
                raise ExportDateError(problem)
            later = connection.execute(
                select(func.max(StatusExport.business_date)).where(StatusExport.business_date > business_date)
            ).scalar_one_or_none()
            if later is not None:
                raise ExportSupersededError(
                    f"no status export for {business_date}: the export of {later} already exists and exports "
                    f"go in business-date order; the changes up to it are in {export_name(later)} and later "
                    "ones go into the next export"
                )
            # the first export ever starts at the ledger's first event: nothing before it is lost
            after = connection.execute(select(func.max(StatusExport.last_event_id))).scalar_one_or_none() or 0
            last = connection.execute(select(func.max(AuditEvent.id))).scalar_one_or_none() or 0
            first_late = connection.execute(  # the first change made after the day's end: a later day's
                select(func.min(AuditEvent.id)).where(
                    AuditEvent.id > after,
                    AuditEvent.entity == "item",
                    AuditEvent.to_state != "loaded",
                    AuditEvent.at >= day_end(business_date),
                )
            ).scalar_one_or_none()
            if first_late is not None:
                last = int(first_late) - 1
            after = min(int(after or 0), last)
            rows = fetch_frame(connection, CHANGED_ITEMS_SQL, (after, last), COLUMNS)
            content = render(business_date, rows)
            folder.mkdir(parents=True, exist_ok=True)
            _write_durably(part, content)
            fault_point("export.after_part")
            done = hashlib.sha256(content).hexdigest()
            connection.execute(
                insert(StatusExport).values(
                    business_date=business_date,
                    after_event_id=after,
                    last_event_id=last,
                    name=path.name,
                    sha256=done,
                    row_count=len(rows),
                    created_at=now_utc(),
                )
            )
    fault_point("export.after_commit")
    if path.exists() and _sha256(path) == done:
        return path
    if part.exists() and _sha256(part) == done:
        os.replace(part, path)
        return path
    raise StatusExportIncidentError(
        f"{path.name} was exported (sha256 {done}) but is missing or altered in {folder}: it cannot be "
        "re-written identically; restore it from a backup or from what billing received"
    )


def _write_durably(path: Path, content: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
