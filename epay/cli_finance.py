"""``epay report``: the finance report of a settlement date — summary, reconciliation with the RELV
statements, month to date — written as CSV, XLSX or Parquet, or printed (``--json``, or a short text).

Exit statuses: 0 written / printed, 1 the day has reconciliation breaks (the file is still written),
2 usage error.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from epay.cli_params import BusinessDate, OutputFile
from epay.settings import get_settings

EXIT_OK, EXIT_PROBLEM = 0, 1
DATE = BusinessDate()


def _money(centimes: int) -> str:
    sign = "-" if centimes < 0 else ""
    centimes = abs(centimes)
    return f"{sign}{centimes // 100:,}.{centimes % 100:02d} DZD".replace(",", " ")


@click.command("report")
@click.option("--date", "day", type=DATE, required=True, help="the settlement (debit) date")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "parquet", "json"]),
    default=None,
    help="the file to write (with --out)",
)
@click.option("--out", type=OutputFile(), default=None)
@click.option("--sep", type=click.Choice([",", ";"]), default=",", help="CSV separator (';': decimal comma)")
@click.option("--month", is_flag=True, help="print the month to date instead of the day (terminal output)")
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON document")
def report(day: datetime, fmt: str | None, out: Path | None, sep: str, month: bool, as_json: bool) -> None:
    """Finance report of a settlement date: presented, settled, rejected by reason, pending, overdue,
    retries, exclusions, reconciliation with the RELV statements (breaks, refunds owed), month to date."""
    from epay import jobs
    from epay.finance.downloads import day_report, write_report

    if (fmt is None) != (out is None):
        raise click.UsageError("--format and --out go together")
    settings = get_settings()
    engine = jobs.ledger(settings)
    try:
        document = day_report(
            engine,
            day.date(),
            jobs.calendar_of(settings),
            home=settings.home,
            overdue_after_business_days=settings.returns_overdue_business_days,
        )
    finally:
        engine.dispose()
    if fmt is not None and out is not None:
        write_report(document, fmt, out, sep=sep)
        click.echo(f"written {out}", err=as_json)
    if as_json:
        whole = document.to_dict()
        shown = {k: whole[k] for k in ("day", "amount_unit", "reconciliation")}
        shown["summary" if not month else "month_to_date"] = whole[
            "summary" if not month else "month_to_date"
        ]
        click.echo(json.dumps(shown, indent=2, sort_keys=True, ensure_ascii=False))
    elif fmt is None:
        for line in _lines(document, month):
            click.echo(line)
    sys.exit(EXIT_PROBLEM if document.reconciliation.status == "breaks" else EXIT_OK)


def _lines(document: object, month: bool) -> list[str]:
    from epay.finance.downloads import DayReport

    assert isinstance(document, DayReport)
    summary = document.month if month else document.summary
    span = (
        summary.first.isoformat() if summary.first == summary.last else f"{summary.first} to {summary.last}"
    )
    lines = [f"settlement {span}: {summary.status}"]
    for name in ("presented", "settled", "pending"):
        frame = getattr(summary, name)
        total = frame.iloc[-1]
        parts = ", ".join(
            f"{r.operation} {r.count} {_money(int(str(r.amount)))}" for r in frame.iloc[:-1].itertuples()
        )
        lines.append(f"  {name}: {total['count']} {_money(int(str(total['amount'])))} ({parts})")
    for r in summary.rejected_by_reason.itertuples():
        lines.append(f"    rejected {r.code} ({r.meaning}): {r.count} {_money(int(str(r.amount)))}")
    for r in summary.overdue.itertuples():
        lines.append(
            f"  OVERDUE settling {r.settlement_date} (due by {r.due_by}): {r.count} "
            f"{_money(int(str(r.amount)))}"
        )
    for r in summary.retries.itertuples():
        lines.append(
            f"  try {r.try_number}: presented {r.presented_count}, settled {r.settled_count}, "
            f"rejected {r.rejected_count}"
        )
    for r in summary.exclusions.itertuples():
        lines.append(f"  not sent, {r.reason}: {r.count} {_money(int(str(r.amount)))}")
    rec = document.reconciliation
    f = rec.figures
    lines.append(
        f"reconciliation of debit date {rec.settlement_date}: {rec.status} — ACSC debited that day "
        f"{_money(f.acsc_amount)}, credited in RELV {_money(f.credited_amount)}, difference "
        f"{_money(rec.difference)} (a status reported late is debited on the day it is reported)"
    )
    for b in rec.breaks.itertuples():
        lines.append(f"  BREAK {b.kind}: {_money(int(str(b.amount)))} — {b.explanation}")
    if len(rec.refunds):
        lines.append(f"  refunds owed: {len(rec.refunds)}, {_money(int(str(rec.refunds['amount'].sum())))}")
    return lines
