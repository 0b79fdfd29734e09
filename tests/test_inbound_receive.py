"""Files from the simulated post office received end to end, on SQLite and PostgreSQL: each applied once,
re-deliveries harmless, corrupt or conflicting files quarantined without touching the ledger."""

from __future__ import annotations

import shutil
from datetime import date, datetime, time
from pathlib import Path

from sqlalchemy import Engine, text

from epay.calendar import BusinessCalendar
from epay.inbound.receive import receive_file
from epay.outbound.build import BuildPolicy, build_outbound
from epay.poste.office import PostOffice
from epay.poste.scenario import load_scenario
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings
from tests.conftest import at_night

DAY = date(2026, 11, 25)


def scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as c:
        return c.execute(text(sql)).scalar_one()


def download(office: PostOffice, settings: Settings, name: str, folder: Path) -> Path:
    """What the SFTP download does: a local copy of a file in the creditor's outbound/."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copyfile(office.home(settings.creditor_id) / "outbound" / name, target)
    return target


def test_a_day_of_returns_applied_once_each(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    settings = ledger_settings
    install_sample(settings, 300, 7, DAY, calendar)
    built = build_outbound(ledger_engine, settings, DAY, calendar, BuildPolicy())
    office = PostOffice(
        settings.poste_dir,
        settings.poste_url,
        calendar=calendar,
        scenario=load_scenario(settings.poste_scenario_file),
    )
    inbound = office.home(settings.creditor_id) / "inbound"
    acks = []
    for f in built.files:
        shutil.copyfile(f.path, inbound / f.name)
        acks.append(
            office.acknowledge(
                settings.creditor_id, inbound / f.name, datetime.combine(DAY, time(20, 5), tzinfo=ALGIERS)
            )
        )
    local = tmp_path / "downloaded"
    for name in acks:
        assert name is not None
        got = receive_file(ledger_engine, settings, download(office, settings, name, local), calendar, DAY)
        assert got.outcome == "applied", got.detail
    assert scalar(ledger_engine, "SELECT count(*) FROM instruction WHERE state <> 'presented'") == 0

    settles = calendar.next_business_day(DAY)
    published = []
    for day in (settles, calendar.add_business_days(settles, 1), calendar.add_business_days(settles, 2)):
        published += office.tick(day).published
    at_night(calendar.add_business_days(settles, 2), 23)  # received once the post office published them
    assert {n.split("_")[0] for n in published} >= {"RETR", "RELV"}
    for name in published:
        got = receive_file(ledger_engine, settings, download(office, settings, name, local), calendar, DAY)
        assert got.outcome == "applied", (name, got.detail)
    assert (
        scalar(ledger_engine, "SELECT count(*) FROM instruction WHERE state NOT IN ('settled', 'rejected')")
        == 0
    )
    assert scalar(ledger_engine, "SELECT count(*) FROM return_exception") == 0
    # money settled in the ledger = what the RELV statements credited
    settled = scalar(ledger_engine, "SELECT sum(amount) FROM instruction WHERE state = 'settled'")
    credited = scalar(ledger_engine, "SELECT sum(amount) FROM exchange_file WHERE kind = 'RELV'")
    assert settled == credited

    # the same RETR delivered twice: nothing changes
    retr = next(n for n in published if n.startswith("RETR_"))
    before = scalar(ledger_engine, "SELECT count(*) FROM audit_event")
    again = receive_file(
        ledger_engine, settings, download(office, settings, retr, tmp_path / "again"), calendar, DAY
    )
    assert again.outcome == "repeat" and scalar(ledger_engine, "SELECT count(*) FROM audit_event") == before

    # the same name with other bytes: an incident, quarantined, nothing applied
    other = tmp_path / "other" / retr
    other.parent.mkdir()
    other.write_bytes((local / retr).read_bytes().replace(b"ACSC", b"RJCT", 1))
    bad = receive_file(ledger_engine, settings, other, calendar, DAY)
    assert bad.outcome == "quarantined"
    assert scalar(ledger_engine, "SELECT count(*) FROM audit_event") == before
    assert (settings.quarantine_dir / "inbound" / (retr + ".reason.txt")).exists()


def test_a_corrupt_file_is_quarantined_with_its_reasons(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    broken = tmp_path / "RETR_100237_20261126_01.txt"
    broken.write_bytes(b"01RETR" + b"x" * 20 + b"\n")
    got = receive_file(ledger_engine, ledger_settings, broken, calendar, DAY)
    assert got.outcome == "quarantined" and got.kind == "RETR"
    reasons = (ledger_settings.quarantine_dir / "inbound" / (broken.name + ".reason.txt")).read_text()
    assert "FF01" in reasons
    assert not broken.exists()
    assert scalar(ledger_engine, "SELECT count(*) FROM exchange_file") == 0
    stranger = tmp_path / "notes.txt"
    stranger.write_text("hello")
    assert receive_file(ledger_engine, ledger_settings, stranger, calendar, DAY).outcome == "quarantined"
