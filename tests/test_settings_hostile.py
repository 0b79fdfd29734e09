"""Bad settings are bad input too (issue #14, item 5): an environment variable or config file that cannot
be used gets one line naming it and exit status 2 — never a hang on a FIFO or a device, never a silent
fall-back to defaults or to the machine's clock, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

EPAY = REPO / ".venv" / "bin" / "epay"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "bad.toml").write_text("x = [\n", encoding="utf-8")
    (tmp_path / "backwards.json").write_text(
        json.dumps({"at": "2026-11-25T20:00:00+01:00", "since": "2026-11-25T19:00:00+00:00", "speed": -5}),
        encoding="utf-8",
    )
    (tmp_path / "home").mkdir()
    return tmp_path


CASES = [
    ("EPAY_HOLIDAYS_FILE", "/dev/zero", "EPAY_HOLIDAYS_FILE: Value error, /dev/zero: not a regular file"),
    ("EPAY_HOLIDAYS_FILE", "{fifo}", "not a regular file"),
    ("EPAY_HOLIDAYS_FILE", "{dir}", "not a regular file"),
    ("EPAY_POSTE_SCENARIO_FILE", "/dev/zero", "EPAY_POSTE_SCENARIO_FILE: Value error, /dev/zero"),
    ("EPAY_CLOCK", "file:{fifo}", "is not a regular file"),
    ("EPAY_CLOCK", "file:{dir}/backwards.json", "a clock runs forward"),
    ("EPAY_CLOCK", "", "EPAY_CLOCK is empty"),
    ("EPAY_CLOCK", "9999-12-31T20:00:00+01:00", "year 9999 is outside the years"),
    ("EPAY_CONFIG", "/nonexistent/epay.toml", "EPAY_CONFIG=/nonexistent/epay.toml: no such file"),
    ("EPAY_CONFIG", "{fifo}", "not a regular file"),
    ("EPAY_CONFIG", "{dir}/bad.toml", "cannot be read"),
    ("EPAY_HOME", "", "EPAY_HOME is empty"),
]


@pytest.mark.parametrize(("variable", "value", "said"), CASES, ids=[f"{c[0]}={c[1]}" for c in CASES])
def test_a_setting_that_cannot_be_used_is_one_line_and_exit_2(
    scratch: Path, variable: str, value: str, said: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPAY_")}
    env |= {"EPAY_HOME": str(scratch / "home"), "EPAY_CLOCK": "2026-11-25T20:00:00+01:00"}
    env[variable] = value.format(fifo=scratch / "fifo", dir=scratch)
    run = subprocess.run(
        [str(EPAY), "exceptions", "--date", "2026-11-25"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails here, never in CI's own limit
    )
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert said in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    if not value.startswith("file:"):  # (a clock file is read when time is first asked, after the ledger)
        assert not list((scratch / "home").iterdir())  # nothing was created on the way


def test_a_report_is_never_written_over_what_epay_keeps(tmp_path: Path) -> None:
    """`epay report --out` inside the data folder (the ledger, a PRLV file kept ten years) is refused; its
    reports/ folder is allowed (found by the hostile review: the ledger was overwritten by a workbook)."""
    home = tmp_path / "home"
    (home / "files" / "outbound").mkdir(parents=True)
    (home / "reports").mkdir()
    ledger = home / "epay.sqlite3"
    ledger.write_bytes(b"SQLite format 3\x00")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPAY_")}
    env |= {"EPAY_HOME": str(home), "EPAY_CLOCK": "2026-11-26T20:00:00+01:00"}
    for target in (ledger, home / "files" / "outbound" / "PRLV_100237_20261125_01.txt"):
        run = subprocess.run(
            [str(EPAY), "report", "--date", "2026-11-26", "--format", "xlsx", "--out", str(target)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2, run.stderr
        assert "inside epay's data folder" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert ledger.read_bytes() == b"SQLite format 3\x00"


def test_a_file_gone_between_the_arguments_check_and_its_reading_is_reported_with_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`epay check A B` with B deleted after its argument was checked: A's verdict is still printed, B is
    named as not checked, exit status 1 — never an OS error that hides A's verdict."""
    from click.testing import CliRunner

    import epay.cli
    from epay.cli import main

    first = REPO / "sample_files" / "ACK_PRLV_100237_20261125_01.txt"
    second = tmp_path / "RETR_100237_20261126_01.txt"
    second.write_bytes(b"soon gone\n")
    real = epay.cli.validate_file

    def gone(path: Path, **options: Any) -> Any:
        if Path(path) == second:
            second.unlink()
        return real(path, **options)

    monkeypatch.setattr(epay.cli, "validate_file", gone)
    result = CliRunner().invoke(main, ["check", str(first), str(second)])
    assert result.exit_code == 1, result.output
    assert f"{first.name}: ACK VALID" in result.output
    assert f"{second}: cannot be read (No such file or directory): not checked" in result.output
    assert "1 valid, 1 invalid" in result.output
