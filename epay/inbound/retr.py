"""Apply a RETR file's final statuses to the ledger, inside the caller's transaction.

Settled (ACSC): the instruction is settled, its invoice or order paid by debit. Rejected (RJCT): the
instruction is rejected with its reason; AM04/MS03 send the item back to be presented later (the
selection's retry rules), every other reason stops it; AC04/AC06/MD07 suspend the mandate, AC01/MD01
block it until a new MNDT action. Records that don't match what was sent become exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection

from epay.faults import fault_point
from epay.inbound.files import hold_exceptions
from epay.inbound.returns import RECORD_COLUMNS, SENT_COLUMNS, ReturnContext, match_returns
from epay.ledger import audit
from epay.ledger.bulk import execute, fetch_frame, insert_frame, now_utc

ACTOR = "inbound.retr"
RETRY_REASONS = ("AM04", "MS03")
SUSPEND_REASONS = ("AC04", "AC06", "MD07")
BLOCK_REASONS = ("AC01", "MD01")
_STAGE = "retr_in"


@dataclass(frozen=True)
class RetrResult:
    settled: int
    settled_amount: int
    rejected: int
    repeats: int
    exceptions: int


def records_of(details: pa.Table) -> pd.DataFrame:
    """The RETR detail table (codec column names) as the matcher's records, lines counted from 2."""
    frame = details.to_pandas()
    return pd.DataFrame(
        {
            "line": range(2, len(frame) + 2),
            "reference": frame["end_to_end_reference"],
            "rip": frame["debtor_rip"],
            "amount": frame["amount"].astype("int64"),
            "status": frame["status"],
            "reason": frame["reason"].replace("", None),
            "status_date": frame["status_date"],
            "transaction_id": frame["transaction_id"],
            "prlv_file_name": frame["prlv_file_name"],
        }
    )[list(RECORD_COLUMNS)]


