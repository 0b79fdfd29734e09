"""``bench/night.py`` runs a whole night at a tiny size, so the script cannot rot. Its figures are printed,
never asserted: no timing here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "night.py"
STAGES = (
    "billing load",
    "build",
    "upload",
    "poste ACK",
    "inbound ACK",
    "status export D",
    "poste execution",
    "inbound returns",
    "status export S",
    "finance report",
)


def test_the_night_bench_runs_every_stage_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "night.json"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--size",
            "200",
            "--database",
            "sqlite",
            "--runs",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout.split("== summary", 1)[1]
    for stage in (*STAGES, "whole night"):
        assert f"   {stage} " in table, f"{stage!r} missing from:\n{table}"
    assert "load average before" in table
    (block,) = json.loads(out.read_text())
    (run,) = block["runs"]
    assert list(run) == list(STAGES)
    assert block["instructions"] > 100
    assert all(measure["peak_mb"] > 0 for measure in run.values())
    received = [
        name for name, outcome in run["inbound returns"]["summary"]["received"] if outcome == "applied"
    ]
    assert {name.split("_")[0] for name in received} == {"RETR", "RELV", "MNDT"}
    assert [outcome for _, outcome in run["inbound ACK"]["summary"]["received"]] == ["applied"]
