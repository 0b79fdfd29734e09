"""``epay status --date D``: the state of one business date's debits, straight from the ledger."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine

from epay.ledger.bulk import fetch_frame


def day_status(engine: Engine, business_date: date) -> dict[str, Any]:
    """Counts and amounts (centimes) of what was due, built, sent, acknowledged, settled, rejected by
    reason and still pending for the instructions built on ``business_date``; files and exceptions."""
    with engine.connect() as connection:
        instructions = fetch_frame(
            connection,
            "SELECT state, coalesce(reason, '') AS reason, count(*), coalesce(sum(amount), 0) "
            "FROM instruction WHERE business_date = ? GROUP BY state, reason ORDER BY state, reason",
            (business_date,),
            ("state", "reason", "count", "amount"),
        )
        excluded = fetch_frame(
            connection,
            "SELECT reason, count(*) FROM exclusion WHERE business_date = ? GROUP BY reason ORDER BY reason",
            (business_date,),
            ("reason", "count"),
        )
        files = fetch_frame(
            connection,
            "SELECT direction, kind, name, state, coalesce(reason, '') AS reason, detail_count, amount "
            "FROM exchange_file WHERE business_date = ? ORDER BY direction DESC, name",
            (business_date,),
            ("direction", "kind", "name", "state", "reason", "detail_count", "amount"),
        )
        carriers = fetch_frame(  # where the day's instructions went: its own files and the later ones
            connection,
            "SELECT coalesce(f.name, ''), coalesce(f.state, ''), f.business_date, i.state, count(*), "
            "coalesce(sum(i.amount), 0) FROM instruction i LEFT JOIN exchange_file f ON f.id = i.file_id "
            "WHERE i.business_date = ? GROUP BY f.name, f.state, f.business_date, i.state "
            "ORDER BY f.name, i.state",
            (business_date,),
            ("file", "file_state", "file_date", "state", "count", "amount"),
        )
        exceptions = fetch_frame(
            connection,
            "SELECT kind, count(*) FROM return_exception WHERE business_date = ? GROUP BY kind ORDER BY kind",
            (business_date,),
            ("kind", "count"),
        )
    by_state: dict[str, dict[str, int]] = {}
    rejected: dict[str, dict[str, int]] = {}
    for state, reason, count, amount in instructions.itertuples(index=False):
        entry = by_state.setdefault(str(state), {"count": 0, "amount": 0})
        entry["count"] += int(count)
        entry["amount"] += int(amount)
        if state == "rejected":
            rejected[str(reason)] = {"count": int(count), "amount": int(amount)}
    final = ("settled", "rejected", "cancelled")
    pending = {
        "count": sum(v["count"] for s, v in by_state.items() if s not in final),
        "amount": sum(v["amount"] for s, v in by_state.items() if s not in final),
    }
    from epay.reports.refunds import refund_list

    refunds = refund_list(engine)
    owed = [r["amount"] for r in refunds if r["state"] == "owed"]
    refunded = [r["amount"] for r in refunds if r["state"] == "refunded"]
    return {
        "business_date": business_date.isoformat(),
        "refunds_owed": {"count": len(owed), "amount": sum(owed)},  # still owed: not marked refunded
        "refunds_refunded": {"count": len(refunded), "amount": sum(refunded)},
        "instructions": by_state,
        "rejected_by_reason": rejected,
        "pending": pending,
        "not_selected": {str(r): int(c) for r, c in excluded.itertuples(index=False)},
        "files": [
            {k: (int(v) if k in ("detail_count", "amount") else str(v)) for k, v in row.items()}
            for row in files.to_dict("records")
        ],
        "carried_by": [
            {
                "file": str(name) or None,  # None: out of any file, waiting to be re-filed
                "file_state": str(file_state) or None,
                "file_business_date": None if name == "" else str(file_date)[:10],
                "instruction_state": str(state),
                "count": int(count),
                "amount": int(amount),
            }
            for name, file_state, file_date, state, count, amount in carriers.itertuples(index=False)
        ],
        "exceptions": {str(k): int(c) for k, c in exceptions.itertuples(index=False)},
    }
