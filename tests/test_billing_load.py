"""Loading billing extracts into the ledger, on SQLite and PostgreSQL: states, once per extract id,
later extracts changing what billing may still change, payments made elsewhere, rejections, audit."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from epay.billing.extract import check_extract
from epay.calendar import BusinessCalendar
from epay.ledger.audit import history
from epay.ledger.billing_load import ExtractConflictError, LoadResult, load_extract
from epay.ledger.models import BillingExtract, BillingItem, ExternalPayment
from epay.outbound.build import BuildPolicy, build_outbound
from epay.settings import Settings
from tests.ledger_helpers import TinyWorld

DAY = date(2026, 11, 25)  # Wednesday, a business day
NEXT = date(2026, 11, 26)
LATER = date(2026, 11, 29)  # Sunday, the next business day after Thursday
TABLES = ("subscriber", "billing_item", "billing_extract", "extract_rejection", "external_payment")


def query(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(text(sql), params)]


def items(engine: Engine) -> dict[str, dict[str, Any]]:
    """The ledger's billing items by number, typed (dates as dates on SQLite too)."""
    with engine.connect() as c:
        return {r["number"]: dict(r) for r in c.execute(select(BillingItem.__table__)).mappings()}


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {
            t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in (*TABLES, "audit_event")
        }


def rejections(engine: Engine, extract_id: str) -> list[dict[str, Any]]:
    return query(
        engine,
        "SELECT row, record, field, value, reason FROM extract_rejection WHERE extract_id = :e "
        "ORDER BY row, id",
        e=extract_id,
    )


def events(engine: Engine, key: str) -> list[tuple[str | None, str, str]]:
    with engine.connect() as c:
        return [(e["from_state"], e["to_state"], e["actor"]) for e in history(c, "item", key)]


def load(engine: Engine, folder: Path, world: TinyWorld, day: date, sequence: int = 1) -> LoadResult:
    return world.load(engine, folder, day, sequence)


def base_world() -> TinyWorld:
    """Two subscribers; every status of the contract; one big amount."""
    w = TinyWorld()
    w.subscriber("0000000001", "Mohamed Benali")
    w.subscriber("0000000002", "Chérif Aït Saïd")
    w.invoice("F1001", "0000000001", 190_000, date(2026, 11, 20))
    w.invoice("F1002", "0000000001", 99_999_999_999_999, DAY)  # the contract's largest amount
    w.invoice("F1003", "0000000002", 50_000, date(2026, 11, 10), status="CANCELLED")
    w.recharge("R2001", "0000000002", 210_000, DAY)  # CONFIRMED
    w.recharge("R2002", "0000000002", 160_000, DAY, status="PENDING")
    w.recharge("R2003", "0000000001", 70_000, DAY, status="CANCELLED")
    return w


@pytest.fixture
def incoming(ledger_settings: Settings) -> Path:
    return ledger_settings.billing_incoming_dir


