"""The nightly jobs (`epay/jobs.py`) and the operator's commands (`epay db|billing|outbound|sample`):
which extracts are picked, quarantine, the status export, and the CLI end to end on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from epay import jobs
from epay.billing.status_export import StatusExportIncidentError
from epay.ledger.db import alembic_config, open_ledger
from epay.quarantine import read_reasons
from epay.settings import Settings, get_settings
from tests.conftest import at_night
from tests.ledger_helpers import COLUMNS, TinyWorld

DAY = date(2026, 11, 25)  # Wednesday
HEADER = "business_date,kind,item_number,subscriber_number,amount,state,tries,last_reason,paid_by,paid_on\n"


def touch(folder: Path, name: str, content: str = COLUMNS + "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


# --- which extracts are picked -----------------------------------------------------------------------


def test_pending_extracts_are_bill_files_dated_up_to_the_day_in_name_order(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert jobs.pending_extracts(settings, DAY) == []  # no drop folder yet
    incoming = settings.billing_incoming_dir
    for name in (
        "BILL_20261125_02.parquet",
        "BILL_20261126_01.csv",  # tomorrow's: not yet
        "BILL_20261125_01.csv",
        "BILL_20261124_01.csv",
        "BILL_20261120_01.txt",  # not an extract suffix
        "README.md",
        "BILL_2026112_01.csv",  # badly named: picked, for the load to quarantine
    ):
        touch(incoming, name)
    (incoming / "BILL_20261123_01.csv").mkdir()  # a folder is not a file
    picked = jobs.pending_extracts(settings, DAY)
    assert [p.name for p in picked] == [
        "BILL_20261124_01.csv",
        "BILL_20261125_01.csv",
        "BILL_20261125_02.parquet",
        "BILL_2026112_01.csv",
    ]
    assert all(p.parent == incoming for p in picked)
    assert "BILL_20261126_01.csv" in [p.name for p in jobs.pending_extracts(settings, date(2026, 11, 26))]


# --- loading and quarantine --------------------------------------------------------------------------


def good_world() -> TinyWorld:
    w = TinyWorld().subscriber("0000000001", "Mohamed Benali")
    return w.invoice("F1001", "0000000001", 190_000, date(2026, 11, 20))


def quarantined(settings: Settings) -> dict[str, str]:
    """Quarantined file name → its reason."""
    folder = settings.quarantine_dir / "billing"
    return {
        p.name: (folder / (p.name + ".reason.txt")).read_text(encoding="utf-8")
        for p in sorted(folder.iterdir())
        if not p.name.endswith(".reason.txt")
    }


def item_numbers(settings: Settings) -> list[str]:
    engine = open_ledger(settings.ledger_url)
    try:
        with engine.connect() as c:
            return list(c.execute(text("SELECT number FROM billing_item ORDER BY number")).scalars())
    finally:
        engine.dispose()


def test_unusable_files_are_quarantined_with_their_reason_and_the_others_load(
    ledger_settings: Settings,
) -> None:
    incoming = ledger_settings.billing_incoming_dir
    good_world().write(incoming, date(2026, 11, 24))
    no_channel = COLUMNS.removesuffix(",channel")
    missing = touch(incoming, "BILL_20261125_01.csv", no_channel + "\nSUBSCRIBER,0000000002,X,,,,,,,\n")
    missing_bytes = missing.read_bytes()
    touch(incoming, "BILL_2026112_01.csv")
    touch(incoming, "BILL_20261131_01.csv")  # no such date
    outcomes = jobs.load_extracts(ledger_settings, jobs.pending_extracts(ledger_settings, DAY))
    assert [(o.file, o.loaded is not None, o.quarantined is not None) for o in outcomes] == [
        ("BILL_20261124_01.csv", True, False),
        ("BILL_20261125_01.csv", False, True),
        ("BILL_2026112_01.csv", False, True),
        ("BILL_20261131_01.csv", False, True),
    ]
    assert outcomes[0].loaded is not None and outcomes[0].loaded.items_new == 1
    assert item_numbers(ledger_settings) == ["F1001"]
    reasons = quarantined(ledger_settings)
    assert set(reasons) == {"BILL_20261125_01.csv", "BILL_2026112_01.csv", "BILL_20261131_01.csv"}
    assert "missing column(s): channel" in reasons["BILL_20261125_01.csv"]
    assert "not a billing extract name" in reasons["BILL_2026112_01.csv"]
    assert "not a date" in reasons["BILL_20261131_01.csv"]
    kept = read_reasons(reasons["BILL_20261125_01.csv"])  # the run's day, the sha256, then the reason
    assert kept.reasons == (outcomes[1].quarantined,) and kept.business_date == DAY
    assert (ledger_settings.quarantine_dir / "billing" / "BILL_20261125_01.csv").read_bytes() == missing_bytes
    assert sorted(p.name for p in incoming.iterdir()) == ["BILL_20261124_01.csv"]  # the loaded one stays
    assert outcomes[1].to_dict() == {
        "file": "BILL_20261125_01.csv",
        "loaded": None,
        "quarantined": outcomes[1].quarantined,
    }

    # a second bad file of the same name: quarantined beside the first, which is never overwritten
    touch(incoming, "BILL_20261125_01.csv", COLUMNS + ",extra\n")
    (again,) = jobs.load_extracts(ledger_settings, [incoming / "BILL_20261125_01.csv"])
    assert again.quarantined is not None and "unknown column(s): extra" in again.quarantined
    reasons = quarantined(ledger_settings)
    assert "unknown column(s): extra" in reasons["BILL_20261125_01.csv.1"]
    assert "missing column(s): channel" in reasons["BILL_20261125_01.csv"]
    assert (ledger_settings.quarantine_dir / "billing" / "BILL_20261125_01.csv").read_bytes() == missing_bytes

    # the loaded extract's id with other bytes: refused and quarantined, the ledger unchanged
    other = good_world().invoice("F1002", "0000000001", 1_000, DAY)
    other.write(incoming, date(2026, 11, 24))
    (conflict,) = jobs.load_extracts(ledger_settings, jobs.pending_extracts(ledger_settings, DAY))
    assert conflict.quarantined is not None and "other bytes" in conflict.quarantined
    assert "other bytes" in quarantined(ledger_settings)["BILL_20261124_01.csv"]
    assert item_numbers(ledger_settings) == ["F1001"]
    assert jobs.pending_extracts(ledger_settings, DAY) == []


# --- statuses back to billing ------------------------------------------------------------------------


def collecting_world() -> TinyWorld:
    w = TinyWorld()
    w.subscriber("0000000001", "Mohamed Benali").mandate("M1", "0000000001", 1001)
    w.invoice("F1001", "0000000001", 190_000, date(2026, 11, 20))
    w.invoice("F1002", "0000000001", 250_050, DAY)
    w.invoice("F1003", "0000000001", 99_900, date(2026, 11, 30))  # due on Monday
    w.recharge("R2001", "0000000001", 210_000, DAY)
    w.recharge("R2002", "0000000001", 160_000, DAY, status="PENDING")
    w.subscriber("0000000002", "Lynda Kaci")  # no mandate: due, not collected
    w.invoice("F1010", "0000000002", 150_000, DAY)
    return w


def test_export_statuses_lists_the_items_changed_that_day(ledger_settings: Settings) -> None:
    engine = open_ledger(ledger_settings.ledger_url)
    try:
        collecting_world().load(engine, ledger_settings.billing_incoming_dir, DAY)
    finally:
        engine.dispose()
    assert jobs.build(ledger_settings, DAY).instruction_count == 3
    path = jobs.export_statuses(ledger_settings, DAY)
    assert path == ledger_settings.billing_outgoing_dir / "STATUS_20261125.csv"
    first = path.read_bytes()
    assert first.decode("utf-8") == HEADER + (
        "2026-11-25,FA,F1001,0000000001,190000,in_collection,1,,,\n"
        "2026-11-25,FA,F1002,0000000001,250050,in_collection,1,,,\n"
        "2026-11-25,RA,R2001,0000000001,210000,in_collection,1,,,\n"
    )
    assert jobs.export_statuses(ledger_settings, DAY).read_bytes() == first
    assert [p.name for p in ledger_settings.billing_outgoing_dir.iterdir()] == ["STATUS_20261125.csv"]
    # a day without changes: the header only (exported on Thursday evening: never ahead of its day)
    at_night(date(2026, 11, 26))
    thursday = jobs.export_statuses(ledger_settings, date(2026, 11, 26))
    assert thursday.read_text(encoding="utf-8") == HEADER


def test_a_change_applied_after_the_days_export_goes_in_the_next_one(ledger_settings: Settings) -> None:
    """A payment reported late on Wednesday evening, after Wednesday's export, is in Thursday's export
    (reported once, never lost between two days); a registered export is never written differently."""
    engine = open_ledger(ledger_settings.ledger_url)
    try:
        collecting_world().load(engine, ledger_settings.billing_incoming_dir, DAY)
        jobs.build(ledger_settings, DAY)
        wednesday = jobs.export_statuses(ledger_settings, DAY)
        first = wednesday.read_bytes()
        assert b"F1010" not in first
        late = TinyWorld().payment("F1010", "FA", "0000000002", 150_000, DAY)  # counter, Wednesday 23:00
        late.load(engine, ledger_settings.billing_incoming_dir, DAY, sequence=2)
    finally:
        engine.dispose()
    assert jobs.export_statuses(ledger_settings, DAY).read_bytes() == first  # registered: unchanged
    at_night(date(2026, 11, 26))  # Thursday's night exports Thursday
    thursday = jobs.export_statuses(ledger_settings, date(2026, 11, 26))
    assert thursday.read_text(encoding="utf-8") == HEADER + (
        "2026-11-26,FA,F1010,0000000002,150000,paid,0,,COUNTER,2026-11-25\n"
    )
    at_night(date(2026, 11, 29))
    assert jobs.export_statuses(ledger_settings, date(2026, 11, 29)).read_text(encoding="utf-8") == HEADER
    # a registered export whose file was lost cannot be re-written differently: an incident
    thursday.unlink()
    with pytest.raises(StatusExportIncidentError, match=r"STATUS_20261126\.csv was exported"):
        jobs.export_statuses(ledger_settings, date(2026, 11, 26))


def test_export_statuses_leaves_missing_values_empty(ledger_settings: Settings) -> None:
    """On Monday F1001 comes back after an AM04 (a reason) next to F1003 presented for the first time
    (no reason): the empty cell must stay empty, whatever the other rows hold."""
    engine = open_ledger(ledger_settings.ledger_url)
    try:
        collecting_world().load(engine, ledger_settings.billing_incoming_dir, DAY)
        jobs.build(ledger_settings, DAY)
        with engine.begin() as c:  # what the returns step does with an AM04 reject on Thursday
            c.execute(
                text(
                    "UPDATE billing_item SET state = 'due', last_reason = 'AM04', "
                    "last_reason_on = :d WHERE number = 'F1001'"
                ),
                {"d": date(2026, 11, 26)},
            )
            c.execute(
                text(
                    "UPDATE instruction SET state = 'rejected', reason = 'AM04', status_date = :d "
                    "WHERE item_number = 'F1001'"
                ),
                {"d": date(2026, 11, 26)},
            )
    finally:
        engine.dispose()
    monday = date(2026, 11, 30)
    at_night(monday)
    assert jobs.build(ledger_settings, monday).instruction_count == 2
    assert jobs.export_statuses(ledger_settings, monday).read_text(encoding="utf-8") == HEADER + (
        "2026-11-30,FA,F1001,0000000001,190000,in_collection,2,AM04,,\n"
        # new rule: the first export ever covers every change since the ledger began (Wednesday's too)
        "2026-11-30,FA,F1002,0000000001,250050,in_collection,1,,,\n"
        "2026-11-30,FA,F1003,0000000001,99900,in_collection,1,,,\n"
        "2026-11-30,RA,R2001,0000000001,210000,in_collection,1,,,\n"
    )


# --- the command line, end to end --------------------------------------------------------------------


@pytest.fixture
def cli_env(ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "epay-home"
    monkeypatch.setenv("EPAY_HOME", str(home))
    monkeypatch.setenv("EPAY_DATABASE_URL", ledger_url)
    monkeypatch.delenv("EPAY_CONFIG", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def epay(*args: str) -> Result:
    from epay.cli import main

    get_settings.cache_clear()  # the settings are cached per process; each command reads them afresh
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        get_settings.cache_clear()


def test_the_nightly_commands_end_to_end(cli_env: Path, ledger_url: str) -> None:
    home = cli_env
    result = epay("sample", "--subscribers", "300", "--seed", "2", "--as-of", "2026-11-25")
    assert result.exit_code == 0, result.output
    assert "world of 300 subscribers as of 2026-11-25" in result.output
    extract = home / "billing" / "incoming" / "BILL_20261125_01.parquet"
    assert extract.is_file()
    assert (home / "poste" / "poste.sqlite3").is_file()
    for folder in ("inbound", "outbound"):
        assert (home / "poste" / "sftp" / "100237" / folder).is_dir()
    key = home / "keys" / "at_sftp_ecdsa"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    from epay.poste.sftp_server import host_key_line, load_or_create_host_key

    pinned = host_key_line(load_or_create_host_key(home / "poste" / "host_key"))
    config = (home / "epay.toml").read_text(encoding="utf-8")
    assert f'sftp_host_key = "{pinned}"' in config and f'sftp_private_key_file = "{key}"' in config
    if ledger_url.startswith("postgresql"):
        assert not (home / "epay.sqlite3").exists()  # the ledger went where EPAY_DATABASE_URL says
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.sftp_host_key == pinned and settings.ledger_url == ledger_url

    config_bytes, extract_bytes = (home / "epay.toml").read_bytes(), extract.read_bytes()
    again = epay("sample", "--subscribers", "300", "--seed", "2", "--as-of", "2026-11-25")
    assert again.exit_code == 0, again.output
    assert "already loaded" in again.output
    assert (home / "epay.toml").read_bytes() == config_bytes and extract.read_bytes() == extract_bytes

    built = epay("outbound", "build", "--date", "2026-11-25", "--json")
    assert built.exit_code == 0, built.output
    document = json.loads(built.output)
    assert document["business_date"] == "2026-11-25" and document["settlement_date"] == "2026-11-26"
    assert document["created"] is True and document["batch_state"] == "released"
    assert document["files"] and all(Path(f["path"]).is_file() for f in document["files"])
    assert sum(f["detail_count"] for f in document["files"]) == document["instruction_count"] > 0
    engine = open_ledger(ledger_url)
    try:
        with engine.connect() as c:
            registered = c.execute(text("SELECT count(*) FROM instruction")).scalar_one()
    finally:
        engine.dispose()
    assert registered == document["instruction_count"]
    rebuilt = json.loads(epay("outbound", "build", "--date", "2026-11-25", "--json").output)
    status = json.loads(epay("status", "--date", "2026-11-25", "--json").output)
    assert status["instructions"] == {
        "built": {"count": document["instruction_count"], "amount": document["amount"]}
    }
    assert status["pending"]["count"] == document["instruction_count"]
    assert [f["name"] for f in status["files"]] == [f["name"] for f in document["files"]]
    assert rebuilt["created"] is False and rebuilt["files"] == document["files"]

    friday = epay("outbound", "build", "--date", "2026-11-27")
    assert friday.exit_code == 1
    assert "not a business day" in friday.stderr and "not a business day" not in friday.stdout

    released = epay("outbound", "release", "--date", "2026-11-25", "--by", "x")
    assert released.exit_code == 0 and "nothing was held" in released.output
    unbuilt = epay("outbound", "release", "--date", "2026-11-24", "--by", "x")
    assert unbuilt.exit_code == 1 and "no batch" in unbuilt.stderr

    loaded = epay("billing", "load", "--date", "2026-11-25")
    assert loaded.exit_code == 0, loaded.output
    assert "BILL_20261125_01.parquet: already loaded" in loaded.output
    touch(home / "billing" / "incoming", "BILL_20261125_02.csv", "record\n")
    bad = epay("billing", "load", "--date", "2026-11-25")
    assert bad.exit_code == 1 and "BILL_20261125_02.csv: QUARANTINED" in bad.output
    assert (home / "quarantine" / "billing" / "BILL_20261125_02.csv.reason.txt").is_file()

    exported = epay("billing", "export", "--date", "2026-11-25")
    assert exported.exit_code == 0
    status = Path(exported.output.strip())
    assert status == home / "billing" / "outgoing" / "STATUS_20261125.csv"
    states = [line.split(",")[5] for line in status.read_text(encoding="utf-8").splitlines()[1:]]
    # what changed that day: the items now being collected, and those billing reported paid elsewhere
    assert states.count("in_collection") == document["instruction_count"]
    assert set(states) == {"in_collection", "paid"}

    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    upgraded = epay("db", "upgrade")
    assert upgraded.exit_code == 0 and upgraded.output == f"ledger at revision {head}\n"
