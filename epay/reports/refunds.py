"""Refunds owed: an invoice or order paid elsewhere (counter, card) while its debit was in flight, and
then settled by the debit too — the subscriber paid twice; finance pays one back and marks it refunded
(``epay refunds mark``), so the list shows what is still owed apart from what was paid back.

``refunds_owed`` is every refund that arose (finance's reconciliation of a debit date lists them, the
same whenever it is run); ``refund_list`` adds each one's reference and whether it was refunded."""

from __future__ import annotations

from typing import Any

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


def refund_reference(payment_id: int) -> str:
    """A refund's reference: RF- and the ledger id of the payment made elsewhere (one refund per such
    payment: its item was settled by one debit)."""
    return f"RF-{payment_id}"


def refund_list(engine: Engine) -> list[dict[str, Any]]:
    """Every refund owed (paid elsewhere while debited), oldest debit first, each with its reference and
    ``refunded`` (who, why, when, the transfer's reference) once finance has marked it paid back, else
    None."""
    from epay.reports.handling import handlings

    with engine.connect() as connection:
        frame = fetch_frame(
            connection,
            "SELECT p.id, b.kind, b.number, b.subscriber_number, p.amount, p.paid_on, p.channel, "
            "i.reference, i.status_date FROM external_payment p JOIN billing_item b ON b.id = p.item_id "
            "JOIN instruction i ON i.item_id = b.id AND i.state = 'settled' "
            "WHERE p.during_collection = ? ORDER BY i.status_date, b.kind, b.number, p.id",
            (True,),
            ("payment_id", *COLUMNS),
            dates=("paid_elsewhere_on", "debited_on"),
        )
    done = handlings(engine)
    found = []
    for row in frame.to_dict("records"):
        reference = refund_reference(int(row["payment_id"]))
        handled = done.get(reference)
        found.append(
            {
                "reference": reference,
                "kind": str(row["kind"]),
                "item_number": str(row["item_number"]),
                "subscriber_number": str(row["subscriber_number"]),
                "amount": int(row["amount"]),
                "paid_elsewhere_on": row["paid_elsewhere_on"].date().isoformat(),
                "channel": str(row["channel"]),
                "debit_reference": str(row["debit_reference"]),
                "debited_on": row["debited_on"].date().isoformat(),
                "state": "refunded" if handled else "owed",
                "refunded": handled.to_dict() if handled else None,
            }
        )
    return found
