"""Helpers for the DAG tests: a clean environment for Airflow subprocesses, a DagBag description taken in a
subprocess (so this pytest process never imports Airflow, which rewires the root logger), and
``airflow dags test`` runs that stop at the first failed try instead of sitting out the DAG's retry delay.

Airflow 3.3 needs only three variables for a throw-away installation: ``AIRFLOW_HOME`` (airflow.cfg and
the SQLite metadata database ``airflow.db`` are created there), ``AIRFLOW__CORE__DAGS_FOLDER`` (the
"dags-folder" bundle ``dags test`` parses) and ``AIRFLOW__CORE__LOAD_EXAMPLES=False`` (otherwise the
example bundle is parsed and its ~90 DAGs written to the database on the first run).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from epay.clock import FileClock

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
PYTHON = sys.executable
FAILED_TRY_STATES = frozenset({"failed", "up_for_retry", "upstream_failed"})
DAG_TEST_TIMEOUT = 300.0


def clean_env(**extra: str | Path) -> dict[str, str]:
    """This process's environment without any AIRFLOW*/EPAY_* variable (a developer's real metadata
    database or ledger must never be touched by a test), plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "_AIRFLOW", "EPAY_")) or key == "EPAY_CLOCK"  # the test's own clock
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def airflow_env(airflow_home: Path, **extra: str | Path) -> dict[str, str]:
    return clean_env(
        AIRFLOW_HOME=airflow_home,
        AIRFLOW__CORE__DAGS_FOLDER=DAGS,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        **extra,
    )


