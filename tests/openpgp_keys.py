"""Throwaway OpenPGP keys for the tests, generated once per session in temporary GnuPG homes.

Ed25519/Cv25519 (contract §8 allows it beside RSA 3072): a key pair takes a fraction of a second here,
an RSA-3072 pair several seconds. Every key is created as of ten days ago (``--faked-system-time``), so
a key that expired after one day can still have signed a file five days ago: gpg then reports the
signature as made by an expired key.

Homes: ``at`` (AT's secret keys, AP's public ones), ``ap`` (AP's secret keys, AT's public ones),
``stranger`` (a third party known to both by its public key, and an expired key).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gnupg  # type: ignore[import-untyped]
import pytest

from epay.protection.openpgp import OpenPgp


def faked_time(days_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    return moment.strftime("%Y%m%dT%H%M%S!")


def _gpg(home: Path, days_ago: float | None = None) -> Any:
    options = ["--faked-system-time", faked_time(days_ago)] if days_ago is not None else None
    return gnupg.GPG(gnupghome=str(home), options=options)


def _generate(home: Path, name: str, expire: str = "0") -> str:
    gpg = _gpg(home, days_ago=10)
    spec = gpg.gen_key_input(
        key_type="EDDSA",
        key_curve="ed25519",
        subkey_type="ECDH",
        subkey_curve="cv25519",
        name_real=name,
        name_email=f"{name.lower().replace(' ', '.')}@example.dz",
        expire_date=expire,
        no_protection=True,
    )
    fingerprint = str(gpg.gen_key(spec).fingerprint)
    assert fingerprint, f"key generation failed for {name}"
    return fingerprint


def _copy_public(source: Path, target: Path, fingerprint: str) -> None:
    OpenPgp(target).import_public(OpenPgp(source).export_public(fingerprint), fingerprint)


@dataclass(frozen=True)
class KeyWorld:
    at_home: Path
    ap_home: Path
    stranger_home: Path
    at1: str
    at2: str
    ap1: str
    ap2: str
    stranger: str
    expired: str  # in stranger_home: valid one day, ten days ago
    unknown: str  # in stranger_home only: nobody else has its public key

    def sign_with_expired_key(self, plain: Path, target: Path, recipient: str) -> None:
        """``plain`` signed by the expired key (five days ago, when gpg still let it sign)."""
        gpg = _gpg(self.stranger_home, days_ago=9.5)
        with plain.open("rb") as source:
            result = gpg.encrypt_file(
                source,
                [recipient],
                sign=self.expired,
                armor=False,
                always_trust=True,
                output=str(target),
                extra_args=["--set-filename", plain.name],
            )
        assert result.ok, result.status


def _new_home(factory: pytest.TempPathFactory, name: str) -> Path:
    home = factory.mktemp(name)
    home.chmod(0o700)
    return home


def make_key_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyWorld]:
    """The keys of a session (a module's session-scoped fixture yields from this)."""
    at_home = _new_home(tmp_path_factory, "gpg-at")
    ap_home = _new_home(tmp_path_factory, "gpg-ap")
    stranger_home = _new_home(tmp_path_factory, "gpg-x")
    at1, at2 = _generate(at_home, "AT One"), _generate(at_home, "AT Two")
    ap1, ap2 = _generate(ap_home, "AP One"), _generate(ap_home, "AP Two")
    stranger = _generate(stranger_home, "Stranger")
    expired = _generate(stranger_home, "Expired", expire="1d")
    unknown = _generate(stranger_home, "Unknown")
    for fingerprint in (ap1, ap2, stranger, expired):
        _copy_public(ap_home if fingerprint in (ap1, ap2) else stranger_home, at_home, fingerprint)
    for fingerprint in (at1, at2, stranger, expired):
        _copy_public(at_home if fingerprint in (at1, at2) else stranger_home, ap_home, fingerprint)
    for fingerprint in (at1, at2):
        _copy_public(at_home, stranger_home, fingerprint)
    for fingerprint in (ap1, ap2):
        _copy_public(ap_home, stranger_home, fingerprint)
    yield KeyWorld(at_home, ap_home, stranger_home, at1, at2, ap1, ap2, stranger, expired, unknown)
    for home in (at_home, ap_home, stranger_home):  # the agents started for these homes
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def install_home(source: Path, target: Path) -> Path:
    """A copy of the GnuPG home ``source`` at ``target`` (its keys; not its agent's sockets)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("S.*", "*.lock", ".#*"))
    target.chmod(0o700)
    return target


def kill_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
