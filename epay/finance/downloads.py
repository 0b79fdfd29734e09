"""A day's finance report as a download: XLSX, a ZIP of CSVs, a ZIP of Parquet files (and JSON for the
nightly file).

``day_report`` gathers, for a date D, both views (``epay.finance.vocabulary``): the settlement view of D
(what was due on D and what became of it), the cash view of D (what was debited and credited on D, per
RELV), and the month to date of each; ``write_report`` writes it to a path or a binary stream.

One table per section, every section in every format, in this order (``SECTION_ORDER``): ``about`` (one
row: the date, both statuses with their meanings, the month's range), ``guide`` (the vocabulary), the
``settlement_*`` sections, the ``cash_*`` sections, then ``month_settlement_*`` and
``month_cash_by_debit_date``.

Types are fixed by column name, the same in every section and format (``column_kind``): dates
(``*_date``, ``*_on``, ``due_by``, ``*_build``, ``built_on``) are dates, counts are integers, amounts are
integer centimes in the data and are written

- **XLSX** (a sheet per section): ``*_amount_dzd``, exact decimals shown ``#,##0.00``; dates as date
  cells ``yyyy-mm-dd``; bold frozen headers; under a list, after one empty row, a bold ``total`` row (so
  the table itself stays a clean range). Byte-identical for the same report (fixed timestamps inside).
- **CSV** (``.zip``, one ``NN_section.csv`` per section, UTF-8 with a byte-order mark): ``*_amount_dzd``
  written exactly from the centimes; ``sep=";"`` (French-locale spreadsheets) also uses the decimal comma;
  dates ``YYYY-MM-DD``; yes/no as ``true``/``false``.
- **Parquet** (``.zip``, one ``NN_section.parquet`` per section): ``*_amount_centimes`` int64, dates
  ``date32``, counts int64, yes/no bool, text string — also when a section is empty.

Every code column has its meaning beside it. No RIP is selected into any section; every text cell is
still passed through ``mask_rips``.
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
from epay.finance.reconciliation import CASH_DAY_COLUMNS, Reconciliation, cash_days, reconcile
from epay.finance.summary import (
    SECTION_NAMES,
    TOTAL,
    FinanceSummary,
    month_to_date,
    records,
    settlement_summary,
)
from epay.finance.vocabulary import (
    CASH_STATUSES,
    CASH_VIEW,
    FIGURES,
    SETTLEMENT_STATUSES,
    SETTLEMENT_VIEW,
    meaning,
)

FORMATS = ("xlsx", "csv", "parquet")
EXTENSIONS = {"xlsx": "xlsx", "csv": "csv.zip", "parquet": "parquet.zip", "json": "json"}
MEDIA_TYPES = {
    "csv": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/zip",
    "json": "application/json",
}
MONEY_FORMAT = "#,##0.00"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
DATE_NAMES = frozenset({"due_by", "first_build", "last_build", "built_on", "build", "day", "as_of"})
COUNT_NAMES = frozenset({"items", "builds", "item_builds", "try_number"})
BOOL_NAMES = frozenset({"statement_present", "late"})
NOT_TOTALLED = frozenset({"about", "guide", "settlement_by_operation", "month_settlement_by_operation"})
MONTH_CASH_COLUMNS = [c for c in CASH_DAY_COLUMNS if c != "late_from"]


def column_kind(column: str) -> str:
    """date | amount | count | bool | text, from the column's name alone."""
    if column in DATE_NAMES or column.endswith(("_date", "_on", "_first", "_last")):
        return "date"
    if column.endswith("amount"):
        return "amount"
    if column in COUNT_NAMES or column.endswith("count"):
        return "count"
    if column in BOOL_NAMES:
        return "bool"
    return "text"


