"""`epay poste new-key`, `own-keys` and `agreement`: the simulated post office's OpenPGP keys and the
agreement per creditor (contract §8) from the command line; bad input is one line, exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from epay.poste.protection import PosteProtection
from epay.protection.openpgp import OpenPgp
from epay.settings import get_settings
from tests.openpgp_keys import KeyWorld, kill_agent, make_key_world


@pytest.fixture(scope="session")
def key_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyWorld]:
    yield from make_key_world(tmp_path_factory)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "h"
    home.mkdir()
    monkeypatch.delenv("EPAY_CONFIG", raising=False)
    monkeypatch.setenv("EPAY_HOME", str(home))
    yield home
    kill_agent(home / "poste" / "gnupg")


def epay(*args: str) -> Result:
    from epay.cli import main

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, ["poste", *args])
    finally:
        get_settings.cache_clear()


def test_keys_and_agreement(home: Path, key_world: KeyWorld, tmp_path: Path) -> None:
    made = epay("new-key", "--out", str(tmp_path / "ap.asc"))
    assert made.exit_code == 0, made.output
    fingerprint = made.output.strip()
    assert len(fingerprint) == 40
    assert (tmp_path / "ap.asc").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert epay("own-keys", "--key", fingerprint).exit_code == 0
    protection = PosteProtection(home / "poste")
    assert [k.fingerprint for k in protection.own_keys()] == [fingerprint]
    (tmp_path / "at.asc").write_text(OpenPgp(key_world.at_home).export_public(key_world.at1))
    done = epay(
        "agreement", "--creditor", "100237", "--protection", "openpgp",
        "--key", f"{key_world.at1} until 2026-12-04", "--public-key", str(tmp_path / "at.asc"),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    agreement = protection.agreement("100237")
    assert agreement.protected and [str(k) for k in agreement.keys] == [f"{key_world.at1} until 2026-12-04"]
    assert epay("agreement", "--creditor", "100237", "--protection", "none").exit_code == 0
    assert not protection.agreement("100237").protected


OPENPGP = ["agreement", "--creditor", "100237", "--protection", "openpgp"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["own-keys", "--key", "A" * 40], "no secret key " + "A" * 40),
        (OPENPGP, "needs at least one --key"),
        ([*OPENPGP, "--key", "B" * 40], "no public key"),
        ([*OPENPGP, "--key", "B" * 40 + " from 2026-13-01"],
         "is not a YYYY-MM-DD date"),
        ([*OPENPGP, "--key", "XYZ"], "is not a key fingerprint"),
    ],
)  # fmt: skip
def test_refusals_are_one_line_exit_2(home: Path, args: list[str], message: str) -> None:
    result = epay(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_public_key_not_pinned_is_not_imported(home: Path, key_world: KeyWorld, tmp_path: Path) -> None:
    (tmp_path / "x.asc").write_text(OpenPgp(key_world.stranger_home).export_public(key_world.stranger))
    result = epay(
        "agreement", "--creditor", "100237", "--protection", "openpgp",
        "--key", key_world.at1, "--public-key", str(tmp_path / "x.asc"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"holds {key_world.stranger}, none of them pinned" in result.output
    assert not PosteProtection(home / "poste").gpg().has_public(key_world.stranger)