def apply_retr(
    connection: Connection,
    records: pd.DataFrame,
    *,
    file_id: int,
    business_date: date,
    context: ReturnContext,
) -> RetrResult:
    sent, used = _sent_and_used(connection, records)
    plan = match_returns(records, sent, context, used)
    now = now_utc()
    hold_exceptions(
        connection,
        plan.exceptions,
        entity="instruction",
        file_id=file_id,
        business_date=business_date,
        actor=ACTOR,
    )
    apply = plan.apply
    if apply.empty:
        return RetrResult(0, 0, 0, plan.repeats, len(plan.exceptions))
    stage = pd.DataFrame(
        {
            "instruction_id": apply["instruction_id"].astype("int64"),
            "item_id": apply["item_id"].astype("int64"),
            "status": apply["status"],
            "reason": apply["reason"].astype(object).where(apply["reason"].notna(), None),
            "status_date": pd.to_datetime(apply["status_date"]).dt.date,
            "transaction_id": apply["transaction_id"],
            "mandate_reference": apply["mandate_reference"],
            "rip": apply["rip"],
        }
    )
    execute(
        connection,
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (instruction_id BIGINT PRIMARY KEY, item_id BIGINT, "
        "status VARCHAR(4), reason VARCHAR(4), status_date DATE, transaction_id VARCHAR(20), "
        "mandate_reference VARCHAR(20), rip VARCHAR(20))",
    )
    execute(connection, f"DELETE FROM {_STAGE}")
    insert_frame(connection, _STAGE, stage)
    for column in ("item_id", "mandate_reference"):  # the join keys of every statement below
        execute(connection, f"CREATE INDEX IF NOT EXISTS {_STAGE}_{column} ON {_STAGE} ({column})")
    _record_and_update(connection, now, business_date, file_id)
    execute(connection, f"DROP TABLE {_STAGE}")
    settled = stage["status"] == "ACSC"
    return RetrResult(
        settled=int(settled.sum()),
        settled_amount=int(apply.loc[settled.to_numpy(), "amount"].sum()),
        rejected=int((~settled).sum()),
        repeats=plan.repeats,
        exceptions=len(plan.exceptions),
    )


def _sent_and_used(connection: Connection, records: pd.DataFrame) -> tuple[pd.DataFrame, frozenset[str]]:
    """What was sent under the file's references, and the file's AP transaction ids already recorded on
    another instruction than the record's own: one scratch table of the file's (reference, transaction id),
    two indexed joins."""
    execute(
        connection,
        "CREATE TEMPORARY TABLE IF NOT EXISTS retr_ref (reference VARCHAR(24) PRIMARY KEY, "
        "transaction_id VARCHAR(20))",
    )
    execute(connection, "DELETE FROM retr_ref")
    insert_frame(
        connection, "retr_ref", records[["reference", "transaction_id"]].drop_duplicates("reference")
    )
    sent = fetch_frame(
        connection,
        "SELECT i.reference, i.id, i.item_id, i.amount, i.rip, f.name, i.state, i.reason, i.transaction_id, "
        "i.settlement_date, i.mandate_reference "
        "FROM instruction i JOIN retr_ref r ON r.reference = i.reference "
        "LEFT JOIN exchange_file f ON f.id = i.file_id",
        (),
        (*SENT_COLUMNS, "mandate_reference"),
    )
    used = fetch_frame(
        connection,
        "SELECT r.transaction_id FROM retr_ref r JOIN instruction i ON i.transaction_id = r.transaction_id "
        "WHERE i.reference <> r.reference",
        (),
        ("transaction_id",),
    )
    execute(connection, "DROP TABLE retr_ref")
    return sent, frozenset(used["transaction_id"].astype(str))


def _record_and_update(connection: Connection, now: object, business_date: date, file_id: int) -> None:
    """Audit first (the trail needs the states before), then one UPDATE per kind of change."""
    s = _STAGE
    for to_state, where in (("settled", "status = 'ACSC'"), ("rejected", "status = 'RJCT'")):
        audit.record_many(
            connection,
            "instruction",
            "i.reference",
            f"instruction i JOIN {s} t ON t.instruction_id = i.id",
            f"t.{where}",
            (),
            to_state,
            actor=ACTOR,
            from_column="i.state",
            business_date=business_date,
            file_id=file_id,
        )
    retry = ", ".join(f"'{r}'" for r in RETRY_REASONS)
    item_changes = (
        ("paid", "t.status = 'ACSC'"),
        ("due", f"t.status = 'RJCT' AND t.reason IN ({retry})"),
        ("stopped", f"t.status = 'RJCT' AND t.reason NOT IN ({retry})"),
    )
    for to_state, where in item_changes:
        audit.record_many(
            connection,
            "item",
            "b.kind || ':' || b.number",
            f"billing_item b JOIN {s} t ON t.item_id = b.id",
            where,
            (),
            to_state,
            actor=ACTOR,
            from_column="b.state",
            business_date=business_date,
            file_id=file_id,
        )

    # Every statement joins the scratch table on a key it is indexed on (UPDATE … FROM, never a
    # correlated subquery per ledger row): linear in the file's records, whatever the ledger's size.
    execute(
        connection,
        "UPDATE instruction SET "
        "state = CASE WHEN t.status = 'ACSC' THEN 'settled' ELSE 'rejected' END, reason = t.reason, "
        "status_date = t.status_date, transaction_id = t.transaction_id, updated_at = ? "
        f"FROM {s} t WHERE t.instruction_id = instruction.id "
        "AND instruction.state IN ('built', 'sent', 'presented')",
        (now,),
    )
    fault_point("retr.mid_apply")
    execute(
        connection,
        "UPDATE billing_item SET state = 'paid', paid_by = 'DEBIT', paid_on = t.status_date, updated_at = ? "
        f"FROM {s} t WHERE t.item_id = billing_item.id AND t.status = 'ACSC'",
        (now,),
    )
    for to_state, where in (
        ("due", f"t.status = 'RJCT' AND t.reason IN ({retry})"),
        ("stopped", f"t.status = 'RJCT' AND t.reason NOT IN ({retry})"),
    ):
        execute(
            connection,
            f"UPDATE billing_item SET state = '{to_state}', last_reason = t.reason, "
            f"last_reason_on = t.status_date, updated_at = ? FROM {s} t "
            f"WHERE t.item_id = billing_item.id AND {where}",
            (now,),
        )
    for status, reasons in (("suspended", SUSPEND_REASONS), ("blocked", BLOCK_REASONS)):
        codes = ", ".join(f"'{r}'" for r in reasons)
        # a return judges the mandate as it was when the debit was sent: not when AP has reported a newer
        # action since (a late RETR), nor when the mandate now points to another account
        judged = (
            f"(SELECT t.mandate_reference AS ref, max(t.reason) AS code FROM {s} t "
            "JOIN mandate x ON x.reference = t.mandate_reference "
            f"WHERE t.status = 'RJCT' AND t.reason IN ({codes}) AND t.rip = x.rip "
            "AND (x.last_action_on IS NULL OR x.last_action_on <= t.status_date) "
            "GROUP BY t.mandate_reference)"
        )
        audit.record_many(
            connection,
            "mandate",
            "mandate.reference",
            f"mandate JOIN {judged} j ON j.ref = mandate.reference",
            "1 = 1",
            (),
            status,
            actor=ACTOR,
            from_column="mandate.status",
            business_date=business_date,
            file_id=file_id,
        )
        execute(
            connection,
            f"UPDATE mandate SET status = '{status}', status_reason = j.code, updated_at = ? "
            f"FROM {judged} j WHERE j.ref = mandate.reference",
            (now,),
        )
