"""The one clock: system, fixed, or a shared settable file; bad settings are named, never 'now'."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from epay.clock import ALGIERS, ClockError, FileClock, FixedClock, SystemClock, clock_from
from epay.settings import Settings

REPO = Path(__file__).resolve().parents[1]


class Ticking:
    """A real clock a test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_specs_name_their_clock(tmp_path: Path) -> None:
    assert isinstance(clock_from("system", tmp_path), SystemClock)
    fixed = clock_from("2026-11-25T20:00:00+01:00", tmp_path)
    assert fixed == FixedClock(datetime(2026, 11, 25, 20, tzinfo=ALGIERS))
    assert fixed.now() == datetime(2026, 11, 25, 19, tzinfo=UTC)
    assert clock_from("file", tmp_path) == FileClock(tmp_path / "clock.json")
    assert clock_from(f"file:{tmp_path}/x.json", Path("/")) == FileClock(tmp_path / "x.json")


@pytest.mark.parametrize("spec", ["yesterday", "2026-11-25T20:00:00", "2026-13-01T00:00+01:00"])
def test_a_bad_spec_is_refused_with_the_forms_allowed(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ClockError, match="offset"):
        clock_from(spec, tmp_path)


def test_a_file_clock_runs_from_when_it_was_set_at_its_speed(tmp_path: Path) -> None:
    real = Ticking(datetime(2026, 12, 7, 12, tzinfo=UTC))
    clock = FileClock(tmp_path / "clock.json", real=real)
    with pytest.raises(ClockError, match="epay clock set"):
        clock.now()  # never falls back to the real time
    clock.set(datetime(2026, 11, 25, 20, tzinfo=ALGIERS), speed=60)
    assert clock.now() == datetime(2026, 11, 25, 19, tzinfo=UTC)
    real.at += timedelta(seconds=10)
    assert clock.now() == datetime(2026, 11, 25, 19, 10, tzinfo=UTC)
    other = FileClock(tmp_path / "clock.json", real=real)  # another worker reads the same time
    assert other.now() == clock.now()
    with pytest.raises(ClockError, match="speed"):
        clock.set(datetime(2026, 11, 25, 20, tzinfo=ALGIERS), speed=-1)


def test_a_damaged_clock_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "clock.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ClockError, match=r"clock\.json is not usable"):
        FileClock(tmp_path / "clock.json").now()


def test_settings_read_the_clock_they_are_given(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, clock="2026-11-25T21:30:00+01:00")
    assert settings.today().isoformat() == "2026-11-25"
    assert settings.now() == datetime(2026, 11, 25, 20, 30, tzinfo=UTC)


def epay(*args: str, home: Path, clock: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "EPAY_HOME": str(home), "EPAY_CLOCK": clock}
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "epay"), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_epay_clock_set_and_show_through_the_shared_file(tmp_path: Path) -> None:
    done = epay(
        "clock", "set", "--at", "2026-11-25T20:00:00+01:00", "--speed", "0", home=tmp_path, clock="file"
    )
    assert done.returncode == 0, done.stderr
    shown = epay("clock", "show", home=tmp_path, clock="file")
    assert shown.stdout.startswith("2026-11-25T20:00:00+01:00 (Algiers)")


def test_bad_clock_input_is_a_usage_error_without_traceback(tmp_path: Path) -> None:
    bad = epay("clock", "show", home=tmp_path, clock="tomorrow")
    assert bad.returncode == 2 and "EPAY_CLOCK" in bad.stderr and "Traceback" not in bad.stderr
    system = epay("clock", "set", "--at", "2026-11-25T20:00:00+01:00", home=tmp_path, clock="system")
    assert system.returncode == 2 and "only a settable clock" in system.stderr
    naive = epay("clock", "set", "--at", "2026-11-25T20:00", home=tmp_path, clock="file")
    assert naive.returncode == 2 and "no UTC offset" in naive.stderr
