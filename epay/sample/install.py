"""``epay sample``: install a generated world on both sides, through the real interfaces.

Operator side: the billing extract is written to the billing drop folder and loaded by the same check
and import as a real one; the mandates go through the same MNDT-action code the inbound files use.
Post office side: the simulated Algérie Poste gets AT as creditor, the CCP accounts, the mandates it
registered, and AT's SFTP account (a key pair generated under the data folder, never in the repository);
the server's host key is pinned in ``$EPAY_HOME/epay.toml`` when that file does not exist yet.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from epay.calendar import BusinessCalendar
from epay.settings import Settings

ACTOR = "sample"


@dataclass
class SampleReport:
    as_of: date
    subscribers: int
    extract: str
    loaded: dict[str, Any]
    mandates: int
    poste_accounts: int
    poste_mandates: int
    sftp_username: str
    seconds: dict[str, float] = field(default_factory=dict)
    openpgp: dict[str, str] = field(default_factory=dict)  # contract §8: the keys set up on both sides

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat()
        return out


def install_sample(
    settings: Settings,
    subscribers: int,
    seed: int,
    as_of: date,
    calendar: BusinessCalendar,
    protection: str = "none",
) -> SampleReport:
    from epay.billing.extract import check_extract, write_extract
    from epay.ledger.billing_load import load_extract
    from epay.ledger.bulk import scalar
    from epay.ledger.db import open_ledger, transaction
    from epay.ledger.mandates import actions_from_snapshot, apply_mandate_actions
    from epay.sample.world import generate_world

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    world = generate_world(subscribers, seed=seed, as_of=as_of, calendar=calendar)
    seconds["generate"] = time.perf_counter() - started

    mark = time.perf_counter()
    path = settings.billing_incoming_dir / f"BILL_{as_of:%Y%m%d}_01.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_extract(world.extract, path)
    checked = check_extract(path)
    seconds["extract check"] = time.perf_counter() - mark

    mark = time.perf_counter()
    engine = open_ledger(settings.ledger_url)
    try:
        loaded = load_extract(engine, checked)
        with transaction(engine) as connection:
            # once: with the extract, or after a run that stopped between the two
            if not loaded.already_loaded or scalar(connection, "SELECT count(*) FROM mandate") == 0:
                apply_mandate_actions(
                    connection, actions_from_snapshot(world.mandates), actor=ACTOR, business_date=as_of
                )
    finally:
        engine.dispose()
    seconds["ledger load"] = time.perf_counter() - mark

    # a thread for this measured no gain (the GIL): the two sides are installed one after the other
    mark = time.perf_counter()
    accounts, poste_mandates, username = _install_poste(settings, world, calendar, as_of, protection)
    seconds["post office"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    return SampleReport(
        as_of=as_of,
        subscribers=subscribers,
        extract=str(path),
        loaded=loaded.to_dict(),
        mandates=len(world.mandates),
        poste_accounts=accounts,
        poste_mandates=poste_mandates,
        sftp_username=username,
        seconds={k: round(v, 2) for k, v in seconds.items()},
        openpgp=_openpgp_settings(settings) if protection == "openpgp" else {},
    )


def _install_poste(
    settings: Settings, world: Any, calendar: BusinessCalendar, as_of: date, protection: str = "none"
) -> tuple[int, int, str]:
    from epay.poste.office import PostOffice
    from epay.poste.scenario import load_scenario
    from epay.poste.sftp_server import add_account, host_key_line, load_or_create_host_key

    office = PostOffice(
        settings.poste_dir,
        settings.poste_url,
        calendar=calendar,
        scenario=load_scenario(settings.poste_scenario_file),
    )
    office.add_creditor(settings.creditor_id, settings.creditor_name, settings.creditor_rip)
    accounts = office.add_accounts(world.accounts)
    # AT learnt these from earlier MNDT files: nothing to report again
    mandates = office.add_mandates(world.poste_mandates(settings.creditor_id), day=as_of, report=False)
    key_file = _operator_key(settings)
    public = key_file.with_suffix(".pub").read_text(encoding="utf-8").strip()
    add_account(office.poste_dir, settings.sftp_username, settings.creditor_id, public)
    host_key = host_key_line(load_or_create_host_key(office.poste_dir / "host_key"))
    extra = _exchange_openpgp_keys(settings, office) if protection == "openpgp" else {}
    _pin_host_key(settings, key_file, host_key, extra)
    return accounts, mandates, settings.sftp_username


def _exchange_openpgp_keys(settings: Settings, office: Any) -> dict[str, Any]:
    """Contract §8 on both sides: a key pair each (Ed25519/Cv25519, made once), each side's public key
    imported by the other and pinned by fingerprint, and the creditor's agreement set to openpgp."""
    from epay.protection.openpgp import OpenPgp

    home = _openpgp_home(settings)
    at = OpenPgp(home)
    own = settings.openpgp_own_key
    if own is None or not at.has_secret(own):
        own = at.generate_key("Algerie Telecom epay", "epay@at.example.dz")
    poste = office.protection
    ap = poste.gpg()
    ap_keys = poste.own_keys()
    ap_own = (
        ap_keys[-1].fingerprint if ap_keys else ap.generate_key("Algerie Poste epay", "epay@ap.example.dz")
    )
    at.import_public(ap.export_public(ap_own), ap_own)  # out of band, checked by fingerprint
    ap.import_public(at.export_public(own), own)
    poste.set_own_keys([str(key) for key in ap_keys] or [ap_own])
    poste.set_agreement(settings.creditor_id, "openpgp", [own])
    return {
        "protection": "openpgp",
        "openpgp_home": str(home),
        "openpgp_own_key": own,
        "openpgp_poste_keys": [ap_own],
    }


