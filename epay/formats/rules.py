"""Rules that span several fields or records of a file, per file kind (spec §3–§7).

Field-by-field checks are in ``fields.py``; these need the header, the name, or a whole column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from epay.formats.layout import FileLayout
from epay.formats.names import FileName
from epay.formats.problems import ProblemCollector

if TYPE_CHECKING:
    from epay.calendar import BusinessCalendar

ALGIERS = ZoneInfo("Africa/Algiers")
CUTOFF = time(22, 0)


def check_header(
    layout: FileLayout,
    header: dict[str, Any],
    name: FileName | None,
    problems: ProblemCollector,
    *,
    calendar: BusinessCalendar | None,
    expected_creditor: str | None = None,
    expected_creditor_rip: str | None = None,
    received_at: datetime | None = None,
) -> None:
    """Header rules: agreement with the file name, the account (AG01), settlement dates (DT01)."""
    if name is not None:
        parts = {"creditor": int(name.creditor), "date": name.day, "sequence": name.sequence}
        for spec in layout.header.fields:
            value = header.get(spec.name)
            if spec.file_name not in parts or value is None or value == parts[spec.file_name]:
                continue
            code = "AG01" if spec.file_name == "creditor" else "FF01"
            shown = f"{value:%Y%m%d}" if isinstance(value, date) else f"{value:0{spec.length}d}"
            problems.add(
                1,
                spec.name,
                shown,
                code,
                f"does not match the file name's {spec.file_name} ({parts[spec.file_name]})",
            )
    if expected_creditor is not None and header.get("creditor_id") not in (None, int(expected_creditor)):
        problems.add(
            1,
            "creditor_id",
            f"{header['creditor_id']:06d}",
            "AG01",
            f"is not the account's creditor {expected_creditor}",
        )
    if expected_creditor_rip is not None and header.get("creditor_rip") not in (None, expected_creditor_rip):
        problems.add(1, "creditor_rip", None, "AG01", "is not the account's creditor RIP")
    created, settles = header.get("creation_date"), header.get("settlement_date")
    if layout.equal_header_dates and created is not None and settles is not None and created != settles:
        problems.add(
            1,
            "settlement_date",
            f"{settles:%Y%m%d}",
            "FF01",
            f"must equal the processing date {created:%Y%m%d}",
        )
    if layout.settlement_rule and created is not None and settles is not None:
        _check_settlement(created, settles, problems, calendar, received_at)


def _check_settlement(
    created: date,
    settles: date,
    problems: ProblemCollector,
    calendar: BusinessCalendar | None,
    received_at: datetime | None,
) -> None:
    value = f"{settles:%Y%m%d}"
    if settles <= created:
        problems.add(1, "settlement_date", value, "DT01", f"is not after the creation date {created:%Y%m%d}")
    try:
        business_day = calendar is None or calendar.is_business_day(settles)
        deadline_day = (
            calendar.previous_business_day(settles)
            if calendar is not None and received_at is not None
            else None
        )
    except ValueError as exc:  # a year the holiday calendar does not cover
        problems.add(1, "settlement_date", value, "DT01", f"cannot be a business day: {exc}")
        return
    if not business_day:
        problems.add(1, "settlement_date", value, "DT01", "is not a business day")
    if received_at is not None and deadline_day is not None:
        deadline = datetime.combine(deadline_day, CUTOFF, tzinfo=ALGIERS)
        if received_at.astimezone(ALGIERS) >= deadline:
            problems.add(
                1,
                "settlement_date",
                value,
                "DT01",
                f"already reached: the file arrived after the cut-off {deadline:%Y-%m-%d %H:%M} "
                "Africa/Algiers",
            )


# Detail columns the cross-field rules read, per kind (the validator builds only what it needs).
RULE_COLUMNS: dict[str, frozenset[str]] = {
    "RETR": frozenset({"status", "reason", "prlv_file_name"}),
    "ACK": frozenset({"status", "reason", "faulty_line", "prlv_file_name"}),
    "RELV": frozenset({"debit_date"}),
}


def check_details(
    layout: FileLayout,
    header: dict[str, Any] | None,
    columns: dict[str, pa.Array],
    lines: np.ndarray,
    name: FileName | None,
    problems: ProblemCollector,
) -> None:
    """Per-record rules that involve several fields or the header (vectorised over a chunk)."""
    kind = layout.kind
    if kind in ("RETR", "ACK"):
        _status_reason(kind, columns, lines, problems)
    if kind == "ACK" and name is not None and name.prlv_name is not None:
        acked = columns["prlv_file_name"]
        bad = pc.not_equal(acked, name.prlv_name).to_numpy(zero_copy_only=False)
        problems.add_rows(
            bad,
            lines,
            "prlv_file_name",
            lambda r: acked[r].as_py(),
            "FF01",
            f"must be the name this ACK is named after ({name.prlv_name})",
        )
    if kind == "RETR" and header and header.get("creditor_id") is not None:
        prlv = columns["prlv_file_name"]
        expected = f"PRLV_{header['creditor_id']:06d}_"
        other_creditor = re.compile(r"^PRLV_[0-9]{6}_")
        bad = per_distinct(prlv, lambda v: not v.startswith(expected) and bool(other_creditor.match(v)))
        problems.add_rows(
            bad, lines, "prlv_file_name", lambda r: prlv[r].as_py(), "AG01", "is another creditor's file"
        )
    if kind == "RELV" and header and header.get("creation_date") is not None:
        processing = header["creation_date"]
        debit = columns["debit_date"]
        bad = (
            pc.greater(debit, pa.scalar(processing, pa.date32()))
            .fill_null(False)
            .to_numpy(zero_copy_only=False)
        )
        problems.add_rows(
            bad,
            lines,
            "debit_date",
            lambda r: f"{debit[r].as_py():%Y%m%d}",
            "FF01",
            f"is after the statement's processing date {processing:%Y%m%d}",
        )


def per_distinct(values: pa.Array, predicate: Callable[[str], bool]) -> npt.NDArray[np.bool_]:
    """Apply a Python predicate once per distinct value (file names repeat on every record)."""
    encoded = pc.dictionary_encode(values)
    verdicts = np.array([predicate(v) for v in encoded.dictionary.to_pylist()] + [False], dtype=np.bool_)
    indices = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return np.asarray(verdicts[indices])


def _mask(values: pa.Array) -> npt.NDArray[np.bool_]:
    return np.asarray(values.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _status_reason(
    kind: str, columns: dict[str, pa.Array], lines: np.ndarray, problems: ProblemCollector
) -> None:
    status, reason = columns["status"], columns["reason"]
    accepted = "ACSC" if kind == "RETR" else "ACCP"
    is_accepted = _mask(pc.equal(status, accepted))
    is_rejected = _mask(pc.equal(status, "RJCT"))
    has_reason = _mask(pc.not_equal(reason, ""))
    problems.add_rows(
        is_accepted & has_reason,
        lines,
        "reason",
        lambda r: str(reason[r].as_py()),
        "FF01",
        f"must be spaces when the status is {accepted}",
    )
    problems.add_rows(
        is_rejected & ~has_reason,
        lines,
        "reason",
        lambda r: str(reason[r].as_py()),
        "FF01",
        "must hold the reason when the status is RJCT",
    )
    if kind == "ACK":
        line = columns["faulty_line"].to_numpy(zero_copy_only=False)
        whole_file = _mask(pc.is_in(reason, value_set=pa.array(["SG01", "AM10", "DU01"]))) | is_accepted
        problems.add_rows(
            whole_file & (line != 0),
            lines,
            "faulty_line",
            lambda r: f"{line[r]:06d}",
            "FF01",
            "must be 000000 when accepted or for SG01/AM10/DU01",
        )
        problems.add_rows(
            ~whole_file & is_rejected & has_reason & (line == 0),
            lines,
            "faulty_line",
            lambda r: f"{line[r]:06d}",
            "FF01",
            "must name the first faulty line for FF01/AG01/DT01",
        )
