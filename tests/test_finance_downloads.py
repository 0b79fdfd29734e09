"""Finance downloads (issue #7): XLSX with its sheets and totals, CSV with ';' read by pandas, Parquet read
back by pyarrow, the nightly JSON + XLSX byte-identical on re-run, the ``epay report`` command, and no
20-digit RIP anywhere in any output."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
from click.testing import CliRunner

from epay import jobs
from epay.cli import main
from epay.finance.downloads import day_report, write_report
from tests.finance_world import AS_OF, BROKEN_DAY, World, world  # noqa: F401 - the shared fixture

DAY = date(2026, 11, 26)
RIP = re.compile(rb"(?<![0-9])[0-9]{20}(?![0-9])")


def _report(w: World, day: date = DAY):  # type: ignore[no-untyped-def]
    return day_report(w.engine, day, w.calendar, home=w.settings.home, as_of=AS_OF)


def test_xlsx_sheets_totals_and_formats(world: World) -> None:  # noqa: F811
    report = _report(world)
    out = io.BytesIO()
    write_report(report, "xlsx", out)
    book = openpyxl.load_workbook(io.BytesIO(out.getvalue()))
    assert book.sheetnames == list(report.sections())
    presented = book["presented"]
    assert presented.freeze_panes == "A2"
    header = [c.value for c in presented[1]]
    assert header == ["operation", "count", "amount_dzd"]
    rows = {r[0]: r for r in presented.iter_rows(min_row=2, values_only=True)}
    total = int(report.summary.presented["amount"].iloc[-1])
    assert Decimal(str(rows["total"][2])) == Decimal(total).scaleb(-2)
    assert presented.cell(row=2, column=3).number_format == "#,##0.00"
    reasons = book["rejected_by_reason"]
    last = list(reasons.iter_rows(min_row=2, values_only=True))[-1]
    assert last[0] == "total" and last[2] == int(report.summary.rejected_by_reason["count"].sum())
    assert Decimal(str(last[3])) == Decimal(int(report.summary.rejected_by_reason["amount"].sum())).scaleb(-2)
    assert reasons.cell(row=reasons.max_row, column=1).font.bold


def test_csv_with_semicolons_reads_back(world: World) -> None:  # noqa: F811
    report = _report(world)
    out = io.BytesIO()
    write_report(report, "csv", out, sep=";")
    frame = pd.read_csv(io.BytesIO(out.getvalue()), sep=";", decimal=",", encoding="utf-8-sig")
    assert list(frame.columns[:1]) == ["section"]
    assert set(frame["section"]) >= {"presented", "settled", "reconciliation", "month_presented"}
    presented = frame[frame["section"] == "presented"].set_index("operation")
    total = int(report.summary.presented["amount"].iloc[-1])
    assert round(presented.at["total", "amount_dzd"] * 100) == total
    assert round((presented.at["FA", "amount_dzd"] + presented.at["RA", "amount_dzd"]) * 100) == total
    comma = io.BytesIO()
    write_report(report, "csv", comma)
    assert pd.read_csv(io.BytesIO(comma.getvalue())).shape == frame.shape


def test_parquet_reads_back_in_centimes(world: World) -> None:  # noqa: F811
    report = _report(world, BROKEN_DAY)
    out = io.BytesIO()
    write_report(report, "parquet", out)
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.schema.metadata[b"epay.amount_unit"] == b"centimes"
    frame = table.to_pandas()
    non_empty = [name for name, f in report.sections().items() if len(f)]
    assert list(dict.fromkeys(frame["section"])) == non_empty  # an empty section has no rows
    assert table.schema.metadata[b"epay.sections"].decode().split(",") == list(report.sections())
    breaks = frame[frame["section"] == "breaks"]
    assert list(breaks["kind"]) == ["credit_difference"] and int(breaks["amount"].iloc[0]) == 7
    settled = frame[frame["section"] == "settled"].set_index("operation")
    assert int(settled.at["total", "amount"]) == int(report.summary.settled["amount"].iloc[-1])


def test_nightly_summary_is_byte_identical_on_rerun(world: World) -> None:  # noqa: F811
    settings = world.settings
    first = jobs.finance_summary(settings, BROKEN_DAY)
    assert first == settings.reports_dir / BROKEN_DAY.isoformat() / f"finance-{BROKEN_DAY}.json"
    xlsx = first.with_suffix(".xlsx")
    before = first.read_bytes(), xlsx.read_bytes()
    again = jobs.finance_summary(settings, BROKEN_DAY)
    assert (again.read_bytes(), xlsx.read_bytes()) == before
    document = json.loads(before[0])
    assert document["reconciliation"]["status"] == "breaks"
    assert document["summary"]["as_of"] == BROKEN_DAY.isoformat()
    # written whole then renamed: nothing half-written is ever left beside them
    assert sorted(p.name for p in first.parent.iterdir() if p.name.startswith("finance-")) == [
        first.name,
        xlsx.name,
    ]


def test_no_rip_in_any_output(world: World, tmp_path: Path) -> None:  # noqa: F811
    rips = {str(r) for (r,) in _rips(world)}
    assert rips
    for day in (DAY, BROKEN_DAY, AS_OF):
        report = _report(world, day)
        for fmt in ("csv", "xlsx", "parquet", "json"):
            out = io.BytesIO()
            write_report(report, fmt, out)
            data = out.getvalue()
            texts = [data]
            if fmt == "xlsx":
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    texts = [archive.read(n) for n in archive.namelist()]
            if fmt == "parquet":
                texts = [pq.read_table(io.BytesIO(data)).to_pandas().to_csv().encode()]
            for text in texts:
                assert not RIP.search(text), (fmt, RIP.search(text))
                assert not any(r.encode() in text for r in rips)


def _rips(w: World) -> list[tuple[str]]:
    from sqlalchemy import text

    with w.engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text("SELECT DISTINCT rip FROM instruction")).all()]


def test_report_command(world: World, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    s = world.settings
    monkeypatch.setenv("EPAY_HOME", str(s.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", s.ledger_url)
    monkeypatch.setenv("EPAY_HOLIDAYS_FILE", str(s.holidays_file))
    runner = CliRunner()
    out = tmp_path / "day.csv"
    done = runner.invoke(
        main, ["report", "--date", "2026-11-26", "--format", "csv", "--out", str(out), "--sep", ";"]
    )
    assert done.exit_code == 0, done.output
    assert pd.read_csv(out, sep=";", decimal=",")["section"].iloc[0] == "report"
    xlsx = tmp_path / "day.xlsx"
    broken = runner.invoke(
        main, ["report", "--date", BROKEN_DAY.isoformat(), "--format", "xlsx", "--out", str(xlsx)]
    )
    assert broken.exit_code == 1  # the file is written, the break sets the exit status
    assert "reconciliation" in openpyxl.load_workbook(xlsx).sheetnames
    printed = runner.invoke(main, ["report", "--date", BROKEN_DAY.isoformat(), "--json", "--month"])
    document = json.loads(printed.stdout)
    assert document["reconciliation"]["status"] == "breaks" and "month_to_date" in document
    text = runner.invoke(main, ["report", "--date", BROKEN_DAY.isoformat()])
    assert "BREAK credit_difference" in text.output
