"""The append-only audit trail: every state change of an instruction, a file, an item, a batch or a
mandate, written in the same transaction as the change itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, insert, select

from epay.ledger.bulk import execute, now_utc
from epay.ledger.models import AuditEvent


def record(
    connection: Connection,
    entity: str,
    key: str,
    to_state: str,
    *,
    actor: str,
    from_state: str | None = None,
    reason: str | None = None,
    business_date: date | None = None,
    file_id: int | None = None,
) -> None:
    connection.execute(
        insert(AuditEvent).values(
            at=now_utc(),
            entity=entity,
            entity_key=key,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            actor=actor,
            business_date=business_date,
            file_id=file_id,
        )
    )


def record_many(
    connection: Connection,
    entity: str,
    key_sql: str,
    from_sql: str,
    where_sql: str,
    params: Sequence[Any],
    to_state: str,
    *,
    actor: str,
    from_state: str | None = None,
    from_column: str | None = None,
    reason: str | None = None,
    business_date: date | None = None,
    file_id: int | None = None,
    file_sql: str | None = None,
) -> int:
    """One event per row of ``FROM from_sql WHERE where_sql``, keyed by ``key_sql``: a million rows
    changed by one UPDATE get their million events from one INSERT ... SELECT, inside the database.
    ``from_column`` takes each row's previous state from that column instead of one ``from_state``;
    ``file_sql`` each row's file id from that expression instead of one ``file_id``."""
    sql = (
        "INSERT INTO audit_event "
        "(at, entity, entity_key, from_state, to_state, reason, actor, business_date, file_id) "
        f"SELECT ?, ?, {key_sql}, {from_column or '?'}, ?, ?, ?, ?, {file_sql or '?'} "
        f"FROM {from_sql} WHERE {where_sql}"
    )
    previous = () if from_column else (from_state,)
    file = () if file_sql else (file_id,)
    head = (now_utc(), entity, *previous, to_state, reason, actor, business_date, *file)
    return execute(connection, sql, (*head, *params))


def history(connection: Connection, entity: str, key: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(AuditEvent.__table__)
        .where(AuditEvent.entity == entity, AuditEvent.entity_key == key)
        .order_by(AuditEvent.id)
    ).mappings()
    return [dict(row) for row in rows]
