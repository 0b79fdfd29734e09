"""Load a checked billing extract into the ledger: once per extract id, in one transaction.

The same extract loaded again changes nothing; the same id with other bytes is refused. Rows the
extract check refused, and rows that conflict with what the ledger already decided (cancelling or
re-pricing an item that is being collected, a payment for an unknown item...), are recorded with their
reason in ``extract_rejection``; everything else is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select

from epay.arrowtools import isin
from epay.ledger import audit
from epay.ledger.bulk import execute, fetch_frame, insert_frame, now_utc, scalar
from epay.ledger.db import lock_ledger, transaction
from epay.ledger.models import BillingExtract

if TYPE_CHECKING:
    from epay.billing.extract import CheckedExtract

ACTOR = "billing.load"
STATE_OF_STATUS = {"OPEN": "due", "CONFIRMED": "due", "PENDING": "pending", "CANCELLED": "cancelled"}
EDITABLE_STATES = ("pending", "due", "cancelled")  # billing may still change these


class ExtractConflictError(Exception):
    """An extract with this id was already loaded with other bytes."""


@dataclass(frozen=True)
class LoadResult:
    extract_id: str
    already_loaded: bool
    subscribers: int = 0
    items_new: int = 0
    items_updated: int = 0
    payments: int = 0
    paid_elsewhere: int = 0
    paid_during_collection: int = 0
    rejected_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_extract(engine: Engine, checked: CheckedExtract) -> LoadResult:
    with transaction(engine) as connection:
        lock_ledger(connection)  # never while a build decides on these items
        known = connection.execute(
            select(BillingExtract.sha256).where(BillingExtract.extract_id == checked.extract_id)
        ).scalar_one_or_none()
        if known is not None:
            if known != checked.sha256:
                raise ExtractConflictError(
                    f"extract {checked.extract_id} was loaded before with other bytes "
                    f"(sha256 {known[:12]}…, now {checked.sha256[:12]}…): refused, nothing loaded"
                )
            return LoadResult(checked.extract_id, already_loaded=True)
        newest = connection.execute(select(func.max(BillingExtract.extract_id))).scalar_one_or_none()
        if newest is not None and checked.extract_id < newest:
            raise ExtractConflictError(
                f"extract {checked.extract_id} is older than {newest}, already loaded: its data may be "
                "stale (it could re-open what a newer extract cancelled or repriced); refused, nothing "
                "loaded — ask billing for a new extract"
            )
        return _load(connection, checked)


def _load(connection: Connection, checked: CheckedExtract) -> LoadResult:
    now = now_utc()
    conflicts: list[dict[str, Any]] = []
    subscribers = _upsert_subscribers(connection, checked)
    items = pd.concat(
        [checked.invoices.assign(kind="FA"), checked.recharges.assign(kind="RA")], ignore_index=True
    )
    known_subscribers = _known_subscribers(
        connection, items["subscriber_number"], checked.subscribers["subscriber_number"]
    )
    orphan = ~isin(items["subscriber_number"], known_subscribers)
    for row in items.loc[orphan, "row"].tolist():
        conflicts.append(_conflict(row, items, "subscriber_number", "unknown subscriber"))
    new, updated = _upsert_items(
        connection, checked.extract_id, checked.extract_date, items[~orphan], conflicts, now
    )
    paid, during = _apply_payments(connection, checked, conflicts, now)
    rejections = [
        {"row": r.row, "record": r.record, "field": r.field, "value": r.value, "reason": r.reason}
        for r in checked.rejections
    ] + conflicts
    connection.execute(
        insert(BillingExtract).values(
            extract_id=checked.extract_id,
            extract_date=checked.extract_date,
            sha256=checked.sha256,
            row_count=checked.row_count,
            rejected_count=len({r["row"] for r in rejections}),
            loaded_at=now,
        )
    )
    if rejections:
        insert_frame(
            connection, "extract_rejection", pd.DataFrame(rejections).assign(extract_id=checked.extract_id)
        )
    return LoadResult(
        extract_id=checked.extract_id,
        already_loaded=False,
        subscribers=subscribers,
        items_new=new,
        items_updated=updated,
        payments=len(checked.payments),
        paid_elsewhere=paid,
        paid_during_collection=during,
        rejected_rows=len({r["row"] for r in rejections}),
    )


def _conflict(row: int, frame: pd.DataFrame, field: str, reason: str) -> dict[str, Any]:
    value = frame.loc[frame["row"] == row, field]
    record = frame.loc[frame["row"] == row, "kind"] if "kind" in frame else None
    return {
        "row": int(row),
        "record": None if record is None else {"FA": "INVOICE", "RA": "RECHARGE"}.get(str(record.iloc[0])),
        "field": field,
        "value": str(value.iloc[0])[:40] if len(value) else "",
        "reason": reason,
    }


def _known_subscribers(connection: Connection, numbers: pd.Series, loaded: pd.Series) -> set[str]:
    """The subscribers of ``numbers`` the ledger knows: those ``loaded`` just now, plus any other
    looked up (the database is read only when an item names a subscriber not in this extract)."""
    wanted = set(numbers.unique().tolist())
    just_loaded = wanted & set(loaded.tolist())
    if wanted <= just_loaded:
        return wanted
    found = fetch_frame(connection, "SELECT number FROM subscriber", (), ("number",))
    return wanted & (just_loaded | set(found["number"].tolist()))


def _has_rows(connection: Connection, table: str) -> bool:
    return scalar(connection, f"SELECT 1 FROM {table} LIMIT 1") is not None


def _upsert_subscribers(connection: Connection, checked: CheckedExtract) -> int:
    rows = checked.subscribers
    if rows.empty:
        return 0
    existing = (
        fetch_frame(connection, "SELECT number, name FROM subscriber", (), ("number", "name"))
        if _has_rows(connection, "subscriber")
        else pd.DataFrame({"number": pd.Series([], dtype="str"), "name": pd.Series([], dtype="str")})
    )
    merged = rows.merge(existing, left_on="subscriber_number", right_on="number", how="left")
    fresh = merged[merged["number"].isna()]
    insert_frame(
        connection,
        "subscriber",
        pd.DataFrame(
            {
                "number": fresh["subscriber_number"],
                "name": fresh["subscriber_name"],
                "extract_id": checked.extract_id,
            }
        ),
    )
    renamed = merged[merged["number"].notna() & (merged["name"] != merged["subscriber_name"])]
    for number, name in zip(renamed["subscriber_number"], renamed["subscriber_name"], strict=True):
        execute(
            connection,
            "UPDATE subscriber SET name = ?, extract_id = ? WHERE number = ?",
            (name, checked.extract_id, number),
        )
    return len(fresh) + len(renamed)


def _upsert_items(
    connection: Connection,
    extract_id: str,
    extract_date: date,
    items: pd.DataFrame,
    conflicts: list[dict[str, Any]],
    now: Any,
) -> tuple[int, int]:
    if items.empty:
        return 0, 0
    columns = ("id", "kind", "number", "state", "amount_now", "due_now", "issued_now", "subscriber_now")
    if _has_rows(connection, "billing_item"):
        existing = fetch_frame(
            connection,
            "SELECT id, kind, number, state, amount, due_date, issued_on, subscriber_number "
            "FROM billing_item",
            (),
            columns,
            dates=("due_now", "issued_now"),
        )
    else:  # the first extract: nothing to compare with
        existing = pd.DataFrame({c: pd.Series([], dtype="str") for c in columns})
        existing["id"] = existing["id"].astype("float64")
        existing["amount_now"] = existing["amount_now"].astype("int64")
        for c in ("due_now", "issued_now"):
            existing[c] = pd.to_datetime(existing[c])
    merged = items.merge(existing, left_on=["kind", "item_number"], right_on=["kind", "number"], how="left")
    merged["target"] = merged["status"].map(STATE_OF_STATUS)
    fresh = merged[merged["id"].isna()]
    insert_frame(
        connection,
        "billing_item",
        pd.DataFrame(
            {
                "kind": fresh["kind"],
                "number": fresh["item_number"],
                "subscriber_number": fresh["subscriber_number"],
                "amount": fresh["amount"].astype("int64"),
                "issued_on": fresh["issued_on"],
                "due_date": fresh["due_date"],
                "state": fresh["target"],
                "tries": 0,
                "extract_id": extract_id,
                "updated_at": pd.Timestamp(now),
            }
        ),
    )
    audit.record_many(
        connection,
        "item",
        "kind || ':' || number",
        "billing_item",
        "extract_id = ?",
        (extract_id,),
        "loaded",
        actor=ACTOR,
        business_date=extract_date,
    )
    old = merged[merged["id"].notna()]
    locked_now = ~old["state"].isin(EDITABLE_STATES)
    differs = {
        "amount": old["amount"].astype("int64") != old["amount_now"].astype("int64"),
        "due_date": pd.to_datetime(old["due_date"]) != old["due_now"],
        "issued_on": pd.to_datetime(old["issued_on"]) != old["issued_now"],
        "subscriber_number": old["subscriber_number"] != old["subscriber_now"],
        # OPEN / CONFIRMED of an item being collected, paid or stopped is no change: billing just
        # has not heard yet; CANCELLED or PENDING would be one
        "status": (old["target"] != old["state"]) & ~((old["target"] == "due") & locked_now),
    }
    flags = {f: d.to_numpy(dtype=bool) for f, d in differs.items()}
    any_change = np.logical_or.reduce(list(flags.values()))
    changed = old[any_change]
    changed_flags = {f: v[any_change] for f, v in flags.items()}
    locked = ~changed["state"].isin(EDITABLE_STATES)
    for position in np.flatnonzero(locked.to_numpy()):
        row = changed.iloc[position]
        field = next(f for f, v in changed_flags.items() if v[position])
        conflicts.append(
            {
                "row": int(row["row"]),
                "record": "INVOICE" if row["kind"] == "FA" else "RECHARGE",
                "field": field,
                "value": str(row[field])[:40],
                "reason": f"item is {row['state']} in the ledger: billing can no longer change its {field}",
            }
        )
    editable = changed[~locked]
    for r in editable.itertuples(index=False):
        item: Any = r
        execute(
            connection,
            "UPDATE billing_item SET amount = ?, due_date = ?, issued_on = ?, state = ?, "
            "subscriber_number = ?, extract_id = ?, updated_at = ? WHERE id = ?",
            (
                int(item.amount),
                item.due_date,
                item.issued_on,
                item.target,
                item.subscriber_number,
                extract_id,
                now,
                int(item.id),
            ),
        )
        audit.record(
            connection,
            "item",
            f"{r.kind}:{r.item_number}",
            str(r.target),
            actor=ACTOR,
            from_state=str(r.state),
            reason=f"extract {extract_id}",
            business_date=extract_date,
        )
    return len(fresh), len(editable)


def _apply_payments(
    connection: Connection, checked: CheckedExtract, conflicts: list[dict[str, Any]], now: Any
) -> tuple[int, int]:
    payments = checked.payments
    if payments.empty:
        return 0, 0
    # only the items the payments name: their keys staged, then one join
    execute(
        connection,
        "CREATE TEMPORARY TABLE IF NOT EXISTS payment_key (kind VARCHAR(2), number VARCHAR(20))",
    )
    execute(connection, "DELETE FROM payment_key")
    insert_frame(
        connection,
        "payment_key",
        pd.DataFrame({"kind": payments["item_kind"], "number": payments["item_number"]}).drop_duplicates(),
    )
    existing = fetch_frame(
        connection,
        "SELECT b.id, b.kind, b.number, b.state, b.amount FROM billing_item b "
        "JOIN payment_key k ON k.kind = b.kind AND k.number = b.number",
        (),
        ("id", "kind", "number", "state", "item_amount"),
    )
    execute(connection, "DROP TABLE payment_key")
    merged = payments.merge(
        existing, left_on=["item_kind", "item_number"], right_on=["kind", "number"], how="left"
    )
    unknown = merged["id"].isna()
    wrong_amount = ~unknown & (
        merged["amount"].astype("int64") != merged["item_amount"].fillna(-1).astype("int64")
    )
    for row in merged.loc[unknown, "row"]:
        conflicts.append(
            {
                "row": int(row),
                "record": "PAYMENT",
                "field": "item_number",
                "value": str(merged.loc[merged["row"] == row, "item_number"].iloc[0]),
                "reason": "no such invoice or recharge order in the ledger",
            }
        )
    for row, amount in zip(merged.loc[wrong_amount, "row"], merged.loc[wrong_amount, "amount"], strict=True):
        conflicts.append(
            {
                "row": int(row),
                "record": "PAYMENT",
                "field": "amount",
                "value": str(amount),
                "reason": "amount differs from the item's amount",
            }
        )
    good = merged[~unknown & ~wrong_amount].copy()
    good["during_collection"] = good["state"] == "in_collection"
    execute(
        connection,
        "CREATE TEMPORARY TABLE IF NOT EXISTS payment_in (item_id BIGINT, amount BIGINT, paid_on DATE, "
        "channel VARCHAR(8), extract_id VARCHAR(40), during_collection BOOLEAN)",
    )
    execute(connection, "CREATE INDEX IF NOT EXISTS payment_in_item ON payment_in (item_id)")
    execute(connection, "DELETE FROM payment_in")
    insert_frame(
        connection,
        "payment_in",
        pd.DataFrame(
            {
                "item_id": good["id"].astype("int64"),
                "amount": good["amount"].astype("int64"),
                "paid_on": good["paid_on"],
                "channel": good["channel"],
                "extract_id": checked.extract_id,
                "during_collection": good["during_collection"].astype(bool),
            }
        ),
    )
    execute(
        connection,
        "INSERT INTO external_payment (item_id, amount, paid_on, channel, extract_id, during_collection) "
        "SELECT item_id, amount, paid_on, channel, extract_id, during_collection FROM payment_in WHERE 1 = 1 "
        "ON CONFLICT (item_id, paid_on, channel) DO NOTHING",
    )
    payable = "state IN ('pending', 'due') AND id IN (SELECT item_id FROM payment_in)"
    audit.record_many(
        connection,
        "item",
        "kind || ':' || number",
        "billing_item",
        payable,
        (),
        "paid",
        actor=ACTOR,
        from_column="state",
        reason="paid elsewhere",
        business_date=checked.extract_date,
    )
    paid = execute(
        connection,
        "UPDATE billing_item SET state = 'paid', paid_by = (SELECT max(p.channel) FROM payment_in p "
        "WHERE p.item_id = billing_item.id), paid_on = (SELECT max(p.paid_on) FROM payment_in p "
        f"WHERE p.item_id = billing_item.id), updated_at = ? WHERE {payable}",
        (now,),
    )
    execute(connection, "DROP TABLE payment_in")
    return paid, int(np.count_nonzero(good["during_collection"].to_numpy()))
