"""A protected night end to end (contract §8), through the real jobs and the simulated post office's SFTP
server: build → protect → upload → AP decrypts and verifies → ACK, RETR, RELV published protected → AT
decrypts and verifies → applied. Then AP's file that fails (altered, unsigned, another key) is
quarantined with a reason naming the fingerprint, and a key rotation between two nights."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from epay import jobs
from epay.calendar import load_calendar
from epay.protection.openpgp import OpenPgp, PinnedKey, plain_name_of
from epay.sample.install import install_sample
from epay.settings import Settings
from tests.cycle_helpers import OnlinePostOffice, post_office_online
from tests.openpgp_keys import KeyWorld, install_home, kill_agent, make_key_world

WED, THU = date(2026, 11, 25), date(2026, 11, 26)


@pytest.fixture(scope="session")
def key_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyWorld]:
    yield from make_key_world(tmp_path_factory)


@pytest.fixture
def protected_settings(ledger_settings: Settings, key_world: KeyWorld, tmp_path: Path) -> Iterator[Settings]:
    at_home = install_home(key_world.at_home, tmp_path / "at-gnupg")
    settings = ledger_settings.model_copy(
        update={
            "protection": "openpgp",
            "openpgp_home": at_home,
            "openpgp_own_key": key_world.at1,
            "openpgp_poste_keys": [key_world.ap1],
        }
    )
    yield settings
    kill_agent(at_home)
    kill_agent(settings.poste_dir / "gnupg")


def _poste_agreement(settings: Settings, key_world: KeyWorld, own: list[str], at_keys: list[str]) -> None:
    from epay.poste.protection import PosteProtection

    protection = PosteProtection(settings.poste_dir)
    if not protection.home.exists():
        install_home(key_world.ap_home, protection.home)
    protection.set_own_keys(own)
    protection.set_agreement(settings.creditor_id, "openpgp", at_keys)


def _files(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as c:
        rows = c.execute(text("SELECT name, direction, state FROM exchange_file ORDER BY name")).all()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def _server(poste: OnlinePostOffice, folder: str) -> list[str]:
    return sorted(p.name for p in (poste.office.home(poste.settings.creditor_id) / folder).iterdir())


def test_a_protected_night_end_to_end(
    ledger_engine: Engine, protected_settings: Settings, key_world: KeyWorld
) -> None:
    settings = protected_settings
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 60, 3, WED, calendar)
    _poste_agreement(settings, key_world, [key_world.ap1], [key_world.at1])
    with post_office_online(settings, calendar) as poste:
        poste.business_day(WED)
        sent = _server(poste, "inbound")
        assert sent and all(name.endswith(".txt.pgp") for name in sent), sent
        prlv = plain_name_of(sent[0])
        assert prlv is not None
        files = {name: state for name, direction, state in _files(ledger_engine) if direction == "out"}
        assert files == {prlv: "accepted"}  # AP opened it, accepted it; AT opened the ACK
        local = settings.outbound_dir(WED)
        assert (local / prlv).exists() and (local / sent[0]).exists()  # plain and as exchanged
        poste.end_of_day(THU)
        published = _server(poste, "outbound")
        assert published and all(name.endswith(".txt.pgp") for name in published), published
        kinds = {name.split("_")[0] for name in published}
        assert {"ACK", "RETR", "RELV"} <= kinds
        received = {name for name, direction, _ in _files(ledger_engine) if direction == "in"}
        assert received == {plain_name_of(name) for name in published}  # every one opened and applied
        with ledger_engine.connect() as c:
            states = dict(c.execute(text("SELECT state, count(*) FROM instruction GROUP BY state")).all())
        assert set(states) <= {"settled", "rejected", "presented"} and states.get("settled", 0) > 0, states
        inbound = settings.inbound_dir(THU)
        assert any(p.name.endswith(".txt.pgp") for p in inbound.iterdir())  # kept as exchanged
        assert not (settings.quarantine_dir / "inbound").exists()
        # the same listing again: nothing new, nothing quarantined
        assert jobs.receive(poste.settings, THU) == []


def _publish_bad(poste: OnlinePostOffice, key_world: KeyWorld, name: str, how: str, tmp_path: Path) -> None:
    """A file in AP's outbound/ that is not what §8 requires."""
    outbound = poste.office.home(poste.settings.creditor_id) / "outbound"
    plain = tmp_path / name
    good = next(p for p in outbound.iterdir() if p.name.startswith("RELV_"))
    opened = tmp_path / "opened" / (plain_name_of(good.name) or "")
    opened.parent.mkdir(exist_ok=True)
    OpenPgp(key_world.at_home).unprotect(
        good, opened, pinned=[p for p in _pins(key_world)], day=THU, sender="test"
    )
    plain.write_bytes(opened.read_bytes())  # its content never gets read: §8's checks come first
    target = outbound / f"{name}.pgp"
    if how == "altered":
        OpenPgp(key_world.ap_home).protect(plain, target, signer=key_world.ap1, recipient=key_world.at1)
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x40
        target.write_bytes(bytes(data))
    elif how == "another key":
        OpenPgp(key_world.stranger_home).protect(
            plain, target, signer=key_world.stranger, recipient=key_world.at1
        )
    else:
        import gnupg  # type: ignore[import-untyped]

        with plain.open("rb") as source:
            assert gnupg.GPG(gnupghome=str(key_world.ap_home)).encrypt_file(
                source, [key_world.at1], armor=False, always_trust=True, output=str(target),
                extra_args=["--set-filename", name],
            ).ok  # fmt: skip


