"""Refunds owed are closed by finance (issue #14, item 4): ``epay refunds`` lists each with its reference,
``epay refunds mark`` records one paid back (who, why, the transfer), and every list — refunds, the
exceptions list, ``epay status`` — then shows it refunded, no longer owed."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import Engine, text

from epay.billing.extract import check_extract
from epay.calendar import BusinessCalendar
from epay.ledger.billing_load import load_extract
from epay.outbound.build import BuildPolicy, build_outbound
from epay.settings import Settings
from tests.conftest import at_night
from tests.ledger_helpers import TinyWorld
from tests.test_audit_trail import epay

DAY, NEXT = date(2026, 11, 25), date(2026, 11, 26)


@pytest.fixture
def cli_env(ledger_settings: Settings, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EPAY_HOME", str(ledger_settings.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", ledger_url)
    monkeypatch.delenv("EPAY_CONFIG", raising=False)
    return ledger_settings


def paid_twice(engine: Engine, settings: Settings, calendar: BusinessCalendar) -> str:
    """F1 paid at a counter on Thursday while its debit was in flight, then debited too: a refund owed.
    Returns the debit's reference."""
    w = TinyWorld().subscriber("0000000001", "Amina Kaci").mandate("M1", "0000000001", 1001)
    w.invoice("F1", "0000000001", 150_000, DAY).invoice("F2", "0000000001", 90_000, DAY)
    w.load(engine, settings.billing_incoming_dir, DAY)
    build_outbound(engine, settings, DAY, calendar, BuildPolicy())
    with engine.begin() as c:
        c.execute(text("UPDATE instruction SET state = 'presented'"))
    TinyWorld().payment("F1", "FA", "0000000001", 150_000, NEXT).write(settings.billing_incoming_dir, NEXT)
    loaded = load_extract(engine, check_extract(settings.billing_incoming_dir / "BILL_20261126_01.csv"))
    assert loaded.paid_during_collection == 1
    with engine.begin() as c:  # the post office debited both (what the RETR of Thursday applies)
        c.execute(text("UPDATE instruction SET state = 'settled', status_date = :d"), {"d": NEXT})
        return str(c.execute(text("SELECT reference FROM instruction WHERE item_number = 'F1'")).scalar_one())


def test_finance_marks_a_refund_refunded_and_every_list_shows_it(
    ledger_engine: Engine, cli_env: Settings, calendar: BusinessCalendar
) -> None:
    debit = paid_twice(ledger_engine, cli_env, calendar)
    at_night(NEXT, 23)

    owed = json.loads(epay("refunds", "--json").output)
    assert owed["owed"] == {"count": 1, "amount": 150_000} and owed["refunded"]["count"] == 0
    [refund] = owed["refunds"]
    assert (refund["item_number"], refund["channel"], refund["debit_reference"], refund["state"]) == (
        "F1",
        "COUNTER",
        debit,
        "owed",
    )
    ref = refund["reference"]
    assert ref.startswith("RF-")
    listed = json.loads(epay("exceptions", "--date", "2026-11-26", "--json").output)
    assert [r["reference"] for r in listed["refunds_owed"]] == [ref]
    assert listed["refunds_outstanding"] == {"count": 1, "amount": 150_000}

    # a refund is closed by finance's command, not as a data engineer's exception
    wrong = epay(
        "exceptions", "handle", "--date", "2026-11-26", "--ref", ref, "--by", "amina.dataeng", "--note", "x"
    )
    assert wrong.exit_code == 2 and f"epay refunds mark --ref {ref}" in wrong.output
    unknown = epay("refunds", "mark", "--ref", "RF-999", "--by", "karim.finance", "--note", "paid back")
    assert unknown.exit_code == 2 and "no refund owed RF-999" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1
    empty = epay("refunds", "mark", "--ref", ref, "--by", "karim.finance", "--note", "")
    assert empty.exit_code == 2

    done = epay(
        "refunds",
        "mark",
        *("--ref", ref, "--by", "karim.finance", "--note", "paid back to the CCP account"),
        *("--transfer-reference", "VIR20261207-0017"),
    )
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (
        f"refunded {ref} by karim.finance, transfer VIR20261207-0017: paid back to the CCP account"
    )
    twice = epay("refunds", "mark", "--ref", ref, "--by", "someone", "--note", "again")
    assert twice.exit_code == 2 and "already refunded by karim.finance" in twice.output

    after = json.loads(epay("refunds", "--json").output)
    assert after["owed"]["count"] == 0 and after["refunded"] == {"count": 1, "amount": 150_000}
    [closed] = after["refunds"]
    assert closed["state"] == "refunded" and closed["refunded"]["transfer_reference"] == "VIR20261207-0017"
    assert json.loads(epay("refunds", "--open", "--json").output)["refunds"] == []
    text_list = epay("refunds")
    assert text_list.exit_code == 0 and "refunds still owed: 0" in text_list.output
    assert "refunded, marked by karim.finance" in text_list.output and ref in text_list.output
    exceptions = json.loads(epay("exceptions", "--date", "2026-11-26", "--json").output)
    assert exceptions["refunds_outstanding"]["count"] == 0 and exceptions["counts"]["refunds_owed"] == 0
    assert exceptions["refunds_owed"][0]["handled"]["action"] == "refunded"
    status = json.loads(epay("status", "--date", "2026-11-25", "--json").output)
    assert status["refunds_owed"]["count"] == 0 and status["refunds_refunded"]["count"] == 1
    with ledger_engine.connect() as c:
        [event] = c.execute(
            text("SELECT entity_key, to_state FROM audit_event WHERE entity = 'refund'")
        ).all()
    assert tuple(event) == (ref, "refunded")