def _openpgp_home(settings: Settings) -> Path:
    home = settings.openpgp_home or settings.home / "keys" / "gnupg"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def _openpgp_settings(settings: Settings) -> dict[str, str]:
    from epay.poste.protection import PosteProtection

    home = _openpgp_home(settings)
    agreement = PosteProtection(settings.poste_dir).agreement(settings.creditor_id)
    own_keys = PosteProtection(settings.poste_dir).own_keys()
    return {
        "openpgp_home": str(home),
        "openpgp_own_key": agreement.keys[-1].fingerprint if agreement.keys else "",
        "openpgp_poste_key": own_keys[-1].fingerprint if own_keys else "",
    }


def _operator_key(settings: Settings) -> Path:
    """AT's SFTP key pair under the data folder (created once, private part readable by its owner only)."""
    import paramiko

    key_file = settings.sftp_private_key_file or settings.home / "keys" / "at_sftp_ecdsa"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key = paramiko.ECDSAKey.generate()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            key.write_private_key(handle)
        key_file.with_suffix(".pub").write_text(f"{key.get_name()} {key.get_base64()} epay-at\n")
    return key_file


def _pin_host_key(
    settings: Settings, key_file: Path, host_key: str, openpgp: dict[str, Any] | None = None
) -> None:
    config = settings.home / "epay.toml"
    if config.exists() or os.environ.get("EPAY_CONFIG"):
        return
    text = (
        "# written by `epay sample`: the simulated post office's SFTP identity, pinned\n"
        f'sftp_private_key_file = "{key_file}"\n'
        f'sftp_host_key = "{host_key}"\n'
    )
    if openpgp:  # contract §8: AT's key by path and fingerprint, AP's pinned
        text += (
            "# OpenPGP protection (contract §8, docs/openpgp.md)\n"
            f'protection = "{openpgp["protection"]}"\n'
            f'openpgp_home = "{openpgp["openpgp_home"]}"\n'
            f'openpgp_own_key = "{openpgp["openpgp_own_key"]}"\n'
            f"openpgp_poste_keys = {json.dumps(openpgp['openpgp_poste_keys'])}\n"
        )
    config.write_text(text, encoding="utf-8")