def test_an_extract_creates_subscribers_and_items_in_their_states(
    ledger_engine: Engine, incoming: Path
) -> None:
    result = load(ledger_engine, incoming, base_world(), DAY)
    assert not result.already_loaded
    assert (result.subscribers, result.items_new, result.items_updated, result.rejected_rows) == (2, 6, 0, 0)
    subscribers = {r["number"]: r for r in query(ledger_engine, "SELECT * FROM subscriber")}
    assert {n: r["name"] for n, r in subscribers.items()} == {
        "0000000001": "Mohamed Benali",
        "0000000002": "Chérif Aït Saïd",
    }
    assert {r["extract_id"] for r in subscribers.values()} == {"BILL_20261125_01"}
    got = items(ledger_engine)
    assert {n: (r["kind"], r["state"]) for n, r in got.items()} == {
        "F1001": ("FA", "due"),
        "F1002": ("FA", "due"),
        "F1003": ("FA", "cancelled"),
        "R2001": ("RA", "due"),
        "R2002": ("RA", "pending"),
        "R2003": ("RA", "cancelled"),
    }
    f1001, f1002 = got["F1001"], got["F1002"]
    assert type(f1001["amount"]) is int and f1001["amount"] == 190_000
    assert type(f1002["amount"]) is int and f1002["amount"] == 99_999_999_999_999
    assert f1001["subscriber_number"] == "0000000001" and got["R2002"]["subscriber_number"] == "0000000002"
    assert (f1001["issued_on"], f1001["due_date"]) == (date(2026, 11, 1), date(2026, 11, 20))
    assert {(r["tries"], r["paid_by"], r["paid_on"]) for r in got.values()} == {(0, None, None)}
    with ledger_engine.connect() as c:
        (extract,) = c.execute(select(BillingExtract.__table__)).mappings().all()
    path = incoming / "BILL_20261125_01.csv"
    assert extract["extract_id"] == "BILL_20261125_01" and extract["extract_date"] == DAY
    assert extract["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (extract["row_count"], extract["rejected_count"]) == (8, 0)


def test_the_same_extract_again_changes_nothing(ledger_engine: Engine, incoming: Path) -> None:
    load(ledger_engine, incoming, base_world(), DAY)
    before_counts, before_items = counts(ledger_engine), items(ledger_engine)
    again = load_extract(ledger_engine, check_extract(incoming / "BILL_20261125_01.csv"))
    assert again.already_loaded and again.items_new == again.items_updated == 0
    assert counts(ledger_engine) == before_counts
    assert items(ledger_engine) == before_items


def test_the_same_extract_id_with_other_bytes_is_refused(ledger_engine: Engine, incoming: Path) -> None:
    load(ledger_engine, incoming, base_world(), DAY)
    before_counts, before_items = counts(ledger_engine), items(ledger_engine)
    other = base_world().invoice("F1009", "0000000001", 1_000, DAY)
    other.rows[2] = other.rows[2].replace("190000", "190001")  # F1001 re-priced too
    path = other.write(incoming, DAY)
    with pytest.raises(ExtractConflictError, match=r"BILL_20261125_01 .*other bytes"):
        load_extract(ledger_engine, check_extract(path))
    assert counts(ledger_engine) == before_counts
    assert items(ledger_engine) == before_items


def test_a_later_extract_changes_what_billing_may_still_change(ledger_engine: Engine, incoming: Path) -> None:
    load(ledger_engine, incoming, base_world(), DAY)
    later = TinyWorld()  # no SUBSCRIBER rows: the ledger knows them from the first extract
    later.subscriber("0000000002", "Cherif Ait Said")  # renamed
    later.invoice("F1001", "0000000001", 195_000, date(2026, 11, 27))  # re-priced and moved
    later.invoice("F1002", "0000000001", 99_999_999_999_999, DAY, status="CANCELLED")
    later.invoice("F1003", "0000000002", 50_000, date(2026, 11, 10), status="CANCELLED")  # as it was
    later.recharge("R2002", "0000000002", 160_000, DAY)  # PENDING → CONFIRMED
    result = load(ledger_engine, incoming, later, NEXT)
    assert (result.items_new, result.items_updated, result.rejected_rows) == (0, 3, 0)
    got = items(ledger_engine)
    assert (got["F1001"]["amount"], got["F1001"]["due_date"], got["F1001"]["state"]) == (
        195_000,
        date(2026, 11, 27),
        "due",
    )
    assert got["F1002"]["state"] == "cancelled"
    assert got["R2002"]["state"] == "due"
    assert got["F1001"]["extract_id"] == "BILL_20261126_01"
    assert got["F1003"]["extract_id"] == "BILL_20261125_01"  # unchanged: not touched
    assert got["R2001"]["state"] == "due"  # not in the later extract: left as it is
    assert query(ledger_engine, "SELECT name FROM subscriber WHERE number = '0000000002'") == [
        {"name": "Cherif Ait Said"}
    ]
    assert events(ledger_engine, "FA:F1002") == [
        (None, "loaded", "billing.load"),
        ("due", "cancelled", "billing.load"),
    ]
    assert events(ledger_engine, "RA:R2002")[-1] == ("pending", "due", "billing.load")
    assert events(ledger_engine, "FA:F1003") == [(None, "loaded", "billing.load")]
    # a cancelled invoice opened again
    reopened = TinyWorld().invoice("F1002", "0000000001", 120_000, DAY)
    load(ledger_engine, incoming, reopened, NEXT, sequence=2)
    assert (items(ledger_engine)["F1002"]["state"], items(ledger_engine)["F1002"]["amount"]) == (
        "due",
        120_000,
    )


def collecting_world() -> TinyWorld:
    """Subscriber 1 has a mandate (F1001, F1002 go into collection on DAY); subscriber 2 has none."""
    w = TinyWorld()
    w.subscriber("0000000001", "Mohamed Benali").mandate("M1", "0000000001", 1001)
    w.subscriber("0000000002", "Lynda Kaci")
    w.invoice("F1001", "0000000001", 190_000, date(2026, 11, 20))
    w.invoice("F1002", "0000000001", 250_000, DAY)
    w.invoice("F1010", "0000000002", 150_000, DAY)
    w.recharge("R2010", "0000000002", 80_000, DAY, status="PENDING")
    return w


@pytest.fixture
def collecting(
    ledger_engine: Engine, ledger_settings: Settings, incoming: Path, calendar: BusinessCalendar
) -> Engine:
    load(ledger_engine, incoming, collecting_world(), DAY)
    result = build_outbound(ledger_engine, ledger_settings, DAY, calendar, BuildPolicy())
    assert result.instruction_count == 2
    assert items(ledger_engine)["F1001"]["state"] == "in_collection"
    return ledger_engine


def test_an_item_in_collection_cannot_be_changed_by_billing(collecting: Engine, incoming: Path) -> None:
    before = items(collecting)
    later = TinyWorld()
    later.invoice("F1001", "0000000001", 195_000, date(2026, 11, 20))  # re-priced
    later.invoice("F1002", "0000000001", 250_000, DAY, status="CANCELLED")  # cancelled
    later.invoice("F1010", "0000000002", 155_000, DAY)  # still due: may change
    result = load(collecting, incoming, later, NEXT)
    assert result.items_updated == 1 and result.rejected_rows == 2
    got = rejections(collecting, "BILL_20261126_01")
    assert [(r["row"], r["field"], r["record"]) for r in got] == [
        (1, "amount", "INVOICE"),
        (2, "status", "INVOICE"),
    ]
    assert all("in_collection" in r["reason"] for r in got)
    after = items(collecting)
    for number in ("F1001", "F1002"):
        assert after[number] == before[number]
    assert after["F1010"]["amount"] == 155_000
    assert query(
        collecting, "SELECT rejected_count FROM billing_extract WHERE extract_id = 'BILL_20261126_01'"
    ) == [{"rejected_count": 2}]


def test_an_unchanged_item_in_collection_sent_again_is_not_a_rejection(
    collecting: Engine, incoming: Path
) -> None:
    """Billing sends an unpaid invoice as OPEN: the same data again changes nothing and refuses nothing."""
    before = items(collecting)
    again = TinyWorld().invoice("F1001", "0000000001", 190_000, date(2026, 11, 20))
    result = load(collecting, incoming, again, NEXT)
    assert rejections(collecting, "BILL_20261126_01") == []
    assert result.rejected_rows == 0 and result.items_updated == 0
    assert items(collecting) == before


def test_payments_made_elsewhere(collecting: Engine, incoming: Path) -> None:
    w = TinyWorld()
    w.payment("F1010", "FA", "0000000002", 150_000, DAY)  # due, not collected: paid
    w.payment("R2010", "RA", "0000000002", 80_000, DAY)  # pending order: paid
    w.payment("F1001", "FA", "0000000001", 190_000, DAY)  # in collection: recorded, stays collected
    w.payment("F9999", "FA", "0000000001", 10_000, DAY)  # unknown
    w.payment("F1002", "FA", "0000000001", 100, DAY)  # another amount
    w.payment("R1001", "RA", "0000000001", 190_000, DAY)  # F1001's number as a recharge order: unknown
    result = load(collecting, incoming, w, NEXT)
    assert (result.payments, result.paid_elsewhere, result.paid_during_collection) == (6, 2, 1)
    assert result.rejected_rows == 3
    got = items(collecting)
    assert {n: (got[n]["state"], got[n]["paid_by"], got[n]["paid_on"]) for n in got} == {
        "F1001": ("in_collection", None, None),
        "F1002": ("in_collection", None, None),
        "F1010": ("paid", "COUNTER", DAY),
        "R2010": ("paid", "COUNTER", DAY),
    }
    with collecting.connect() as c:
        payments = (
            c.execute(
                select(BillingItem.number, ExternalPayment.__table__)
                .join(BillingItem, BillingItem.id == ExternalPayment.item_id)
                .order_by(BillingItem.number)
            )
            .mappings()
            .all()
        )
    assert [
        (p["number"], p["amount"], p["paid_on"], p["channel"], p["during_collection"]) for p in payments
    ] == [
        ("F1001", 190_000, DAY, "COUNTER", True),
        ("F1010", 150_000, DAY, "COUNTER", False),
        ("R2010", 80_000, DAY, "COUNTER", False),
    ]
    assert {p["extract_id"] for p in payments} == {"BILL_20261126_01"}
    refused = rejections(collecting, "BILL_20261126_01")
    assert [(r["row"], r["record"], r["field"], r["value"]) for r in refused] == [
        (4, "PAYMENT", "item_number", "F9999"),
        (5, "PAYMENT", "amount", "100"),
        (6, "PAYMENT", "item_number", "R1001"),
    ]
    assert "no such" in refused[0]["reason"] and "amount" in refused[1]["reason"]
    assert [(e[1], e[2]) for e in events(collecting, "FA:F1010")] == [
        ("loaded", "billing.load"),
        ("paid", "billing.load"),
    ]
    assert [e[1] for e in events(collecting, "RA:R2010")] == ["loaded", "paid"]
    assert [e[1] for e in events(collecting, "FA:F1001")] == ["loaded", "in_collection"]

    # the same payments delivered again in a later extract: nothing doubles
    before = counts(collecting)
    again = TinyWorld()
    again.payment("F1010", "FA", "0000000002", 150_000, DAY)
    again.payment("F1001", "FA", "0000000001", 190_000, DAY)
    load(collecting, incoming, again, LATER)
    after = counts(collecting)
    assert after["external_payment"] == before["external_payment"] == 3
    assert after["audit_event"] == before["audit_event"]
    assert [e[1] for e in events(collecting, "FA:F1010")] == ["loaded", "paid"]


def test_an_item_and_its_payment_in_the_same_extract(ledger_engine: Engine, incoming: Path) -> None:
    w = base_world().payment("F1001", "FA", "0000000001", 190_000, date(2026, 11, 24))
    result = load(ledger_engine, incoming, w, DAY)
    assert result.paid_elsewhere == 1
    f1001 = items(ledger_engine)["F1001"]
    assert (f1001["state"], f1001["paid_by"], f1001["paid_on"]) == ("paid", "COUNTER", date(2026, 11, 24))
    assert [e[1] for e in events(ledger_engine, "FA:F1001")] == ["loaded", "paid"]


def test_an_item_of_an_unknown_subscriber_is_rejected_and_the_rest_loads(
    ledger_engine: Engine, incoming: Path
) -> None:
    load(ledger_engine, incoming, base_world(), DAY)
    w = TinyWorld()
    w.invoice("F3001", "0000000001", 10_000, NEXT)  # known from the ledger
    w.invoice("F3002", "0000000099", 20_000, NEXT)  # known nowhere
    w.subscriber("0000000003", "Nadia Meziane")
    w.recharge("R3003", "0000000003", 30_000, NEXT)  # known from this extract
    w.recharge("R3004", "0000000098", 40_000, NEXT)  # known nowhere
    result = load(ledger_engine, incoming, w, NEXT)
    assert result.items_new == 2 and result.rejected_rows == 2
    assert {"F3001", "R3003"} <= set(items(ledger_engine)) and not {"F3002", "R3004"} & set(
        items(ledger_engine)
    )
    assert rejections(ledger_engine, "BILL_20261126_01") == [
        {
            "row": 2,
            "record": "INVOICE",
            "field": "subscriber_number",
            "value": "0000000099",
            "reason": "unknown subscriber",
        },
        {
            "row": 5,
            "record": "RECHARGE",
            "field": "subscriber_number",
            "value": "0000000098",
            "reason": "unknown subscriber",
        },
    ]


def test_rows_refused_by_the_check_are_kept_with_their_reason_and_the_rest_loads(
    ledger_engine: Engine, incoming: Path
) -> None:
    w = TinyWorld()
    w.subscriber("0000000001", "Mohamed Benali")
    w.rows.append("INVOICE,0000000001,,F4001,,12.5,2026-11-01,2026-11-20,OPEN,,")  # row 2: decimals
    w.invoice("F4002", "0000000001", 30_000, DAY)  # row 3
    w.rows.append("INVOICE,0000000001,,F4003,,40000,2026-11-01,2026-11-20,PAID,,")  # row 4: bad status
    w.recharge("R4004", "0000000001", 50_000, DAY)  # row 5
    result = load(ledger_engine, incoming, w, DAY)
    assert result.rejected_rows == 2 and result.items_new == 2
    assert set(items(ledger_engine)) == {"F4002", "R4004"}
    got = rejections(ledger_engine, "BILL_20261125_01")
    assert [(r["row"], r["record"], r["field"], r["value"]) for r in got] == [
        (2, "INVOICE", "amount", "12.5"),
        (4, "INVOICE", "status", "PAID"),
    ]
    assert all(r["reason"] for r in got)
    assert query(ledger_engine, "SELECT row_count, rejected_count FROM billing_extract") == [
        {"row_count": 5, "rejected_count": 2}
    ]


def test_audit_trail_of_a_load(ledger_engine: Engine, incoming: Path) -> None:
    load(ledger_engine, incoming, base_world(), DAY)
    loaded = query(
        ledger_engine,
        "SELECT entity_key, from_state, actor FROM audit_event WHERE entity = 'item' AND to_state = 'loaded'",
    )
    assert sorted(e["entity_key"] for e in loaded) == [
        "FA:F1001",
        "FA:F1002",
        "FA:F1003",
        "RA:R2001",
        "RA:R2002",
        "RA:R2003",
    ]
    assert {(e["from_state"], e["actor"]) for e in loaded} == {(None, "billing.load")}
    # a second extract: only its new item is "loaded"; the payment is "paid"
    w = TinyWorld().invoice("F1004", "0000000002", 5_000, NEXT)
    w.payment("F1001", "FA", "0000000001", 190_000, NEXT)
    load(ledger_engine, incoming, w, NEXT)
    new_events = query(
        ledger_engine,
        "SELECT entity_key, to_state, reason FROM audit_event WHERE entity = 'item' AND to_state <> 'loaded' "
        "OR entity_key = 'FA:F1004' ORDER BY id",
    )
    assert [(e["entity_key"], e["to_state"]) for e in new_events] == [
        ("FA:F1004", "loaded"),
        ("FA:F1001", "paid"),
    ]
    assert new_events[1]["reason"] == "paid elsewhere"


def test_an_extract_older_than_one_already_loaded_is_refused(ledger_engine: Engine, incoming: Path) -> None:
    """A late extract could re-open what a newer one cancelled: refused whole, nothing loaded."""
    newer = TinyWorld().subscriber("0000000001", "Amina Kaci")
    newer.invoice("F1", "0000000001", 10_000, DAY, status="CANCELLED")
    load(ledger_engine, incoming, newer, NEXT)
    older = TinyWorld().subscriber("0000000001", "Amina Kaci").invoice("F1", "0000000001", 10_000, DAY)
    with pytest.raises(ExtractConflictError, match="older than"):
        load(ledger_engine, incoming, older, DAY)
    assert items(ledger_engine)["F1"]["state"] == "cancelled"
