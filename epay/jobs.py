"""The nightly steps as plain functions of (settings, business date): what the CLI and the Airflow
tasks call. Each is idempotent for its date; none reads the clock to decide what to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from epay.calendar import BusinessCalendar, load_calendar
from epay.ledger.billing_load import LoadResult, load_extract
from epay.ledger.db import open_ledger
from epay.ledger.locks import step_lock
from epay.outbound.build import BuildPolicy, BuildResult, build_outbound
from epay.settings import Settings

EXTRACT_SUFFIXES = (".parquet", ".csv")


def ledger(settings: Settings) -> Engine:
    return open_ledger(settings.ledger_url)


def calendar_of(settings: Settings) -> BusinessCalendar:
    return load_calendar(settings.holidays_file)


@dataclass(frozen=True)
class ExtractOutcome:
    file: str
    loaded: LoadResult | None
    quarantined: str | None  # the reason, when the file as a whole could not be used

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "loaded": self.loaded.to_dict() if self.loaded else None,
            "quarantined": self.quarantined,
        }


def pending_extracts(settings: Settings, business_date: date) -> list[Path]:
    """Extracts waiting in the billing drop folder dated on or before ``business_date``, in name order."""
    from epay.billing.extract import extract_date_of

    folder = settings.billing_incoming_dir
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in EXTRACT_SUFFIXES or not path.is_file():
            continue
        day = extract_date_of(path)
        if day is None or day <= business_date:  # a badly named file is quarantined by the load
            found.append(path)
    return found


def load_extracts(
    settings: Settings, paths: list[Path], business_date: date | None = None
) -> list[ExtractOutcome]:
    """Check and load each extract; a file unusable as a whole is quarantined, the others go on, under
    the run's ``business_date`` (default: today by the clock), so its day's exceptions list shows it."""
    from epay.billing.extract import ExtractError, check_extract
    from epay.ledger.billing_load import ExtractConflictError

    engine = ledger(settings)
    outcomes = []
    try:
        for path in paths:
            try:
                outcomes.append(ExtractOutcome(path.name, load_extract(engine, check_extract(path)), None))
            except (ExtractError, ExtractConflictError) as error:
                quarantine(settings, path, str(error), business_date or settings.today())
                outcomes.append(ExtractOutcome(path.name, None, str(error)))
    finally:
        engine.dispose()
    return outcomes


def quarantine(settings: Settings, path: Path, reason: str, business_date: date) -> Path:
    """Put a billing extract we must not use into quarantine, with its reason and the run's business date
    beside it: moved out of epay's incoming folder; a file given from anywhere else is copied, never
    taken from its owner's folder (``epay billing load ~/notes.csv`` leaves the notes where they are)."""
    import shutil
    import tempfile

    from epay.quarantine import quarantine_file

    folder = settings.quarantine_dir / "billing"
    incoming = settings.billing_incoming_dir.resolve()
    if path.resolve().is_relative_to(incoming):
        return quarantine_file(folder, path, [reason], business_date=business_date)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".copy-") as scratch:
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        return quarantine_file(folder, copy, [reason], business_date=business_date)


def build(settings: Settings, business_date: date) -> BuildResult:
    engine = ledger(settings)
    try:
        return build_outbound(
            engine, settings, business_date, calendar_of(settings), BuildPolicy.from_settings(settings)
        )
    finally:
        engine.dispose()


def export_statuses(settings: Settings, business_date: date) -> Path:
    """The payment statuses for billing: every item changed since the previous export, up to the end of
    ``business_date`` (see ``epay.billing.status_export``). A re-run returns the same file, byte for byte.
    A date that cannot be right (not a business day, after today by the clock, before the latest export)
    is refused, with nothing written."""
    from epay.billing.status_export import export_statuses as export

    engine = ledger(settings)
    try:
        return export(
            engine,
            settings.billing_outgoing_dir,
            business_date,
            today=settings.today(),
            calendar=calendar_of(settings),
        )
    finally:
        engine.dispose()


def validate(settings: Settings, business_date: date) -> dict[str, Any]:
    """Selection and quality gate without registering anything: what the build would do. When the
    night's build window is closed by the clock (see ``epay.outbound.cutoff``), says so instead."""
    from datetime import timedelta

    from epay.outbound.build import existing_batch, preview
    from epay.outbound.cutoff import build_window_problem

    engine = ledger(settings)
    try:
        built = existing_batch(engine, business_date)
        if built is not None:  # a re-run: the build will return that batch, nothing to select again
            return {
                "business_date": business_date.isoformat(),
                "settlement_date": built.settlement_date.isoformat(),
                "passed": True,
                "failure": None,
                "already_built": True,
                "selected": built.instruction_count,
                "held": built.held_count,
                "excluded": None,
            }
        closed = build_window_problem(
            business_date,
            settings.now(),
            calendar_of(settings),
            timedelta(minutes=settings.cutoff_margin_minutes),
        )
        if closed is not None:
            return {
                "business_date": business_date.isoformat(),
                "settlement_date": None,
                "passed": True,
                "failure": None,
                "already_built": False,
                "window_closed": closed,
                "selected": 0,
                "held": 0,
                "excluded": None,
            }
        plan = preview(
            engine, settings, business_date, calendar_of(settings), BuildPolicy.from_settings(settings)
        )
    finally:
        engine.dispose()
    return {
        "business_date": business_date.isoformat(),
        "settlement_date": plan.settlement_date.isoformat(),
        "passed": plan.gate.passed,
        "failure": None if plan.gate.passed else plan.gate.failure_message(),
        "already_built": False,
        "selected": len(plan.gate.accepted),
        "held": len(plan.gate.held),
        "excluded": len(plan.excluded),
    }


