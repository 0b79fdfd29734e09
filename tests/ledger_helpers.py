"""A small, hand-written world for ledger tests, loaded through the real billing import."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from epay.billing.extract import check_extract
from epay.formats.rip import rip_from_account
from epay.ledger.billing_load import LoadResult, load_extract
from epay.ledger.db import transaction
from epay.ledger.mandates import actions_from_snapshot, apply_mandate_actions

COLUMNS = (
    "record,subscriber_number,subscriber_name,item_number,item_kind,amount,issued_on,due_date,status,"
    "paid_on,channel"
)


@dataclass
class TinyWorld:
    """Subscribers with one mandate each (unless told otherwise) and their invoices / orders."""

    rows: list[str] = field(default_factory=list)
    mandates: list[dict[str, Any]] = field(default_factory=list)

    def subscriber(self, number: str, name: str) -> TinyWorld:
        self.rows.append(f'SUBSCRIBER,{number},"{name}",,,,,,,,')
        return self

    def invoice(
        self, number: str, subscriber: str, amount: int, due: date, status: str = "OPEN"
    ) -> TinyWorld:
        issued = date(due.year, due.month, 1) if due.day > 1 else due
        self.rows.append(f"INVOICE,{subscriber},,{number},,{amount},{issued},{due},{status},,")
        return self

    def recharge(
        self, number: str, subscriber: str, amount: int, due: date, status: str = "CONFIRMED"
    ) -> TinyWorld:
        self.rows.append(f"RECHARGE,{subscriber},,{number},,{amount},{due},{due},{status},,")
        return self

    def payment(self, item: str, kind: str, subscriber: str, amount: int, paid_on: date) -> TinyWorld:
        self.rows.append(f"PAYMENT,{subscriber},,{item},{kind},{amount},,,,{paid_on},COUNTER")
        return self

    def mandate(
        self,
        reference: str,
        subscriber: str,
        account: int,
        *,
        ceiling: int = 0,
        effective: date = date(2026, 1, 4),
        revoked_from: date | None = None,
        rip: str | None = None,
    ) -> TinyWorld:
        self.mandates.append(
            {
                "reference": reference,
                "rip": rip or rip_from_account(account),
                "debtor_name": "AS REGISTERED AT AP",
                "subscriber_number": subscriber,
                "ceiling": ceiling,
                "effective_date": effective,
                "revoked_from": revoked_from,
            }
        )
        return self

    def write(self, folder: Path, extract_day: date, sequence: int = 1) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"BILL_{extract_day:%Y%m%d}_{sequence:02d}.csv"
        path.write_text(COLUMNS + "\n" + "\n".join(self.rows) + "\n", encoding="utf-8")
        return path

    def load(self, engine: Engine, folder: Path, extract_day: date, sequence: int = 1) -> LoadResult:
        result = load_extract(engine, check_extract(self.write(folder, extract_day, sequence)))
        if self.mandates:
            frame = pd.DataFrame(self.mandates)
            with transaction(engine) as connection:
                apply_mandate_actions(connection, actions_from_snapshot(frame), actor="test")
        return result
