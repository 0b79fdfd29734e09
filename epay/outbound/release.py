"""A data engineer's decision on a batch held above the day's ceilings: release it (its files become
sendable) while it can still reach Algérie Poste before the cut-off, or cancel it (its items go back to
be selected by a later build)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, Engine, select, update

from epay.calendar import BusinessCalendar
from epay.ledger import audit
from epay.ledger.bulk import execute, now_utc
from epay.ledger.db import lock_ledger, transaction
from epay.ledger.models import Batch, ExchangeFile
from epay.outbound.cutoff import cut_off

ACTOR_RELEASE = "outbound.release"
ACTOR_CANCEL = "outbound.cancel"


class ReleaseError(Exception):
    pass


def _held_batches(connection: Connection, business_date: date) -> list[Batch]:
    rows = connection.execute(select(Batch.__table__).where(Batch.business_date == business_date)).all()
    if not rows:
        raise ReleaseError(f"no batch was built for {business_date}")
    return [Batch(**row._mapping) for row in rows if row.state == "held"]


def _claim(connection: Connection, batch: Batch, state: str, by: str, now: datetime) -> bool:
    """Move a held batch to ``state``; False when another run got there first."""
    changed = connection.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.state == "held")
        .values(state=state, released_at=now, released_by=by)
    ).rowcount
    return bool(changed)


def release_batch(
    engine: Engine,
    business_date: date,
    released_by: str,
    calendar: BusinessCalendar,
    now: datetime | None = None,
) -> list[str]:
    """Release the held batch of ``business_date``; return the names of the files now sendable.

    Refused once the cut-off before its settlement date has passed (the post office would reject the
    files DT01): cancel it instead. Releasing a batch already released is a no-op returning no names."""
    if not released_by.strip():
        raise ReleaseError("say who releases the batch (--by NAME): it goes into the audit trail")
    now = now or now_utc()
    with transaction(engine) as connection:
        lock_ledger(connection)
        names: list[str] = []
        for batch in _held_batches(connection, business_date):
            deadline = cut_off(batch.settlement_date, calendar)
            if now >= deadline:
                raise ReleaseError(
                    f"batch {business_date}/{batch.number} settles on {batch.settlement_date}: its files had "
                    f"to reach Algérie Poste before {deadline:%Y-%m-%d %H:%M} Algiers time. Cancel it "
                    f"(`epay outbound cancel --date {business_date} --by NAME`): its items go into a later "
                    "batch"
                )
            if not _claim(connection, batch, "released", released_by, now):
                continue
            audit.record(
                connection,
                "batch",
                f"{business_date}/{batch.number}",
                "released",
                from_state="held",
                actor=ACTOR_RELEASE,
                reason=f"released by {released_by}",
                business_date=business_date,
            )
            held = (
                connection.execute(
                    select(ExchangeFile.name).where(
                        ExchangeFile.batch_id == batch.id, ExchangeFile.state == "held"
                    )
                )
                .scalars()
                .all()
            )
            connection.execute(
                update(ExchangeFile)
                .where(ExchangeFile.batch_id == batch.id, ExchangeFile.state == "held")
                .values(state="built", updated_at=now)
            )
            for name in held:
                audit.record(
                    connection,
                    "file",
                    name,
                    "built",
                    from_state="held",
                    actor=ACTOR_RELEASE,
                    reason=f"released by {released_by}",
                    business_date=business_date,
                )
            names.extend(held)
        return names


def cancel_batch(engine: Engine, business_date: date, cancelled_by: str) -> int:
    """Cancel the held batch of ``business_date``: its files are never sent, its instructions are
    cancelled (their references are never used), its items are due again with their try given back.
    Returns the number of instructions cancelled."""
    if not cancelled_by.strip():
        raise ReleaseError("say who cancels the batch (--by NAME): it goes into the audit trail")
    now = now_utc()
    with transaction(engine) as connection:
        lock_ledger(connection)
        cancelled = 0
        for batch in _held_batches(connection, business_date):
            if not _claim(connection, batch, "cancelled", cancelled_by, now):
                continue
            reason = f"cancelled by {cancelled_by}"
            audit.record(
                connection,
                "batch",
                f"{business_date}/{batch.number}",
                "cancelled",
                from_state="held",
                actor=ACTOR_CANCEL,
                reason=reason,
                business_date=business_date,
            )
            for name in connection.execute(
                select(ExchangeFile.name).where(
                    ExchangeFile.batch_id == batch.id, ExchangeFile.state == "held"
                )
            ).scalars():
                audit.record(
                    connection,
                    "file",
                    name,
                    "cancelled",
                    from_state="held",
                    actor=ACTOR_CANCEL,
                    reason=reason,
                    business_date=business_date,
                )
            connection.execute(
                update(ExchangeFile)
                .where(ExchangeFile.batch_id == batch.id, ExchangeFile.state == "held")
                .values(state="cancelled", updated_at=now)
            )
            live = "batch_id = ? AND state = 'built'"
            for entity, key, to_state, from_state in (
                ("item", "operation || ':' || item_number", "due", "in_collection"),
                ("instruction", "reference", "cancelled", "built"),
            ):
                audit.record_many(
                    connection,
                    entity,
                    key,
                    "instruction",
                    live,
                    (batch.id,),
                    to_state,
                    actor=ACTOR_CANCEL,
                    from_state=from_state,
                    reason=reason,
                    business_date=business_date,
                )
            execute(
                connection,
                "UPDATE billing_item SET state = 'due', tries = tries - 1, updated_at = ? "
                "WHERE state = 'in_collection' AND id IN "
                "(SELECT item_id FROM instruction WHERE batch_id = ? AND state = 'built')",
                (now, batch.id),
            )
            cancelled += execute(
                connection,
                "UPDATE instruction SET state = 'cancelled', updated_at = ? "
                "WHERE batch_id = ? AND state = 'built'",
                (now, batch.id),
            )
        return cancelled


def release_rejected_file(engine: Engine, name: str, released_by: str) -> int:
    """After a data engineer has understood why Algérie Poste rejected ``name`` (FF01, AG01, AM10,
    DU01): its held instructions go into a new file at the next build. Returns how many."""
    if not released_by.strip():
        raise ReleaseError("say who releases the instructions (--by NAME): it goes into the audit trail")
    with transaction(engine) as connection:
        lock_ledger(connection)
        file = connection.execute(
            select(ExchangeFile.id, ExchangeFile.state, ExchangeFile.reason).where(
                ExchangeFile.direction == "out", ExchangeFile.name == name
            )
        ).one_or_none()
        if file is None:
            raise ReleaseError(f"no file {name} was built")
        if file.state != "rejected":
            raise ReleaseError(f"{name} is {file.state}, not rejected: nothing to release")
        where = "file_id = ? AND state = 'held'"
        audit.record_many(
            connection,
            "instruction",
            "reference",
            "instruction",
            where,
            (file.id,),
            "built",
            actor=ACTOR_RELEASE,
            from_state="held",
            reason=f"{file.reason} released by {released_by}",
        )
        return execute(
            connection,
            "UPDATE instruction SET state = 'built', file_id = NULL, line = NULL, updated_at = ? "
            f"WHERE {where}",
            (now_utc(), file.id),
        )
