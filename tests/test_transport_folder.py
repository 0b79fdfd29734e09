"""The folder transport keeps the SFTP client's promises (issue #17's transport seam), and a night runs
through it with the real jobs and the simulated post office, no network."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from epay import jobs
from epay.calendar import BusinessCalendar
from epay.poste.office import PostOffice
from epay.poste.scenario import load_scenario
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings
from epay.transport import FileTransport, LocalConflictError, RemoteConflictError, TransportError
from epay.transport.folder import FolderTransport
from tests.conftest import at_night

DAY = date(2026, 11, 25)


@pytest.fixture
def account(tmp_path: Path) -> Path:
    home = tmp_path / "account"
    (home / "inbound").mkdir(parents=True)
    (home / "outbound").mkdir()
    return home


def test_an_upload_appears_complete_under_its_name_and_never_replaces_a_file(
    account: Path, tmp_path: Path
) -> None:
    arrived: list[str] = []
    transport: FileTransport = FolderTransport(account, on_upload=lambda name, path: arrived.append(name))
    local = tmp_path / "PRLV_100237_20261125_01.txt"
    local.write_bytes(b"first bytes\n")
    with transport:
        sent = transport.upload(local)
        assert (sent.name, sent.size, sent.already_there) == (local.name, 12, False)
        assert (account / "inbound" / local.name).read_bytes() == b"first bytes\n"
        assert not list((account / "inbound").glob("*.part"))
        assert transport.upload(local).already_there  # the same bytes again: a re-send, nothing changes
        local.write_bytes(b"other bytes\n")
        with pytest.raises(RemoteConflictError, match="never reused"):
            transport.upload(local)
    assert (account / "inbound" / local.name).read_bytes() == b"first bytes\n"
    assert arrived == [local.name]  # told once, when the file arrived


def test_the_listing_shows_complete_files_only(account: Path) -> None:
    outbound = account / "outbound"
    (outbound / "RETR_100237_20261126_01.txt").write_bytes(b"x" * 7)
    (outbound / "RETR_100237_20261126_02.txt.part").write_bytes(b"half")
    (outbound / "a-folder").mkdir()
    (outbound / "ACK_PRLV odd.txt").write_bytes(b"a space in its name")  # never a plain name: left out
    (outbound / ".hidden").write_bytes(b"x")
    listed = FolderTransport(account).list_files("/outbound")
    assert [(f.name, f.size) for f in listed] == [("RETR_100237_20261126_01.txt", 7)]
    assert listed[0].mtime is not None and listed[0].mtime.tzinfo is not None


def test_a_download_is_verified_and_never_replaces_a_local_file(account: Path, tmp_path: Path) -> None:
    name = "RELV_100237_20261126_01.txt"
    (account / "outbound" / name).write_bytes(b"statement\n")
    transport = FolderTransport(account)
    got = transport.download(name, tmp_path / "in")
    assert (got.path.read_bytes(), got.size) == (b"statement\n", 10)
    assert transport.download(name, tmp_path / "in").sha256 == got.sha256  # the same bytes: kept
    (account / "outbound" / name).write_bytes(b"changed!!\n")
    with pytest.raises(LocalConflictError, match="local file was kept"):
        transport.download(name, tmp_path / "in")
    assert got.path.read_bytes() == b"statement\n"
    assert not [p for p in (tmp_path / "in").iterdir() if p.name != name]  # no temporary file left


@pytest.mark.parametrize("folder", ["", "/", "/../outside", "/outbound/../..", "/missing"])
def test_a_folder_outside_the_account_is_refused(account: Path, folder: str) -> None:
    with pytest.raises(TransportError):
        FolderTransport(account).list_files(folder)


@pytest.mark.parametrize("name", ["../PRLV_100237_20261125_01.txt", "x.part", ".hidden", "a/b"])
def test_a_name_that_is_not_a_plain_file_name_is_refused(account: Path, name: str) -> None:
    with pytest.raises(TransportError, match="not a plain file name"):
        FolderTransport(account).download(name, account)


def world_on_a_folder(
    ledger_settings: Settings, calendar: BusinessCalendar, *, subscribers: int, seed: int
) -> tuple[PostOffice, Settings]:
    """A sample world, its post office, and settings that move files through the office's creditor home."""
    install_sample(ledger_settings, subscribers, seed, DAY, calendar)
    office = PostOffice(
        ledger_settings.poste_dir,
        ledger_settings.poste_url,
        calendar=calendar,
        scenario=load_scenario(ledger_settings.poste_scenario_file),
    )
    home = office.home(ledger_settings.creditor_id)
    return office, ledger_settings.model_copy(update={"transport_folder": home})


def test_a_night_runs_through_the_folder_transport(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    """Build, send, the post office's ACK and end of day, then the returns: the real jobs, no SFTP."""
    office, settings = world_on_a_folder(ledger_settings, calendar, subscribers=80, seed=3)
    at_night(DAY, 20, 5)
    jobs.build(settings, DAY)
    sent = jobs.send(settings, DAY)
    assert sent and not any(s["already_there"] for s in sent), sent
    delivered = sorted(p.name for p in (settings.transport_folder / "inbound").iterdir())  # type: ignore[operator]
    assert delivered == sorted(s["name"] for s in sent)
    office.acknowledge_pending(not_after=datetime.combine(DAY, time(20, 6), tzinfo=ALGIERS))
    assert {r["outcome"] for r in jobs.receive(settings, DAY)} == {"applied"}
    settles = calendar.next_business_day(DAY)
    received = []
    for day in (settles, calendar.add_business_days(settles, 1), calendar.add_business_days(settles, 2)):
        office.tick(day)
        at_night(day, 23, 30)
        received += jobs.receive(settings, day)
    assert {r["kind"] for r in received} >= {"RETR", "RELV"}
    assert {r["outcome"] for r in received} == {"applied"}
    with ledger_engine.connect() as c:
        states = dict(c.execute(text("SELECT state, count(*) FROM instruction GROUP BY state")).all())
    assert set(states) <= {"settled", "rejected"} and states


def test_our_name_at_ap_with_other_bytes_is_an_incident_in_the_files_trail(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    """Another file already sits under our PRLV name in AP's inbound folder: the send fails with the
    reason, nothing is replaced, and the file's audit trail keeps the incident (its later expiry at the
    cut-off does not hide it)."""
    _, settings = world_on_a_folder(ledger_settings, calendar, subscribers=30, seed=4)
    at_night(DAY, 20, 5)
    first = jobs.build(settings, DAY).files[0]
    squatter = settings.transport_folder / "inbound" / first.name  # type: ignore[operator]
    squatter.write_bytes(b"someone else's bytes\n")
    with pytest.raises(RemoteConflictError, match="never reused"):
        jobs.send(settings, DAY)
    assert squatter.read_bytes() == b"someone else's bytes\n"
    with ledger_engine.connect() as c:
        [reason] = c.execute(
            text("SELECT reason FROM audit_event WHERE entity_key = :n AND to_state = 'incident'"),
            {"n": first.name},
        ).scalars()
    assert reason.startswith("REMOTE_CONFLICT: upload " + first.name)
