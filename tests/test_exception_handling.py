"""Exceptions belong to the business day being run (issue #14, item 4): a file quarantined while a past
day is run again is on that day's list, whatever the clock says."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from epay import jobs
from epay.calendar import BusinessCalendar
from epay.inbound.receive import receive_file
from epay.settings import Settings
from tests.conftest import at_night
from tests.test_audit_trail import epay

TUE, WED, MON = date(2026, 11, 24), date(2026, 11, 25), date(2026, 12, 7)


@pytest.fixture
def cli_env(ledger_settings: Settings, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EPAY_HOME", str(ledger_settings.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", ledger_url)
    monkeypatch.delenv("EPAY_CONFIG", raising=False)
    return ledger_settings


def test_a_file_quarantined_while_a_past_day_runs_again_is_on_that_days_list(
    ledger_engine: Engine, cli_env: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    at_night(MON, 10)  # twelve days later: Wednesday 25 November is run again
    forged = tmp_path / "ACK_PRLV_100237_20261125_01.txt"
    forged.write_text("forged\n", encoding="utf-8")
    assert receive_file(ledger_engine, cli_env, forged, calendar, WED).outcome == "quarantined"
    broken = tmp_path / "BILL_20261125_02.csv"
    broken.write_text("this is not a billing extract\n", encoding="utf-8")
    [loaded] = jobs.load_extracts(cli_env, [broken], WED)
    assert loaded.quarantined

    shown = epay("exceptions", "--date", "2026-11-25", "--json")
    assert shown.exit_code == 1, shown.output
    listed = {(q["folder"], q["name"]): q for q in json.loads(shown.output)["quarantined_files"]}
    assert set(listed) == {("inbound", forged.name), ("billing", broken.name)}
    for entry in listed.values():
        assert entry["business_date"] == entry["quarantined_on"] == "2026-11-25"
        assert entry["quarantined_at"].startswith("2026-12-07T")  # when, by epay's clock
        assert entry["reference"].startswith("QF-") and len(entry["reference"]) == 13
    assert json.loads(epay("exceptions", "--date", "2026-11-24", "--json").output)["empty"] is True
    text = epay("exceptions", "--date", "2026-11-25")
    assert text.exit_code == 1 and f"inbound {forged.name}" in text.output
    assert f"billing {broken.name}" in text.output
    kept = (cli_env.quarantine_dir / "inbound" / f"{forged.name}.reason.txt").read_text(encoding="utf-8")
    assert kept.startswith("business date: 2026-11-25\nsha256: ")
    # the reference is the same from one list to the next, and on the days after
    again = json.loads(epay("exceptions", "--date", "2026-12-07", "--json").output)
    assert {q["reference"] for q in again["quarantined_files"]} == {q["reference"] for q in listed.values()}


def test_a_reasons_file_without_a_business_date_is_dated_by_its_time(tmp_path: Path) -> None:
    """Reasons files written before the business date was recorded: dated by their time in Algiers."""
    import os

    from epay.reports.exceptions import quarantined_files
    from epay.settings import ALGIERS

    folder = tmp_path / "quarantine" / "inbound"
    folder.mkdir(parents=True)
    (folder / "RETR_100237_20261126_01.txt").write_bytes(b"old\n")
    reasons = folder / "RETR_100237_20261126_01.txt.reason.txt"
    reasons.write_text("FF01 line 1: record length 4\n", encoding="utf-8")
    from datetime import datetime

    stamp = datetime(2026, 11, 26, 23, 30, tzinfo=ALGIERS).timestamp()  # 22:30 UTC, Thursday in Algiers
    os.utime(reasons, (stamp, stamp))
    [old] = quarantined_files(tmp_path / "quarantine")
    assert old.business_date == date(2026, 11, 26) and old.reasons == ("FF01 line 1: record length 4",)
    assert old.reference.startswith("QF-")
