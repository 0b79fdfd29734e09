"""The one typed settings object: environment variables (``EPAY_*``) over a TOML config file over defaults.

The config file is ``$EPAY_CONFIG`` if set, else ``$EPAY_HOME/epay.toml`` if it exists. Secrets (SFTP
private keys) are referenced by path, never stored here.
"""

from __future__ import annotations

import os
import stat
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from epay.formats.rip import rip_from_account, rip_problem

REPO_ROOT = Path(__file__).resolve().parents[1]
ALGIERS = ZoneInfo("Africa/Algiers")


class ConfigError(ValueError):
    """The settings cannot be read at all (the config file, an empty EPAY_HOME): a usage error, never a
    silent fall-back to defaults."""


def _config_file() -> Path | None:
    explicit = os.environ.get("EPAY_CONFIG")
    if explicit is not None:
        if not explicit.strip():
            raise ConfigError("EPAY_CONFIG is empty: unset it, or name the config file")
        problem = regular_file_problem(Path(explicit))
        if problem:
            raise ConfigError(f"EPAY_CONFIG={explicit}: {problem}")
        return Path(explicit)
    home_text = os.environ.get("EPAY_HOME")
    if home_text is not None and not home_text.strip():
        raise ConfigError("EPAY_HOME is empty: unset it (the repository's var/), or name the data folder")
    home = Path(home_text or REPO_ROOT / "var")
    candidate = home / "epay.toml"
    if not candidate.exists():
        return None
    problem = regular_file_problem(candidate)
    if problem:
        raise ConfigError(f"{candidate}: {problem}")
    return candidate


def regular_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a regular file epay may read (looked at with ``stat``, never opened: a FIFO
    would wait for a writer forever, a device never end), or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


