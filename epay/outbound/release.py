"""A data engineer's release of a batch held above the day's ceilings: its files become sendable."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, select, update

from epay.ledger import audit
from epay.ledger.bulk import now_utc
from epay.ledger.db import transaction
from epay.ledger.models import Batch, ExchangeFile

ACTOR = "outbound.release"


class ReleaseError(Exception):
    pass


def release_batch(engine: Engine, business_date: date, released_by: str) -> list[str]:
    """Release the held batch of ``business_date``; return the names of the files now sendable.

    Releasing a batch already released is a no-op returning no names."""
    if not released_by.strip():
        raise ReleaseError("say who releases the batch (--by NAME): it goes into the audit trail")
    with transaction(engine) as connection:
        batches = connection.execute(
            select(Batch.id, Batch.number, Batch.state).where(Batch.business_date == business_date)
        ).all()
        if not batches:
            raise ReleaseError(f"no batch was built for {business_date}")
        names: list[str] = []
        now = now_utc()
        for batch_id, number, state in batches:
            if state != "held":
                continue
            connection.execute(
                update(Batch)
                .where(Batch.id == batch_id)
                .values(state="released", released_at=now, released_by=released_by)
            )
            audit.record(
                connection,
                "batch",
                f"{business_date}/{number}",
                "released",
                from_state="held",
                actor=ACTOR,
                reason=f"released by {released_by}",
                business_date=business_date,
            )
            held = (
                connection.execute(
                    select(ExchangeFile.name).where(
                        ExchangeFile.batch_id == batch_id, ExchangeFile.state == "held"
                    )
                )
                .scalars()
                .all()
            )
            connection.execute(
                update(ExchangeFile)
                .where(ExchangeFile.batch_id == batch_id, ExchangeFile.state == "held")
                .values(state="built", updated_at=now)
            )
            for name in held:
                audit.record(
                    connection,
                    "file",
                    name,
                    "built",
                    from_state="held",
                    actor=ACTOR,
                    reason=f"released by {released_by}",
                    business_date=business_date,
                )
            names.extend(held)
        return names
