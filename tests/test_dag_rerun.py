"""Re-running a failed day through Airflow reaches the same end state as a clean run.

Two twin installations (same sample, same seed, same Airflow metadata database) run business day D:
- the clean one once;
- the other one twice: first the worker dies in the middle of ``send`` (after the first file was renamed
  on the post office's server, before the ledger recorded it sent: the most dangerous point), then the data
  engineer re-runs the day with Airflow (``airflow dags test`` clears the day's task instances and runs the
  DAG again for the same logical date, as ``airflow tasks clear`` + the scheduler would).
The ledgers, the files' bytes, the post office's view and the status export must be identical.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from epay.calendar import load_calendar
from epay.formats import parse_file_name
from epay.poste.office import PostOffice
from epay.poste.sftp_server import PosteSftpServer
from epay.poste.state import ReceivedFile, UsedReference
from epay.settings import ALGIERS
from tests.airflow_helpers import airflow_env, dag_test, run

DAG_ID = "epay_debit_outbound"
DAY = date(2026, 11, 25)
LOGICAL = "2026-11-25T19:00:00+00:00"


class Installation:
    """An epay data folder with its own simulated post office, answering ACKs at once."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.home = home
        run(["epay.cli", "sample", "--subscribers", "200", "--seed", "21", "--as-of", DAY.isoformat()], env)
        self.office = PostOffice(
            home / "poste", f"sqlite:///{home / 'poste' / 'poste.sqlite3'}", calendar=load_calendar()
        )
        self.lock = threading.Lock()
        self.server = PosteSftpServer(home / "poste", port=0, on_file_received=self._received)
        self.server.__enter__()
        self.env = {**env, "EPAY_SFTP_PORT": str(self.server.port), "EPAY_MAX_DETAILS_PER_FILE": "60"}

    def _received(self, creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            day = parse_file_name(name).day
            with self.lock:
                self.office.acknowledge(creditor, path, datetime.combine(day, time(20, 5), tzinfo=ALGIERS))

    def close(self) -> None:
        self.server.__exit__(None, None, None)

    def end_state(self) -> dict[str, Any]:
        with closing(sqlite3.connect(f"file:{self.home / 'epay.sqlite3'}?mode=ro", uri=True)) as c:
            state: dict[str, Any] = {
                "files": sorted(
                    c.execute(
                        "SELECT direction, kind, name, sha256, state, reason, detail_count, amount "
                        "FROM exchange_file"
                    ).fetchall()
                ),
                "instructions": sorted(
                    c.execute(
                        "SELECT reference, item_id, amount, rip, state, try_number FROM instruction"
                    ).fetchall()
                ),
                "items": sorted(c.execute("SELECT id, state FROM billing_item").fetchall()),
                "batches": c.execute("SELECT business_date, number, state FROM batch").fetchall(),
                "exclusions": sorted(c.execute("SELECT item_id, reason FROM exclusion").fetchall()),
            }
        poste = create_engine(f"sqlite:///{self.home / 'poste' / 'poste.sqlite3'}")
        try:
            with poste.connect() as c:
                state["poste_received"] = sorted(
                    c.execute(select(ReceivedFile.name, ReceivedFile.status, ReceivedFile.sha256)).all()
                )
                state["poste_references"] = sorted(c.execute(select(UsedReference.reference)).scalars())
        finally:
            poste.dispose()
        outbound = self.home / "files" / "outbound" / DAY.isoformat()
        state["on_disk"] = sorted((p.name, p.read_bytes()) for p in outbound.iterdir())
        state["export"] = (self.home / "billing" / "outgoing" / "STATUS_20261125.csv").read_bytes()
        return state


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    environment = airflow_env(home)
    run(["airflow", "db", "migrate"], environment)
    return environment


@pytest.fixture
def twins(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Installation, Installation]]:
    clean = Installation({**env, "EPAY_HOME": str(tmp_path / "clean")}, tmp_path / "clean")
    failed = Installation({**env, "EPAY_HOME": str(tmp_path / "failed")}, tmp_path / "failed")
    yield clean, failed
    clean.close()
    failed.close()


def test_a_day_that_died_in_send_and_was_run_again_ends_as_a_clean_run(
    twins: tuple[Installation, Installation],
) -> None:
    clean, failed = twins
    done = dag_test(clean.env, DAG_ID, LOGICAL)
    assert done.run_state == "success", done.explain()

    crashed = dag_test({**failed.env, "EPAY_CRASH_AT": "send.after_rename"}, DAG_ID, LOGICAL)
    assert crashed.run_state != "success" and crashed.task_states.get("export_statuses") != "success"
    with closing(sqlite3.connect(f"file:{failed.home / 'epay.sqlite3'}?mode=ro", uri=True)) as c:
        states = dict(c.execute("SELECT name, state FROM exchange_file WHERE kind = 'PRLV'").fetchall())
    assert len(states) >= 2 and set(states.values()) == {"built"}  # uploaded, never recorded sent

    again = dag_test(failed.env, DAG_ID, LOGICAL)
    assert again.run_state == "success", again.explain()
    assert failed.end_state() == clean.end_state()
