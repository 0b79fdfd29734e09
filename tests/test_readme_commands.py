"""The README's runbook shows no Airflow command the end-to-end tier did not run: every `airflow …` and
`epay airflow …` line of its shell blocks is one of docs/runbook-commands.toml, which tests/e2e/ runs with
this exact text."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shell_lines(path: Path) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()]


def test_every_airflow_command_in_the_readme_is_a_tested_one() -> None:
    tested = {
        c["text"]
        for c in tomllib.loads((REPO / "docs" / "runbook-commands.toml").read_text(encoding="utf-8"))[
            "command"
        ]
    }
    shown = [
        line for line in shell_lines(REPO / "README.md") if line.startswith(("airflow ", "epay airflow "))
    ]
    assert shown, "the README's runbook shows the Airflow commands"
    assert [line for line in shown if line not in tested] == []
