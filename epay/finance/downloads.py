"""A day's finance report as a download: CSV, XLSX or Parquet (and JSON for the nightly file).

``day_report`` gathers the settlement date's summary, its reconciliation (with breaks, RELV credits and
refunds owed) and the month to date; ``write_report`` writes it to a path or a binary stream (a web page
can stream it). The sections, in this order:

``report`` (field/value: day, statuses, month range), ``presented``, ``settled``, ``rejected_by_reason``,
``pending``, ``overdue``, ``retries``, ``exclusions``, ``reconciliation`` (one row), ``credits`` (the RELV
lines for the day), ``breaks``, ``refunds``, then ``month_presented`` ... ``month_exclusions``.

Formats:

- **CSV**: ONE file, UTF-8 with a byte-order mark (spreadsheets then read the accents right), a first
  column ``section`` and the union of every section's columns (blank where a column is not the
  section's). Amounts are DZD with 2 decimals, written exactly from the centimes, in columns suffixed
  ``_dzd``; ``sep=";"`` (French-locale spreadsheets) also uses the decimal comma.
- **XLSX**: one sheet per section, bold frozen header row, amounts as numbers in DZD shown ``#,##0.00``
  (columns suffixed ``_dzd``), a bold ``total`` row on sections that are lists (reasons, exclusions,
  retries, overdue, credits, breaks, refunds; the per-operation sections carry their own ``total`` row).
  Byte-identical for the same report (fixed timestamps inside).
- **Parquet**: ONE file, a ``section`` column and the union of the sections' columns; amounts stay int64
  centimes (the key-value metadata says so), dates are ``date32``.

No RIP is selected into any section; every text cell is still passed through ``mask_rips``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine

from epay.alerts import mask_rips
from epay.calendar import BusinessCalendar
from epay.finance.reconciliation import Reconciliation, reconcile
from epay.finance.summary import (
    SECTION_NAMES,
    TOTAL,
    FinanceSummary,
    month_to_date,
    records,
    settlement_summary,
)

FORMATS = ("csv", "xlsx", "parquet")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
}
MONEY_FORMAT = "#,##0.00"
LIST_SECTIONS = frozenset(
    {"rejected_by_reason", "overdue", "retries", "exclusions", "credits", "breaks", "refunds"}
)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class DayReport:
    day: date
    summary: FinanceSummary
    reconciliation: Reconciliation
    month: FinanceSummary

    def sections(self) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {"report": self._about()}
        out.update(self.summary.sections())
        out["reconciliation"] = self.reconciliation.overview()
        out["credits"] = self.reconciliation.credits
        out["breaks"] = self.reconciliation.breaks
        out["refunds"] = self.reconciliation.refunds
        out.update({f"month_{name}": frame for name, frame in self.month.sections().items()})
        return out

    def _about(self) -> pd.DataFrame:
        rows = [
            ("day", self.day.isoformat()),
            ("summary_status", self.summary.status),
            ("reconciliation_status", self.reconciliation.status),
            ("month_first", self.month.first.isoformat()),
            ("month_last", self.month.last.isoformat()),
            ("month_status", self.month.status),
            ("as_of", self.summary.as_of.isoformat()),
        ]
        return pd.DataFrame(rows, columns=["field", "value"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; amounts in int centimes."""
        return {
            "day": self.day.isoformat(),
            "amount_unit": "centimes",
            "summary": self.summary.to_dict(),
            "reconciliation": self.reconciliation.to_dict(),
            "month_to_date": self.month.to_dict(),
        }


def day_report(
    engine: Engine,
    day: date,
    calendar: BusinessCalendar,
    *,
    home: Path | None = None,
    overdue_after_business_days: int = 2,
    as_of: date | None = None,
) -> DayReport:
    """The finance report of settlement date ``day``: summary, reconciliation, month to date."""
    if as_of is None:
        from epay.settings import business_today

        as_of = business_today()
    options: dict[str, Any] = {"overdue_after_business_days": overdue_after_business_days, "as_of": as_of}
    return DayReport(
        day=day,
        summary=settlement_summary(engine, day, calendar, **options),
        reconciliation=reconcile(engine, day, home=home, as_of=as_of),
        month=month_to_date(engine, day, calendar, **options),
    )


# --- helpers ------------------------------------------------------------------------------------------------


def is_money(column: str) -> bool:
    return column.endswith("amount") or column == "difference"


def money_label(column: str) -> str:
    return f"{column}_dzd" if is_money(column) else column


def dzd(centimes: int, decimal_mark: str = ".") -> str:
    """Exact DZD text from centimes: 123456 -> '1234.56'."""
    sign = "-" if centimes < 0 else ""
    centimes = abs(int(centimes))
    return f"{sign}{centimes // 100}{decimal_mark}{centimes % 100:02d}"


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, str):
        return mask_rips(value)
    return value


def _rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    for row in frame.to_dict("records"):
        yield {str(k): _cell(v) for k, v in row.items()}


def _union_columns(sections: dict[str, pd.DataFrame]) -> list[str]:
    columns: list[str] = []
    for frame in sections.values():
        for column in frame.columns:
            if str(column) not in columns:
                columns.append(str(column))
    return columns


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# --- writers ------------------------------------------------------------------------------------------------


