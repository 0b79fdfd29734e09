"""Matching a RETR file's records to the instructions that were sent (pure: frames in, decisions out).

Each record either applies (a final status for a presented instruction), is a harmless repeat of a
status already recorded, or is an exception for investigation: unknown reference, another amount, RIP or
PRLV file than sent, a second and different final status, a status for an instruction never presented,
a status date the contract's calendar rules out (``STATUS_DATE_RULES``), an AP transaction id already
used by another status, an AM05 ("reference already used") for a reference epay sent in one accepted
file. An exception never overwrites anything; the rest of the file still applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from epay.calendar import BusinessCalendar

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
    "settlement_sent",
)
FINAL_STATES = ("settled", "rejected")
# A status applies to an instruction not final yet whose file AP executed. ``built`` counts when its file is
# the one the record names (file_mismatch catches the rest): a send that crashed after the rename, before
# recording the file sent, leaves it built although AP has it; taking its status for an exception would
# lose it for good (found by the protocol model, schemas/protocol/exchange.pml).
OPEN_STATES = ("built", "sent", "presented")

UNKNOWN_REFERENCE = "unknown_reference"
AMOUNT_MISMATCH = "amount_mismatch"
RIP_MISMATCH = "rip_mismatch"
FILE_MISMATCH = "file_mismatch"
CONFLICTING_FINAL = "conflicting_final"
NOT_PRESENTED = "not_presented"
DUPLICATE_IN_FILE = "duplicate_in_file"
IMPLAUSIBLE_STATUS_DATE = "implausible_status_date"
DUPLICATE_TRANSACTION = "duplicate_transaction"
IMPLAUSIBLE_REASON = "implausible_reason"

# Contract §5: AP executes an accepted file on its settlement date and reports each final status on that
# day or up to two business days later, dated the day the CCP was debited (or the instruction rejected).
LATE_RETURN_BUSINESS_DAYS = 2
STATUS_DATE_RULES = (
    "a business day",
    "not before the settlement date of the PRLV file that carried the instruction",
    f"not more than {LATE_RETURN_BUSINESS_DAYS} business days after that settlement date",
    "not after the RETR file's own processing date",
)


@dataclass(frozen=True)
class ReturnContext:
    """What a RETR's records are judged against besides what was sent: its own date and the calendar."""

    processing_date: date  # the RETR header's date (AP's processing date)
    calendar: BusinessCalendar
    processed_at: datetime | None = None  # the header's date and time, where it has a time (ACK)


@dataclass(frozen=True)
class ReturnPlan:
    apply: pd.DataFrame  # records to apply, with instruction_id and item_id
    repeats: int  # statuses already recorded exactly so (a re-delivered RETR): nothing to do
    exceptions: pd.DataFrame  # line, reference, kind, detail


def match_returns(
    records: pd.DataFrame,
    sent: pd.DataFrame,
    context: ReturnContext,
    transactions_elsewhere: frozenset[str] = frozenset(),
) -> ReturnPlan:
    """Decide, record by record, what a RETR file does to the ledger.

    ``transactions_elsewhere``: AP transaction ids of this file already recorded on *other* instructions.
    """
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
    date_problem = _status_date_problems(merged, context)
    flag(known & (date_problem != ""), IMPLAUSIBLE_STATUS_DATE, pd.Series(date_problem, index=merged.index))
    transaction = merged["transaction_id"].astype(str)
    reused = transaction.isin(transactions_elsewhere) | (
        transaction.duplicated(keep=False) & ~merged["reference"].duplicated(keep=False)
    )
    flag(
        known & reused.to_numpy(),
        DUPLICATE_TRANSACTION,
        "AP transaction id " + transaction + " is already used by another status",
    )
    flag(  # AM05: "already used in an earlier accepted file": epay never sends an accepted reference again
        known & (merged["status"] == "RJCT").to_numpy() & (merged["reason"] == "AM05").to_numpy(),
        IMPLAUSIBLE_REASON,
        "AM05 says the reference was in an earlier accepted file; epay never sends a reference again once "
        "a file carrying it was accepted",
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


def _status_date_problems(merged: pd.DataFrame, context: ReturnContext) -> np.ndarray:
    """Per record, why its status date cannot be right for its instruction ("" when it can).

    Vectorised over the file; the messages are built only for the (rare) records that fail."""
    problems = np.full(len(merged), "", dtype=object)
    known = merged["settlement_sent"].notna().to_numpy()
    if not known.any():
        return problems
    status = pd.to_datetime(merged["status_date"]).to_numpy().astype("datetime64[D]")
    settles = pd.to_datetime(merged["settlement_sent"]).to_numpy().astype("datetime64[D]")
    calendar = context.calendar
    last_of = {
        d: np.datetime64(calendar.add_business_days(d.astype(object), LATE_RETURN_BUSINESS_DAYS), "D")
        for d in np.unique(settles[known])
    }
    last = settles.copy()
    for settled_on, last_day in last_of.items():
        last[settles == settled_on] = last_day
    processed = np.datetime64(context.processing_date, "D")
    checks = (
        (status > processed, "is after the RETR file's own date " + str(context.processing_date)),
        (status < settles, "is before the settlement date {settles} of its PRLV file"),
        (
            status > last,
            f"is more than {LATE_RETURN_BUSINESS_DAYS} business days after the settlement date {{settles}} "
            "(last possible: {last})",
        ),
        (~calendar.is_business_day_array(np.where(known, status, processed)), "is not a business day"),
    )
    for failed, text in checks:
        for i in np.flatnonzero(known & failed & (problems == "")):
            problems[i] = f"status date {status[i]} " + text.format(settles=settles[i], last=last[i])
    return problems
