"""PRLV files whose cut-off passed before they were sent: never sent, their instructions re-filed.

Algérie Poste would reject such a file DT01 (spec §4). Instead of sending it to be rejected, epay marks
it ``expired`` and takes its instructions out of it (state ``built``, no file): the next build whose
cut-off is still ahead packs them into a new file with the same references (spec §3), once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, select, update

from epay.calendar import BusinessCalendar
from epay.ledger import audit
from epay.ledger.bulk import execute
from epay.ledger.models import ExchangeFile
from epay.outbound.cutoff import cut_off, expired

EXPIRED_REASON = "cut-off passed before it was sent"
EXPIRED_CODE = "LATE"  # exchange_file.reason holds a 4-character code (ACK reasons); the audit says more


@dataclass(frozen=True)
class ExpiredFile:
    name: str
    business_date: date
    settlement_date: date
    instructions: int


def expire_stale_files(
    connection: Connection, now: datetime, calendar: BusinessCalendar, business_date: date, actor: str
) -> list[ExpiredFile]:
    """Expire every built, unsent PRLV file whose cut-off is past at ``now`` (caller holds the lock)."""
    rows = connection.execute(
        select(ExchangeFile.id, ExchangeFile.name, ExchangeFile.business_date, ExchangeFile.settlement_date)
        .where(ExchangeFile.direction == "out", ExchangeFile.kind == "PRLV", ExchangeFile.state == "built")
        .order_by(ExchangeFile.name)
    ).all()
    done: list[ExpiredFile] = []
    for file_id, name, built_on, settles in rows:
        if settles is None or not expired(settles, now, calendar):
            continue
        deadline = cut_off(settles, calendar)
        reason = f"{EXPIRED_REASON} ({deadline:%Y-%m-%d %H:%M} Algiers)"
        changed = connection.execute(
            update(ExchangeFile)
            .where(ExchangeFile.id == file_id, ExchangeFile.state == "built")
            .values(state="expired", reason=EXPIRED_CODE, updated_at=now)
        ).rowcount
        if not changed:
            continue
        audit.record(
            connection,
            "file",
            name,
            "expired",
            from_state="built",
            actor=actor,
            reason=reason,
            business_date=business_date,
            file_id=file_id,
        )
        where = "file_id = ? AND state = 'built'"
        audit.record_many(
            connection,
            "instruction",
            "reference",
            "instruction",
            where,
            (file_id,),
            "built",
            actor=actor,
            from_state="built",
            reason=f"{name} expired unsent: to be re-filed",
            business_date=business_date,
            file_id=file_id,
        )
        count = execute(
            connection,
            f"UPDATE instruction SET file_id = NULL, line = NULL, updated_at = ? WHERE {where}",
            (now, file_id),
        )
        done.append(ExpiredFile(name, built_on, settles, count))
    return done
