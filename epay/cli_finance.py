"""``epay report``: the finance report of a date — its settlement view and its cash view (reconciliation
with the RELV statements), month to date — written as XLSX, a ZIP of CSVs or a ZIP of Parquet files, or
printed (``--json``, or a short text).

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
@click.option("--date", "day", type=DATE, required=True, help="the date (settlement date and debit date)")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "parquet", "json"]),
    default=None,
    help="the file to write (with --out)",
)
@click.option("--out", type=OutputFile(), default=None)
@click.option("--sep", type=click.Choice([",", ";"]), default=",", help="CSV separator (';': decimal comma)")
@click.option("--month", is_flag=True, help="print the settlement view's month to date instead of the day's")
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON document")
def report(day: datetime, fmt: str | None, out: Path | None, sep: str, month: bool, as_json: bool) -> None:
    """Finance report of a date, in two views (docs/finance.md): the settlement view (what was due on the
    date: presented, settled, rejected by reason, pending, overdue, retries, files not presented,
    exclusions) and the cash view (debited and credited that day, per RELV: breaks, refunds owed). A CSV
    or Parquet download is a ZIP of one table per section."""
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
    from epay.finance.vocabulary import CASH_STATUSES, SETTLEMENT_STATUSES, meaning

    assert isinstance(document, DayReport)
    summary = document.month if month else document.summary
    span = (
        summary.first.isoformat() if summary.first == summary.last else f"{summary.first} to {summary.last}"
    )
    lines = [
        f"SETTLEMENT VIEW — settlement date {span} (what was due, what became of it): {summary.status} "
        f"({meaning(SETTLEMENT_STATUSES, summary.status)})"
    ]
    for name in ("presented", "settled", "rejected", "pending"):
        parts = ", ".join(
            f"{r['operation']} {int(r[f'{name}_count'])} {_money(int(r[f'{name}_amount']))}"
            for r in summary.by_operation.to_dict("records")[:-1]
        )
        lines.append(f"  {name}: {summary.figure(name, 'count')} {_money(summary.figure(name))} ({parts})")
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
    for n in summary.not_presented.to_dict("records"):
        lines.append(
            f"  NOT PRESENTED {n['file']} ({n['state']} {n['reason']}: "
            f"{n['reason_meaning'] or n['state_meaning']}): {n['count']} {_money(int(n['amount']))}; "
            f"re-filed {n['re_filed_count']}, held {n['held_count']}, waiting {n['waiting_count']}, "
            f"cancelled {n['cancelled_count']}"
        )
    for r in summary.exclusions.itertuples():
        lines.append(
            f"  not sent, {r.reason} ({r.meaning}): {r.items} distinct items "
            f"{_money(int(str(r.amount)))}, held by {r.builds} build(s)"
        )
    rec = document.reconciliation
    f = rec.figures
    lines.append(
        f"CASH VIEW — debit date {rec.debit_date} (what was debited and credited that day, per RELV): "
        f"{rec.status} ({meaning(CASH_STATUSES, rec.status)})"
    )
    lines.append(
        f"  debited (ACSC) {f.acsc_count} {_money(f.acsc_amount)}, of which late {f.late_count} "
        f"{_money(f.late_amount)}; credited (RELV) {f.credited_count} {_money(f.credited_amount)}; "
        f"difference {_money(rec.difference)}; statement {'in' if f.statement_present else 'NOT in'}"
    )
    for d in rec.debited.itertuples():
        if d.late:
            lines.append(f"    late, due on {d.settlement_date}: {d.count} {_money(int(str(d.amount)))}")
    for b in rec.breaks.itertuples():
        lines.append(f"  BREAK {b.kind}: {_money(int(str(b.amount)))} — {b.explanation}")
    if len(rec.refunds):
        lines.append(f"  refunds owed: {len(rec.refunds)}, {_money(int(str(rec.refunds['amount'].sum())))}")
    return lines