def _pins(key_world: KeyWorld) -> list[PinnedKey]:
    return [PinnedKey(key_world.ap1)]


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("altered", "cannot be decrypted: … (expected from Algérie Poste, pinned: {ap1})"),
        ("unsigned", "carries no signature (expected one by Algérie Poste's pinned key: {ap1})"),
        ("another key", "is signed by key {stranger}, which is not pinned for Algérie Poste (pinned: {ap1})"),
    ],
)
def test_an_ap_file_failing_verification_is_quarantined(
    ledger_engine: Engine,
    protected_settings: Settings,
    key_world: KeyWorld,
    tmp_path: Path,
    how: str,
    reason: str,
) -> None:
    settings = protected_settings
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 30, 5, WED, calendar)
    _poste_agreement(settings, key_world, [key_world.ap1], [key_world.at1])
    with post_office_online(settings, calendar) as poste:
        poste.business_day(WED)
        poste.end_of_day(WED)
        before = _files(ledger_engine)
        name = "RELV_100237_20261125_09.txt"
        _publish_bad(poste, key_world, name, how, tmp_path)
        results = jobs.receive(poste.settings, THU)
        assert [(r["name"], r["outcome"]) for r in results] == [(f"{name}.pgp", "quarantined")]
        assert _files(ledger_engine) == before  # nothing of it applied
        text_ = (settings.quarantine_dir / "inbound" / f"{name}.pgp.reason.txt").read_text(encoding="utf-8")
        expected = reason.format(ap1=key_world.ap1, stranger=key_world.stranger)
        assert all(fragment in text_ for fragment in expected.split("…")), text_  # … where gpg's words vary
        assert "BEGIN PGP" not in text_
        # seen again: the same bad bytes are not quarantined twice
        assert jobs.receive(poste.settings, THU) == []


def test_a_plain_ap_file_under_a_protected_agreement_is_quarantined(
    ledger_engine: Engine, protected_settings: Settings, key_world: KeyWorld
) -> None:
    settings = protected_settings
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 30, 5, WED, calendar)
    _poste_agreement(settings, key_world, [key_world.ap1], [key_world.at1])
    with post_office_online(settings, calendar) as poste:
        poste.business_day(WED)
        outbound = poste.office.home(settings.creditor_id) / "outbound"
        (outbound / "RELV_100237_20261125_09.txt").write_bytes(b"anything\n")
        results = jobs.receive(poste.settings, WED)
        assert [(r["name"], r["outcome"]) for r in results] == [
            ("RELV_100237_20261125_09.txt", "quarantined")
        ]
        reason = (settings.quarantine_dir / "inbound" / "RELV_100237_20261125_09.txt.reason.txt").read_text()
        assert "arrived as a plain file, but AT's agreement with Algérie Poste requires OpenPGP" in reason


