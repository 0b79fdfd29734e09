"""The README's runbook commands for closing exceptions and refunds run as written: every
``epay exceptions handle``, ``epay exceptions … --open`` and ``epay refunds`` line of its shell blocks,
in order, on a world that has the exceptions they name (a forged ACK quarantined on Thursday 26 November,
a bill paid at a counter and debited too)."""

from __future__ import annotations

import json
import shlex
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from epay.calendar import BusinessCalendar
from epay.inbound.receive import receive_file
from epay.settings import Settings
from tests.conftest import at_night
from tests.test_audit_trail import epay
from tests.test_readme_commands import REPO, shell_lines
from tests.test_refunds_handling import cli_env, paid_twice

__all__ = ["cli_env"]  # the fixture, shared

SHOWN = (".venv/bin/epay exceptions handle", ".venv/bin/epay refunds", ".venv/bin/epay exceptions --date")


def test_the_runbooks_handling_commands_run_as_written(
    ledger_engine: Engine, cli_env: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    commands = [
        line
        for line in shell_lines(REPO / "README.md")
        if line.startswith(SHOWN[:2]) or (line.startswith(SHOWN[2]) and line.endswith("--open"))
    ]
    assert [shlex.split(c)[1:3] for c in commands] == [
        ["exceptions", "--date"],
        ["exceptions", "handle"],
        ["refunds", "--open"],
        ["refunds", "mark"],
    ]
    paid_twice(ledger_engine, cli_env, calendar)
    at_night(date(2026, 11, 26), 23)
    forged = tmp_path / "ACK_PRLV_100237_20261125_01.txt"
    forged.write_bytes(b"forged\n")
    assert receive_file(ledger_engine, cli_env, forged, calendar, date(2026, 11, 26)).outcome == "quarantined"

    statuses = []
    for command in commands:
        result = epay(*shlex.split(command)[1:])
        assert "Traceback" not in result.output and result.exit_code in (0, 1), (command, result.output)
        statuses.append(result.exit_code)
    assert statuses == [1, 0, 0, 0]  # the list had open exceptions; each closing command succeeded
    after = json.loads(epay("exceptions", "--date", "2026-11-26", "--json").output)
    assert [q["handled"]["by"] for q in after["quarantined_files"]] == ["amina.dataeng"]
    assert [r["handled"]["action"] for r in after["refunds_owed"]] == ["refunded"]
