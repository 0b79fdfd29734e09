"""Contract §8 in one place (epay.protection.openpgp): sign + encrypt, decrypt + verify, and every check
that makes a protected file unreadable, each with a reason naming the fingerprint (never key material)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import gnupg  # type: ignore[import-untyped]
import pytest

from epay.formats import validate_file
from epay.protection.openpgp import (
    OpenPgp,
    PinnedKey,
    ProtectionError,
    ProtectionSetupError,
    newest_key,
    plain_name_of,
    protected_name,
)
from tests.conftest import FileFactory
from tests.openpgp_keys import KeyWorld, make_key_world

DAY = date(2026, 11, 25)


@pytest.fixture(scope="session")
def key_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyWorld]:
    yield from make_key_world(tmp_path_factory)


def _plain(folder: Path, name: str = "PRLV_100237_20261125_01.txt") -> Path:
    path = folder / name
    path.write_bytes(b"01PRLV" + b"x" * 154 + b"\n" + b"09" + b"0" * 158 + b"\n")
    return path


def _at_protects(world: KeyWorld, plain: Path, target: Path | None = None, recipient: str = "") -> Path:
    target = target or plain.with_name(protected_name(plain.name))
    OpenPgp(world.at_home).protect(plain, target, signer=world.at1, recipient=recipient or world.ap1)
    return target


def _ap_opens(
    world: KeyWorld, protected: Path, pinned: list[PinnedKey] | None = None, day: date = DAY
) -> Path:
    target = protected.parent / "opened" / (plain_name_of(protected.name) or "x")
    target.parent.mkdir(exist_ok=True)
    verified = OpenPgp(world.ap_home).unprotect(
        protected, target, pinned=pinned or [PinnedKey(world.at1)], day=day, sender="creditor 100237"
    )
    return verified.plain


def _refusal(world: KeyWorld, protected: Path, **kwargs: object) -> str:
    with pytest.raises(ProtectionError) as raised:
        _ap_opens(world, protected, **kwargs)  # type: ignore[arg-type]
    assert not (protected.parent / "opened" / (plain_name_of(protected.name) or "x")).exists()
    message = str(raised.value)
    assert "BEGIN PGP" not in message
    return message


def test_round_trip_one_binary_message_named_inside(key_world: KeyWorld, tmp_path: Path) -> None:
    plain = _plain(tmp_path)
    protected = _at_protects(key_world, plain)
    assert protected.name == "PRLV_100237_20261125_01.txt.pgp"
    raw = protected.read_bytes()
    assert raw[0] & 0x80 and b"BEGIN PGP" not in raw  # binary OpenPGP packets, not armored
    assert plain.read_bytes() not in raw  # encrypted
    opened = _ap_opens(key_world, protected)
    assert opened.read_bytes() == plain.read_bytes()
    listing = gnupg.GPG(gnupghome=str(key_world.ap_home)).decrypt_file(str(protected), always_trust=True)
    assert "PLAINTEXT 62 " in listing.stderr and " PRLV_100237_20261125_01.txt" in listing.stderr
    assert f"VALIDSIG {key_world.at1}" in listing.stderr


def test_protect_never_overwrites(key_world: KeyWorld, tmp_path: Path) -> None:
    protected = _at_protects(key_world, _plain(tmp_path))
    before = protected.read_bytes()
    with pytest.raises(FileExistsError):
        _at_protects(key_world, _plain(tmp_path))
    assert protected.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_encrypted_to_another_key_cannot_be_decrypted(key_world: KeyWorld, tmp_path: Path) -> None:
    protected = _at_protects(key_world, _plain(tmp_path), recipient=key_world.stranger)
    message = _refusal(key_world, protected)
    assert "cannot be decrypted: encrypted to key ID(s)" in message


def test_tampered_file_cannot_be_decrypted(key_world: KeyWorld, tmp_path: Path) -> None:
    protected = _at_protects(key_world, _plain(tmp_path))
    raw = bytearray(protected.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    protected.write_bytes(bytes(raw))
    message = _refusal(key_world, protected)
    assert (
        "cannot be decrypted" in message
        and f"(expected from creditor 100237, pinned: {key_world.at1})" in message
    )


def test_not_openpgp_and_signed_only_are_not_decryptable(key_world: KeyWorld, tmp_path: Path) -> None:
    fake = tmp_path / "PRLV_100237_20261125_01.txt.pgp"
    fake.write_bytes(_plain(tmp_path).read_bytes())
    assert "not an encrypted OpenPGP message" in _refusal(key_world, fake)
    signed_only = tmp_path / "PRLV_100237_20261125_02.txt.pgp"
    gpg = gnupg.GPG(gnupghome=str(key_world.at_home))
    with _plain(tmp_path, "PRLV_100237_20261125_02.txt").open("rb") as source:
        assert gpg.sign_file(source, keyid=key_world.at1, binary=True, output=str(signed_only))
    assert "it is not encrypted" in _refusal(key_world, signed_only)


def test_unsigned_file_names_the_pinned_key(key_world: KeyWorld, tmp_path: Path) -> None:
    plain = _plain(tmp_path)
    unsigned = plain.with_name(protected_name(plain.name))
    gpg = gnupg.GPG(gnupghome=str(key_world.at_home))
    with plain.open("rb") as source:
        result = gpg.encrypt_file(
            source, [key_world.ap1], armor=False, always_trust=True, output=str(unsigned),
            extra_args=["--set-filename", plain.name],
        )  # fmt: skip
    assert result.ok
    message = _refusal(key_world, unsigned)
    assert f"carries no signature (expected one by creditor 100237's pinned key: {key_world.at1})" in message


def test_signed_by_a_key_not_pinned(key_world: KeyWorld, tmp_path: Path) -> None:
    plain = _plain(tmp_path)
    known = plain.with_name(protected_name(plain.name))
    OpenPgp(key_world.stranger_home).protect(plain, known, signer=key_world.stranger, recipient=key_world.ap1)
    assert f"signed by key {key_world.stranger}, which is not pinned for creditor 100237" in _refusal(
        key_world, known
    )
    # AP's own keyring knows AT's second key, but only the first is pinned for this creditor
    second = tmp_path / "PRLV_100237_20261125_02.txt.pgp"
    OpenPgp(key_world.at_home).protect(
        _plain(tmp_path, "PRLV_100237_20261125_02.txt"), second, signer=key_world.at2, recipient=key_world.ap1
    )
    assert f"signed by key {key_world.at2}, which is not pinned" in _refusal(key_world, second)


def test_signed_by_an_unknown_key_names_its_fingerprint(key_world: KeyWorld, tmp_path: Path) -> None:
    plain = _plain(tmp_path)
    unknown = plain.with_name(protected_name(plain.name))
    OpenPgp(key_world.stranger_home).protect(
        plain, unknown, signer=key_world.unknown, recipient=key_world.ap1
    )
    message = _refusal(key_world, unknown)
    assert f"signed by key {key_world.unknown}, which is not pinned for creditor 100237" in message


def test_pinned_key_past_its_validity(key_world: KeyWorld, tmp_path: Path) -> None:
    protected = _at_protects(key_world, _plain(tmp_path))
    pinned = [PinnedKey(key_world.at1, valid_until=date(2026, 11, 24))]
    message = _refusal(key_world, protected, pinned=pinned)
    assert f"signed by key {key_world.at1}, past its validity on 2026-11-25" in message
    assert "until 2026-11-24" in message
    not_yet = [PinnedKey(key_world.at1, valid_from=date(2026, 11, 26))]
    assert "past its validity on 2026-11-25" in _refusal(key_world, protected, pinned=not_yet)
    assert _ap_opens(key_world, protected, pinned=not_yet, day=date(2026, 11, 26)).exists()


def test_openpgp_expired_key(key_world: KeyWorld, tmp_path: Path) -> None:
    plain = _plain(tmp_path)
    protected = plain.with_name(protected_name(plain.name))
    key_world.sign_with_expired_key(plain, protected, key_world.ap1)
    pinned = [PinnedKey(key_world.expired)]
    message = _refusal(key_world, protected, pinned=pinned)
    assert f"signed by key {key_world.expired}, which is past its validity (OpenPGP expiry)" in message


def test_another_name_inside(key_world: KeyWorld, tmp_path: Path) -> None:
    plain = _plain(tmp_path)
    other = tmp_path / "PRLV_100237_20261125_02.txt.pgp"
    _at_protects(key_world, plain, target=other)
    message = _refusal(key_world, other)
    assert "names 'PRLV_100237_20261125_01.txt' inside, not 'PRLV_100237_20261125_02.txt'" in message


def test_pinned_keys_and_the_newest(key_world: KeyWorld) -> None:
    old = PinnedKey.parse(f"{key_world.ap1.lower()} until 2026-12-03")
    new = PinnedKey.parse(f"{key_world.ap2} from 2026-12-01")
    assert str(old) == f"{key_world.ap1} until 2026-12-03"
    assert newest_key([old, new], date(2026, 11, 30), "AP") == old
    assert newest_key([old, new], date(2026, 12, 1), "AP") == new  # the overlap: encrypt to the newest
    assert newest_key([old, new], date(2026, 12, 4), "AP") == new
    with pytest.raises(ProtectionSetupError, match="no key of AP is valid on 2026-12-04"):
        newest_key([old], date(2026, 12, 4), "AP")
    for bad in ("", "ABC", f"{key_world.ap1} since 2026-12-01", f"{key_world.ap1} from 2026-13-01"):
        with pytest.raises(ValueError):
            PinnedKey.parse(bad)


def test_an_sg01_ack_is_a_valid_ack(files: FileFactory) -> None:
    """The ACK layout knows SG01 (§8): line 000000, count and sum zero."""
    path = files.write("ACK", rows=1)
    files.set_field(path, 2, "status", "RJCT")
    files.set_field(path, 2, "reason", "SG01")
    files.set_field(path, 2, "faulty_line", "000000")
    files.set_field(path, 2, "detail_count", "000000")
    files.set_field(path, 2, "total_amount", "0")
    report = validate_file(path)
    assert report.valid, report.problems
    files.set_field(path, 2, "faulty_line", "000001")
    assert not validate_file(path).valid


def test_a_key_that_cannot_work_here_is_a_setup_error_not_a_verdict(
    key_world: KeyWorld, tmp_path: Path
) -> None:
    OpenPgp(key_world.at_home).check_own_key(key_world.at1)  # our key signs and opens a file here
    with pytest.raises(ProtectionSetupError, match=f"our own key {key_world.ap1} cannot sign and open"):
        OpenPgp(key_world.at_home).check_own_key(key_world.ap1)  # AP's key: no secret part here
    with pytest.raises(ProtectionSetupError, match="is not a folder"):
        OpenPgp(tmp_path / "missing")
    protected = _at_protects(key_world, _plain(tmp_path))
    with pytest.raises(ProtectionSetupError, match="is not a folder that can be written"):
        OpenPgp(key_world.ap_home).unprotect(  # never "cannot be decrypted" for a folder of ours
            protected, tmp_path / "nowhere" / "x.txt", pinned=[PinnedKey(key_world.at1)], day=DAY, sender="AT"
        )
    long = tmp_path / ("x" * 120)
    long.mkdir()
    with pytest.raises(ProtectionSetupError, match="too long a path for gpg-agent"):
        OpenPgp(long)
