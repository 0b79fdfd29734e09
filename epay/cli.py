"""The ``epay`` command line. Thin: parses options, calls the package, prints, sets the exit status.

Exit statuses (every command): 0 success / file valid, 1 the work found a problem (invalid file...),
2 usage error (bad option, missing file).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from epay.cli_params import CREDITOR_ID, RIP, InputFile
from epay.formats.layout import KINDS
from epay.formats.problems import FILE_CODE_MEANINGS
from epay.formats.reader import ValidationReport, validate_file

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


DEBUG_ENV = "EPAY_DEBUG"


def _one_line(text: str) -> str:
    """``text`` on one line: control characters (a newline in a value echoed back) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class OneLineError(click.ClickException):
    """What every error of ``epay`` is shown as: one line on stderr, ``Error: ...``, with the exit status of
    the error it stands for (2 for usage, 1 otherwise); a usage error names the command's ``--help``."""

    def __init__(self, error: click.ClickException) -> None:
        ctx = getattr(error, "ctx", None)
        message = _one_line(error.format_message())
        if isinstance(error, click.UsageError) and ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        super().__init__(message)
        self.ctx = ctx
        setattr(self, "exit_code", error.exit_code)  # noqa: B010 (a class variable of click's, per error here)

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.message}", file=file or sys.stderr)


class EpayGroup(click.Group):
    """Every error is one line on stderr and no command prints a traceback:

    - bad options and arguments are refused by their types (``epay.cli_params``) and click: exit 2;
    - settings that cannot be used (a bad ``EPAY_*`` value, a bad clock), and a date the calendar does not
      cover that still reached it: exit 2, what is wrong and where;
    - an operating system error (a disk full, a permission, an address in use): exit 1, its message;
    - anything else is a bug: exit 1, its type and message, and the traceback only when ``EPAY_DEBUG`` is
      set (``EPAY_DEBUG=1 epay ...`` shows it as Python prints it).
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # `epay` alone, `epay outbound` alone: the help, as click prints it
        except click.ClickException as error:
            raise OneLineError(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        import errno

        from pydantic import ValidationError

        from epay.calendar import CalendarRangeError, HolidayFileError
        from epay.clock import ClockError
        from epay.settings import ConfigError

        try:
            return super().invoke(ctx)
        except ValidationError as error:
            problems = "; ".join(
                f"EPAY_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
            )
            failure: click.ClickException = click.UsageError(f"the settings cannot be used: {problems}")
        except (ClockError, ConfigError, HolidayFileError) as error:
            failure = click.UsageError(str(error))
        except click.exceptions.NoArgsIsHelpError:
            raise
        except CalendarRangeError as error:
            failure = click.UsageError(f"a date outside the calendar: {error}")
        except click.ClickException as error:
            failure = error
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if os.environ.get(DEBUG_ENV) or (isinstance(error, OSError) and error.errno == errno.EPIPE):
                raise  # click ends quietly on a closed pipe (``epay status ... | head``)
            if isinstance(error, OSError):
                failure = click.ClickException(str(error))
            else:
                failure = click.ClickException(
                    f"internal error (a bug; {DEBUG_ENV}=1 shows its traceback): "
                    f"{type(error).__name__}: {error}"
                )
        raise OneLineError(failure) from None


@click.group(cls=EpayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="epay")
def main() -> None:
    """epay: Algérie Télécom's automatic debits from Algérie Poste CCP accounts."""


def _money(centimes: int) -> str:
    return f"{centimes // 100:,}.{centimes % 100:02d} DZD".replace(",", " ")


