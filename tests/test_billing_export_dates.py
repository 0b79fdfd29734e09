"""``epay billing export --date D`` refuses a date that cannot be right (issue #14, item 6): a day
outside the calendar (the issue's 1900-01-01), in the future by epay's clock, a weekend day, or before the
latest export. One line on stderr, exit status 2, nothing written, nothing marked exported — the next
correctly dated export reports every change."""

from __future__ import annotations

import csv
from datetime import date

import pytest
from sqlalchemy import Engine, text

from epay.ledger import audit
from epay.ledger.db import transaction
from epay.settings import Settings
from tests.conftest import at_night
from tests.ledger_helpers import TinyWorld
from tests.test_audit_trail import epay

WED = date(2026, 11, 25)


@pytest.fixture
def cli_env(ledger_settings: Settings, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EPAY_HOME", str(ledger_settings.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", ledger_url)
    monkeypatch.delenv("EPAY_CONFIG", raising=False)
    return ledger_settings


def exports(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT name FROM status_export ORDER BY name")).scalars())


def test_an_implausible_export_date_is_refused_and_nothing_is_lost(
    ledger_engine: Engine, cli_env: Settings
) -> None:
    w = TinyWorld().subscriber("0000000001", "Mohamed Benali")
    w.invoice("F1", "0000000001", 1_000, WED).invoice("F2", "0000000001", 2_000, WED)
    w.load(ledger_engine, cli_env.billing_incoming_dir, WED)
    with transaction(ledger_engine) as connection:  # a payment status changed on Wednesday
        connection.execute(text("UPDATE billing_item SET state = 'paid' WHERE number = 'F1'"))
        audit.record(connection, "item", "FA:F1", "paid", actor="test", business_date=WED)
    outgoing = cli_env.billing_outgoing_dir

    for day, why in (
        ("1900-01-01", "1900-01-01"),  # the case
        ("2026-11-26", "in the future"),  # the clock reads Wednesday 20:00
        ("2026-11-27", "in the future"),
    ):
        refused = epay("billing", "export", "--date", day)
        assert refused.exit_code == 2, refused.output
        assert why in refused.output and "Traceback" not in refused.output
        assert len(refused.output.strip().splitlines()) == 1 or refused.output.startswith("Usage:")
    at_night(date(2026, 11, 29))  # Sunday evening
    weekend = epay("billing", "export", "--date", "2026-11-27")  # Friday: no night, no export
    assert weekend.exit_code == 2 and "not a business day" in weekend.output
    assert len(weekend.output.strip().splitlines()) == 1
    assert exports(ledger_engine) == [] and not list(outgoing.glob("STATUS_*"))

    made = epay("billing", "export", "--date", "2026-11-26")  # Thursday's night, run on Sunday
    assert made.exit_code == 0, made.output
    with (outgoing / "STATUS_20261126.csv").open(encoding="utf-8") as handle:
        assert [(r["item_number"], r["state"]) for r in csv.DictReader(handle)] == [("F1", "paid")]
    earlier = epay("billing", "export", "--date", "2026-11-25")  # before the latest export
    assert earlier.exit_code == 2 and "STATUS_20261126.csv" in earlier.output
    assert len(earlier.output.strip().splitlines()) == 1
    assert exports(ledger_engine) == ["STATUS_20261126.csv"]
    again = epay("billing", "export", "--date", "2026-11-26")  # a re-run: the same file
    assert again.exit_code == 0 and again.output.strip().endswith("STATUS_20261126.csv")
