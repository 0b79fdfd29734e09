"""Apply an ACK to the ledger, inside the caller's transaction.

``ACCP``: the file is accepted and its instructions presented. ``RJCT``: the file is rejected with its
reason and its instructions leave it (same references, spec §3): after ``DT01`` they are re-sent in a new
file by the next build, with a new settlement date; after ``FF01``, ``AG01``, ``AM10`` (our file was
wrong) or ``DU01`` (that batch was already accepted) they are held until a data engineer releases them,
so nothing loops and nothing is re-sent on a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, select, update

from epay.calendar import BusinessCalendar
from epay.faults import fault_point
from epay.inbound.files import InboundIncident
from epay.ledger import audit
from epay.ledger.bulk import execute, now_utc, stored_utc
from epay.ledger.models import ExchangeFile
from epay.outbound.cutoff import cut_off

ACTOR = "inbound.ack"
RESEND_AT_ONCE = ("DT01",)
# AP's clock and ours may differ by a few minutes: an ACK is "before its file existed" only beyond this.
# Its cut-off is judged on AP's own clock (AP decides DT01 by it), so that check has no allowance.
CLOCK_SKEW = timedelta(minutes=15)
HOLD_FOR_RELEASE = ("FF01", "AG01", "AM10", "DU01")


@dataclass(frozen=True)
class AckResult:
    prlv_name: str
    status: str  # ACCP | RJCT
    reason: str | None
    instructions: int
    repeat: bool  # this ACK had already been applied


def apply_ack(
    connection: Connection,
    *,
    prlv_name: str,
    status: str,
    reason: str | None,
    detail_count: int,
    amount: int,
    business_date: date,
    acknowledged_on: date,
    acknowledged_at: datetime | None = None,
    calendar: BusinessCalendar | None = None,
) -> AckResult:
    """Apply one ACK. ``acknowledged_at`` (the ACK header's date and time, aware) and ``calendar`` judge
    its time: never before the file was built, and an acceptance never after the file's cut-off (AP
    acknowledges within minutes of arrival and rejects DT01 what arrives after the cut-off)."""
    file = (
        connection.execute(
            select(ExchangeFile.__table__).where(
                ExchangeFile.direction == "out", ExchangeFile.kind == "PRLV", ExchangeFile.name == prlv_name
            )
        )
        .mappings()
        .one_or_none()
    )
    if file is None:
        raise InboundIncident(f"an ACK for {prlv_name}, a file this ledger never built")
    if acknowledged_on < file["business_date"]:
        raise InboundIncident(
            f"an ACK dated {acknowledged_on} for {prlv_name}, created on {file['business_date']}: AP cannot "
            "have acknowledged a file before it existed"
        )
    if acknowledged_at is not None:
        built_at = stored_utc(file["created_at"])
        if acknowledged_at < built_at - CLOCK_SKEW:
            raise InboundIncident(
                f"an ACK timed {acknowledged_at.isoformat()} for {prlv_name}, built at "
                f"{built_at.isoformat()}: AP cannot have acknowledged a file before it existed"
            )
        if status == "ACCP" and calendar is not None and file["settlement_date"] is not None:
            deadline = cut_off(file["settlement_date"], calendar)
            if acknowledged_at > deadline:
                raise InboundIncident(
                    f"an acceptance timed {acknowledged_at.isoformat()} for {prlv_name}, after its cut-off "
                    f"{deadline.isoformat()}: AP rejects (DT01) a file that arrives after it"
                )
    final = {"ACCP": "accepted", "RJCT": "rejected"}[status]
    if file["state"] in ("accepted", "rejected"):
        if file["state"] == final and (file["reason"] or None) == (reason or None):
            return AckResult(prlv_name, status, reason, 0, repeat=True)
        raise InboundIncident(
            f"{prlv_name} is already {file['state']} ({file['reason'] or 'no reason'}); a second ACK says "
            f"{status} {reason or ''}: never applied over the first"
        )
    if file["state"] not in ("built", "sent"):
        raise InboundIncident(f"an ACK for {prlv_name}, which is {file['state']}: it was never sendable")
    if status == "ACCP" and (detail_count, amount) != (file["detail_count"], file["amount"]):
        raise InboundIncident(
            f"{prlv_name} accepted with {detail_count} details / {amount} centimes as read, but we sent "
            f"{file['detail_count']} / {file['amount']}: not applied"
        )
    now = now_utc()
    connection.execute(
        update(ExchangeFile)
        .where(ExchangeFile.id == file["id"])
        .values(state=final, reason=reason, updated_at=now)
    )
    audit.record(
        connection,
        "file",
        prlv_name,
        final,
        from_state=file["state"],
        reason=reason,
        actor=ACTOR,
        business_date=business_date,
    )
    fault_point("ack.mid_apply")
    where, params = "file_id = ? AND state IN ('built', 'sent')", (file["id"],)
    if status == "ACCP":
        to_state, sets = "presented", "state = 'presented'"
    elif reason in RESEND_AT_ONCE:  # out of the file: the next build puts them in a new one
        to_state, sets = "built", "state = 'built', file_id = NULL, line = NULL"
    else:  # kept on their file until a data engineer releases them
        to_state, sets = "held", "state = 'held'"
    sql = f"UPDATE instruction SET {sets}, updated_at = ? WHERE {where}"
    audit.record_many(
        connection,
        "instruction",
        "reference",
        "instruction",
        where,
        params,
        to_state,
        actor=ACTOR,
        from_column="state",
        reason=f"{status} {reason or ''}".strip(),
        business_date=business_date,
        file_id=file["id"],
    )
    changed = execute(connection, sql, (now, *params))
    return AckResult(prlv_name, status, reason, changed, repeat=False)
