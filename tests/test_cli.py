"""`epay check`: verdicts, exit statuses (0 valid, 1 invalid, 2 usage), JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from epay.cli import main
from tests.conftest import REPO, SAMPLES


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_valid_files_exit_0_with_a_summary() -> None:
    code, out = run(
        "check", str(SAMPLES / "PRLV_100237_20261125_01.txt"), str(SAMPLES / "RETR_100237_20261126_01.txt")
    )
    assert code == 0
    assert "PRLV_100237_20261125_01.txt: PRLV VALID" in out
    assert "total amount: 28 087.06 DZD" in out and "settlement date: 2026-11-26" in out
    assert "settled amount: 18 499.50 DZD" in out
    assert "2 valid, 0 invalid" in out


def test_an_invalid_file_exits_1_with_its_problems() -> None:
    code, out = run("check", str(SAMPLES / "invalid/letter-in-amount/PRLV_100237_20261125_01.txt"))
    assert code == 1
    assert "INVALID" in out and "would reject it: FF01" in out
    assert "line 4 amount = '000000001O0000'" in out


def test_a_bad_name_is_an_error_not_a_guess() -> None:
    code, out = run("check", str(SAMPLES / "invalid/bad-name/PRLV_100237_2026112_01.txt"))
    assert code == 1 and "matches none of the spec's file name patterns" in out


def test_one_invalid_among_valid_exits_1() -> None:
    code, _ = run(
        "check",
        str(SAMPLES / "PRLV_100237_20261125_01.txt"),
        str(SAMPLES / "invalid/blank-line/PRLV_100237_20261125_01.txt"),
    )
    assert code == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("check", str(tmp_path / "missing.txt"))[0] == 2
    assert run("check")[0] == 2
    assert run("check", "--max-problems", "-1", str(SAMPLES / "PRLV_100237_20261125_01.txt"))[0] == 2
    assert run("check", "--no-such-option", str(SAMPLES / "PRLV_100237_20261125_01.txt"))[0] == 2


def test_strict_makes_instruction_warnings_fail() -> None:
    path = str(SAMPLES / "invalid/rip-wrong-key-AC01/PRLV_100237_20261125_01.txt")
    code, out = run("check", path)
    assert code == 0 and "warning:" in out and "AC01" in out and "00799999********1083" in out
    assert "00799999987654321083" not in out  # RIPs are masked
    assert run("check", "--strict", path)[0] == 1


def test_creditor_option_checks_ag01() -> None:
    code, out = run("check", "--creditor", "100999", str(SAMPLES / "PRLV_100237_20261125_01.txt"))
    assert code == 1 and "AG01" in out


def test_json_output() -> None:
    code, out = run(
        "check",
        "--json",
        str(SAMPLES / "PRLV_100237_20261125_01.txt"),
        str(SAMPLES / "invalid/trailer-sum-wrong-AM10/PRLV_100237_20261125_01.txt"),
    )
    assert code == 1
    document = json.loads(out)
    assert document["valid"] is False
    good, bad = document["files"]
    assert good["valid"] and good["kind"] == "PRLV" and good["trailer"]["total_amount"] == 2808706
    assert good["header"]["settlement_date"] == "2026-11-26" and "creditor_rip" not in good["header"]
    assert bad["rejection"] == {"code": "AM10", "line": 0}
    assert bad["problems"][0] | {"message": ""} == {
        "file": "PRLV_100237_20261125_01.txt",
        "line": 10,
        "field": "total_amount",
        "value": "2808707",
        "code": "AM10",
        "message": "",
        "severity": "file",
    }


def test_help_on_every_command() -> None:
    for args in (["--help"], ["check", "--help"], ["layouts", "--help"]):
        code, out = run(*args)
        assert code == 0 and "Usage:" in out


def test_installed_console_script() -> None:
    epay = Path(sys.executable).with_name("epay")
    result = subprocess.run(
        [str(epay), "check", str(SAMPLES / "MNDT_100237_20261125_01.txt")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    assert "MNDT VALID" in result.stdout
