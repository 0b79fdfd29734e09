"""One file from Algérie Poste, applied exactly once: checked whole, then applied with its registration in
one transaction — or quarantined with its reasons, nothing of it applied, and the day goes on.

The same name with the same bytes again changes nothing (a re-delivery); the same name with other bytes
is an incident (quarantined). ACK, RETR and MNDT change the ledger; RELV is kept for reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc
from sqlalchemy import Engine, select

from epay.calendar import BusinessCalendar
from epay.faults import fault_point
from epay.formats import parse_file_name, validate_file
from epay.formats.names import FileNameError
from epay.inbound.ack import apply_ack
from epay.inbound.files import (
    InboundIncident,
    already_received,
    hold_exceptions,
    register_inbound,
    statement_already_read,
)
from epay.inbound.mandate_actions import judge_mandate_actions
from epay.inbound.plausibility import file_date, file_moment, file_problems
from epay.inbound.retr import apply_retr, records_of
from epay.inbound.returns import ReturnContext
from epay.ledger.db import lock_ledger, transaction
from epay.ledger.mandates import ACTION_COLUMNS, apply_mandate_actions
from epay.ledger.models import Mandate
from epay.outbound.build import sha256_of
from epay.quarantine import quarantine_file
from epay.settings import Settings

KINDS = ("ACK", "RETR", "MNDT", "RELV")


@dataclass(frozen=True)
class Received:
    name: str
    kind: str | None
    outcome: str  # applied | repeat | quarantined
    detail: dict[str, Any]


def receive_file(
    engine: Engine, settings: Settings, path: Path, calendar: BusinessCalendar, business_date: date
) -> Received:
    """Check ``path`` (a file downloaded from ``outbound/``) and apply it, or quarantine it."""
    try:
        kind = parse_file_name(path.name).kind
    except FileNameError as error:
        reason = f"not a file name of the contract: {error}"
        return quarantine_inbound(settings, business_date, path, None, [reason])
    if kind not in KINDS:
        return quarantine_inbound(
            settings, business_date, path, kind, [f"{kind} files are not sent by Algérie Poste"]
        )
    report = validate_file(
        path,
        calendar=calendar,
        expected_creditor=settings.creditor_id,
        expected_creditor_rip=settings.creditor_rip if kind != "ACK" else None,
        keep_details=True,
    )
    if not report.valid:
        problems = [
            f"line {p.line} {p.field or ''}: {p.code} {p.message}".strip() for p in report.problems[:20]
        ]
        return quarantine_inbound(settings, business_date, path, kind, problems or ["invalid"])
    details, header = report.details, report.header
    assert details is not None and header is not None
    today = settings.today()
    implausible = file_problems(kind, header, details, today=today, calendar=calendar)
    if implausible:
        got = quarantine_inbound(settings, business_date, path, kind, implausible)
        if file_date(kind, header) > today:  # judged again, the same bytes, once the clock reaches its date
            got.detail["early_until"] = file_date(kind, header).isoformat()
        return got
    sha256 = sha256_of(path)
    try:
        with transaction(engine) as connection:
            lock_ledger(connection)
            if already_received(connection, path.name, sha256):
                return Received(path.name, kind, "repeat", {})
            if kind == "RELV" and (earlier := statement_already_read(connection, path.name)) is not None:
                raise InboundIncident(
                    f"{earlier} already stated this business day: a second statement of the day is never "
                    "applied (its credits would count twice)"
                )
            amount = _amount(details)
            file_id = register_inbound(
                connection,
                path,
                kind=kind,
                home=settings.home,
                business_date=business_date,
                detail_count=details.num_rows,
                amount=amount,
                actor=f"inbound.{kind.lower()}",
            )
            context = ReturnContext(file_date(kind, header), calendar, file_moment(kind, header))
            detail = _apply(connection, kind, details, file_id, business_date, context)
            fault_point(f"{kind.lower()}.before_commit")
    except InboundIncident as incident:
        return quarantine_inbound(settings, business_date, path, kind, [str(incident)])
    fault_point(f"{kind.lower()}.after_commit")
    return Received(path.name, kind, "applied", detail)


def _amount(details: Any) -> int:
    for column in ("amount", "total_amount"):
        if column in details.column_names:
            return int(pc.sum(details.column(column)).as_py() or 0)
    return 0


def _apply(
    connection: Any, kind: str, details: Any, file_id: int, business_date: date, context: ReturnContext
) -> dict[str, Any]:
    if kind == "RETR":
        result = apply_retr(
            connection, records_of(details), file_id=file_id, business_date=business_date, context=context
        )
        return result.__dict__
    if kind == "ACK":
        row = details.to_pylist()[0]
        ack = apply_ack(
            connection,
            prlv_name=row["prlv_file_name"],
            status=row["status"],
            reason=row["reason"] or None,
            detail_count=row["detail_count"],
            amount=row["total_amount"],
            business_date=business_date,
            acknowledged_on=context.processing_date,
            acknowledged_at=context.processed_at,
            calendar=context.calendar,
        )
        return ack.__dict__
    if kind == "MNDT":
        actions = details.to_pandas()[list(ACTION_COLUMNS)]
        plan = judge_mandate_actions(actions, _known_mandates(connection, actions), context.processing_date)
        hold_exceptions(
            connection,
            plan.exceptions,
            entity="mandate",
            file_id=file_id,
            business_date=business_date,
            actor="inbound.mndt",
        )
        changes = apply_mandate_actions(
            connection, plan.apply, actor="inbound.mndt", business_date=business_date
        )
        return changes.__dict__ | {"exceptions": len(plan.exceptions)}
    return {"credits": details.num_rows}  # RELV: registered, read by reconciliation


def quarantine_inbound(
    settings: Settings, business_date: date, path: Path, kind: str | None, reasons: list[str]
) -> Received:
    """Move the file aside with its reasons, under the run's business date (the day whose exceptions
    list shows it); never over another quarantined file."""
    target = quarantine_file(settings.quarantine_dir / "inbound", path, reasons, business_date=business_date)
    return Received(path.name, kind, "quarantined", {"reasons": reasons, "path": str(target)})


def _known_mandates(connection: Any, actions: pd.DataFrame) -> pd.DataFrame:
    """The ledger's mandates among those the file names (reference, subscriber number)."""
    references = sorted(set(actions["mandate_reference"].astype(str).str.strip()))
    rows = (
        connection.execute(
            select(Mandate.reference, Mandate.subscriber_number).where(Mandate.reference.in_(references))
        ).all()
        if references
        else []
    )
    return pd.DataFrame(rows, columns=["reference", "subscriber_number"])
