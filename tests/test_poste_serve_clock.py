"""`epay poste serve --end-of-day-every S` on the shared clock (EPAY_CLOCK=file): arrivals are stamped
with the simulated time, and each day whose end the clock has passed is closed by the server itself
(executions, RETR, RELV, MNDT), as `epay poste tick --date D` would — never a day before the world began."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from epay.formats import validate_file
from epay.poste.cli import day_to_settle
from tests.test_poste_cli import EPAY, add_creditor, client_key, prlv, run

WED = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("now", "first_day", "settled", "expected"),
    [
        ("2026-11-25T20:00:00+01:00", WED, None, None),  # the day has not ended
        ("2026-11-25T23:59:59+01:00", WED, None, None),
        ("2026-11-26T00:00:00+01:00", WED, None, WED),  # midnight Algiers ends it
        ("2026-11-25T23:30:00+00:00", WED, None, WED),  # 00:30 in Algiers (UTC+1)
        ("2026-11-26T00:05:00+01:00", WED, WED, None),  # already settled
        ("2026-11-30T00:05:00+01:00", WED, WED, date(2026, 11, 29)),  # tick closes the days between
        ("2026-11-25T00:05:00+01:00", WED, None, None),  # the day before the world began: never
    ],
)
def test_the_day_to_settle_is_the_latest_day_the_clock_has_left(
    now: str, first_day: date, settled: date | None, expected: date | None
) -> None:
    assert day_to_settle(datetime.fromisoformat(now), first_day, settled) == expected


def test_the_day_to_settle_reads_any_offset() -> None:
    assert day_to_settle(datetime(2026, 11, 25, 23, 0, tzinfo=UTC), WED, None) == WED


@pytest.fixture
def world(tmp_path: Path) -> dict[str, str]:
    import os

    env = os.environ.copy() | {"EPAY_HOME": str(tmp_path / "home"), "EPAY_CLOCK": "file"}
    env.pop("EPAY_CONFIG", None)
    _, public = client_key(tmp_path)
    assert add_creditor(env, public).returncode == 0
    return env


@pytest.fixture
def server(world: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    set_clock = run(world, "clock", "set", "--at", "2026-11-25T20:00:00+01:00", "--speed", "0")
    assert set_clock.returncode == 0, set_clock.stderr
    # A PRLV of Wednesday for Thursday copied in by hand: on the real clock (December) it would be DT01.
    prlv(Path(world["EPAY_HOME"]) / "poste" / "sftp" / "100237" / "inbound", WED, date(2026, 11, 26))
    process = subprocess.Popen(
        [EPAY, "poste", "serve", "--port", "0", "--end-of-day-every", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=world,
        start_new_session=True,
    )
    yield process
    process.terminate()
    process.wait(timeout=20)


def _published(world: dict[str, str]) -> list[str]:
    outbound = Path(world["EPAY_HOME"]) / "poste" / "sftp" / "100237" / "outbound"
    return sorted(p.name for p in outbound.iterdir() if not p.name.startswith("ACK_"))


def _wait_for_line(process: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    assert process.stdout is not None
    while not any(text in line for line in seen):
        line = process.stdout.readline()
        assert line, "the server stopped:\n" + "".join(seen)
        seen.append(line)


def test_serve_closes_each_day_when_the_shared_clock_passes_its_end(
    world: dict[str, str], server: subprocess.Popen[str]
) -> None:
    seen: list[str] = []
    _wait_for_line(server, "end of day: days from 2026-11-25 on are closed", seen)
    assert _published(world) == []  # Wednesday 20:00 by the clock: nothing has been executed yet

    assert run(world, "clock", "set", "--at", "2026-11-26T00:05:00+01:00", "--speed", "0").returncode == 0
    _wait_for_line(server, "end of day 2026-11-25", seen)
    published = _published(world)
    assert any(name.startswith("RELV_100237_20261125") for name in published), published
    assert not any("_20261124_" in name for name in published), published  # before the world: never

    outbound = Path(world["EPAY_HOME"]) / "poste" / "sftp" / "100237" / "outbound"
    ack = outbound / "ACK_PRLV_100237_20261125_01.txt"
    assert validate_file(ack).valid
    assert b"ACCP" in ack.read_bytes()  # judged at the simulated Wednesday evening, not the real date

    deadline = time.monotonic() + 2  # several more passes at the same clock reading publish nothing new
    while time.monotonic() < deadline:
        time.sleep(0.2)
    assert _published(world) == published


def test_serve_refuses_bad_settings_with_a_usage_error(world: dict[str, str]) -> None:
    bad_interval = run(world, "poste", "serve", "--port", "0", "--end-of-day-every", "0")
    assert bad_interval.returncode == 2 and "Traceback" not in bad_interval.stderr
    bad_clock = run(world | {"EPAY_CLOCK": "tomorrow"}, "poste", "serve", "--port", "0")
    assert bad_clock.returncode == 2 and "Traceback" not in bad_clock.stderr, bad_clock.stderr
    assert "EPAY_CLOCK" in bad_clock.stderr
