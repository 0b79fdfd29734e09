"""A publication is all or nothing: the database row and the visible file go together, even across a crash."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

import epay.poste.office as office_module
from epay.formats import synthetic as synth
from epay.formats import write_file
from epay.formats.rip import rip_from_account
from epay.poste.office import PostOffice
from epay.poste.state import PublishedFile

CREATED, SETTLES = date(2026, 11, 25), date(2026, 11, 26)


def world(tmp_path: Path) -> PostOffice:
    office = PostOffice(tmp_path / "poste")
    office.add_creditor("100237", synth.CREDITOR_NAME, synth.CREDITOR_RIP)
    details = synth.prlv_details(12, seed=8)
    rips = details.column("debtor_rip").to_pylist()
    office.add_accounts(
        pd.DataFrame({"rip": rips, "holder": "X", "balance": 10**9, "status": "open", "deceased": False})
    )
    office.add_mandates(
        pd.DataFrame(
            {
                "reference": details.column("mandate_reference").to_pylist(),
                "creditor_id": "100237",
                "rip": rips,
                "debtor_name": "X",
                "subscriber_number": "1",
                "ceiling": 0,
                "effective_date": date(2026, 1, 1),
            }
        ),
        day=date(2026, 1, 1),
        report=False,
    )
    inbound = office.home("100237") / "inbound"
    write_file(
        inbound / "PRLV_100237_20261125_01.txt",
        "PRLV",
        synth.standard_header("PRLV", CREATED, SETTLES),
        details,
    )
    return office


def visible(office: PostOffice) -> list[str]:
    return sorted(
        p.name for p in (office.home("100237") / "outbound").iterdir() if not p.name.endswith(".part")
    )


def recorded(office: PostOffice) -> list[str]:
    with office.sessions() as session:
        return sorted(session.scalars(office_module.select(PublishedFile.name)))


def test_a_failure_inside_the_day_publishes_nothing_and_a_rerun_publishes_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = world(tmp_path)
    office.tick(CREATED)
    before = visible(office)

    def broken(*_: object) -> list[str]:
        raise RuntimeError("crash while publishing the statement")

    monkeypatch.setattr(office, "_publish_statement", broken)
    with pytest.raises(RuntimeError):
        office.tick(SETTLES)
    assert visible(office) == before == recorded(office)  # the RETR staged before the crash is gone
    assert not [p for p in (office.home("100237") / "outbound").iterdir() if p.name.endswith(".part")]
    monkeypatch.undo()
    result = office.tick(SETTLES)
    assert result.published == ["RETR_100237_20261126_01.txt", "RELV_100237_20261126_01.txt"]
    assert visible(office) == recorded(office)


def test_a_crash_between_commit_and_rename_is_repaired_on_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = world(tmp_path)
    office.tick(CREATED)

    def crash_after_commit(staging: Path, final: Path) -> None:
        raise SystemExit("process killed after the commit, before the renames")

    monkeypatch.setattr(office, "_reveal", crash_after_commit)
    with pytest.raises(SystemExit):
        office.tick(SETTLES)
    monkeypatch.undo()
    assert "RETR_100237_20261126_01.txt" in recorded(office)
    assert "RETR_100237_20261126_01.txt" not in visible(office)  # committed, not yet visible
    again = office.tick(SETTLES)  # the next run finishes the renames, publishes nothing new
    assert again.published == []
    assert visible(office) == recorded(office)


def test_same_name_other_bytes_is_an_incident_not_a_second_ack(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    office = world(tmp_path)
    office.tick(CREATED)
    path = office.home("100237") / "inbound" / "PRLV_100237_20261125_01.txt"
    path.write_bytes(path.read_bytes().replace(b"ALGERIE TELECOM", b"ALGERIE TELECOX", 1))
    assert office.acknowledge("100237", path, office_module.datetime.now(office_module.ALGIERS)) is None
    assert "INCIDENT" in caplog.text
    assert visible(office).count("ACK_PRLV_100237_20261125_01.txt") == 1


def test_one_creditors_failure_does_not_hold_back_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    office = world(tmp_path)
    office.add_creditor("100238", "OTHER", rip_from_account(777))
    real_run = office._run_day

    def failing_for_100237(creditor_id: str, day: date) -> list[str]:
        if creditor_id == "100237":
            raise RuntimeError("broken day")
        return real_run(creditor_id, day)

    monkeypatch.setattr(office, "_run_day", failing_for_100237)
    with pytest.raises(RuntimeError):
        office.tick(CREATED)
    other = sorted(p.name for p in (office.home("100238") / "outbound").iterdir())
    assert other == ["RELV_100238_20261125_01.txt"]  # the other creditor's day still ran
