"""Synthetic but valid detail tables of every kind, vectorised: for benchmarks, tests and the demo.

Not the realistic sample world (that is ``epay sample``, built on the ledger); just data that the
contract accepts, generated fast and reproducibly from a seed.
"""

from __future__ import annotations

from datetime import date, time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from epay.formats.rip import AGENCY_CODE, BANK_CODE, rip_from_account

CREDITOR_ID = 100237
CREDITOR_RIP = rip_from_account(123456)
CREDITOR_NAME = "ALGERIE TELECOM"
_FIRST = np.array(
    ["MOHAMED", "FATIMA", "AHMED", "AMINA", "YACINE", "KHEIRA", "SAMIR", "NADIA", "KARIM", "LYNDA"]
)
_LAST = np.array(
    ["BENALI", "AIT SAID", "BOUDIAF", "HAMIDI", "O'BRIEN", "KACI", "MEZIANE", "CHERIF", "LARBI", "SAADI"]
)


def _rips(accounts: np.ndarray) -> pa.Array:
    body = int(AGENCY_CODE) * 10**10 + accounts.astype(np.int64)
    keys = 97 - (body * 100) % 97
    text = pc.binary_join_element_wise(
        BANK_CODE,
        pc.utf8_lpad(pa.array(body).cast(pa.string()), 15, "0"),
        pc.utf8_lpad(pa.array(keys).cast(pa.string()), 2, "0"),
        "",
    )
    return text


def _refs(prefix: str, start: int, n: int, width: int) -> pa.Array:
    numbers = pa.array(np.arange(start, start + n, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width - len(prefix), "0"), "")


def _names(rng: np.random.Generator, n: int) -> pa.Array:
    first = pa.array(_FIRST[rng.integers(0, len(_FIRST), n)])
    last = pa.array(_LAST[rng.integers(0, len(_LAST), n)])
    return pc.binary_join_element_wise(last, first, " ")


def standard_header(kind: str, created: date, settles: date, sequence: int = 1) -> dict[str, Any]:
    return {
        "creditor_id": CREDITOR_ID,
        "creation_date": created,
        "settlement_date": settles,
        "sequence": sequence,
        "creditor_rip": CREDITOR_RIP,
        "creditor_name": CREDITOR_NAME,
    }


def prlv_details(n: int, seed: int = 0, due: date = date(2026, 11, 20), first_ref: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    accounts = rng.integers(1, 10**10, n)
    ops = np.where(rng.random(n) < 0.8, "FA", "RA")
    return pa.table(
        {
            "operation": pa.array(ops),
            "debtor_rip": _rips(accounts),
            "debtor_name": _names(rng, n),
            "amount": pa.array(rng.integers(50_000, 2_000_000, n), pa.int64()),
            "end_to_end_reference": _refs("AT20261125", first_ref, n, 22),
            "mandate_reference": _refs("APM", first_ref, n, 16),
            "invoice_number": _refs("FAC", first_ref, n, 15),
            "due_date": pa.array(np.full(n, np.datetime64(due, "D"))).cast(pa.date32()),
        }
    )


def retr_details(n: int, seed: int = 0, day: date = date(2026, 11, 26)) -> pa.Table:
    rng = np.random.default_rng(seed)
    accounts = rng.integers(1, 10**10, n)
    rejected = rng.random(n) < 0.1
    reasons = np.array(["AM04", "AC04", "MD01", "AC01", "MS03"])[rng.integers(0, 5, n)]
    return pa.table(
        {
            "end_to_end_reference": _refs("AT20261125", 1, n, 22),
            "debtor_rip": _rips(accounts),
            "amount": pa.array(rng.integers(50_000, 2_000_000, n), pa.int64()),
            "status": pa.array(np.where(rejected, "RJCT", "ACSC")),
            "reason": pa.array(np.where(rejected, reasons, "")),
            "status_date": pa.array(np.full(n, np.datetime64(day, "D"))).cast(pa.date32()),
            "transaction_id": _refs("TX", 1, n, 20),
            "prlv_file_name": pa.array(np.full(n, f"PRLV_{CREDITOR_ID}_20261125_01.txt")),
        }
    )


def mndt_details(n: int, seed: int = 0, day: date = date(2026, 11, 25)) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "mandate_reference": _refs("APM", 1, n, 16),
            "debtor_rip": _rips(rng.integers(1, 10**10, n)),
            "debtor_name": _names(rng, n),
            "subscriber_number": _refs("", 21_000_000, n, 10),
            "action": pa.array(np.array(["N", "M", "R"])[rng.integers(0, 3, n)]),
            "effective_date": pa.array(np.full(n, np.datetime64(day, "D"))).cast(pa.date32()),
            "ceiling": pa.array(np.where(rng.random(n) < 0.5, 0, rng.integers(1, 10**8, n)), pa.int64()),
        }
    )


def relv_details(days: list[date], counts: list[int], amounts: list[int]) -> pa.Table:
    return pa.table(
        {
            "debit_date": pa.array(days, pa.date32()),
            "settled_count": pa.array(counts, pa.int64()),
            "amount": pa.array(amounts, pa.int64()),
        }
    )


def ack_detail(
    prlv_name: str,
    status: str = "ACCP",
    reason: str = "",
    line: int = 0,
    count: int = 1,
    amount: int = 1,
    text: str = "",
) -> pa.Table:
    return pa.table(
        {
            "prlv_file_name": [prlv_name],
            "status": [status],
            "reason": [reason],
            "faulty_line": [line],
            "detail_count": [count],
            "total_amount": [amount],
            "free_text": [text],
        }
    )


def ack_header(day: date, at: time = time(21, 30, 15)) -> dict[str, Any]:
    return {"creditor_id": CREDITOR_ID, "ack_date": day, "ack_time": at}
