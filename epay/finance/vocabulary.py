"""The finance vocabulary, stated once (docs/finance.md says the same in prose): the two views, their
figures, and the meaning of every code a finance page or download shows.

- **Settlement view**, by *settlement date*: the date a PRLV file asked Algérie Poste to debit. What was
  due on that date and what became of it: presented, settled, rejected (by reason), pending, overdue; the
  files that did not go through (rejected at ACK, expired unsent, held) and where their instructions went;
  what the build found due but did not put in a file (exclusions).
- **Cash view**, by *debit date*: the date AP debited the subscribers' CCP and credited AT (RETR positions
  75–82, the date of a RELV detail). What moved that day: debited (the ACSC returns of that date, of which
  late: due on an earlier settlement date), credited (the RELV lines for that date), their difference, the
  statement, and the reconciliation status.

Every column of a download is one of: a date (``*_date``, ``due_by``, ``*_build``, ``built_on``), a count
(``*count``, ``items``, ``builds``, ``try_number``), an amount in integer centimes (``*amount``; written
``*_amount_dzd`` as exact decimals in CSV/XLSX and ``*_amount_centimes`` in Parquet/JSON), a yes/no, or
text; a column holding a code has its meaning in the column beside it (``*_meaning`` or ``meaning``).
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

REASONS_FILE = Path(__file__).resolve().parents[2] / "schemas" / "finance" / "reasons.toml"

SETTLEMENT_VIEW = "settlement view (by settlement date: what was due that day and what became of it)"
CASH_VIEW = "cash view (by debit date: what AP debited and credited to AT that day, per RELV)"

FIGURES: dict[str, str] = {
    "presented": "instructions in a PRLV file sent to AP for this settlement date (not rejected at ACK)",
    "settled": "presented and reported ACSC by AP: the CCP was debited (on the settlement date or late)",
    "rejected": "presented and reported RJCT by AP, with its reason: nothing was debited",
    "pending": "presented, no final status from AP yet",
    "overdue": "pending past the last business day AP may report on",
    "not_presented": "in a file for this date that AP never processed: rejected at ACK, expired unsent, held",
    "excluded": "due but not put in a file by the build for this date (distinct items)",
    "debited": "ACSC returns whose debit date is this date (RETR positions 75-82)",
    "late": "debited this date for an earlier settlement date (AP reported the status late)",
    "credited": "what the RELV statements credited to AT for this debit date",
    "difference": "credited minus debited",
}

OPERATIONS: dict[str, str] = {
    "FA": "invoice (facture)",
    "RA": "ADSL recharge order",
    "total": "all operations",
}

CHANNELS: dict[str, str] = {  # where billing says an invoice was paid outside the direct debit
    "COUNTER": "paid at a counter",
    "CARD": "paid by card",
}

SETTLEMENT_STATUSES: dict[str, str] = {
    "empty": "nothing was due or presented for this settlement date",
    "not_presented": "nothing was presented: the files for this date were rejected at ACK, expired or held",
    "complete": "every presented instruction has its final status",
    "pending": "some presented instructions wait for their final status (AP may report up to 2 business "
    "days late)",
    "overdue": "some presented instructions are still without a final status past AP's deadline",
}

CASH_STATUSES: dict[str, str] = {
    "reconciled": "the RELV statement of this date is in and credits exactly the ACSC returns debited",
    "breaks": "a difference between the RELV credits and the ACSC returns that nothing explains",
    "pending": "not closed yet: no statement stating this date or later, or late returns still to come",
}

BREAKS: dict[str, str] = {
    "missing_relv": "no RELV statement for this debit date although the day is closed",
    "not_credited": "ACSC returns in the ledger not (wholly) credited by the statements",
    "returns_outstanding": "credited more than the ACSC returns so far, by no more than what still waits "
    "for its final status (explained: the day stays pending)",
    "credit_difference": "credited more than the ACSC returns, not explained by returns still to come",
    "count_mismatch": "amounts agree but the numbers of debits differ",
    "unknown_credit": "a RELV line for a debit date the ledger presented nothing for",
    "relv_unreadable": "a RELV received earlier no longer reads back as it was received",
}

EXCLUSIONS: dict[str, str] = {
    "no_mandate": "the subscriber has no mandate",
    "mandate_blocked": "mandate blocked after AC01/MD01 until AP reports a new action for it",
    "mandate_suspended": "mandate suspended after AC04/AC06/MD07",
    "mandate_revoked": "mandate revoked at a post office counter",
    "mandate_not_yet_effective": "mandate not effective yet on this date",
    "tries_exhausted": "presented the maximum number of times (EPAY_MAX_TRIES)",
    "retry_later": "rejected AM04/MS03: presented again after the retry delay",
    "name_to_correct": "the debtor's name cannot be written in the file: to correct in billing",
    "rip_invalid": "the mandate's RIP would be rejected by AP (check key)",
    "above_ceiling": "amount above the mandate's ceiling",
}

FILE_STATES: dict[str, str] = {
    "rejected": "rejected at ACK by AP as a whole: nothing in it was processed",
    "expired": "not sent before its cut-off (AP would reject it DT01): never sent",
    "held": "built but held for release (above the day's ceilings)",
    "cancelled": "its held batch was cancelled: never sent",
}

FILE_REASONS: dict[str, str] = {
    "FF01": "malformed file",
    "AG01": "creditor id or account not the SFTP account's",
    "DT01": "settlement date not allowed (arrived after the cut-off, or not a business day)",
    "AM10": "trailer count, sum or hash does not match the details",
    "DU01": "the same batch was already accepted",
    "LATE": "expired unsent: its cut-off passed before it was sent",
    "": "",
}

INSTRUCTION_STATES: dict[str, str] = {
    "built": "in a file not sent yet",
    "sent": "sent to AP, its ACK not applied yet",
    "presented": "accepted by AP, no final status yet",
    "settled": "reported ACSC: the CCP was debited",
    "rejected": "reported RJCT: nothing was debited",
    "held": "held until a data engineer releases or cancels it",
    "cancelled": "cancelled with its batch: not debited",
}


@cache
def reason_meanings(path: Path = REASONS_FILE) -> dict[str, str]:
    """RETR reject code -> meaning (spec §5), in the order Algérie Poste checks them."""
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    return {str(r["code"]): str(r["meaning"]) for r in raw["reason"]}


UNKNOWN = "unknown code"


def meaning(table: dict[str, str], code: str) -> str:
    return table.get(code, UNKNOWN)
