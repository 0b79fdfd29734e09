"""The simulated post office under an OpenPGP agreement (contract §8): it opens a protected PRLV before
anything else, answers SG01 (line 000000, count and sum zero, checked before FF01) in every case the
contract lists, and publishes only protected files (ACK included), signed by its key and encrypted to
the creditor's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from epay.calendar import BusinessCalendar
from epay.formats import normalize_text, read_file
from epay.protection.openpgp import OpenPgp, PinnedKey, ProtectionError
from tests.openpgp_keys import KeyWorld, install_home, kill_agent, make_key_world
from tests.poste_helpers import CREDITOR, THU, WED, Debit, World, at

NAME = "PRLV_100237_20261125_01.txt"


@pytest.fixture(scope="session")
def key_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyWorld]:
    yield from make_key_world(tmp_path_factory)


@pytest.fixture
def world(tmp_path: Path, calendar: BusinessCalendar, key_world: KeyWorld) -> Iterator[World]:
    world = World(tmp_path, calendar)
    protection = world.office.protection
    install_home(key_world.ap_home, protection.home)
    protection.set_own_keys([key_world.ap1])
    protection.set_agreement(CREDITOR, "openpgp", [key_world.at1])
    yield world
    kill_agent(protection.home)


def _debits(world: World) -> list[Debit]:
    return [
        Debit(1000 + i, 12_345 + i, f"E2026112501000000000000{i}", world.customer(1000 + i)) for i in range(3)
    ]


def _plain(world: World, tmp_path: Path, *, valid: bool = True) -> Path:
    folder = tmp_path / "at"
    folder.mkdir(exist_ok=True)
    if valid:
        return world.prlv(_debits(world), folder=folder)
    path = folder / NAME  # FF01 (a file without details): SG01 must still come first
    path.write_bytes(b"01PRLV" + b" " * 154 + b"\n")
    return path


def _open(key_world: KeyWorld, world: World, name: str, keys: list[str] | None = None) -> dict[str, Any]:
    """AT opens what AP published (``name``, protected): the plain file's first record."""
    protected = world.outbound() / name
    target = protected.parent.parent / "opened" / name.removesuffix(".pgp")
    target.parent.mkdir(exist_ok=True)
    pinned = [PinnedKey(k) for k in (keys or [key_world.ap1])]
    OpenPgp(key_world.at_home).unprotect(protected, target, pinned=pinned, day=WED, sender="Algérie Poste")
    report = read_file(target, calendar=world.calendar)
    assert report.details is not None
    rows: list[dict[str, Any]] = report.details.to_pylist()
    return rows[0]


def test_a_protected_prlv_is_accepted_and_everything_published_is_protected(
    world: World, key_world: KeyWorld, tmp_path: Path
) -> None:
    plain = _plain(world, tmp_path)
    sent = world.inbound() / f"{NAME}.pgp"
    OpenPgp(key_world.at_home).protect(plain, sent, signer=key_world.at1, recipient=key_world.ap1)
    ack = world.office.acknowledge(CREDITOR, sent, at(WED))
    assert ack == f"ACK_{NAME}.pgp"
    record = _open(key_world, world, ack)
    assert (record["prlv_file_name"], record["status"], record["detail_count"]) == (NAME, "ACCP", 3)
    assert len(world.instructions()) == 3
    world.office.tick(THU)
    published = sorted(p.name for p in world.outbound().iterdir())
    assert published and all(name.endswith(".txt.pgp") for name in published), published
    retr = next(name for name in published if name.startswith("RETR_"))
    assert _open(key_world, world, retr)["prlv_file_name"] == NAME
    with pytest.raises(ProtectionError, match=f"signed by key {key_world.ap1}, which is not pinned"):
        _open(key_world, world, retr, keys=[key_world.ap2])


CASES = [
    "not decryptable",
    "unsigned",
    "not pinned",
    "pinned key expired",
    "openpgp expiry",
    "other name",
    "plain",
]


