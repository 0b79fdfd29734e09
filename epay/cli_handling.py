"""``epay exceptions handle`` and ``epay refunds``: closing what the lists show. Thin: options in, one call
into ``epay.reports``, one line per thing closed (or ``--json``) out.

Exit statuses: 0 done (for ``refunds``: the list printed), 2 refused — an unknown reference, one already
handled (the first handling stands), a refund given to ``exceptions handle``, an empty or malformed
``--by``/``--note`` — with one line on stderr and nothing recorded.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, NoReturn

import click

from epay.cli_params import PERSON, BusinessDate, Text
from epay.settings import get_settings

EXIT_OK, EXIT_USAGE = 0, 2
EXCEPTION_REFERENCE = Text(
    "reference",
    "an exception's reference as its list shows it: two capitals, a dash, a digest or a number",
    "QF-3f9a2c1d7e",
    max_length=40,
    pattern="[A-Z]{2}-[0-9a-f]{1,30}",
)
NOTE = Text("note", "why: what was found, decided or done", "asked AP for a corrected file", max_length=500)
TRANSFER = Text(
    "transfer",
    "the refund transfer's own reference: letters, digits and / . _ -",
    "VIR20261207-0017",
    max_length=40,
    pattern="[A-Za-z0-9/._-]{1,40}",
)


def _refuse(command: str, message: str) -> NoReturn:
    click.echo(f"{command} refused: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.command("handle")
@click.option("--date", "day", type=BusinessDate(), required=True, help="the business date of the list")
@click.option(
    "--ref",
    "references",
    type=EXCEPTION_REFERENCE,
    required=True,
    multiple=True,
    help="the exception's reference, as the list shows it (repeat for several, all or none)",
)
@click.option("--by", "by", type=PERSON, required=True, help="who handled it (kept in the ledger and audit)")
@click.option("--note", "note", type=NOTE, required=True, help="why: what was found, decided or done")
def handle(day: datetime, references: tuple[str, ...], by: str, note: str) -> None:
    """Mark exceptions of the day's list handled, with who and why: they are then listed as handled, no
    longer open (`epay exceptions --open` leaves them out; the exit status counts only open ones). A
    refund owed is closed by finance with `epay refunds mark`. Exit status 0 done, 2 refused."""
    from epay import jobs
    from epay.reports.exceptions import daily_exceptions, listed_references
    from epay.reports.handling import HandlingError, record

    business_date = day.date()
    settings = get_settings()
    if business_date > settings.today():  # a day not begun has no exceptions to handle yet
        raise click.BadParameter(
            f"{business_date} is after today ({settings.today()} by epay's clock): only a day that has "
            "begun has exceptions to handle",
            param_hint="'--date'",
        )
    engine = jobs.ledger(settings)
    try:
        document = daily_exceptions(engine, settings, business_date, jobs.calendar_of(settings), shown=None)
        listed = listed_references(document)
        for reference in references:
            if reference not in listed:
                _refuse(
                    "exceptions handle",
                    f"no exception {reference} on the list of {business_date}: "
                    f"`epay exceptions --date {business_date}` shows each one's reference",
                )
            if listed[reference][0] == "refunds_owed":
                _refuse(
                    "exceptions handle",
                    f"{reference} is a refund owed: finance closes it once it is paid back, with "
                    f"`epay refunds mark --ref {reference} --by NAME --note TEXT`",
                )
        try:
            done = record(
                engine,
                {reference: listed[reference][0] for reference in references},
                action="handled",
                business_date=business_date,
                by=by,
                note=note,
            )
        except HandlingError as error:
            _refuse("exceptions handle", str(error))
    finally:
        engine.dispose()
    for handling in done:
        click.echo(f"handled {handling.reference} ({handling.category.replace('_', ' ')}) by {by}: {note}")


def _money(centimes: int) -> str:
    return f"{centimes // 100:,}.{centimes % 100:02d} DZD".replace(",", " ")


def _refund_line(row: dict[str, Any]) -> str:
    return (
        f"  {row['reference']} {row['kind']} {row['item_number']} subscriber {row['subscriber_number']}: "
        f"{_money(row['amount'])} paid {row['channel']} {row['paid_elsewhere_on']}, debited "
        f"{row['debited_on']} ({row['debit_reference']})"
    )


@click.group("refunds", invoke_without_command=True)
@click.option("--open", "open_only", is_flag=True, help="Only the refunds still owed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.pass_context
def refunds(ctx: click.Context, open_only: bool, as_json: bool) -> None:
    """Refunds owed — a bill paid elsewhere (counter, card) while its debit was in flight, then debited
    too — with each one's reference: still owed first, then those finance marked refunded (who, when,
    the transfer). `epay refunds mark` records one paid back. Exit status 0."""
    if ctx.invoked_subcommand is not None:
        return
    from epay import jobs
    from epay.reports.refunds import refund_list

    engine = jobs.ledger(get_settings())
    try:
        rows = refund_list(engine)
    finally:
        engine.dispose()
    owed = [r for r in rows if r["state"] == "owed"]
    refunded = [r for r in rows if r["state"] == "refunded"]
    document: dict[str, Any] = {
        "owed": {"count": len(owed), "amount": sum(r["amount"] for r in owed)},
        "refunded": {"count": len(refunded), "amount": sum(r["amount"] for r in refunded)},
        "refunds": owed if open_only else owed + refunded,
    }
    if as_json:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"refunds still owed: {len(owed)}, {_money(document['owed']['amount'])}; "
        f"refunded: {len(refunded)}, {_money(document['refunded']['amount'])}"
    )
    for row in owed:
        click.echo(_refund_line(row))
    if not open_only and refunded:
        click.echo("refunded:")
        for row in refunded:
            mark = row["refunded"]
            transfer = f", transfer {mark['transfer_reference']}" if mark["transfer_reference"] else ""
            click.echo(_refund_line(row))
            click.echo(
                f"      refunded, marked by {mark['by']} at {mark['at'][:16]} UTC{transfer}: {mark['note']}"
            )


@refunds.command("mark")
@click.option(
    "--ref",
    "references",
    type=EXCEPTION_REFERENCE,
    required=True,
    multiple=True,
    help="the refund's reference (RF-…), as `epay refunds` shows it (repeat for several, all or none)",
)
@click.option(
    "--by", "by", type=PERSON, required=True, help="who paid it back (kept in the ledger and audit)"
)
@click.option("--note", "note", type=NOTE, required=True, help="how it was paid back, or why it is closed")
@click.option("--transfer-reference", "transfer", type=TRANSFER, help="the refund transfer's own reference")
def mark(references: tuple[str, ...], by: str, note: str, transfer: str | None) -> None:
    """Mark refunds owed as refunded, with who, why and the transfer's reference: the lists then show them
    refunded, no longer owed. Exit status 0 done, 2 refused (unknown or already refunded)."""
    from epay import jobs
    from epay.reports.handling import HandlingError, record
    from epay.reports.refunds import refund_list

    settings = get_settings()
    engine = jobs.ledger(settings)
    try:
        known = {row["reference"] for row in refund_list(engine)}
        for reference in references:
            if reference not in known:
                _refuse(
                    "refunds mark",
                    f"no refund owed {reference}: `epay refunds` lists them with their references",
                )
        try:
            done = record(
                engine,
                dict.fromkeys(references, "refunds_owed"),
                action="refunded",
                business_date=settings.today(),
                by=by,
                note=note,
                transfer_reference=transfer,
            )
        except HandlingError as error:
            _refuse("refunds mark", str(error))
    finally:
        engine.dispose()
    for handling in done:
        suffix = f", transfer {transfer}" if transfer else ""
        click.echo(f"refunded {handling.reference} by {by}{suffix}: {note}")
