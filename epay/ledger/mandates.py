"""Mandates in the ledger follow what Algérie Poste reports (MNDT, spec §6): actions apply in order, a
mandate's later action replaces the earlier one, ``R`` revokes from its effective date. Any new ``N`` or
``M`` action makes the mandate active again, lifting a block or suspension decided on a return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
from sqlalchemy import Connection

from epay.arrowtools import isin
from epay.ledger import audit
from epay.ledger.bulk import execute, insert_frame, now_utc
from epay.ledger.db import lock_ledger

ACTION_COLUMNS = (
    "mandate_reference",
    "debtor_rip",
    "debtor_name",
    "subscriber_number",
    "action",
    "effective_date",
    "ceiling",
)
_STAGE = "mandate_in"


@dataclass(frozen=True)
class MandateChanges:
    created_or_modified: int
    revoked: int


def actions_from_snapshot(mandates: pd.DataFrame) -> pd.DataFrame:
    """MNDT-shaped actions for a list of mandates as they stand (a world loaded at once): an ``N`` for
    each, then an ``R`` for each revoked one. Columns in: reference, rip, debtor_name,
    subscriber_number, ceiling, effective_date, revoked_from."""
    new = pd.DataFrame(
        {
            "mandate_reference": mandates["reference"],
            "debtor_rip": mandates["rip"],
            "debtor_name": mandates["debtor_name"],
            "subscriber_number": mandates["subscriber_number"],
            "action": "N",
            "effective_date": mandates["effective_date"],
            "ceiling": mandates["ceiling"].astype("int64"),
        }
    )
    revoked = mandates[mandates["revoked_from"].notna()]
    ends = new.loc[revoked.index].assign(action="R", effective_date=revoked["revoked_from"])
    return pd.concat([new, ends], ignore_index=True)


def apply_mandate_actions(
    connection: Connection, actions: pd.DataFrame, *, actor: str, business_date: date | None = None
) -> MandateChanges:
    """Apply MNDT actions (columns ``ACTION_COLUMNS``, in file order) in the caller's transaction.

    An ``M`` changes a known mandate's data but not the date it has been in force since (AP reports
    the modification's own date there; the mandate stays usable meanwhile)."""
    if actions.empty:
        return MandateChanges(0, 0)
    lock_ledger(connection)
    ordered = actions.reset_index(drop=True)
    ordered["_order"] = range(len(ordered))
    last = ordered.drop_duplicates("mandate_reference", keep="last")
    upserts = ordered[ordered["action"].isin(["N", "M"])].drop_duplicates("mandate_reference", keep="last")
    # the state to write: the last N/M's data; revoked if the very last action is an R
    revoked_from = _revocations(last)
    now = now_utc()
    stage = pd.DataFrame(
        {
            "reference": upserts["mandate_reference"].to_numpy(),
            "subscriber_number": upserts["subscriber_number"].str.strip().to_numpy(),
            "rip": upserts["debtor_rip"].to_numpy(),
            "debtor_name": upserts["debtor_name"].str.rstrip().to_numpy(),
            "ceiling": upserts["ceiling"].astype("int64").to_numpy(),
            "effective_date": upserts["effective_date"].to_numpy(),
            "revoked_from": upserts["mandate_reference"].map(revoked_from).to_numpy(),
            "status": "active",
            "last_action_on": business_date,
            "updated_at": pd.Timestamp(now),
        }
    )
    only_revoked = last[
        (last["action"] == "R") & ~isin(last["mandate_reference"], upserts["mandate_reference"])
    ]
    stage_r = pd.DataFrame(
        {
            "reference": only_revoked["mandate_reference"].to_numpy(),
            "subscriber_number": only_revoked["subscriber_number"].str.strip().to_numpy(),
            "rip": only_revoked["debtor_rip"].to_numpy(),
            "debtor_name": only_revoked["debtor_name"].str.rstrip().to_numpy(),
            "ceiling": only_revoked["ceiling"].astype("int64").to_numpy(),
            "effective_date": only_revoked["effective_date"].to_numpy(),
            "revoked_from": only_revoked["effective_date"].to_numpy(),
            "status": "active",
            "last_action_on": business_date,
            "updated_at": pd.Timestamp(now),
        }
    )
    columns = ", ".join(stage.columns)
    execute(
        connection,
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} AS SELECT {columns} FROM mandate WHERE 1 = 0",
    )
    modified = (upserts["action"] == "M").to_numpy()
    data_columns = [c for c in stage.columns if c != "reference"]
    for frame, assignments in (
        (stage[~modified], data_columns),
        (stage[modified], [c for c in data_columns if c != "effective_date"]),
        (stage_r, ["revoked_from", "last_action_on", "updated_at"]),
    ):
        if frame.empty:
            continue
        execute(connection, f"DELETE FROM {_STAGE}")
        insert_frame(connection, _STAGE, frame)
        sets = ", ".join(f"{c} = excluded.{c}" for c in assignments)
        if frame is not stage_r:
            sets += ", status_reason = NULL"
        execute(
            connection,
            f"INSERT INTO mandate ({columns}) SELECT {columns} FROM {_STAGE} WHERE 1 = 1 "
            f"ON CONFLICT (reference) DO UPDATE SET {sets}",
        )
        audit.record_many(
            connection,
            "mandate",
            "reference",
            _STAGE,
            "revoked_from IS NULL",
            (),
            "active",
            actor=actor,
            business_date=business_date,
        )
        audit.record_many(
            connection,
            "mandate",
            "reference",
            _STAGE,
            "revoked_from IS NOT NULL",
            (),
            "revoked",
            actor=actor,
            business_date=business_date,
        )
    execute(connection, f"DROP TABLE {_STAGE}")
    revoked_count = int(stage["revoked_from"].notna().sum()) + len(stage_r)
    return MandateChanges(created_or_modified=len(stage), revoked=revoked_count)


def _revocations(last: pd.DataFrame) -> pd.Series:
    """reference → revocation date when the reference's last action is an R, else None."""
    dates = last["effective_date"].astype(object).where(last["action"] == "R", None)
    return pd.Series(dates.to_numpy(), index=last["mandate_reference"].to_numpy())