def write_report(report: DayReport, fmt: str, out: Path | IO[bytes], *, sep: str = ",") -> None:
    """Write ``report`` as ``fmt`` (csv, xlsx, parquet or json) to a path or a binary stream."""
    fmt = fmt.lower()
    if fmt == "csv":
        if sep not in (",", ";"):
            raise ValueError(f"sep must be ',' or ';', not {sep!r}")
        data = csv_bytes(report, sep=sep)
    elif fmt == "xlsx":
        data = xlsx_bytes(report)
    elif fmt == "parquet":
        data = parquet_bytes(report)
    elif fmt == "json":
        data = json_bytes(report)
    else:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join((*FORMATS, 'json'))}")
    if isinstance(out, Path):  # whole or not at all: finance never opens half a report
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.name + ".part")
        part.write_bytes(data)
        os.replace(part, out)
    else:
        out.write(data)


def json_bytes(report: DayReport) -> bytes:
    text = json.dumps(report.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)
    return mask_rips(text).encode("utf-8") + b"\n"


def csv_bytes(report: DayReport, *, sep: str = ",") -> bytes:
    sections = report.sections()
    columns = _union_columns(sections)
    decimal_mark = "," if sep == ";" else "."
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\r\n")
    writer.writerow(["section", *(money_label(c) for c in columns)])
    for name, frame in sections.items():
        for row in _rows(frame):
            line = [name]
            for column in columns:
                value = row.get(column)
                if value is not None and is_money(column) and not isinstance(value, bool):
                    line.append(dzd(int(value), decimal_mark))
                else:
                    line.append(_text(value))
            writer.writerow(line)
    return buffer.getvalue().encode("utf-8-sig")


def _totals(name: str, frame: pd.DataFrame) -> dict[str, Any] | None:
    """The totals row of a list section (sums of its counts and amounts), None for the others."""
    if name.removeprefix("month_") not in LIST_SECTIONS or not len(frame):
        return None
    first = str(frame.columns[0])
    totals: dict[str, Any] = {first: TOTAL}
    for column in frame.columns[1:]:
        column = str(column)
        if is_money(column) or column == "count" or column.endswith("_count"):
            totals[column] = int(frame[column].sum())
    return totals


def xlsx_bytes(report: DayReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    stamp = datetime(report.day.year, report.day.month, report.day.day)
    workbook.properties.created = stamp
    workbook.properties.modified = stamp
    workbook.properties.creator = "epay"
    bold = Font(bold=True)
    for name, frame in report.sections().items():
        sheet = workbook.create_sheet(name[:31])
        columns = [str(c) for c in frame.columns]
        sheet.append([money_label(c) for c in columns])
        for cell in sheet[1]:
            cell.font = bold
        rows = list(_rows(frame))
        totals = _totals(name, frame)
        for index, row in enumerate([*rows, *([totals] if totals else [])]):
            values = []
            for column in columns:
                value = row.get(column)
                if value is not None and is_money(column) and not isinstance(value, bool):
                    value = Decimal(int(value)).scaleb(-2)
                values.append(value)
            sheet.append(values)
            excel_row = index + 2
            for position, column in enumerate(columns, start=1):
                cell = sheet.cell(row=excel_row, column=position)
                if is_money(column):
                    cell.number_format = MONEY_FORMAT
                elif isinstance(cell.value, date):
                    cell.number_format = "yyyy-mm-dd"
                if row is totals or row.get(columns[0]) == TOTAL:
                    cell.font = bold
        sheet.freeze_panes = "A2"
        for position, column in enumerate(columns, start=1):
            width = max([len(money_label(column))] + [len(_text(r.get(column))) for r in rows[:200]])
            sheet.column_dimensions[get_column_letter(position)].width = min(max(width + 2, 10), 80)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _fixed_zip(buffer.getvalue(), stamp)


def _fixed_zip(data: bytes, stamp: datetime) -> bytes:
    """The same archive with fixed entry times and document times: same report, same bytes."""
    import re

    fixed = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                    lambda m: m.group(1) + fixed.encode() + m.group(2),
                    content,
                )
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = info.external_attr
            target.writestr(entry, content)
    return out.getvalue()


def _arrow_column(values: list[Any], column: str) -> pa.Array:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    if present and all(isinstance(v, date) and not isinstance(v, datetime) for v in present):
        return pa.array(values, pa.date32())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, pa.int64())
    return pa.array([None if v is None else _text(v) for v in values], pa.string())


def parquet_bytes(report: DayReport) -> bytes:
    sections = report.sections()
    columns = _union_columns(sections)
    rows: list[dict[str, Any]] = []
    for name, frame in sections.items():
        for row in _rows(frame):
            rows.append({"section": name, **row})
    table = pa.table(
        {
            "section": pa.array([r["section"] for r in rows], pa.string()),
            **{c: _arrow_column([r.get(c) for r in rows], c) for c in columns},
        }
    )
    metadata = {
        b"epay.report_day": report.day.isoformat().encode(),
        b"epay.amount_unit": b"centimes",
        b"epay.sections": ",".join(sections).encode(),
    }
    table = table.replace_schema_metadata(metadata)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "SECTION_NAMES",
    "DayReport",
    "day_report",
    "records",
    "write_report",
]
