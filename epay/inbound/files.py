"""Inbound files in the ledger: registered once by name and sha256, in the applying transaction."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, insert, select

from epay.ledger import audit
from epay.ledger.bulk import insert_frame, now_utc
from epay.ledger.models import ExchangeFile
from epay.outbound.build import sha256_of


class InboundIncident(Exception):  # noqa: N818 - an incident, in the spec's own word
    """The same name arrived with other bytes than a file already received: never applied."""


def already_received(connection: Connection, name: str, sha256: str) -> bool:
    """True for a harmless re-delivery (same name, same bytes); raises on other bytes."""
    known = connection.execute(
        select(ExchangeFile.sha256).where(ExchangeFile.direction == "in", ExchangeFile.name == name)
    ).scalar_one_or_none()
    if known is None:
        return False
    if known != sha256:
        raise InboundIncident(f"{name} was received before with other bytes (sha256 {known[:12]}…): incident")
    return True


def register_inbound(
    connection: Connection,
    path: Path,
    *,
    kind: str,
    home: Path,
    business_date: date,
    detail_count: int,
    amount: int,
    state: str = "applied",
    actor: str = "inbound",
) -> int:
    now = now_utc()
    name = path.name
    file_id = connection.execute(
        insert(ExchangeFile).values(
            direction="in",
            name=name,
            kind=kind,
            business_date=business_date,
            sequence=0,
            settlement_date=None,
            path=str(path.relative_to(home)) if path.is_relative_to(home) else str(path),
            sha256=sha256_of(path),
            size=path.stat().st_size,
            detail_count=detail_count,
            amount=amount,
            state=state,
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    audit.record(connection, "file", name, state, actor=actor, business_date=business_date)
    return int(file_id)


def statement_already_read(connection: Connection, name: str) -> str | None:
    """The RELV already applied for the same processing date as ``name`` (another sequence), if any: AP
    states each business day once (contract §7); a second statement of a day would count its cash twice."""
    kind, creditor, day, _ = name.split("_", 3)
    found = connection.execute(
        select(ExchangeFile.name).where(
            ExchangeFile.direction == "in",
            ExchangeFile.kind == "RELV",
            ExchangeFile.name.like(f"{kind}_{creditor}_{day}_%"),
            ExchangeFile.name != name,
        )
    ).first()
    return None if found is None else str(found[0])


def hold_exceptions(
    connection: Connection,
    exceptions: pd.DataFrame,
    *,
    entity: str,
    file_id: int,
    business_date: date,
    actor: str,
) -> None:
    """Record the records a file's judgement held (``line``, ``reference``, ``kind``, ``detail``): each a
    return exception on the day's list and an ``exception`` event in the trail of its ``entity``
    (instruction or mandate); never applied."""
    if exceptions.empty:
        return
    insert_frame(
        connection,
        "return_exception",
        exceptions.assign(file_id=file_id, business_date=business_date)[
            ["file_id", "line", "reference", "kind", "detail", "business_date"]
        ],
    )
    for reference, kind in zip(exceptions["reference"], exceptions["kind"], strict=True):
        audit.record(
            connection,
            entity,
            str(reference),
            "exception",
            reason=str(kind),
            actor=actor,
            business_date=business_date,
            file_id=file_id,
        )
