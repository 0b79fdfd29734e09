"""Exceptions belong to the business day being run (issue #14, item 4): a file quarantined while a past
day is run again is on that day's list, whatever the clock says."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text

from epay import jobs
from epay.calendar import BusinessCalendar
from epay.inbound.receive import receive_file
from epay.ledger.db import transaction
from epay.settings import Settings
from tests.conftest import at_night
from tests.test_audit_trail import epay

TUE, WED, THU, MON = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26), date(2026, 12, 7)


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


# --- marking exceptions handled -------------------------------------------------------------------------


def handled_rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as connection:
        return [
            dict(r)
            for r in connection.execute(
                text(
                    "SELECT reference, category, action, handled_by, note FROM exception_handling ORDER BY 1"
                )
            ).mappings()
        ]


def ghost_return(engine: Engine, settings: Settings, day: date, lines: int) -> list[str]:
    """A RETR applied on ``day`` whose ``lines`` records name references never sent: return exceptions."""
    from epay.inbound.files import register_inbound
    from epay.ledger.models import ReturnException

    retr = settings.home / "files" / "inbound" / f"RETR_100237_{day:%Y%m%d}_01.txt"
    retr.parent.mkdir(parents=True, exist_ok=True)
    retr.write_text("as received\n", encoding="utf-8")
    with transaction(engine) as connection:
        file_id = register_inbound(
            connection, retr, kind="RETR", home=settings.home, business_date=day, detail_count=lines, amount=0
        )
        for line in range(2, 2 + lines):
            connection.execute(
                insert(ReturnException).values(
                    file_id=file_id,
                    line=line,
                    reference=f"E20261125019999999999{line:03d}",
                    kind="unknown_reference",
                    detail="no instruction sent with this reference",
                    business_date=day,
                )
            )
    return [retr.name]


def test_each_exception_is_handled_once_with_who_and_why(
    ledger_engine: Engine, cli_env: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    at_night(THU, 21)
    forged = tmp_path / "ACK_PRLV_100237_20261125_01.txt"
    forged.write_text("forged\n", encoding="utf-8")
    assert receive_file(ledger_engine, cli_env, forged, calendar, THU).outcome == "quarantined"
    [retr] = ghost_return(ledger_engine, cli_env, THU, 2)

    first = epay("exceptions", "--date", "2026-11-26", "--json")
    assert first.exit_code == 1, first.output
    listed = json.loads(first.output)
    assert listed["counts"]["quarantined_files"] == 1 and listed["counts"]["return_exceptions"] == 2
    [quarantined] = listed["quarantined_files"]
    ghosts = listed["return_exceptions"]
    assert [(g["file"], g["line"], g["kind"]) for g in ghosts] == [
        (retr, 2, "unknown_reference"),
        (retr, 3, "unknown_reference"),
    ]
    assert all(g["reference"].startswith("RX-") and g["handled"] is None for g in ghosts)
    shown = epay("exceptions", "--date", "2026-11-26")
    for entry in (quarantined, *ghosts):
        assert entry["reference"] in shown.output  # the text shows each reference, to copy
    quarantined_ref, ghost_refs = quarantined["reference"], [g["reference"] for g in ghosts]

    # refused, nothing recorded: unknown, empty or padded name or note
    for args, why in (
        (("--ref", "QF-0000000000", "--by", "amina.dataeng", "--note", "x"), "no exception QF-0000000000"),
        (("--ref", quarantined_ref, "--by", "", "--note", "forged"), "--by"),
        (("--ref", quarantined_ref, "--by", "amina.dataeng", "--note", "  "), "--note"),
        (("--ref", quarantined_ref, "--ref", "RX-999", "--by", "amina.dataeng", "--note", "x"), "RX-999"),
    ):
        refused = epay("exceptions", "handle", "--date", "2026-11-26", *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert why in refused.output and "Traceback" not in refused.output
    assert handled_rows(ledger_engine) == []

    done = epay(
        "exceptions",
        "handle",
        "--date",
        "2026-11-26",
        "--ref",
        quarantined_ref,
        "--by",
        "amina.dataeng",
        "--note",
        "forged ACK; AP asked to publish the genuine one",
    )
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (
        f"handled {quarantined_ref} (quarantined files) by amina.dataeng: "
        "forged ACK; AP asked to publish the genuine one"
    )
    again = epay(
        "exceptions", "handle", "--date", "2026-11-26", "--ref", quarantined_ref, "--by", "x", "--note", "y"
    )
    assert again.exit_code == 2 and "already handled by amina.dataeng" in again.output
    assert len(again.output.strip().splitlines()) == 1

    after = json.loads(epay("exceptions", "--date", "2026-11-26", "--json").output)
    assert after["counts"]["quarantined_files"] == 0 and after["handled_counts"]["quarantined_files"] == 1
    [flagged] = after["quarantined_files"]
    assert flagged["reference"] == quarantined_ref and flagged["name"] == forged.name
    assert (flagged["handled"]["by"], flagged["handled"]["action"]) == ("amina.dataeng", "handled")
    only_open = json.loads(epay("exceptions", "--date", "2026-11-26", "--open", "--json").output)
    assert only_open["quarantined_files"] == [] and len(only_open["return_exceptions"]) == 2
    # still listed on the days after while it is in quarantine, as handled
    at_night(date(2026, 11, 29))
    later = json.loads(epay("exceptions", "--date", "2026-11-29", "--json").output)
    assert later["quarantined_files"][0]["handled"]["note"].startswith("forged ACK")

    both = epay(
        "exceptions",
        "handle",
        "--date",
        "2026-11-26",
        *("--ref", ghost_refs[0], "--ref", ghost_refs[1]),
        *("--by", "amina.dataeng", "--note", "AP confirmed: test records from their side"),
    )
    assert both.exit_code == 0 and both.output.count("(return exceptions)") == 2
    closed = epay("exceptions", "--date", "2026-11-26")
    assert closed.exit_code == 0, closed.output  # nothing open: no alert
    assert "none open (3 handled)" in closed.output.splitlines()[0]
    assert f"{quarantined_ref} inbound {forged.name}" in closed.output
    assert "handled by amina.dataeng" in closed.output
    assert [(r["reference"], r["category"]) for r in handled_rows(ledger_engine)] == sorted(
        [(quarantined_ref, "quarantined_files"), *((g, "return_exceptions") for g in ghost_refs)]
    )
    with ledger_engine.connect() as connection:
        events = connection.execute(
            text(
                "SELECT entity_key, to_state, reason FROM audit_event WHERE entity = 'exception' ORDER BY id"
            )
        ).all()
    assert (events[0][0], events[0][1]) == (quarantined_ref, "handled")
    assert "by amina.dataeng: forged ACK" in events[0][2] and len(events) == 3


def test_a_day_not_begun_has_no_exceptions_to_list_or_handle(cli_env: Settings) -> None:
    """With epay's clock on Wednesday 25 November, the list of 31 December would show statements "missing"
    and returns "overdue" that are not due yet, and handling them would close them before they exist."""
    at_night(WED)
    for args in (
        ("exceptions", "--date", "2026-12-31"),
        (
            "exceptions",
            "handle",
            "--date",
            "2026-12-31",
            "--ref",
            "RM-ed1c35150a",
            "--by",
            "A",
            "--note",
            "B",
        ),
    ):
        shown = epay(*args)
        assert shown.exit_code == 2, shown.output
        assert "2026-12-31 is after today (2026-11-25 by epay's clock" in shown.output


def test_a_bad_extract_given_from_outside_the_incoming_folder_is_copied_not_taken(
    cli_env: Settings, tmp_path: Path
) -> None:
    """`epay billing load ~/notes.csv` quarantines a copy: the file stays in its owner's folder (found by
    the hostile review: a project's pyproject.toml was moved away so)."""
    notes = tmp_path / "elsewhere" / "notes.csv"
    notes.parent.mkdir()
    notes.write_text("not an extract\n", encoding="utf-8")
    [outcome] = jobs.load_extracts(cli_env, [notes], WED)
    assert outcome.quarantined and notes.read_text(encoding="utf-8") == "not an extract\n"
    kept = cli_env.quarantine_dir / "billing" / notes.name
    assert kept.read_text(encoding="utf-8") == "not an extract\n"
    assert sorted(p.name for p in kept.parent.iterdir()) == ["notes.csv", "notes.csv.reason.txt"]
    incoming = cli_env.billing_incoming_dir
    incoming.mkdir(parents=True, exist_ok=True)
    (incoming / "BILL_20261125_09.csv").write_text("broken\n", encoding="utf-8")
    [moved] = jobs.load_extracts(cli_env, [incoming / "BILL_20261125_09.csv"], WED)
    assert moved.quarantined and not (incoming / "BILL_20261125_09.csv").exists()  # epay's own: moved