@dataclass(frozen=True)
class DayReport:
    """Both views of date D: the settlement view (what was due on D), the cash view (what moved on D),
    and their month to date."""

    day: date
    summary: FinanceSummary  # settlement view of D
    reconciliation: Reconciliation  # cash view of D
    month: FinanceSummary  # settlement view, the month's settlement dates up to D
    month_cash: pd.DataFrame  # cash view, one row per debit date of the month up to D

    def about(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "day": self.day,
                    "settlement_status": self.summary.status,
                    "settlement_status_meaning": meaning(SETTLEMENT_STATUSES, self.summary.status),
                    "cash_status": self.reconciliation.status,
                    "cash_status_meaning": meaning(CASH_STATUSES, self.reconciliation.status),
                    "month_first": self.month.first,
                    "month_last": self.month.last,
                    "month_settlement_status": self.month.status,
                    "as_of": self.summary.as_of,
                    "amounts": "DZD from integer centimes (exact)",
                }
            ]
        )

    def sections(self) -> dict[str, pd.DataFrame]:
        s, c, m = self.summary, self.reconciliation, self.month
        credits = c.credits
        return {
            "about": self.about(),
            "guide": guide(),
            "settlement_by_operation": s.by_operation,
            "settlement_rejects": s.rejected_by_reason,
            "settlement_overdue": s.overdue,
            "settlement_retries": s.retries,
            "settlement_not_presented": s.not_presented,
            "settlement_re_filed": s.re_filed,
            "settlement_exclusions": s.exclusions,
            "settlement_excluded_items": s.excluded_items,
            "cash_overview": c.overview(),
            "cash_debited": c.debited,
            "cash_credits": credits,
            "cash_breaks": c.breaks,
            "cash_refunds": c.refunds,
            "month_settlement_by_operation": m.by_operation,
            "month_settlement_rejects": m.rejected_by_reason,
            "month_settlement_not_presented": m.not_presented,
            "month_settlement_exclusions": m.exclusions,
            "month_cash_by_debit_date": self.month_cash,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; amounts in int centimes."""
        return {
            "day": self.day.isoformat(),
            "amount_unit": "centimes",
            "summary": self.summary.to_dict(),
            "reconciliation": self.reconciliation.to_dict(),
            "month_to_date": self.month.to_dict(),
            "month_cash_by_debit_date": records(self.month_cash),
        }


SECTION_ORDER = tuple(
    [
        "about",
        "guide",
        *(f"settlement_{n}" for n in ("by_operation", "rejects", "overdue", "retries")),
        *(f"settlement_{n}" for n in ("not_presented", "re_filed", "exclusions", "excluded_items")),
        *(f"cash_{n}" for n in ("overview", "debited", "credits", "breaks", "refunds")),
        *(f"month_settlement_{n}" for n in ("by_operation", "rejects", "not_presented", "exclusions")),
        "month_cash_by_debit_date",
    ]
)


def guide() -> pd.DataFrame:
    """The vocabulary, as a table: each figure with its view and meaning."""
    cash = {"debited", "late", "credited", "difference"}
    rows = [("settlement view", "", SETTLEMENT_VIEW), ("cash view", "", CASH_VIEW)]
    rows += [
        (term, "cash view" if term in cash else "settlement view", text) for term, text in FIGURES.items()
    ]
    return pd.DataFrame(rows, columns=["term", "view", "meaning"])


def day_report(
    engine: Engine,
    day: date,
    calendar: BusinessCalendar,
    *,
    home: Path | None = None,
    overdue_after_business_days: int = 2,
    as_of: date | None = None,
) -> DayReport:
    """Both views of date ``day`` and their month to date."""
    if as_of is None:
        from epay.settings import business_today

        as_of = business_today()
    options: dict[str, Any] = {"overdue_after_business_days": overdue_after_business_days, "as_of": as_of}
    month_cash = cash_days(engine, calendar, home=home, as_of=as_of)
    if len(month_cash):
        keep = [day.replace(day=1) <= d <= day for d in month_cash["debit_date"]]
        month_cash = month_cash[pd.Series(keep, index=month_cash.index, dtype=bool)]
    month_cash = month_cash[MONTH_CASH_COLUMNS].reset_index(drop=True)
    return DayReport(
        day=day,
        summary=settlement_summary(engine, day, calendar, **options),
        reconciliation=reconcile(engine, day, home=home, as_of=as_of),
        month=month_to_date(engine, day, calendar, **options),
        month_cash=month_cash,
    )


# --- helpers ------------------------------------------------------------------------------------------------


def money_label(column: str, unit: str = "dzd") -> str:
    return f"{column}_{unit}" if column_kind(column) == "amount" else column


def dzd(centimes: int, decimal_mark: str = ".") -> str:
    """Exact DZD text from centimes: 123456 -> '1234.56'."""
    sign = "-" if centimes < 0 else ""
    centimes = abs(int(centimes))
    return f"{sign}{centimes // 100}{decimal_mark}{centimes % 100:02d}"


def _cell(value: Any, column: str) -> Any:
    """A cell in its column's kind (None when empty)."""
    if value is None or (not isinstance(value, (str, bytes, date)) and pd.isna(value)):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    kind = column_kind(column)
    if kind == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        return date.fromisoformat(str(value)[:10])
    if kind in ("amount", "count"):
        return int(value)
    if kind == "bool":
        return bool(value)
    return mask_rips(str(value))


def _rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    for row in frame.to_dict("records"):
        yield {str(k): _cell(v, str(k)) for k, v in row.items()}


def _text(value: Any, decimal_mark: str = ".", *, money: bool = False) -> str:
    if value is None:
        return ""
    if money and not isinstance(value, bool):
        return dzd(int(value), decimal_mark)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _ordered(report: DayReport) -> list[tuple[str, pd.DataFrame]]:
    sections = report.sections()
    assert set(sections) == set(SECTION_ORDER), sorted(set(sections) ^ set(SECTION_ORDER))
    return [(name, sections[name]) for name in SECTION_ORDER]


# --- writers ------------------------------------------------------------------------------------------------


def write_report(report: DayReport, fmt: str, out: Path | IO[bytes], *, sep: str = ",") -> None:
    """Write ``report`` as ``fmt`` (xlsx, csv — a ZIP —, parquet — a ZIP — or json) to a path or a
    binary stream."""
    fmt = fmt.lower()
    if fmt == "csv":
        if sep not in (",", ";"):
            raise ValueError(f"sep must be ',' or ';', not {sep!r}")
        data = csv_zip_bytes(report, sep=sep)
    elif fmt == "xlsx":
        data = xlsx_bytes(report)
    elif fmt == "parquet":
        data = parquet_zip_bytes(report)
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


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    """A ZIP with fixed entry times: the same report, the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in entries:
            entry = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, content)
    return out.getvalue()


def section_file(index: int, name: str, extension: str) -> str:
    return f"{index:02d}_{name}.{extension}"


def csv_section(frame: pd.DataFrame, *, sep: str = ",") -> bytes:
    decimal_mark = "," if sep == ";" else "."
    columns = [str(c) for c in frame.columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\r\n")
    writer.writerow([money_label(c) for c in columns])
    for row in _rows(frame):
        writer.writerow(
            [
                _text(row[c], decimal_mark, money=column_kind(c) == "amount" and row[c] is not None)
                for c in columns
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")


def csv_zip_bytes(report: DayReport, *, sep: str = ",") -> bytes:
    return _zip(
        [
            (section_file(i, name, "csv"), csv_section(frame, sep=sep))
            for i, (name, frame) in enumerate(_ordered(report), start=1)
        ]
    )


def _totals(name: str, frame: pd.DataFrame) -> dict[str, Any] | None:
    """The totals row of a list section (sums of its counts and amounts), None for the others."""
    if name in NOT_TOTALLED or len(frame) < 2:
        return None
    totals: dict[str, Any] = {}
    for column in frame.columns:
        column = str(column)
        if column_kind(column) in ("amount", "count") and column not in ("try_number", "builds"):
            totals[column] = sum(int(v) for v in frame[column].tolist())
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
    for name, frame in _ordered(report):
        sheet = workbook.create_sheet(name[:31])
        columns = [str(c) for c in frame.columns]
        sheet.append([money_label(c) for c in columns])
        for cell in sheet[1]:
            cell.font = bold
        rows = list(_rows(frame))
        totals = _totals(name, frame)
        lines: list[dict[str, Any] | None] = [*rows, *([None, totals] if totals else [])]
        for index, row in enumerate(lines):
            excel_row = index + 2
            if row is None:
                continue
            for position, column in enumerate(columns, start=1):
                value = row.get(column)
                if row is totals and position == 1 and value is None:
                    value = TOTAL
                kind = column_kind(column)
                if value is not None and kind == "amount":
                    value = Decimal(int(value)).scaleb(-2)
                cell = sheet.cell(row=excel_row, column=position, value=value)
                if kind == "amount":
                    cell.number_format = MONEY_FORMAT
                elif kind == "date" and isinstance(value, date):
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


ARROW_TYPES = {"date": pa.date32(), "amount": pa.int64(), "count": pa.int64(), "bool": pa.bool_()}


def parquet_section(frame: pd.DataFrame, name: str, day: date) -> bytes:
    columns = [str(c) for c in frame.columns]
    rows = list(_rows(frame))
    arrays = {
        money_label(c, "centimes"): pa.array(
            [r[c] for r in rows], ARROW_TYPES.get(column_kind(c), pa.string())
        )
        for c in columns
    }
    table = pa.table(arrays) if arrays else pa.table({})
    table = table.replace_schema_metadata(
        {
            b"epay.report_day": day.isoformat().encode(),
            b"epay.section": name.encode(),
            b"epay.amount_unit": b"centimes",
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def parquet_zip_bytes(report: DayReport) -> bytes:
    return _zip(
        [
            (section_file(i, name, "parquet"), parquet_section(frame, name, report.day))
            for i, (name, frame) in enumerate(_ordered(report), start=1)
        ]
    )


__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "MEDIA_TYPES",
    "SECTION_NAMES",
    "SECTION_ORDER",
    "DayReport",
    "column_kind",
    "day_report",
    "records",
    "write_report",
]
