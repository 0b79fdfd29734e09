"""AT's side of contract §8: protect each PRLV file before it is sent, and open each AP file before it
is read, when AT's agreement says ``protection = openpgp`` (``EPAY_PROTECTION``).

- Sending: ``NAME.pgp`` is written once beside ``NAME`` in the outbound folder (signed with AT's key
  ``EPAY_OPENPGP_OWN_KEY``, encrypted to AP's newest pinned key valid today by epay's clock) and is what
  is uploaded; a re-run uploads the same bytes (encryption is randomised: a second encryption would be
  other bytes under the same name, an incident by §1).
- Receiving: ``NAME.pgp`` is decrypted and its signature verified against AP's pinned keys
  (``EPAY_OPENPGP_POSTE_KEYS``, each valid over the dates its agreement gives it); the plain ``NAME`` is
  written beside it only when every check passed, and only it is read. Both are kept: the protected
  file is what was exchanged. A file that fails — or a plain ``NAME`` while the agreement requires
  protection — is quarantined with the reason (naming fingerprints, never key material), nothing of it
  applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epay.protection.openpgp import (
    OpenPgp,
    PinnedKey,
    ProtectionError,
    ProtectionSetupError,
    newest_key,
    normalize_fingerprint,
    pinned_keys,
    plain_name_of,
    protected_name,
)
from epay.settings import Settings

LOG = logging.getLogger(__name__)
POSTE = "Algérie Poste"


def protected(settings: Settings) -> bool:
    """Whether AT's agreement requires OpenPGP protection (contract §8, version 002)."""
    return settings.protection == "openpgp"


@dataclass(frozen=True)
class OperatorKeys:
    gpg: OpenPgp
    own: str
    poste: list[PinnedKey]


def settings_from_connection(settings: Settings, connection: Any) -> Settings:
    """``settings`` with the OpenPGP home, AT's key and AP's pinned keys of an Airflow Connection's extra
    (``home``: the GnuPG home's path; ``own_key``: a fingerprint; ``poste_keys``: a list of pinned keys).
    Duck-typed, so this module never imports Airflow; key material itself is never taken from it."""
    name = getattr(connection, "conn_id", "?")
    extra = dict(getattr(connection, "extra_dejson", None) or {})
    missing = [key for key in ("home", "own_key", "poste_keys") if not extra.get(key)]
    if missing:
        raise ProtectionSetupError(f"Airflow connection {name!r} has no {', '.join(missing)} in its extra")
    if any("private" in key.lower() or "secret" in key.lower() for key in extra):
        raise ProtectionSetupError(
            f"Airflow connection {name!r}: give the GnuPG home by path ('home'), never key material"
        )
    poste = extra["poste_keys"]
    try:
        return settings.model_copy(
            update={
                "openpgp_home": Path(str(extra["home"])),
                "openpgp_own_key": normalize_fingerprint(str(extra["own_key"])),
                "openpgp_poste_keys": [str(PinnedKey.parse(str(key))) for key in poste]
                if isinstance(poste, list)
                else [str(PinnedKey.parse(str(poste)))],
            }
        )
    except ValueError as error:
        raise ProtectionSetupError(f"Airflow connection {name!r}: {error}") from None


def operator_keys(settings: Settings) -> OperatorKeys:
    """AT's keyring, signing key and AP's pinned keys, or a ProtectionSetupError naming what is missing."""
    if settings.openpgp_conn_id:  # in Airflow: from the Connection (its secrets backend), by path
        from airflow.sdk import Connection

        settings = settings_from_connection(settings, Connection.get(settings.openpgp_conn_id))
    missing = [
        variable
        for variable, value in (
            ("EPAY_OPENPGP_HOME", settings.openpgp_home),
            ("EPAY_OPENPGP_OWN_KEY", settings.openpgp_own_key),
            ("EPAY_OPENPGP_POSTE_KEYS", settings.openpgp_poste_keys),
        )
        if not value
    ]
    if missing:
        raise ProtectionSetupError(f"EPAY_PROTECTION=openpgp needs {', '.join(missing)} (docs/openpgp.md)")
    assert settings.openpgp_home is not None and settings.openpgp_own_key is not None
    return OperatorKeys(
        OpenPgp(settings.openpgp_home), settings.openpgp_own_key, pinned_keys(settings.openpgp_poste_keys)
    )


def protect_outbound(settings: Settings, plain: Path) -> Path:
    """``plain``'s protected copy ``NAME.pgp`` beside it, made once; the file to upload."""
    target = plain.with_name(protected_name(plain.name))
    if target.exists():
        return target  # made by an earlier run: the same bytes go (or went) to the server
    keys = operator_keys(settings)
    recipient = newest_key(keys.poste, settings.today(), POSTE).fingerprint
    keys.gpg.protect(plain, target, signer=keys.own, recipient=recipient)
    LOG.info("protected %s: signed by %s, encrypted to %s", target.name, keys.own, recipient)
    return target


@dataclass(frozen=True)
class Opened:
    """An AP file after §8's checks: the plain file to read, or the reason it must not be read."""

    plain: Path | None
    reason: str | None
    signer: str | None = None


def open_inbound(settings: Settings, downloaded: Path) -> Opened:
    """Decrypt and verify ``downloaded`` (a file from AP's ``outbound/``) as §8 says."""
    if plain_name_of(downloaded.name) is None:
        return Opened(
            None,
            f"{downloaded.name} arrived as a plain file, but AT's agreement with Algérie Poste requires "
            "OpenPGP protection (contract §8: NAME.pgp, signed and encrypted): not read",
        )
    keys = operator_keys(settings)  # ProtectionSetupError: the step fails, nothing is judged
    keys.gpg.check_own_key(keys.own)  # our key and gpg work: a failure below is the file's
    target = downloaded.with_name(plain_name_of(downloaded.name) or "")
    try:
        verified = keys.gpg.unprotect(
            downloaded, target, pinned=keys.poste, day=settings.today(), sender=POSTE
        )
    except ProtectionError as error:
        LOG.error("%s", error)
        return Opened(None, f"{error} (contract §8): not read")
    LOG.info("opened %s: signed by %s", downloaded.name, verified.signer)
    return Opened(verified.plain, None, verified.signer)


def kind_of(name: str) -> str | None:
    """The kind a (plain or protected) AP file name announces, for the quarantine's record."""
    return (plain_name_of(name) or name).split("_")[0] or None
