"""``epay db``, ``epay billing``, ``epay outbound`` and ``epay sample``: the operator's nightly commands.
Thin: options in, one call into the package, a summary (or ``--json``) out, exit status 0/1/2."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from epay.cli_params import PERSON, BusinessDate, FileName, InputFile
from epay.settings import get_settings

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
DATE = BusinessDate()


def _day(value: Any) -> date:
    """The --date given, else today's business date in Africa/Algiers."""
    from epay.settings import business_today

    return value.date() if value is not None else business_today()


def _money(centimes: int) -> str:
    return f"{centimes // 100:,}.{centimes % 100:02d} DZD".replace(",", " ")


def _emit(as_json: bool, document: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        for line in lines:
            click.echo(line)


@click.group()
def db() -> None:
    """The ledger database (EPAY_DATABASE_URL; SQLite under EPAY_HOME by default)."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the ledger's migrations up to the latest (safe to run any time)."""
    from epay.ledger.db import current_revision, open_ledger

    settings = get_settings()
    engine = open_ledger(settings.ledger_url)
    click.echo(f"ledger at revision {current_revision(engine)}")
    engine.dispose()


@click.group()
def billing() -> None:
    """Billing extracts in, payment statuses out."""


@billing.command("load")
@click.argument("files", nargs=-1, type=InputFile())
@click.option("--date", "day", type=DATE, help="load every pending extract dated on or before this date")
@click.option("--json", "as_json", is_flag=True)
def billing_load(files: tuple[Path, ...], day: Any, as_json: bool) -> None:
    """Check and load billing extracts (given files, or those waiting in EPAY_HOME/billing/incoming)."""
    from epay import jobs

    settings = get_settings()
    paths = list(files) or jobs.pending_extracts(settings, _day(day))
    outcomes = jobs.load_extracts(settings, paths, _day(day))
    lines = []
    for outcome in outcomes:
        if outcome.quarantined:
            lines.append(f"{outcome.file}: QUARANTINED: {outcome.quarantined}")
        elif outcome.loaded and outcome.loaded.already_loaded:
            lines.append(f"{outcome.file}: already loaded, nothing changed")
        elif outcome.loaded:
            r = outcome.loaded
            lines.append(
                f"{outcome.file}: {r.subscribers} subscribers, {r.items_new} new items, "
                f"{r.items_updated} updated, {r.paid_elsewhere} paid elsewhere, "
                f"{r.rejected_rows} rows rejected"
            )
    if not outcomes:
        lines.append("no extract to load")
    _emit(as_json, {"extracts": [o.to_dict() for o in outcomes]}, lines)
    sys.exit(EXIT_PROBLEM if any(o.quarantined for o in outcomes) else EXIT_OK)


@billing.command("export")
@click.option("--date", "day", type=DATE, required=True)
def billing_export(day: Any) -> None:
    """Write the day's payment statuses for billing (EPAY_HOME/billing/outgoing/STATUS_YYYYMMDD.csv):
    the changes since the previous export, up to the end of that day. The date must be a business day,
    not after today by epay's clock and not before the latest export; otherwise nothing is written or
    marked exported, and the exit status is 2."""
    from epay import jobs
    from epay.billing.status_export import ExportDateError, ExportSupersededError

    try:
        click.echo(jobs.export_statuses(get_settings(), _day(day)))
    except (ExportDateError, ExportSupersededError) as refused:
        click.echo(f"billing export refused: {refused}", err=True)
        sys.exit(EXIT_USAGE)


@click.group()
def outbound() -> None:
    """Debit instructions: build the day's PRLV files, release held batches."""


@outbound.command("build")
@click.option("--date", "day", type=DATE, required=True, help="the business date (Africa/Algiers)")
@click.option("--json", "as_json", is_flag=True)
def outbound_build(day: Any, as_json: bool) -> None:
    """Select what is due, pass the quality gate, write and register the PRLV files (idempotent)."""
    from epay import jobs
    from epay.outbound.build import BuildError

    try:
        result = jobs.build(get_settings(), _day(day))
    except BuildError as error:
        click.echo(f"build refused: {error}", err=True)
        sys.exit(EXIT_PROBLEM)
    lines = [
        f"business date {result.business_date}, settlement {result.settlement_date}: batch "
        f"{result.batch_number} {result.batch_state}"
        + ("" if result.created else " (already built: unchanged)"),
        f"  {result.instruction_count} instructions, {_money(result.amount)}",
    ]
    lines += [
        f"  file {f.name}: {f.detail_count} details, {_money(f.amount)}, {f.state}, sha256 {f.sha256[:16]}…"
        for f in result.files
    ]
    for title, counts in (("held back", result.held), ("not selected", result.excluded)):
        if counts:
            lines.append(f"  {title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if result.stopped:
        lines.append(f"  stopped (tries exhausted): {result.stopped}")
    if result.batch_state == "held":
        lines.append(
            "  HELD above the day's ceilings: release with "
            f"`epay outbound release --date {result.business_date} --by NAME`"
        )
    _emit(as_json, result.to_dict(), lines)


@outbound.command("send")
@click.option("--date", "day", type=DATE, required=True)
@click.option("--json", "as_json", is_flag=True)
def outbound_send(day: Any, as_json: bool) -> None:
    """Upload the day's sendable PRLV files by SFTP (host key pinned), verified, then record them sent."""
    from epay import jobs
    from epay.outbound.build import FileIncidentError
    from epay.transport import TransportError

    try:
        sent = jobs.send(get_settings(), _day(day))
    except (TransportError, FileIncidentError) as error:
        click.echo(f"send failed: {error}", err=True)
        sys.exit(EXIT_PROBLEM)
    lines = [
        f"sent {s['name']} ({s['size']} bytes){' — already there' if s['already_there'] else ''}"
        for s in sent
    ]
    _emit(as_json, {"sent": sent}, lines or ["nothing to send"])


@outbound.command("release")
@click.option("--date", "day", type=DATE, required=True)
@click.option(
    "--by", "released_by", type=PERSON, required=True, help="who releases it (kept in the audit trail)"
)
def outbound_release(day: Any, released_by: str) -> None:
    """Release a batch held above the day's ceilings, so its files can be sent (before the cut-off)."""
    from epay import jobs
    from epay.outbound.release import ReleaseError, release_batch

    settings = get_settings()
    engine = jobs.ledger(settings)
    try:
        names = release_batch(engine, _day(day), released_by, jobs.calendar_of(settings))
    except ReleaseError as error:
        click.echo(f"release refused: {error}", err=True)
        sys.exit(EXIT_PROBLEM)
    finally:
        engine.dispose()
    click.echo("released: " + (", ".join(names) if names else "nothing was held"))


@outbound.command("release-file")
@click.option(
    "--file",
    "name",
    type=FileName("PRLV"),
    required=True,
    help="the rejected PRLV file's name, e.g. PRLV_100237_20261125_01.txt",
)
@click.option(
    "--by", "released_by", type=PERSON, required=True, help="who releases it (kept in the audit trail)"
)
def outbound_release_file(name: str, released_by: str) -> None:
    """After a PRLV file was rejected FF01, AG01, AM10 or DU01 and the cause is understood: its held
    instructions go, with their references, into a new file at the next build that can make its cut-off."""
    import re

    from epay import jobs
    from epay.outbound.release import ReleaseError, release_rejected_file

    if not re.fullmatch(r"PRLV_[0-9]{6}_[0-9]{8}_[0-9]{2}\.txt", name):
        raise click.BadParameter(f"{name!r} is not a PRLV file name (PRLV_<creditor>_<YYYYMMDD>_<SS>.txt)")
    engine = jobs.ledger(get_settings())
    try:
        count = release_rejected_file(engine, name, released_by)
    except ReleaseError as error:
        click.echo(f"release refused: {error}", err=True)
        sys.exit(EXIT_PROBLEM)
    finally:
        engine.dispose()
    if not count:
        click.echo(f"nothing held in {name}: its instructions were already released")
        return
    click.echo(f"released: {count} instruction(s) of {name}; the next build re-files them")


@outbound.command("cancel")
@click.option("--date", "day", type=DATE, required=True)
@click.option(
    "--by", "cancelled_by", type=PERSON, required=True, help="who cancels it (kept in the audit trail)"
)
def outbound_cancel(day: Any, cancelled_by: str) -> None:
    """Cancel a held batch: its files are never sent, its items go into a later build."""
    from epay import jobs
    from epay.outbound.release import ReleaseError, cancel_batch

    engine = jobs.ledger(get_settings())
    try:
        count = cancel_batch(engine, _day(day), cancelled_by)
    except ReleaseError as error:
        click.echo(f"cancel refused: {error}", err=True)
        sys.exit(EXIT_PROBLEM)
    finally:
        engine.dispose()
    click.echo(
        f"cancelled: {count} instruction(s); their items are due again" if count else "nothing was held"
    )


@click.command("sample")
@click.option("--subscribers", type=click.IntRange(1, 10_000_000), default=10_000, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=1, show_default=True)
@click.option("--as-of", "as_of", type=DATE, required=True, help="the business date the world is set on")
@click.option(
    "--protection",
    type=click.Choice(["none", "openpgp"]),
    default="none",
    show_default=True,
    help="openpgp: a key pair on each side, exchanged and pinned, and the agreement set to protect every "
    "file (contract §8, docs/openpgp.md); written to a new EPAY_HOME/epay.toml",
)
@click.option("--json", "as_json", is_flag=True)
def sample(subscribers: int, seed: int, as_of: Any, protection: str, as_json: bool) -> None:
    """Create a realistic, reproducible world as of a date: the ledger (through the billing import) and
    the simulated post office (accounts, mandates, SFTP account) under EPAY_HOME."""
    from epay import jobs
    from epay.sample.install import install_sample

    settings = get_settings()
    report = install_sample(
        settings, subscribers, seed, as_of.date(), jobs.calendar_of(settings), protection=protection
    )
    loaded = report.loaded
    lines = [
        f"world of {report.subscribers} subscribers as of {report.as_of} (seed {seed})",
        f"  billing extract {report.extract}: "
        + (
            "already loaded"
            if loaded["already_loaded"]
            else f"{loaded['items_new']} items, {loaded['paid_elsewhere']} paid elsewhere, "
            f"{loaded['rejected_rows']} rows rejected"
        ),
        f"  mandates {report.mandates}; post office: {report.poste_accounts} accounts, "
        f"{report.poste_mandates} mandates, SFTP account {report.sftp_username}",
        "  seconds: " + ", ".join(f"{k} {v}" for k, v in report.seconds.items()),
    ]
    if report.openpgp:
        keys = report.openpgp
        lines.append(
            f"  OpenPGP: AT's key {keys['openpgp_own_key']} (home {keys['openpgp_home']}), "
            f"AP's key {keys['openpgp_poste_key']}, pinned on both sides"
        )
    _emit(as_json, report.to_dict(), lines)


@click.command("inbound")
@click.option("--date", "day", type=DATE, required=True, help="the business date the files are applied for")
@click.option("--json", "as_json", is_flag=True)
def inbound(day: Any, as_json: bool) -> None:
    """Download the files Algérie Poste published (ACK, RETR, MNDT, RELV) and apply each new one once."""
    from epay import jobs
    from epay.transport import TransportError

    try:
        results = jobs.receive(get_settings(), _day(day))
    except TransportError as error:
        click.echo(f"inbound failed: {error}", err=True)
        sys.exit(EXIT_PROBLEM)
    lines = [f"{r['name']}: {r['outcome']}" for r in results]
    _emit(as_json, {"files": results}, lines or ["nothing new"])
    sys.exit(EXIT_PROBLEM if any(r["outcome"] == "quarantined" for r in results) else EXIT_OK)


@click.command("status")
@click.option("--date", "day", type=DATE, required=True)
@click.option("--json", "as_json", is_flag=True)
def status(day: Any, as_json: bool) -> None:
    """What was due, sent, acknowledged, settled, rejected (by reason) and pending for a business date."""
    from epay import jobs
    from epay.reports.status import day_status

    engine = jobs.ledger(get_settings())
    try:
        document = day_status(engine, _day(day))
    finally:
        engine.dispose()
    lines = [f"business date {document['business_date']}"]
    for state, v in sorted(document["instructions"].items()):
        lines.append(f"  {state}: {v['count']} instructions, {_money(v['amount'])}")
    for reason, v in sorted(document["rejected_by_reason"].items()):
        lines.append(f"    rejected {reason}: {v['count']}, {_money(v['amount'])}")
    lines.append(f"  pending: {document['pending']['count']}, {_money(document['pending']['amount'])}")
    if document["not_selected"]:
        lines.append("  not selected: " + ", ".join(f"{k} {v}" for k, v in document["not_selected"].items()))
    for f in document["files"]:
        lines.append(f"  {f['direction']} {f['name']}: {f['state']} {f['reason']}".rstrip())
    if document["carried_by"]:
        lines.append("  where its instructions went:")
    for c in document["carried_by"]:
        where = (
            f"{c['file']} ({c['file_state']}, built {c['file_business_date']})"
            if c["file"]
            else "out of any file, waiting to be re-filed by the next build"
        )
        lines.append(f"    {where}: {c['count']} {c['instruction_state']}, {_money(c['amount'])}")
    if document["refunds_owed"]["count"]:
        owed = document["refunds_owed"]
        lines.append(f"  refunds owed (paid twice): {owed['count']}, {_money(owed['amount'])}")
    if document["exceptions"]:
        lines.append("  EXCEPTIONS: " + ", ".join(f"{k} {v}" for k, v in document["exceptions"].items()))
    _emit(as_json, document, lines)