class Settings(BaseSettings):
    """Everything an epay process needs to know about where it runs and who it is."""

    model_config = SettingsConfigDict(env_prefix="EPAY_", extra="forbid", frozen=True)

    home: Path = Field(
        default=REPO_ROOT / "var", description="data folder: ledger, files, quarantine, reports"
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under home")
    creditor_id: str = Field(default="100237", description="AT's 6-digit national creditor number")
    creditor_name: str = "ALGERIE TELECOM"
    creditor_rip: str = Field(default=rip_from_account(123456), description="AT's own CCP account (RIP)")
    holidays_file: Path = REPO_ROOT / "schemas" / "holidays.toml"
    poste_database_url: str | None = Field(default=None, description="the simulated post office's database")
    poste_scenario_file: Path = REPO_ROOT / "schemas" / "poste" / "scenario-default.toml"
    clock: str = Field(
        default="system",
        description="the one clock epay reads (epay.clock): 'system', 'file' (set by `epay clock set`, "
        "shared by every worker) or a fixed date-time with its offset",
    )
    cutoff_margin_minutes: int = Field(
        default=10,
        ge=0,
        le=600,
        description="a build must end this long before the 22:00 cut-off, so its files can reach AP in time",
    )
    sftp_host: str = "127.0.0.1"
    sftp_port: int = 2222
    sftp_username: str = "at100237"
    sftp_private_key_file: Path | None = None
    transport_folder: Path | None = Field(
        default=None,
        description="move files through this folder (an SFTP account's home: inbound/, outbound/) instead "
        "of SFTP: the simulated post office's creditor home, for simulation and tests; never in production",
    )
    sftp_conn_id: str | None = Field(
        default=None, description="in Airflow: take the SFTP endpoint from this Airflow Connection instead"
    )
    sftp_host_key: str | None = Field(
        default=None, description="pinned server host key, 'ssh-ed25519 AAAA...'"
    )

    max_details_per_file: int = Field(default=999_999, ge=1, le=999_999, description="spec §3 limit")
    retry_after_business_days: int = Field(
        default=2, ge=1, description="an AM04/MS03 reject is presented again after this many business days"
    )
    max_tries: int = Field(default=3, ge=1, description="presentations of one item before it stops")
    inbound_recheck_files: int = Field(
        default=10,
        ge=0,
        le=10_000,
        description="files already read whose bytes are downloaded and hashed again each night, oldest "
        "check first (a file whose listed size or time changed is always checked)",
    )
    ack_deadline_minutes: int = Field(
        default=120,
        ge=1,
        description="a PRLV file sent this long ago without its ACK is an incident (spec: within minutes)",
    )
    returns_overdue_business_days: int = Field(
        default=2,
        ge=1,
        description="an instruction without a final status this many business days after its settlement "
        "date is overdue",
    )
    alert_webhook: str | None = Field(
        default=None,
        description="http(s) URL that failed-task alerts are POSTed to as JSON (epay.alerts); unset: none",
    )
    day_max_count: int | None = Field(
        default=None, ge=1, description="a batch with more instructions is built but held for release"
    )
    day_max_amount: int | None = Field(
        default=None, ge=1, description="centimes; a batch above it is built but held for release"
    )
    protection: Literal["none", "openpgp"] = Field(
        default="none",
        description="contract §8: 'openpgp' when AT's agreement with AP requires every file signed and "
        "encrypted (version 002); 'none' (version 001) sends and reads plain files",
    )
    openpgp_home: Path | None = Field(
        default=None,
        description="GnuPG home folder holding AT's secret key(s) and AP's public keys, by path (never in "
        "the repository); docs/openpgp.md",
    )
    openpgp_own_key: str | None = Field(
        default=None, description="fingerprint of AT's key that signs what AT sends (the newest one)"
    )
    openpgp_conn_id: str | None = Field(
        default=None,
        description="in Airflow: take the OpenPGP home, AT's key and AP's pinned keys from this Airflow "
        "Connection's extra ('home', 'own_key', 'poste_keys') instead of the three settings",
    )
    openpgp_poste_keys: list[str] = Field(
        default_factory=list,
        description="AP's pinned key fingerprints, each 'FINGERPRINT [from YYYY-MM-DD] [until YYYY-MM-DD]' "
        "(a rotation's overlap: both listed); files are encrypted to the newest valid one",
    )

    @field_validator("creditor_id")
    @classmethod
    def _creditor_id(cls, value: str) -> str:
        if len(value) != 6 or not value.isdigit():
            raise ValueError(f"creditor_id must be 6 digits, got {value!r}")
        return value

    @field_validator("openpgp_own_key")
    @classmethod
    def _openpgp_own_key(cls, value: str | None) -> str | None:
        from epay.protection.openpgp import normalize_fingerprint

        return None if value is None else normalize_fingerprint(value)

    @field_validator("openpgp_poste_keys")
    @classmethod
    def _openpgp_poste_keys(cls, value: list[str]) -> list[str]:
        from epay.protection.openpgp import PinnedKey

        return [str(PinnedKey.parse(text)) for text in value]

    @field_validator("creditor_rip")
    @classmethod
    def _creditor_rip(cls, value: str) -> str:
        problem = rip_problem(value)
        if problem:
            raise ValueError(f"creditor_rip is not a valid RIP: {problem}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config is not None:
            try:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
            except (ValueError, OSError) as error:  # tomllib.TOMLDecodeError is a ValueError
                raise ConfigError(f"the config file {config} cannot be read: {error}") from None
        return tuple(sources)

    @field_validator("holidays_file", "poste_scenario_file")
    @classmethod
    def _readable_file(cls, value: Path) -> Path:
        problem = regular_file_problem(value)
        if problem:
            raise ValueError(f"{value}: {problem}")
        return value

    @field_validator("clock")
    @classmethod
    def _clock(cls, value: str) -> str:
        from epay.clock import clock_from

        clock_from(value, Path("."))  # raises ClockError (a ValueError) naming what is wrong
        return value

    def now(self) -> datetime:
        """The current moment by the clock epay is given (``EPAY_CLOCK``), timezone-aware."""
        from epay.clock import clock_from

        return clock_from(self.clock, self.home).now()

    def today(self) -> date:
        """The current business date in Africa/Algiers by the same clock."""
        return self.now().astimezone(ALGIERS).date()

    @property
    def ledger_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'epay.sqlite3'}"

    @property
    def files_dir(self) -> Path:
        return self.home / "files"

    def outbound_dir(self, business_date: date) -> Path:
        return self.files_dir / "outbound" / business_date.isoformat()

    def inbound_dir(self, business_date: date) -> Path:
        return self.files_dir / "inbound" / business_date.isoformat()

    @property
    def billing_incoming_dir(self) -> Path:
        """Where the billing system drops its daily extracts (BILL_YYYYMMDD_SS.parquet|csv)."""
        return self.home / "billing" / "incoming"

    @property
    def billing_outgoing_dir(self) -> Path:
        """Where epay leaves the daily payment-status export for billing."""
        return self.home / "billing" / "outgoing"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def poste_dir(self) -> Path:
        return self.home / "poste"

    @property
    def poste_url(self) -> str:
        return self.poste_database_url or f"sqlite:///{self.poste_dir / 'poste.sqlite3'}"


@cache
def get_settings() -> Settings:
    return Settings()


def business_today() -> date:
    """Today's business date in Africa/Algiers (never the machine's local zone), by the process's clock."""
    from epay.clock import process_clock

    return process_clock().now().astimezone(ALGIERS).date()
