"""`epay sample --protection openpgp` sets up contract §8 on both sides (a key pair each, exchanged and
pinned, the agreement, AT's settings in EPAY_HOME/epay.toml), and a night then runs protected; without
the option the world stays plain."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from epay.calendar import load_calendar
from epay.poste.protection import PosteProtection
from epay.settings import Settings, get_settings
from tests.cycle_helpers import post_office_online
from tests.openpgp_keys import kill_agent

WED = date(2026, 11, 25)


def epay(*args: str) -> Result:
    from epay.cli import main

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        get_settings.cache_clear()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "h"
    home.mkdir()
    for variable in ("EPAY_CONFIG", "EPAY_DATABASE_URL", "EPAY_POSTE_DATABASE_URL", "EPAY_PROTECTION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("EPAY_HOME", str(home))
    yield home
    for gnupg in (home / "keys" / "gnupg", home / "poste" / "gnupg"):
        kill_agent(gnupg)


def test_sample_sets_up_openpgp_on_both_sides_and_a_night_runs_protected(home: Path) -> None:
    options = ["--subscribers", "40", "--seed", "4", "--as-of", "2026-11-25", "--protection", "openpgp"]
    result = epay("sample", *options, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["openpgp"]
    config = tomllib.loads((home / "epay.toml").read_text(encoding="utf-8"))
    assert config["protection"] == "openpgp"
    assert config["openpgp_own_key"] == report["openpgp_own_key"]
    assert config["openpgp_poste_keys"] == [report["openpgp_poste_key"]]
    assert Path(config["openpgp_home"]) == home / "keys" / "gnupg"
    poste = PosteProtection(home / "poste")
    agreement = poste.agreement("100237")
    assert agreement.protected and [k.fingerprint for k in agreement.keys] == [report["openpgp_own_key"]]
    assert [k.fingerprint for k in poste.own_keys()] == [report["openpgp_poste_key"]]
    assert "PRIVATE KEY" not in (home / "epay.toml").read_text()  # key material stays in the homes
    settings = Settings()
    assert settings.protection == "openpgp"
    with post_office_online(settings, load_calendar(settings.holidays_file)) as online:
        online.business_day(WED)
        sent = sorted(p.name for p in (home / "poste" / "sftp" / "100237" / "inbound").iterdir())
        assert sent and all(name.endswith(".txt.pgp") for name in sent)
        engine = create_engine(settings.ledger_url)
        with engine.connect() as c:
            states = c.execute(text("SELECT state FROM exchange_file WHERE kind = 'PRLV'")).scalars().all()
        engine.dispose()
        assert states and set(states) == {"accepted"}


def test_sample_stays_plain_by_default(home: Path) -> None:
    result = epay("sample", "--subscribers", "20", "--seed", "4", "--as-of", "2026-11-25", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["openpgp"] == {}
    assert "protection" not in tomllib.loads((home / "epay.toml").read_text(encoding="utf-8"))
    assert not (home / "keys" / "gnupg").exists() and not (home / "poste" / "gnupg").exists()
    assert PosteProtection(home / "poste").agreement("100237").protection == "none"
