"""The simulated Algérie Poste's side of contract §8: its own key pair(s), the agreement per creditor,
opening what a creditor sends (SG01 when it fails) and protecting what it publishes.

AP's GnuPG home is ``<poste folder>/gnupg/`` (its secret keys, the creditors' public keys); the
agreements are ``<poste folder>/openpgp/agreements.json``::

    {"own_keys": ["FPR [from D] [until D]", ...],
     "creditors": {"100237": {"protection": "openpgp", "keys": ["FPR [from D] [until D]", ...]}}}

A creditor absent from ``creditors`` has the default agreement, ``protection = none`` (version 001).
AP signs with its newest own key valid on the day and encrypts to the creditor's newest pinned key valid
on the day; it accepts a signature by any creditor key pinned and valid on the day (a rotation's overlap).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from epay.protection.openpgp import (
    OpenPgp,
    PinnedKey,
    ProtectionError,
    Verified,
    newest_key,
    pinned_keys,
    plain_name_of,
)

PROTECTIONS = ("none", "openpgp")


@dataclass(frozen=True)
class Agreement:
    protection: str = "none"
    keys: list[PinnedKey] = field(default_factory=list)

    @property
    def protected(self) -> bool:
        return self.protection == "openpgp"


class PosteProtection:
    """AP's keys and agreements, read from its folder at each use (an agreement may change between two
    files, as a rotation does)."""

    def __init__(self, poste_dir: Path) -> None:
        self.folder = poste_dir / "openpgp"
        self.home = poste_dir / "gnupg"  # a short path: gpg-agent's sockets live there
        self.agreements_file = self.folder / "agreements.json"

    # -- the agreements --------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        if not self.agreements_file.exists():
            return {"own_keys": [], "creditors": {}}
        data: dict[str, Any] = json.loads(self.agreements_file.read_text(encoding="utf-8"))
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.agreements_file.with_name(f".agreements.{os.getpid()}.tmp")
        staging.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(staging, self.agreements_file)

    def agreement(self, creditor_id: str) -> Agreement:
        entry = self._read()["creditors"].get(creditor_id)
        if entry is None:
            return Agreement()
        return Agreement(str(entry["protection"]), pinned_keys(entry.get("keys", [])))

    def set_agreement(self, creditor_id: str, protection: str, keys: list[str]) -> Agreement:
        """Record a creditor's agreement (its pinned keys, with their validity)."""
        if protection not in PROTECTIONS:
            raise ValueError(f"protection must be one of {', '.join(PROTECTIONS)}, not {protection!r}")
        parsed = pinned_keys(keys)
        if protection == "openpgp" and not parsed:
            raise ValueError(f"creditor {creditor_id}: protection openpgp needs at least one pinned key")
        data = self._read()
        data["creditors"][creditor_id] = {"protection": protection, "keys": [str(key) for key in parsed]}
        self._write(data)
        return Agreement(protection, parsed)

    def own_keys(self) -> list[PinnedKey]:
        return pinned_keys(self._read()["own_keys"])

    def set_own_keys(self, keys: list[str]) -> None:
        data = self._read()
        data["own_keys"] = [str(key) for key in pinned_keys(keys)]
        self._write(data)

    def gpg(self) -> OpenPgp:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return OpenPgp(self.home)

    # -- files -----------------------------------------------------------------------------------
    def open_prlv(self, creditor_id: str, path: Path, day: date) -> Verified:
        """The plain PRLV inside ``path`` (``NAME.pgp``), decrypted and verified for ``creditor_id``;
        ProtectionError with the SG01 reason otherwise. The plain copy goes under
        ``openpgp/received/<creditor>/``."""
        agreement = self.agreement(creditor_id)
        plain_name = plain_name_of(path.name)
        if plain_name is None:
            raise ProtectionError(
                f"{path.name} arrived as a plain file, but creditor {creditor_id}'s agreement requires "
                "OpenPGP protection"
            )
        folder = self.folder / "received" / creditor_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / plain_name
        counter = 1
        while target.exists():  # a file may be sent again under another protected copy: keep both
            target = folder / f"v{counter}" / plain_name
            target.parent.mkdir(exist_ok=True)
            counter += 1
        gpg = self.gpg()
        own = self.own_keys()
        if own:  # AP's key and gpg work (ProtectionSetupError: no ACK yet, never an SG01 for our fault)
            gpg.check_own_key(newest_key(own, day, "Algérie Poste").fingerprint)
        return gpg.unprotect(path, target, pinned=agreement.keys, day=day, sender=f"creditor {creditor_id}")

    def protect(self, creditor_id: str, plain: Path, target: Path, *, name: str, day: date) -> None:
        """``target``: ``plain`` (literal-data name ``name``) signed by AP's newest key valid on ``day``
        and encrypted to the creditor's newest pinned key valid on ``day``."""
        agreement = self.agreement(creditor_id)
        signer = newest_key(self.own_keys(), day, "Algérie Poste").fingerprint
        recipient = newest_key(agreement.keys, day, f"creditor {creditor_id}").fingerprint
        self.gpg().protect(plain, target, signer=signer, recipient=recipient, name=name)
