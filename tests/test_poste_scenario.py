"""Scenarios drive the simulated post office: counter activity on mandates, and injected faults."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from epay.formats import read_file
from epay.formats import synthetic as synth
from epay.poste.office import PostOffice
from epay.poste.scenario import ScenarioError, load_scenario

DAY = date(2026, 11, 25)


def office_with_mandates(tmp_path: Path, **changes: float) -> PostOffice:
    scenario = dataclasses.replace(load_scenario(), **changes)
    office = PostOffice(tmp_path / "poste", scenario=scenario)
    office.add_creditor("100237", synth.CREDITOR_NAME, synth.CREDITOR_RIP)
    details = synth.prlv_details(30, seed=5)
    office.add_mandates(
        pd.DataFrame(
            {
                "reference": details.column("mandate_reference").to_pylist(),
                "creditor_id": "100237",
                "rip": details.column("debtor_rip").to_pylist(),
                "debtor_name": "X",
                "subscriber_number": "1",
                "ceiling": 0,
                "effective_date": date(2026, 1, 1),
            }
        ),
        day=date(2026, 1, 1),
        report=False,
    )
    return office


def mndt_actions(office: PostOffice) -> list[str]:
    files = sorted((office.home("100237") / "outbound").glob("MNDT_*.txt"))
    actions: list[str] = []
    for path in files:
        details = read_file(path).details
        assert details is not None
        actions += details.column("action").to_pylist()
    return actions


def test_counters_revoke_mandates_as_the_scenario_says(tmp_path: Path) -> None:
    office = office_with_mandates(tmp_path, revoke_rate=1.0)
    office.tick(DAY)
    assert mndt_actions(office) == ["R"] * 30
    office.tick(DAY)  # idempotent: no second MNDT
    assert mndt_actions(office) == ["R"] * 30


def test_counters_change_ceilings_as_the_scenario_says(tmp_path: Path) -> None:
    office = office_with_mandates(tmp_path, ceiling_change_rate=1.0)
    office.tick(DAY)
    assert mndt_actions(office) == ["M"] * 30


def test_no_counter_activity_at_rate_zero(tmp_path: Path) -> None:
    office = office_with_mandates(tmp_path, revoke_rate=0.0, ceiling_change_rate=0.0)
    office.tick(DAY)
    assert mndt_actions(office) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ms03_rate = 2", "between 0 and 1"),
        ("colour = 1", "unknown settings"),
        ("[faults]\nlate = 1", "unknown"),
        ("arrival_time = 'noon'", "arrival_time"),
        ("seed = ", "scenario.toml"),
    ],
)
def test_a_bad_scenario_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_serve_can_refuse_connections_for_a_while(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text("[faults]\nrefuse_connections_seconds = 3\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {"EPAY_HOME": str(tmp_path / "home"), "EPAY_POSTE_SCENARIO_FILE": str(scenario)}
    epay = str(Path(sys.executable).with_name("epay"))
    server = subprocess.Popen(
        [epay, "poste", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        while "refusing connections" not in (line := server.stdout.readline()):
            assert line, "the server stopped"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        while "serving SFTP" not in (line := server.stdout.readline()):
            assert line, "the server stopped"
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            assert connection.recv(8).startswith(b"SSH-2.0")
        assert time.monotonic() - started < 5
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_draws_do_not_depend_on_the_other_keys_drawn() -> None:
    scenario = load_scenario()
    keys = [f"PRLV_100237_20261125_01.txt/REF{i}" for i in range(50)]
    alone = scenario.fractions("ms03", "100237", keys)
    with_more = scenario.fractions("ms03", "100237", [*keys, "PRLV_100237_20261125_02.txt/" + "X" * 24])
    assert (alone == with_more[:50]).all()


@pytest.mark.parametrize(
    "text",
    [
        'ms03_rate = "0.1"',
        "ack_after_seconds = -5",
        '[faults]\nredeliver_retr = "no"',
        "[faults]\nlate_retr_days = 1.5",
    ],
)
def test_scenario_values_of_the_wrong_kind_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError):
        load_scenario(path)


def test_a_mandate_a_counter_could_not_register_is_refused(tmp_path: Path) -> None:
    office = office_with_mandates(tmp_path)
    with pytest.raises(ValueError, match="Arabic"):
        office.register_mandate("M1", "100237", synth.CREDITOR_RIP, "محمد", "S1", effective_date=DAY, day=DAY)
    with pytest.raises(ValueError, match="RIP"):
        office.register_mandate(
            "M1", "100237", "00799999000012345600", "ALI", "S1", effective_date=DAY, day=DAY
        )
    bad = pd.DataFrame(
        {
            "reference": ["ok1", "M 2 "],
            "creditor_id": "100237",
            "rip": synth.CREDITOR_RIP,
            "debtor_name": "ALI",
            "subscriber_number": "1",
            "ceiling": 0,
            "effective_date": DAY,
        }
    )
    with pytest.raises(ValueError, match="2 mandate"):
        office.add_mandates(bad, day=DAY)


def test_mndt_records_show_each_action_as_it_was(tmp_path: Path) -> None:
    office = PostOffice(tmp_path / "poste")
    office.add_creditor("100237", synth.CREDITOR_NAME, synth.CREDITOR_RIP)
    rip = synth.prlv_details(1, seed=9).column("debtor_rip").to_pylist()[0]
    office.register_mandate(
        "M1",
        "100237",
        rip,
        "BENALI",
        "S1",
        effective_date=date(2026, 11, 1),
        day=date(2026, 11, 1),
        ceiling=500_000,
    )
    office.register_mandate(
        "M1", "100237", rip, "BENALI", "S1", effective_date=date(2026, 11, 26), day=DAY, ceiling=900_000
    )
    office.revoke_mandate("M1", day=DAY, effective_date=date(2026, 11, 29))
    office.tick(DAY)
    [path] = sorted((office.home("100237") / "outbound").glob("MNDT_*.txt"))
    details = read_file(path).details
    assert details is not None
    rows = [(r["action"], r["ceiling"], r["effective_date"]) for r in details.to_pylist()]
    assert rows == [
        ("N", 500_000, date(2026, 11, 1)),
        ("M", 900_000, date(2026, 11, 26)),
        ("R", 900_000, date(2026, 11, 29)),
    ]
