"""Refunds owed: an invoice or order paid elsewhere (counter, card) while its debit was in flight, and
then settled by the debit too — the subscriber paid twice; finance pays one back."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from epay.ledger.bulk import fetch_frame

COLUMNS = (
    "kind",
    "item_number",
    "subscriber_number",
    "amount",
    "paid_elsewhere_on",
    "channel",
    "debit_reference",
    "debited_on",
)


def refunds_owed(engine: Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return fetch_frame(
            connection,
            "SELECT b.kind, b.number, b.subscriber_number, p.amount, p.paid_on, p.channel, i.reference, "
            "i.status_date FROM external_payment p JOIN billing_item b ON b.id = p.item_id "
            "JOIN instruction i ON i.item_id = b.id AND i.state = 'settled' "
            "WHERE p.during_collection = ? ORDER BY b.kind, b.number",
            (True,),
            COLUMNS,
            dates=("paid_elsewhere_on", "debited_on"),
        )
