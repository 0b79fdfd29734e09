"""Paid at the counter while the debit was in flight, then debited too: a refund owed, on both databases."""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import Engine, text

from epay.calendar import BusinessCalendar
from epay.inbound.files import register_inbound
from epay.inbound.retr import apply_retr
from epay.inbound.returns import ReturnContext
from epay.ledger.db import transaction
from epay.outbound.build import BuildPolicy, build_outbound
from epay.reports.refunds import refunds_owed
from epay.reports.status import day_status
from epay.settings import Settings
from tests.ledger_helpers import TinyWorld

DAY, NEXT = date(2026, 11, 25), date(2026, 11, 26)


def test_paid_twice_is_a_refund_owed(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    w = TinyWorld().subscriber("0000000001", "Amina Kaci").mandate("M1", "0000000001", 1001)
    w.invoice("F1", "0000000001", 150_000, DAY).invoice("F2", "0000000001", 90_000, DAY)
    w.load(ledger_engine, ledger_settings.billing_incoming_dir, DAY)
    build_outbound(ledger_engine, ledger_settings, DAY, calendar, BuildPolicy())
    with ledger_engine.begin() as c:  # accepted by the post office
        c.execute(text("UPDATE instruction SET state = 'presented'"))
    # billing: F1 paid at a counter on the settlement day, while its debit is in flight
    TinyWorld().payment("F1", "FA", "0000000001", 150_000, NEXT).write(
        ledger_settings.billing_incoming_dir, NEXT
    )
    from epay.billing.extract import check_extract
    from epay.ledger.billing_load import load_extract

    loaded = load_extract(
        ledger_engine, check_extract(ledger_settings.billing_incoming_dir / "BILL_20261126_01.csv")
    )
    assert loaded.paid_during_collection == 1
    with ledger_engine.connect() as c:
        sent = pd.DataFrame(
            c.execute(text("SELECT reference, rip, amount, item_number FROM instruction ORDER BY reference"))
            .mappings()
            .all()
        )
    records = pd.DataFrame(
        {
            "line": [2, 3],
            "reference": sent["reference"],
            "rip": sent["rip"],
            "amount": sent["amount"],
            "status": ["ACSC", "ACSC"],  # the post office debited both
            "reason": [None, None],
            "status_date": [NEXT, NEXT],
            "transaction_id": ["T1", "T2"],
            "prlv_file_name": ["PRLV_100237_20261125_01.txt"] * 2,
        }
    )
    retr = ledger_settings.home / "RETR_100237_20261126_01.txt"
    retr.write_text("placeholder\n")
    with transaction(ledger_engine) as connection:
        file_id = register_inbound(
            connection,
            retr,
            kind="RETR",
            home=ledger_settings.home,
            business_date=NEXT,
            detail_count=2,
            amount=240_000,
        )
        apply_retr(
            connection,
            records,
            file_id=file_id,
            business_date=NEXT,
            context=ReturnContext(NEXT, calendar),
        )
    owed = refunds_owed(ledger_engine)
    assert owed[["item_number", "amount", "channel"]].to_dict("records") == [
        {"item_number": "F1", "amount": 150_000, "channel": "COUNTER"}
    ]
    assert day_status(ledger_engine, DAY)["refunds_owed"] == {"count": 1, "amount": 150_000}