def _subkeys(home: Path, fingerprint: str) -> list[str]:
    keys = OpenPgp(home)._gpg.list_keys()
    return [str(sub[0]) for key in keys if key["fingerprint"] == fingerprint for sub in key["subkeys"]]


def test_a_key_rotation_between_two_nights(
    ledger_engine: Engine, protected_settings: Settings, key_world: KeyWorld, tmp_path: Path
) -> None:
    """Night 1 on the first keys. Between the nights both sides announce a new key with an overlap from
    Thursday to Sunday: on night 2 AP signs with its new key and encrypts to AT's new key, AT verifies it
    and signs with its new key, encrypting to AP's new one; after the overlap the old key is refused."""
    settings = protected_settings
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 60, 7, WED, calendar)
    _poste_agreement(settings, key_world, [key_world.ap1], [key_world.at1])
    with post_office_online(settings, calendar) as poste:
        poste.business_day(WED)
        poste.end_of_day(WED)
        assert [s for _, d, s in _files(ledger_engine) if d == "out"] == ["accepted"]
        applied_night_1 = {n for n, d, _ in _files(ledger_engine) if d == "in"}
        # the announcement, in both agreements: AT's and AP's new keys, overlap Thursday 26 to Sunday 29
        at_keys = [f"{key_world.at1} until 2026-11-29", f"{key_world.at2} from 2026-11-26"]
        ap_keys = [f"{key_world.ap1} until 2026-11-29", f"{key_world.ap2} from 2026-11-26"]
        _poste_agreement(settings, key_world, ap_keys, at_keys)
        rotated = poste.settings.model_copy(
            update={"openpgp_own_key": key_world.at2, "openpgp_poste_keys": ap_keys}
        )
        poste.settings = rotated
        poste.business_day(THU)
        poste.end_of_day(THU)
        assert not (settings.quarantine_dir / "inbound").exists()
        night_2 = {n for n, d, _ in _files(ledger_engine) if d == "in"} - applied_night_1
        assert any(n.startswith("RELV_100237_20261126") for n in night_2), night_2  # opened and applied
        outbound = poste.office.home(settings.creditor_id) / "outbound"
        relv = next(p for p in sorted(outbound.iterdir()) if p.name.startswith("RELV_100237_20261126"))
        listing = OpenPgp(settings.openpgp_home or Path())._gpg.decrypt_file(str(relv), always_trust=True)
        assert "VALIDSIG" in listing.stderr and key_world.ap2 in listing.stderr  # AP's new key signed
        assert any(f"ENC_TO {sub}" in listing.stderr for sub in _subkeys(key_world.at_home, key_world.at2))
        # AT's side: signed with its new key, encrypted to AP's newest
        from epay.protection.operator import protect_outbound

        plain = tmp_path / "PRLV_100237_20261126_01.txt"
        plain.write_bytes(b"x\n")
        sealed = protect_outbound(rotated, plain)
        listing = OpenPgp(key_world.ap_home)._gpg.decrypt_file(str(sealed), always_trust=True)
        assert key_world.at2 in listing.stderr and "VALIDSIG" in listing.stderr
        assert any(f"ENC_TO {sub}" in listing.stderr for sub in _subkeys(key_world.ap_home, key_world.ap2))
        # after the overlap, a file signed by AP's old key is refused, naming it
        after = rotated.model_copy(update={"openpgp_poste_keys": [f"{key_world.ap2} from 2026-11-26"]})
        opened = tmp_path / "RELV_100237_20261126_09.txt"
        OpenPgp(settings.openpgp_home or Path()).unprotect(
            relv, opened, pinned=[PinnedKey(key_world.ap2)], day=THU, sender="AP"
        )
        old = outbound / "RELV_100237_20261126_09.txt.pgp"
        OpenPgp(key_world.ap_home).protect(opened, old, signer=key_world.ap1, recipient=key_world.at2)
        results = jobs.receive(after, THU)
        assert [(r["name"], r["outcome"]) for r in results] == [(old.name, "quarantined")]
        reason = (settings.quarantine_dir / "inbound" / f"{old.name}.reason.txt").read_text()
        assert f"is signed by key {key_world.ap1}, which is not pinned for Algérie Poste" in reason


