"""docs/runbook-stack.md shows exactly the commands of docs/runbook-commands.toml (which the e2e tier runs
as written), and `epay airflow clear` refuses bad input with a usage error, without a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.airflow_helpers import REPO, clean_env
from tests.e2e.helpers import runbook_commands

RUNBOOK = REPO / "docs" / "runbook-stack.md"
SETUP = {". var/stack/dev/env.sh"}  # sourcing the environment is how the commands are run, not one of them
EPAY = str(Path(sys.executable).with_name("epay"))


def documented_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), flags=re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command and command not in SETUP:
                commands.append(command)
    return commands


def test_the_runbook_page_shows_the_tested_commands_and_no_others() -> None:
    documented = documented_commands()
    tested = list(runbook_commands().values())
    assert sorted(documented) == sorted(tested)
    assert len(set(tested)) == len(tested)


def test_epay_airflow_clear_refuses_bad_input_with_a_usage_error() -> None:
    def clear(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EPAY, "airflow", "clear", *args],
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    nowhere = clear("--dag", "epay_debit_outbound", "--date", "2026-11-25")
    assert nowhere.returncode == 2 and "AIRFLOW__API__BASE_URL" in nowhere.stderr
    no_password = clear(
        "--dag", "epay_debit_outbound", "--date", "2026-11-25", AIRFLOW__API__BASE_URL="http://127.0.0.1:9"
    )
    assert no_password.returncode == 2 and "password" in no_password.stderr
    bad_date = clear("--dag", "epay_debit_outbound", "--date", "2026-13-01")
    assert bad_date.returncode == 2
    unreachable = clear(
        "--dag",
        "epay_debit_outbound",
        "--date",
        "2026-11-25",
        AIRFLOW__API__BASE_URL="http://127.0.0.1:9",
        AIRFLOW_API_PASSWORD="x",
    )
    assert unreachable.returncode == 1 and "cannot reach the api-server" in unreachable.stderr
    for done in (nowhere, no_password, bad_date, unreachable):
        assert "Traceback" not in done.stderr
