"""Whether a file from Algérie Poste can be right as a whole, judged against epay's clock (pure: header in,
reasons out). A file that cannot be right is quarantined, nothing of it applied.

What the file alone shows is the codec's (``epay.formats.rules``: header dates equal to each other and to
the name's, a RELV crediting no date after its own); what needs what was sent is in ``epay.inbound.returns``
(RETR statuses) and ``epay.inbound.ack``. Here, what needs the clock or the calendar:
- a file is never dated after today by epay's clock (Africa/Algiers): AP cannot have processed it yet;
- a RETR or RELV is dated on a business day (AP executes, credits and states on business days);
- a RELV credits debits of its own day or of the contract's late-return window before it (§5, §7: AP
  debits, credits and reports on the same day, at most two business days after the settlement date), each
  on a business day: a credit dated otherwise would land on a debit date no reconciliation looks at.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from epay.calendar import BusinessCalendar
from epay.inbound.returns import LATE_RETURN_BUSINESS_DAYS
from epay.settings import ALGIERS


def file_date(kind: str, header: dict[str, Any]) -> date:
    """The date AP processed (or acknowledged) the file, from its header."""
    dated: date = header["ack_date"] if kind == "ACK" else header["creation_date"]
    return dated


def file_moment(kind: str, header: dict[str, Any]) -> datetime | None:
    """The header's date and time in Algiers, for the kinds whose header has a time (ACK)."""
    if kind != "ACK":
        return None
    return datetime.combine(header["ack_date"], header["ack_time"], ALGIERS)


def file_problems(
    kind: str, header: dict[str, Any], details: pa.Table, *, today: date, calendar: BusinessCalendar
) -> list[str]:
    """Why this valid file cannot be right (empty when it can)."""
    dated = file_date(kind, header)
    if dated > today:
        return [f"header date {dated} is after today ({today}) by epay's clock: a file from the future"]
    if kind in ("RETR", "RELV") and not calendar.is_business_day(dated):
        return [
            f"header date {dated} is not a business day: AP executes, credits and states on business days"
        ]
    if kind == "RELV" and details.num_rows:
        return _statement_problems(details.column("debit_date"), dated, calendar)
    return []


def _statement_problems(debit_dates: Any, stated: date, calendar: BusinessCalendar) -> list[str]:
    days = debit_dates.to_numpy().astype("datetime64[D]")
    earliest = np.datetime64(calendar.add_business_days(stated, -LATE_RETURN_BUSINESS_DAYS), "D")
    problems = [
        f"line {line}: credited debit date {day} is more than {LATE_RETURN_BUSINESS_DAYS} business days "
        f"before the statement's date {stated} (earliest possible: {earliest})"
        for line, day in zip(np.flatnonzero(days < earliest) + 2, days[days < earliest], strict=True)
    ]
    closed = ~calendar.is_business_day_array(days)
    problems += [
        f"line {line}: credited debit date {day} is not a business day"
        for line, day in zip(np.flatnonzero(closed) + 2, days[closed], strict=True)
    ]
    return problems[:20]
