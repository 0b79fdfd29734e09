"""Matching a RETR file's records to the instructions that were sent (pure: frames in, decisions out).

Each record either applies (a final status for a presented instruction), is a harmless repeat of a
status already recorded, or is an exception for investigation: unknown reference, another amount, RIP or
PRLV file than sent, a second and different final status, a status for an instruction never presented.
An exception never overwrites anything; the rest of the file still applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RECORD_COLUMNS = (
    "line",
    "reference",
    "rip",
    "amount",
    "status",
    "reason",
    "status_date",
    "transaction_id",
    "prlv_file_name",
)
SENT_COLUMNS = (
    "reference",
    "instruction_id",
    "item_id",
    "amount_sent",
    "rip_sent",
    "file_sent",
    "state",
    "reason_now",
    "transaction_now",
)
FINAL_STATES = ("settled", "rejected")
OPEN_STATES = ("sent", "presented")

UNKNOWN_REFERENCE = "unknown_reference"
AMOUNT_MISMATCH = "amount_mismatch"
RIP_MISMATCH = "rip_mismatch"
FILE_MISMATCH = "file_mismatch"
CONFLICTING_FINAL = "conflicting_final"
NOT_PRESENTED = "not_presented"
DUPLICATE_IN_FILE = "duplicate_in_file"


@dataclass(frozen=True)
class ReturnPlan:
    apply: pd.DataFrame  # records to apply, with instruction_id and item_id
    repeats: int  # statuses already recorded exactly so (a re-delivered RETR): nothing to do
    exceptions: pd.DataFrame  # line, reference, kind, detail


def match_returns(records: pd.DataFrame, sent: pd.DataFrame) -> ReturnPlan:
    """Decide, record by record, what a RETR file does to the ledger."""
    merged = records.merge(sent, on="reference", how="left")
    kind = np.full(len(merged), "", dtype=object)
    detail = np.full(len(merged), "", dtype=object)

    def flag(mask: np.ndarray, code: str, text: pd.Series | str) -> None:
        fresh = mask & (kind == "")
        kind[fresh] = code
        detail[fresh] = text[fresh] if isinstance(text, pd.Series) else text

    duplicated = merged["reference"].duplicated(keep=False).to_numpy()
    flag(duplicated, DUPLICATE_IN_FILE, "the reference has several records in this file")
    unknown = merged["instruction_id"].isna().to_numpy()
    flag(unknown, UNKNOWN_REFERENCE, "no instruction was sent with this reference")
    known = ~unknown
    amount = merged["amount"].astype("int64").to_numpy()
    sent_amount = merged["amount_sent"].fillna(-1).astype("int64").to_numpy()
    flag(
        known & (amount != sent_amount),
        AMOUNT_MISMATCH,
        "returned amount " + merged["amount"].astype(str) + " ≠ sent " + merged["amount_sent"].astype(str),
    )
    flag(
        known & (merged["rip"] != merged["rip_sent"]).to_numpy(),
        RIP_MISMATCH,
        "returned RIP differs from the RIP sent",
    )
    flag(
        known & (merged["prlv_file_name"] != merged["file_sent"]).to_numpy(),
        FILE_MISMATCH,
        "returned for "
        + merged["prlv_file_name"].astype(str)
        + ", sent in "
        + merged["file_sent"].astype(str),
    )
    state = merged["state"].to_numpy(dtype=object)
    final = np.isin(state, FINAL_STATES)
    status_now = np.where(state == "settled", "ACSC", np.where(state == "rejected", "RJCT", ""))
    same = (
        final
        & (status_now == merged["status"].to_numpy(dtype=object))
        & (
            merged["reason"].fillna("").to_numpy(dtype=object)
            == merged["reason_now"].fillna("").to_numpy(dtype=object)
        )
        & (
            merged["transaction_id"].to_numpy(dtype=object)
            == merged["transaction_now"].to_numpy(dtype=object)
        )
    )
    repeat = known & same & (kind == "")
    flag(
        known & final & ~same,
        CONFLICTING_FINAL,
        "a final status was already recorded: " + pd.Series(status_now, index=merged.index).astype(str),
    )
    flag(
        known & ~final & ~np.isin(state, OPEN_STATES),
        NOT_PRESENTED,
        "the instruction is " + merged["state"].astype(str) + ", not presented",
    )
    applies = (kind == "") & ~repeat
    exceptions = pd.DataFrame(
        {
            "line": merged["line"].to_numpy()[kind != ""],
            "reference": merged["reference"].to_numpy()[kind != ""],
            "kind": kind[kind != ""],
            "detail": detail[kind != ""],
        }
    )
    return ReturnPlan(
        apply=merged.loc[applies].reset_index(drop=True),
        repeats=int(np.count_nonzero(repeat)),
        exceptions=exceptions,
    )