def sftp_client(settings: Settings) -> Any:
    """The transport to Algérie Poste: the SFTP client (inside Airflow with ``EPAY_SFTP_CONN_ID`` set, from
    that Airflow Connection), or a ``FolderTransport`` when ``EPAY_TRANSPORT_FOLDER`` is set (simulation)."""
    from epay.transport import SftpClient, SftpEndpoint

    if settings.transport_folder is not None:
        from epay.transport.folder import FolderTransport

        return FolderTransport(settings.transport_folder)
    if settings.sftp_conn_id:
        from airflow.sdk import Connection

        return SftpClient(SftpEndpoint.from_airflow_connection(Connection.get(settings.sftp_conn_id)))
    return SftpClient(SftpEndpoint.from_settings(settings))


def send(settings: Settings, business_date: date) -> list[dict[str, Any]]:
    """Upload the sendable PRLV files built on or before ``business_date``; record them sent."""
    from epay.outbound.send import send_files

    engine = ledger(settings)
    try:
        with step_lock(engine, "send"), sftp_client(settings) as client:
            sent = send_files(engine, settings, client, business_date, calendar_of(settings))
            return [s.__dict__ for s in sent]
    finally:
        engine.dispose()


def receive(settings: Settings, business_date: date) -> list[dict[str, Any]]:
    """Download and apply what Algérie Poste published that the ledger has not read yet."""
    from epay.inbound.fetch import fetch_and_apply

    engine = ledger(settings)
    try:
        with step_lock(engine, "receive"), sftp_client(settings) as client:
            results = fetch_and_apply(engine, settings, client, calendar_of(settings), business_date)
    finally:
        engine.dispose()
    return [r.__dict__ for r in results]


def unacknowledged(settings: Settings, business_date: date) -> list[str]:
    """PRLV files sent for ``business_date`` (or before) whose ACK has not been applied."""
    from epay.reports.exceptions import sent_files

    engine = ledger(settings)
    try:
        return [file.name for file in sent_files(engine, business_date)]
    finally:
        engine.dispose()


def overdue_acks(settings: Settings, business_date: date, now: datetime) -> list[tuple[str, datetime]]:
    """The files of ``unacknowledged`` sent more than ``ack_deadline_minutes`` before ``now``, with the
    time they were recorded sent — the same rule as the daily exceptions list."""
    from epay.reports.exceptions import acks_overdue, sent_files

    engine = ledger(settings)
    try:
        late = acks_overdue(sent_files(engine, business_date), now, settings.ack_deadline_minutes)
    finally:
        engine.dispose()
    return [(file.name, file.sent_at) for file in sorted(late, key=lambda file: file.name)]


def ack_overdue_message(settings: Settings, overdue: list[tuple[str, datetime]]) -> str:
    """What the data engineer reads when the ACK deadline has passed."""
    from epay.settings import ALGIERS

    files = ", ".join(
        f"{name} (sent {sent.astimezone(ALGIERS):%Y-%m-%d %H:%M} Algiers)" for name, sent in overdue
    )
    return (
        f"no ACK from Algérie Poste within {settings.ack_deadline_minutes} min for {files}. Nothing is "
        "re-sent on a guess: ask Algérie Poste whether the file arrived. When its ACK comes, epay_inbound "
        "applies it and the day goes on; if AP never received it, send it again with "
        "`epay outbound send --date D` (the same bytes: AP accepts it once)."
    )


def finance_summary(settings: Settings, day: date) -> Path:
    """The finance report of settlement date ``day`` (summary, reconciliation with the RELV statements,
    month to date), written to ``reports/<D>/finance-<D>.json`` and ``.xlsx``; returns the JSON's path.

    Deterministic: "as of" is ``day`` itself (never the clock), keys sorted, the XLSX's inner timestamps
    fixed — a re-run on the same ledger writes the same bytes."""
    from epay.finance.downloads import day_report, write_report

    engine = ledger(settings)
    try:
        report = day_report(
            engine,
            day,
            calendar_of(settings),
            home=settings.home,
            overdue_after_business_days=settings.returns_overdue_business_days,
            as_of=day,
        )
    finally:
        engine.dispose()
    folder = settings.reports_dir / day.isoformat()
    target = folder / f"finance-{day.isoformat()}.json"
    write_report(report, "json", target)
    write_report(report, "xlsx", folder / f"finance-{day.isoformat()}.xlsx")
    return target


def daily_exceptions(settings: Settings, business_date: date, now: datetime) -> dict[str, Any]:
    """The day's exceptions list (``epay exceptions``), judged at ``now`` for the ACK deadlines."""
    from epay.reports.exceptions import daily_exceptions as exceptions_of

    engine = ledger(settings)
    try:
        return exceptions_of(engine, settings, business_date, calendar_of(settings), now=now)
    finally:
        engine.dispose()