def _summary_lines(report: ValidationReport) -> list[str]:
    header, trailer = report.header or {}, report.trailer or {}
    lines: list[str] = []
    shown = {k: v for k, v in header.items() if k not in ("creditor_rip", "creditor_name")}
    lines.append("  header: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    if report.kind in ("PRLV", "RETR", "MNDT", "RELV"):
        lines.append(f"  details: {report.detail_count:,}".replace(",", " "))
    for name, value in trailer.items():
        if name == "detail_count":
            continue
        text = _money(value) if "amount" in name else f"{value}"
        lines.append(f"  {name.replace('_', ' ')}: {text}")
    if report.details is not None and report.kind in ("ACK", "RELV"):
        for row in report.details.to_pylist():
            lines.append(
                "  "
                + ", ".join(
                    f"{k}={_money(v) if 'amount' in k else v}" for k, v in row.items() if v not in ("", None)
                )
            )
    if report.kind == "PRLV" and header.get("settlement_date"):
        lines.append(f"  settlement date: {header['settlement_date']:%Y-%m-%d}")
    return lines


def _print_report(report: ValidationReport, max_problems: int, strict: bool) -> None:
    ok = report.valid and not (strict and report.warnings)
    verdict = "VALID" if ok else "INVALID"
    size = f"{report.size:,}".replace(",", " ")
    click.echo(
        f"{report.name}: {report.kind or 'unknown kind'} {verdict} ({size} bytes, "
        f"{report.line_end or 'no'} line ends)"
    )
    rejection = report.first_rejection()
    if rejection:
        code, line = rejection
        click.echo(
            f"  the post office would reject it: {code} ({FILE_CODE_MEANINGS.get(code, '')}), line {line:06d}"
        )
    if report.header is not None:
        for line_text in _summary_lines(report):
            click.echo(line_text)
    for problem in report.problems[:max_problems]:
        tag = "warning" if problem.severity == "instruction" else "error"
        click.echo(f"  {tag}: {problem}")
    hidden = report.problem_count - min(len(report.problems), max_problems)
    if hidden > 0:
        click.echo(f"  ... and {hidden} more problem(s) (use --json for the full list)")


@main.command()
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=InputFile(),
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.option("--strict", is_flag=True, help="Instruction-level findings (AC01: wrong RIP key) also fail.")
@click.option(
    "--max-problems",
    default=20,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="Problems shown per file in text mode.",
)
@click.option(
    "--creditor",
    type=CREDITOR_ID,
    default=None,
    help="Also check the header against this creditor id (AG01).",
)
@click.option(
    "--creditor-rip", type=RIP, default=None, help="Also check the header against this creditor RIP (AG01)."
)
def check(
    files: tuple[Path, ...],
    as_json: bool,
    strict: bool,
    max_problems: int,
    creditor: str | None,
    creditor_rip: str | None,
) -> None:
    """Validate exchange files (PRLV, ACK, RETR, MNDT, RELV) against the contract.

    The kind comes from the file name (a name outside the spec's patterns is an error) and is checked
    against the header. Every rule visible from the file is applied, with the shared holiday list
    for business days. Exit status: 0 all valid, 1 any invalid, 2 usage error.
    """
    from epay.calendar import load_calendar
    from epay.settings import get_settings

    calendar = load_calendar(get_settings().holidays_file)
    reports: list[ValidationReport] = []
    unreadable: dict[str, str] = {}  # a file gone or unreadable since the arguments were checked
    for path in files:
        try:
            reports.append(
                validate_file(
                    path,
                    calendar=calendar,
                    expected_creditor=creditor,
                    expected_creditor_rip=creditor_rip,
                    keep_details=path.name.startswith(("ACK_", "RELV_")),  # small files: show their records
                )
            )
        except OSError as error:
            unreadable[str(path)] = error.strerror or str(error)
    failed = [r for r in reports if not r.valid or (strict and r.warnings)]
    if as_json:
        document: dict[str, Any] = {
            "valid": not failed and not unreadable,
            "files": [r.to_dict() for r in reports],
            "unreadable": [{"path": p, "error": e} for p, e in unreadable.items()],
        }
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        for report in reports:
            _print_report(report, max_problems, strict)
        for path_text, why in unreadable.items():
            click.echo(f"{path_text}: cannot be read ({why}): not checked")
        if len(files) > 1:
            click.echo(f"{len(reports) - len(failed)} valid, {len(failed) + len(unreadable)} invalid")
    sys.exit(EXIT_PROBLEM if failed or unreadable else EXIT_OK)


@main.command()
@click.argument("kind", required=False, metavar="KIND", type=click.Choice(KINDS, case_sensitive=False))
def layouts(kind: str | None) -> None:
    """Print the record layouts (from schemas/layouts) as Markdown tables."""
    from epay.formats.docs import layouts_markdown

    click.echo(layouts_markdown([kind.upper()] if kind else None), nl=False)


def _register_subcommands() -> None:
    from epay.cli_airflow import airflow
    from epay.cli_audit import audit, exceptions
    from epay.cli_clock import clock
    from epay.cli_finance import report
    from epay.cli_handling import refunds
    from epay.cli_nightly import billing, db, inbound, outbound, sample, status
    from epay.poste.cli import poste

    for group in (poste, db, billing, outbound, sample, inbound, status, audit, exceptions, clock):
        main.add_command(group)
    main.add_command(report)
    main.add_command(refunds)
    main.add_command(airflow)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()