def test_the_sg01_runbook(ledger_engine: Engine, protected_settings: Settings, key_world: KeyWorld) -> None:
    """AT signs with a key AP has not pinned: AP answers SG01, the file's instructions are held (listed as
    not at the post office); once AT signs with the key AP pinned, the file is released and the next night
    re-files its instructions, accepted — as docs/openpgp.md's runbook says."""
    from epay.outbound.release import release_rejected_file

    settings = protected_settings
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 40, 9, WED, calendar)
    _poste_agreement(settings, key_world, [key_world.ap1], [key_world.at2])  # AP pinned AT's other key
    with post_office_online(settings, calendar) as poste:
        poste.business_day(WED)
        with ledger_engine.connect() as c:
            name, state, reason = c.execute(
                text("SELECT name, state, reason FROM exchange_file WHERE kind = 'PRLV'")
            ).one()
            held = c.execute(text("SELECT count(*) FROM instruction WHERE state = 'held'")).scalar_one()
        assert (state, reason) == ("rejected", "SG01") and held > 0
        ack = poste.office.home(settings.creditor_id) / "outbound" / f"ACK_{name}.pgp"
        opened = settings.home / "ack-opened" / f"ACK_{name}"
        opened.parent.mkdir()
        OpenPgp(key_world.at_home).unprotect(ack, opened, pinned=_pins(key_world), day=WED, sender="AP")
        assert f"IS SIGNED BY KEY {key_world.at1}, WHICH IS NOT PINNED" in opened.read_text()  # the key named
        poste.settings = poste.settings.model_copy(update={"openpgp_own_key": key_world.at2})  # the fix
        assert release_rejected_file(ledger_engine, name, "amina.dataeng") == held
        poste.business_day(THU)
        with ledger_engine.connect() as c:
            files = dict(c.execute(text("SELECT name, state FROM exchange_file WHERE kind = 'PRLV'")).all())
            presented = c.execute(
                text("SELECT count(*) FROM instruction WHERE state = 'presented'")
            ).scalar_one()
        assert files[name] == "rejected" and "accepted" in files.values()
        assert presented >= held


def test_a_broken_setup_fails_the_step_and_judges_nothing(
    ledger_engine: Engine, protected_settings: Settings, key_world: KeyWorld, tmp_path: Path
) -> None:
    """Our own key unusable (here: a GnuPG home without it): receiving fails before any file is judged,
    so AP's genuine files are not quarantined for our fault; fixed, the next run applies them."""
    from epay.protection.openpgp import ProtectionSetupError

    settings = protected_settings
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 30, 5, WED, calendar)
    _poste_agreement(settings, key_world, [key_world.ap1], [key_world.at1])
    empty = tmp_path / "empty-gnupg"
    empty.mkdir(mode=0o700)
    with post_office_online(settings, calendar) as poste:
        poste.business_day(WED)
        good = poste.settings
        poste.settings = good.model_copy(update={"openpgp_home": empty})
        with pytest.raises(ProtectionSetupError, match=f"our own key {key_world.at1} cannot sign and open"):
            poste.end_of_day(WED)
        assert not (settings.quarantine_dir / "inbound").exists()
        assert {n for n, d, _ in _files(ledger_engine) if d == "in"} == {
            f"ACK_{n}" for n, d, _ in _files(ledger_engine) if d == "out"
        }
        applied = jobs.receive(good, WED)
        assert {r["outcome"] for r in applied} == {"applied"} and any(
            r["name"].startswith("RELV_") for r in applied
        )
    kill_agent(empty)
