"""docs/openpgp.md's commands run as written (in a temporary GnuPG home), and the keys they make protect
a file AP can open; its rotation example parses as the setting it shows."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from epay.protection.openpgp import OpenPgp, PinnedKey, newest_key
from tests.openpgp_keys import KeyWorld, kill_agent, make_key_world

DOC = Path(__file__).resolve().parents[1] / "docs" / "openpgp.md"


@pytest.fixture(scope="session")
def key_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyWorld]:
    yield from make_key_world(tmp_path_factory)


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_key_setup_commands_run_as_written(key_world: KeyWorld, tmp_path: Path) -> None:
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    (tmp_path / "ap-epay.asc").write_text(OpenPgp(key_world.ap_home).export_public(key_world.ap1))
    commands = [line.split("  #")[0].strip() for line in _blocks("sh")[0].splitlines() if line.strip()]
    assert commands[0] == "export GNUPGHOME=/srv/epay/gnupg"
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    fingerprint = ""
    try:
        for command in commands[1:]:
            command = command.replace("FINGERPRINT", fingerprint)
            done = subprocess.run(
                ["bash", "-c", command],
                check=False,
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, (command, done.stderr)
            if not fingerprint and "--list-keys" in command:
                fingerprint = re.findall(r"^fpr:+([0-9A-F]{40}):", done.stdout, re.MULTILINE)[0]
        assert (tmp_path / "at-epay.asc").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        assert key_world.ap1 in done.stdout  # the last command shows AP's fingerprint to compare
        plain = tmp_path / "PRLV_100237_20261125_01.txt"
        plain.write_bytes(b"01PRLV\n")
        sealed = tmp_path / "PRLV_100237_20261125_01.txt.pgp"
        OpenPgp(home).protect(plain, sealed, signer=fingerprint, recipient=key_world.ap1)
        ap_side = tmp_path / "ap"
        ap_side.mkdir()
        OpenPgp(key_world.ap_home).import_public((tmp_path / "at-epay.asc").read_text(), fingerprint)
        verified = OpenPgp(key_world.ap_home).unprotect(
            sealed,
            ap_side / plain.name,
            pinned=[PinnedKey(fingerprint)],
            day=date(2026, 11, 25),
            sender="AT",
        )
        assert verified.signer == fingerprint and verified.plain.read_bytes() == b"01PRLV\n"
    finally:
        kill_agent(home)


def test_the_rotation_example_is_the_setting_it_shows() -> None:
    [example] = _blocks("toml")
    values = tomllib.loads(example.replace("OLDFINGERPRINT", "A" * 40).replace("NEWFINGERPRINT", "B" * 40))
    keys = [PinnedKey.parse(text) for text in values["openpgp_poste_keys"]]
    assert newest_key(keys, date(2026, 11, 30), "AP").fingerprint == "A" * 40
    assert newest_key(keys, date(2026, 12, 2), "AP").fingerprint == "B" * 40  # the newest in the overlap
    assert [k.valid_on(date(2026, 12, 5)) for k in keys] == [False, True]


def test_the_sample_command_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from epay.cli import main
    from epay.settings import Settings, get_settings

    [line] = [line for line in _blocks("sh")[1].splitlines() if line.strip()]
    assert line.startswith(".venv/bin/epay sample ")
    for variable in ("EPAY_CONFIG", "EPAY_DATABASE_URL", "EPAY_POSTE_DATABASE_URL", "EPAY_PROTECTION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("EPAY_HOME", str(tmp_path / "h"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, shlex.split(line)[1:])
        assert result.exit_code == 0, result.output
        assert "pinned on both sides" in result.output
        settings = Settings()
        assert settings.protection == "openpgp" and settings.openpgp_own_key in result.output
    finally:
        get_settings.cache_clear()
        for home in (tmp_path / "h" / "keys" / "gnupg", tmp_path / "h" / "poste" / "gnupg"):
            kill_agent(home)


def test_the_rotation_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampled protected world; the rotation commands as written (fingerprints filled in); then AP signs
    with its new key in the overlap and AT, pinned as the doc's example says, opens it."""
    from click.testing import CliRunner

    from epay.cli import main
    from epay.poste.protection import PosteProtection
    from epay.settings import Settings, get_settings

    home = tmp_path / "h"
    for variable in ("EPAY_CONFIG", "EPAY_DATABASE_URL", "EPAY_POSTE_DATABASE_URL", "EPAY_PROTECTION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("EPAY_HOME", str(home))
    get_settings.cache_clear()
    epay = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "epay")
    try:
        options = ["--subscribers", "20", "--as-of", "2026-11-25", "--protection", "openpgp"]
        sampled = CliRunner().invoke(main, ["sample", *options])
        assert sampled.exit_code == 0, sampled.output
        settings = Settings()
        assert settings.openpgp_own_key is not None and settings.openpgp_home is not None
        at = OpenPgp(settings.openpgp_home)
        at_new = at.generate_key("Algerie Telecom epay 2", "epay2@at.example.dz")  # as in Key setup
        (tmp_path / "at-new.asc").write_text(at.export_public(at_new))
        fill = {
            "ATOLDFINGERPRINT": settings.openpgp_own_key,
            "ATNEWFINGERPRINT": at_new,
            "OLDFINGERPRINT": PinnedKey.parse(settings.openpgp_poste_keys[0]).fingerprint,
        }
        lines = [line for line in _blocks("sh")[2].splitlines() if line.strip()]
        env = {"EPAY_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        for line in lines:
            command = line.split("  #")[0].strip().replace(".venv/bin/epay", epay)
            for placeholder, value in fill.items():
                command = command.replace(placeholder, value)
            done = subprocess.run(
                ["bash", "-c", command], check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if "new-key" in command:
                fill["NEWFINGERPRINT"] = done.stdout.strip()
        new = fill["NEWFINGERPRINT"]
        assert at.has_public(new)  # AT imported AP's new key
        poste = PosteProtection(home / "poste")
        assert [k.fingerprint for k in poste.agreement("100237").keys] == [settings.openpgp_own_key, at_new]
        [example] = _blocks("toml")
        example = example.replace("OLDFINGERPRINT", fill["OLDFINGERPRINT"]).replace("NEWFINGERPRINT", new)
        pins = [PinnedKey.parse(key) for key in tomllib.loads(example)["openpgp_poste_keys"]]
        plain = tmp_path / "RELV_100237_20261202_01.txt"
        plain.write_bytes(b"09\n")
        sealed = tmp_path / "RELV_100237_20261202_01.txt.pgp"
        poste.protect("100237", plain, sealed, name=plain.name, day=date(2026, 12, 2))  # in the overlap
        (tmp_path / "opened").mkdir()
        opened = at.unprotect(
            sealed, tmp_path / "opened" / plain.name, pinned=pins, day=date(2026, 12, 2), sender="AP"
        )
        assert opened.signer == new  # AP signed with its newest key; encrypted to AT's newest, opened here
    finally:
        get_settings.cache_clear()
        for gnupg in (home / "keys" / "gnupg", home / "poste" / "gnupg"):
            kill_agent(gnupg)
