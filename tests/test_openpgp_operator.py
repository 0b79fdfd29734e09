"""AT's OpenPGP settings: the three settings, or an Airflow Connection's extra (by path, never key
material); what is missing is a setup error naming it, never a verdict on a file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from epay.protection.openpgp import ProtectionSetupError
from epay.protection.operator import operator_keys, settings_from_connection
from epay.settings import Settings
from tests.openpgp_keys import KeyWorld, make_key_world


@pytest.fixture(scope="session")
def key_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyWorld]:
    yield from make_key_world(tmp_path_factory)


def _connection(**extra: object) -> SimpleNamespace:
    return SimpleNamespace(conn_id="epay_openpgp", extra_dejson=extra)


def test_missing_settings_are_named(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, protection="openpgp")
    with pytest.raises(ProtectionSetupError) as raised:
        operator_keys(settings)
    assert "EPAY_OPENPGP_HOME, EPAY_OPENPGP_OWN_KEY, EPAY_OPENPGP_POSTE_KEYS" in str(raised.value)


def test_the_keys_from_an_airflow_connection(
    key_world: KeyWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow.sdk

    connection = _connection(
        home=str(key_world.at_home),
        own_key=key_world.at1.lower(),
        poste_keys=[f"{key_world.ap1} until 2026-12-04"],
    )
    asked: list[str] = []

    def get(conn_id: str) -> SimpleNamespace:
        asked.append(conn_id)
        return connection

    monkeypatch.setattr(airflow.sdk.Connection, "get", get)
    settings = Settings(home=tmp_path, protection="openpgp", openpgp_conn_id="epay_openpgp")
    keys = operator_keys(settings)
    assert asked == ["epay_openpgp"]
    assert keys.gpg.home == key_world.at_home and keys.own == key_world.at1
    assert [str(k) for k in keys.poste] == [f"{key_world.ap1} until 2026-12-04"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"home": "/x", "own_key": "A" * 40}, "has no poste_keys in its extra"),
        ({"home": "/x", "own_key": "A" * 40, "poste_keys": ["B" * 40], "private_key": "k"}, "key material"),
        ({"home": "/x", "own_key": "nope", "poste_keys": ["B" * 40]}, "not an OpenPGP fingerprint"),
        ({"home": "/x", "own_key": "A" * 40, "poste_keys": ["B" * 40 + " from 2026-02-30"]}, "YYYY-MM-DD"),
    ],
)  # fmt: skip
def test_a_connection_that_cannot_work_is_named(
    tmp_path: Path, extra: dict[str, object], message: str
) -> None:
    with pytest.raises(ProtectionSetupError, match="Airflow connection 'epay_openpgp'") as raised:
        settings_from_connection(Settings(home=tmp_path), _connection(**extra))
    assert message in str(raised.value)
