"""``epay audit`` and ``epay exceptions``: what happened to one instruction or file, and what a person must
look at today. Thin: options in, one call into ``epay.reports``, text (or ``--json``) out.

Exit statuses: ``audit`` 0 found, 1 nothing known about that reference or file, 2 usage error (neither or
both of --reference/--file, a path given as --file); ``exceptions`` 0 the list is empty, 1 something is
listed (an alert can be driven by it), 2 usage error.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from epay.cli_params import REFERENCE, BusinessDate, FileName, Moment
from epay.settings import ALGIERS, get_settings

EXIT_OK, EXIT_PROBLEM = 0, 1
DATE = BusinessDate()


def _emit(as_json: bool, document: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str, ensure_ascii=False))
    else:
        for line in lines:
            click.echo(line)


def _bare_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from epay.reports.audit_trail import check_file_name

    try:
        return check_file_name(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("audit")
@click.option("--reference", type=REFERENCE, help="an instruction's end-to-end reference (E + 23 digits)")
@click.option(
    "--file",
    "file_name",
    type=FileName(),
    callback=_bare_name,
    help="an exchange file's bare name, e.g. PRLV_100237_20261125_01.txt",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def audit(reference: str | None, file_name: str | None, as_json: bool) -> None:
    """The full history of one instruction (--reference) or one exchange file (--file), from the audit
    trail and the ledger: states with times and reasons, files, ACK, return, exceptions, quarantine.
    RIPs are masked. Exit status: 0 found, 1 unknown, 2 usage error."""
    if (reference is None) == (file_name is None):
        raise click.UsageError("give exactly one of --reference R or --file NAME")
    from epay import jobs
    from epay.reports.audit_trail import (
        AuditNotFoundError,
        file_lines,
        file_trail,
        instruction_lines,
        instruction_trail,
    )

    settings = get_settings()
    engine = jobs.ledger(settings)
    try:
        if reference is not None:
            document = instruction_trail(engine, reference.strip())
            lines = instruction_lines(document)
        else:
            assert file_name is not None
            document = file_trail(engine, file_name, settings.quarantine_dir)
            lines = file_lines(document)
    except AuditNotFoundError as error:
        click.echo(f"audit: {error}", err=True)
        sys.exit(EXIT_PROBLEM)
    finally:
        engine.dispose()
    _emit(as_json, document, lines)


def _now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date and time", param_hint="--now") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ALGIERS)


@click.group("exceptions", invoke_without_command=True)
@click.option("--date", "day", type=DATE, help="the business date (default: today in Africa/Algiers)")
@click.option(
    "--now",
    "now_text",
    type=Moment(as_text=True),
    help="judge ACK deadlines at this time (ISO 8601; no offset means Algiers time); default: now",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.option("--open", "open_only", is_flag=True, help="Only what is still open (leave out the handled).")
@click.pass_context
def exceptions(ctx: click.Context, day: Any, now_text: str | None, as_json: bool, open_only: bool) -> None:
    """The day's exceptions list: quarantined files, return exceptions, overdue returns, ACKs overdue,
    business days without a RELV, new refunds owed — each with its reference; `epay exceptions handle`
    marks one handled (who, why), and it is then listed as handled, no longer open. Read it once the
    day's inbound files are in. Exit status: 0 nothing open, 1 something open (drive an alert with it),
    2 usage error."""
    if ctx.invoked_subcommand is not None:
        return
    from epay import jobs
    from epay.reports.exceptions import daily_exceptions, exception_lines
    from epay.settings import ALGIERS, business_today

    now = _now(now_text)
    settings = get_settings()
    business_date = day.date() if day is not None else business_today()
    today = now.astimezone(ALGIERS).date() if now is not None else settings.today()
    if business_date > today:  # a list of a day not begun would show what is not due yet
        raise click.BadParameter(
            f"{business_date} is after today ({today} by epay's clock, or --now): a day's exceptions are "
            "listed from that day on",
            param_hint="'--date'",
        )
    engine = jobs.ledger(settings)
    try:
        document = daily_exceptions(
            engine,
            settings,
            business_date,
            jobs.calendar_of(settings),
            now=now,
            open_only=open_only,
        )
    finally:
        engine.dispose()
    _emit(as_json, document, exception_lines(document))
    sys.exit(EXIT_OK if document["empty"] else EXIT_PROBLEM)


def _register() -> None:
    from epay.cli_handling import handle

    exceptions.add_command(handle)


_register()
