"""Whether a file from Algérie Poste can be right as a whole, judged against the calendar and epay's clock
(pure: header and details in, reasons out). A file that cannot be right is quarantined, nothing of it
applied; record-level judgement of RETR statuses is in ``epay.inbound.returns``.

The rules (README, "Decisions"):
- a file is never dated after today by epay's clock (Africa/Algiers): AP cannot have processed it yet;
- RETR, MNDT and RELV headers hold AP's processing date twice (§5: positions 13–20 and 21–28), and it is
  the date in the file's name;
- a RELV credits debit dates that are business days, none after the statement's own date (§7).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from epay.calendar import BusinessCalendar
from epay.formats import parse_file_name


def file_date(kind: str, header: dict[str, Any]) -> date:
    """The date AP processed (or acknowledged) the file, from its header."""
    dated: date = header["ack_date"] if kind == "ACK" else header["creation_date"]
    return dated


def file_problems(
    name: str,
    kind: str,
    header: dict[str, Any],
    details: pa.Table,
    *,
    today: date,
    calendar: BusinessCalendar,
) -> list[str]:
    """Why this valid-looking file cannot be right (empty when it can)."""
    problems: list[str] = []
    dated = file_date(kind, header)
    if dated > today:
        problems.append(f"header date {dated} is after today ({today}) by epay's clock: from the future")
    if kind == "ACK":
        return problems
    if header["settlement_date"] != dated:
        problems.append(
            f"header dates differ ({dated} and {header['settlement_date']}): a {kind} header holds AP's "
            "processing date twice"
        )
    named = parse_file_name(name).day
    if named != dated:
        problems.append(f"header date {dated} is not the date {named} of the file's name")
    if kind == "RELV" and details.num_rows:
        problems += _statement_problems(details, dated, calendar)
    return problems


def _statement_problems(details: pa.Table, stated: date, calendar: BusinessCalendar) -> list[str]:
    days = details.column("debit_date").to_numpy().astype("datetime64[D]")
    later = days > np.datetime64(stated, "D")
    problems = [
        f"line {line}: credited debit date {day} is after the statement's own date {stated}"
        for line, day in zip(np.flatnonzero(later) + 2, days[later], strict=True)
    ]
    weekend = ~calendar.is_business_day_array(days)
    problems += [
        f"line {line}: credited debit date {day} is not a business day"
        for line, day in zip(np.flatnonzero(weekend) + 2, days[weekend], strict=True)
    ]
    return problems[:20]