@pytest.mark.parametrize("case", CASES)
def test_sg01_before_ff01(world: World, key_world: KeyWorld, tmp_path: Path, case: str) -> None:
    """Each case of §8 with an inner file that is also malformed: SG01 is reported, never FF01."""
    import gnupg  # type: ignore[import-untyped]

    plain = _plain(world, tmp_path, valid=False)
    sent = world.inbound() / f"{NAME}.pgp"
    at_gpg = OpenPgp(key_world.at_home)
    expect = ""
    if case == "not decryptable":
        at_gpg.protect(plain, sent, signer=key_world.at1, recipient=key_world.stranger)
        expect = "CANNOT BE DECRYPTED"
    elif case == "unsigned":
        raw = gnupg.GPG(gnupghome=str(key_world.at_home))
        with plain.open("rb") as source:
            assert raw.encrypt_file(
                source, [key_world.ap1], armor=False, always_trust=True, output=str(sent),
                extra_args=["--set-filename", NAME],
            ).ok  # fmt: skip
        expect = f"CARRIES NO SIGNATURE (EXPECTED ONE BY CREDITOR 100237'S PINNED KEY: {key_world.at1}"[:80]
    elif case == "not pinned":
        at_gpg.protect(plain, sent, signer=key_world.at2, recipient=key_world.ap1)
        expect = f"IS SIGNED BY KEY {key_world.at2}, WHICH IS NOT PINNED"
    elif case == "pinned key expired":
        world.office.protection.set_agreement(  # AT's new key from the 25th: it kept signing with the old
            CREDITOR, "openpgp", [f"{key_world.at1} until 2026-11-24", f"{key_world.at2} from 2026-11-25"]
        )
        at_gpg.protect(plain, sent, signer=key_world.at1, recipient=key_world.ap1)
        expect = f"IS SIGNED BY KEY {key_world.at1}, PAST ITS VALIDITY ON 2026-11-25"
    elif case == "openpgp expiry":
        world.office.protection.set_agreement(CREDITOR, "openpgp", [key_world.expired, key_world.at1])
        key_world.sign_with_expired_key(plain, sent, key_world.ap1)
        expect = f"IS SIGNED BY KEY {key_world.expired}, WHICH IS PAST ITS VALIDITY"
    elif case == "other name":
        at_gpg.protect(
            plain, sent, signer=key_world.at1, recipient=key_world.ap1, name="PRLV_100237_20261125_02.txt"
        )
        expect = "NAMES 'PRLV_100237_20261125_02.TXT' INSIDE, NOT 'PRLV_100237_20261125_01.TXT'"
    else:
        sent = world.inbound() / NAME
        sent.write_bytes(plain.read_bytes())
        expect = f"{NAME.upper()} ARRIVED AS A PLAIN FILE"
    ack = world.office.acknowledge(CREDITOR, sent, at(WED))
    assert ack == f"ACK_{NAME}.pgp"  # the ACK is protected too, named after the plain name
    assert world.instructions() == []
    record = _open(key_world, world, ack)
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "SG01", 0)
    assert (record["detail_count"], record["total_amount"], record["prlv_file_name"]) == (0, 0, NAME)
    assert record["free_text"].startswith(normalize_text(expect, 80)), record["free_text"]


def test_sg01_then_the_same_batch_properly_protected_is_accepted(
    world: World, key_world: KeyWorld, tmp_path: Path
) -> None:
    """A batch rejected SG01 was never accepted: sent again (a new name), it is accepted, not DU01."""
    plain = _plain(world, tmp_path)
    first = world.inbound() / f"{NAME}.pgp"
    OpenPgp(key_world.at_home).protect(plain, first, signer=key_world.at2, recipient=key_world.ap1)
    assert (
        _open(key_world, world, str(world.office.acknowledge(CREDITOR, first, at(WED))))["reason"] == "SG01"
    )
    again = world.prlv(_debits_again(world), folder=tmp_path / "at", seq=2)
    second = world.inbound() / f"{again.name}.pgp"
    OpenPgp(key_world.at_home).protect(again, second, signer=key_world.at1, recipient=key_world.ap1)
    assert world.office.acknowledge(CREDITOR, second, at(WED, 20, 30)) == f"ACK_{again.name}.pgp"
    assert _open(key_world, world, f"ACK_{again.name}.pgp")["status"] == "ACCP"
    assert len(world.instructions()) == 3


def _debits_again(world: World) -> list[Debit]:
    return [
        Debit(1000 + i, 12_345 + i, f"E2026112501000000000000{i}", f"APM{1000 + i:010d}") for i in range(3)
    ]


def test_a_protected_file_under_a_plain_agreement_is_not_read(
    world: World, key_world: KeyWorld, tmp_path: Path
) -> None:
    """Version 001 knows no NAME.pgp: such a file is not a PRLV name there, and gets no ACK."""
    world.office.protection.set_agreement(CREDITOR, "none", [])
    sent = world.inbound() / f"{NAME}.pgp"
    OpenPgp(key_world.at_home).protect(
        _plain(world, tmp_path), sent, signer=key_world.at1, recipient=key_world.ap1
    )
    assert world.office.acknowledge(CREDITOR, sent, at(WED)) is None
    assert list(world.outbound().glob("ACK_*")) == []


def test_publication_goes_to_the_newest_creditor_key(
    world: World, key_world: KeyWorld, tmp_path: Path
) -> None:
    """A rotation announced by AT: from its first day, AP encrypts to the new key and accepts both."""
    world.office.protection.set_agreement(
        CREDITOR, "openpgp", [f"{key_world.at1} until 2026-11-27", f"{key_world.at2} from 2026-11-25"]
    )
    plain = _plain(world, tmp_path)
    sent = world.inbound() / f"{NAME}.pgp"
    OpenPgp(key_world.at_home).protect(plain, sent, signer=key_world.at1, recipient=key_world.ap1)  # old key
    ack = str(world.office.acknowledge(CREDITOR, sent, at(WED)))
    assert _open(key_world, world, ack)["status"] == "ACCP"
    import gnupg  # type: ignore[import-untyped]

    listing = gnupg.GPG(gnupghome=str(key_world.at_home)).decrypt_file(
        str(world.outbound() / ack), always_trust=True
    )
    new_subkeys = [
        k["subkeys"]
        for k in gnupg.GPG(gnupghome=str(key_world.at_home)).list_keys()
        if k["fingerprint"] == key_world.at2
    ]
    assert any(f"ENC_TO {sub[0]}" in listing.stderr for sub in new_subkeys[0]), listing.stderr