def run(args: list[str], env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ARGS...`` with this interpreter; fail the test with the output when it fails."""
    done = subprocess.run(
        [PYTHON, "-m", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(
            f"`{' '.join(args)}` exited {done.returncode}\n--- stdout\n{_tail(done.stdout)}\n"
            f"--- stderr\n{_tail(done.stderr)}"
        )
    return done


def _tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- parsing ------------------------------------------------------------------------------------------
# Step 1 imports the DAG file alone and notes which heavy libraries that pulled in; step 2 parses the
# folder with Airflow 3.3's DagBag (airflow.dag_processing.dagbag; the `include_examples` argument of
# Airflow 2 is gone: examples are a separate bundle) and describes what the tests check.
_DESCRIBE = r"""
import importlib.util, json, sys
from pathlib import Path

dags, heavy = Path(sys.argv[1]), sys.argv[2].split(",")
spec = importlib.util.spec_from_file_location("_dag_file_alone", dags / "epay_debit_outbound.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
heavy_loaded = sorted(name for name in sys.modules if name.split(".")[0] in heavy)

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=dags, safe_mode=False)
described = {}
for dag_id, dag in bag.dags.items():
    timetable = dag.timetable
    zone = getattr(timetable, "timezone", None)
    described[dag_id] = {
        "timetable_class": f"{type(timetable).__module__}.{type(timetable).__qualname__}",
        "expression": getattr(timetable, "expression", None),
        "timezone": None if zone is None else getattr(zone, "name", None) or str(zone),
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "params": sorted(dag.params.keys()),
        "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
        "task_types": {t.task_id: type(t).__name__ for t in dag.tasks},
        "outlets": {t.task_id: sorted(getattr(a, "uri", "") for a in t.outlets) for t in dag.tasks},
    }
print("@@DESCRIPTION@@" + json.dumps({
    "heavy_loaded_by_dag_file": heavy_loaded,
    "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    "dags": described,
}))
"""


def describe_dags(airflow_home: Path, heavy: tuple[str, ...]) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, "-c", _DESCRIBE, str(DAGS), ",".join(heavy)],
        env=airflow_env(airflow_home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    marker = "@@DESCRIPTION@@"
    found = [line for line in done.stdout.splitlines() if line.startswith(marker)]
    assert done.returncode == 0 and found, (
        f"describing dags/ failed (exit {done.returncode})\n{_tail(done.stdout)}\n{_tail(done.stderr)}"
    )
    description: dict[str, Any] = json.loads(found[-1][len(marker) :])
    return description


# --- running ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DagTestRun:
    returncode: int
    output: str
    run_state: str | None
    task_states: dict[str, str]
    seconds: float

    def explain(self) -> str:
        """What a failed assertion shows: states, then the end of each traceback, then the log's end."""
        return (
            f"exit {self.returncode}, run {self.run_state}, tasks {self.task_states}, {self.seconds:.1f} s\n"
            + "".join(f"--- traceback\n{block}\n" for block in _tracebacks(self.output))
            + "--- end of the log\n"
            + "\n".join(line[:300] for line in self.output.splitlines()[-8:])
        )


def _tracebacks(text: str, keep: int = 25) -> list[str]:
    """The last ``keep`` lines of each traceback in an Airflow log (a block ends at the next log line)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("Traceback"):
            current = [line]
            blocks.append(current)
        elif current is not None and re.match(r"\d{4}-\d\d-\d\dT", line):
            current = None
        elif current is not None:
            current.append(line)
    return ["\n".join(block[-keep:]) for block in blocks]


def _runs_of(db: Path, dag_id: str, logical_date: str) -> dict[str, tuple[str | None, dict[str, str]]]:
    """{run_id: (run state, {task_id: state})} of the runs at ``logical_date`` ('YYYY-MM-DD HH:MM:SS')."""
    out: dict[str, tuple[str | None, dict[str, str]]] = {}
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
        runs = connection.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND logical_date LIKE ?",
            (dag_id, logical_date + "%"),
        ).fetchall()
        for run_id, state in runs:
            tasks = connection.execute(
                "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            ).fetchall()
            out[run_id] = (state, {task: task_state for task, task_state in tasks})
    return out


def _clock_to(env: dict[str, str], logical_date: str) -> dict[str, str]:
    """``env`` with a settable clock (its own ``EPAY_CLOCK``, else this test's), set to ``logical_date``
    and running at real speed. An env made before the test's clock existed (a module fixture) gets it."""
    spec = env.get("EPAY_CLOCK") or os.environ.get("EPAY_CLOCK", "")
    assert spec.startswith("file:"), f"a DAG run needs a settable clock: EPAY_CLOCK={spec!r}"
    FileClock(Path(spec.removeprefix("file:"))).set(datetime.fromisoformat(logical_date))
    return {**env, "EPAY_CLOCK": spec}


def dag_test(env: dict[str, str], dag_id: str, logical_date: str) -> DagTestRun:
    """``airflow dags test DAG LOGICAL_DATE`` (``logical_date`` like '2026-11-25T19:00:00+00:00', UTC).

    Watches the metadata database while it runs: a try that fails makes the run wait out the DAG's
    ``retry_delay`` (minutes) before its retry, so the first failed try stops the run (its process group,
    started here) and is reported as it is.

    The settable clock of ``env`` (``EPAY_CLOCK=file:…``; else the test's own, which the run is then
    given) is first moved to the logical date: the run happens on its night, as the scheduler starts it."""
    env = _clock_to(env, logical_date)
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    stamp = logical_date.replace("T", " ")[:19]
    before = set(_runs_of(db, dag_id, stamp))
    started = time.monotonic()
    log = Path(env["AIRFLOW_HOME"]) / f"dags-test-{dag_id}-{stamp[:10]}-{time.time_ns()}.log"
    with log.open("w+", encoding="utf-8") as output:
        process = subprocess.Popen(
            [PYTHON, "-m", "airflow", "dags", "test", dag_id, logical_date],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        stopped = False
        while process.poll() is None:
            time.sleep(0.5)
            try:
                runs = _runs_of(db, dag_id, stamp)
            except sqlite3.OperationalError:  # busy while the run writes: look again next time
                continue
            states = {
                s for run_id, (_, tasks) in runs.items() if run_id not in before for s in tasks.values()
            }
            if states & FAILED_TRY_STATES or time.monotonic() - started > DAG_TEST_TIMEOUT:
                os.killpg(process.pid, signal.SIGKILL)  # a throw-away run: no clean-up to wait for
                process.wait()
                stopped = True
        output.seek(0)
        text = output.read()
    if stopped:
        text += "\n[test] stopped at the first failed try (or the timeout) instead of waiting for retries"
    new = {run_id: run for run_id, run in _runs_of(db, dag_id, stamp).items() if run_id not in before}
    run_state, task_states = next(iter(new.values())) if len(new) == 1 else (None, {})
    return DagTestRun(
        returncode=process.returncode if not stopped else -1,
        output=text,
        run_state=run_state,
        task_states=task_states,
        seconds=time.monotonic() - started,
    )
