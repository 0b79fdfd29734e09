"""The nightly debit DAG: how it parses (schedule, dependencies, nothing heavy at parse time), the business
date its tasks derive from a run, and whole runs through ``airflow dags test`` on a sample world.

Airflow runs only in subprocesses with a throw-away AIRFLOW_HOME and EPAY_HOME (see airflow_helpers):
``airflow db migrate`` and ``epay sample`` happen once for the module.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import tomllib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
import pytest
from croniter import croniter  # type: ignore[import-untyped]

from epay.airflow_support import TaskFailed, business_date_of
from epay.calendar import load_calendar
from epay.clock import FileClock
from epay.formats import parse_file_name
from epay.poste.office import PostOffice
from epay.poste.sftp_server import PosteSftpServer
from tests.airflow_helpers import DagTestRun, airflow_env, dag_test, describe_dags, run

DAG_ID = "epay_debit_outbound"
CHAIN = (
    "business_date",
    "night_begins",  # new: the run waits for its night on epay's clock
    "is_business_day",
    "extract",
    "validate",
    "build",
    "send",
    "wait_for_ack",
    "export_statuses",
    "daily_exceptions",
    "night_done",  # new: the night's outcome (a failed send fails the run; the list still runs)
)
HEAVY = ("great_expectations", "pandas", "pyarrow")
ALGIERS = ZoneInfo("Africa/Algiers")
WEDNESDAY = date(2026, 11, 25)
FRIDAY = date(2026, 11, 27)  # the Algerian weekend: no debit run


# --- parsing ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("airflow-home")


@pytest.fixture(scope="module")
def description(airflow_home: Path) -> dict[str, Any]:
    return describe_dags(airflow_home, HEAVY)


@pytest.fixture(scope="module")
def dag(description: dict[str, Any]) -> dict[str, Any]:
    assert DAG_ID in description["dags"], f"{DAG_ID} not in {sorted(description['dags'])}"
    found: dict[str, Any] = description["dags"][DAG_ID]
    return found


def test_dags_folder_parses_without_errors(description: dict[str, Any]) -> None:
    assert description["import_errors"] == {}
    assert DAG_ID in description["dags"]


def test_schedule_is_20h_algiers_sunday_to_thursday(dag: dict[str, Any]) -> None:
    assert dag["timetable_class"].endswith(".CronTriggerTimetable")
    assert dag["timezone"] == "Africa/Algiers"
    # what the expression means, not how it is spelt: the next fires after Saturday 2026-11-21
    fires = croniter(dag["expression"], datetime(2026, 11, 21, tzinfo=ALGIERS))
    upcoming = [fires.get_next(datetime) for _ in range(7)]
    # Sun 22, Mon 23 … Thu 26, (no Friday 27, Saturday 28), Sun 29, Mon 30: always 20:00 in Algiers
    assert upcoming == [
        datetime(2026, 11, day, 20, 0, tzinfo=ALGIERS) for day in (22, 23, 24, 25, 26, 29, 30)
    ]
    assert {d.isoweekday() for d in upcoming} == {7, 1, 2, 3, 4}
    assert upcoming[3].astimezone(UTC) == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)


def test_one_run_at_a_time_and_a_business_date_param(dag: dict[str, Any]) -> None:
    assert dag["max_active_runs"] == 1
    assert dag["catchup"] is False
    assert "business_date" in dag["params"]


def test_task_chain(dag: dict[str, Any]) -> None:
    upstream = {task: set(ups) for task, ups in dag["upstream"].items()}
    assert set(upstream) == set(CHAIN)
    assert upstream["business_date"] == set()
    # each step waits for the one before it; business_date may also feed any step its value
    for before, after in pairwise(CHAIN):
        allowed = {before, "business_date"} | ({"export_statuses"} if after == "night_done" else set())
        assert before in upstream[after] and upstream[after] <= allowed, after
    assert "export_statuses" in upstream["night_done"]  # a failed export (or send) fails the night
    assert dag["task_types"]["is_business_day"].startswith("_ShortCircuit")


def test_dag_file_imports_nothing_heavy(description: dict[str, Any]) -> None:
    assert description["heavy_loaded_by_dag_file"] == []


# --- business date ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("logical_date", "expected"),
    [
        (pendulum.datetime(2026, 11, 25, 19, 0, tz="UTC"), date(2026, 11, 25)),  # the 20:00 cron run
        (pendulum.datetime(2026, 11, 25, 22, 59, tz="UTC"), date(2026, 11, 25)),
        (pendulum.datetime(2026, 11, 25, 23, 30, tz="UTC"), date(2026, 11, 26)),  # 00:30 in Algiers
        (datetime(2026, 11, 25, 23, 0, tzinfo=UTC), date(2026, 11, 26)),  # a plain aware datetime too
    ],
)
def test_business_date_is_the_algiers_date_of_the_logical_date(
    logical_date: datetime, expected: date
) -> None:
    assert business_date_of({"logical_date": logical_date, "params": {"business_date": None}}) == expected
    assert business_date_of({"logical_date": logical_date}) == expected


def test_business_date_param_overrides_the_logical_date() -> None:
    context = {
        "logical_date": pendulum.datetime(2026, 11, 25, 19, tz="UTC"),
        "params": {"business_date": "2026-11-23"},
    }
    # new rule: a param that disagrees with the run's logical date is refused (a run is found by its day)
    with pytest.raises(TaskFailed, match=r"is 2026-11-25 .* business_date param says 2026-11-23"):
        business_date_of(context)
    context["params"] = {"business_date": "2026-11-25"}
    assert business_date_of(context) == date(2026, 11, 25)
    assert business_date_of({"logical_date": None, "params": {"business_date": "2026-11-23"}}) == date(
        2026, 11, 23
    )


@pytest.mark.parametrize(
    "context", [{}, {"logical_date": None}, {"logical_date": None, "params": {"business_date": None}}]
)
def test_no_logical_date_and_no_param_fails_the_task(context: dict[str, Any]) -> None:
    with pytest.raises(TaskFailed, match="no logical date"):
        business_date_of(context)


# --- whole runs through Airflow -----------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    env: dict[str, str]
    home: Path
    office: Any = None
    lock: Any = None

    def outbound(self, day: date) -> Path:
        return self.home / "files" / "outbound" / day.isoformat()

    def registered(self, day: date) -> dict[str, tuple[str, str]]:
        """{name: (path relative to EPAY_HOME, sha256)} of the PRLV files registered for ``day``."""
        with closing(sqlite3.connect(f"file:{self.home / 'epay.sqlite3'}?mode=ro", uri=True)) as connection:
            rows = connection.execute(
                "SELECT name, path, sha256 FROM exchange_file "
                "WHERE direction = 'out' AND kind = 'PRLV' AND business_date = ?",
                (day.isoformat(),),
            ).fetchall()
        return {name: (path, sha) for name, path, sha in rows}

    def on_disk(self, day: date) -> dict[str, str]:
        """{name: sha256} of every file (any depth) under the day's outbound folder."""
        folder = self.outbound(day)
        if not folder.exists():
            return {}
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }


@pytest.fixture(scope="module")
def world(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A sampled world, and the simulated post office's SFTP server on loopback: every PRLV file it
    receives is acknowledged at once (20:05 Algiers on the day), as the real one does within minutes."""
    home = tmp_path_factory.mktemp("epay-home")
    clock = FileClock(tmp_path_factory.mktemp("clock") / "clock.json")  # the module's: set by each run
    clock.set(datetime.combine(WEDNESDAY, time(20, 0), tzinfo=ALGIERS))
    env = airflow_env(airflow_home, EPAY_HOME=home, EPAY_CLOCK=f"file:{clock.path}")
    run(["airflow", "db", "migrate"], env)
    run(["epay.cli", "sample", "--subscribers", "300", "--seed", "3", "--as-of", WEDNESDAY.isoformat()], env)
    office = PostOffice(
        home / "poste", f"sqlite:///{home / 'poste' / 'poste.sqlite3'}", calendar=load_calendar()
    )
    lock = threading.Lock()

    def received(creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            day = parse_file_name(name).day
            with lock:
                office.acknowledge(creditor, path, datetime.combine(day, time(20, 5), tzinfo=ALGIERS))

    with PosteSftpServer(home / "poste", port=0, on_file_received=received) as server:
        yield World({**env, "EPAY_SFTP_PORT": str(server.port)}, home, office, lock)


@dataclass(frozen=True)
class FirstRun:
    run: DagTestRun
    registered: dict[str, tuple[str, str]]
    on_disk: dict[str, str]
    status_export: bytes


@pytest.fixture(scope="module")
def wednesday(world: World) -> FirstRun:
    done = dag_test(world.env, DAG_ID, "2026-11-25T19:00:00+00:00")
    assert done.returncode == 0 and done.run_state == "success", done.explain()
    export = world.home / "billing" / "outgoing" / "STATUS_20261125.csv"
    assert export.is_file(), done.explain()
    return FirstRun(done, world.registered(WEDNESDAY), world.on_disk(WEDNESDAY), export.read_bytes())


def test_business_day_run_builds_exactly_the_registered_files(world: World, wednesday: FirstRun) -> None:
    assert wednesday.run.task_states == dict.fromkeys(CHAIN, "success"), wednesday.run.explain()
    assert wednesday.registered, "the sample world has debits due on 2026-11-25: expected a PRLV file"
    assert wednesday.on_disk == {name: sha for name, (_, sha) in wednesday.registered.items()}
    for name, (path, _) in wednesday.registered.items():
        assert world.home / path == world.outbound(WEDNESDAY) / name


def test_built_files_pass_epay_check(world: World, wednesday: FirstRun) -> None:
    files = [str(world.outbound(WEDNESDAY) / name) for name in sorted(wednesday.registered)]
    run(["epay.cli", "check", "--strict", "--creditor", "100237", *files], world.env)


def test_second_run_of_the_same_date_changes_nothing(world: World, wednesday: FirstRun) -> None:
    again = dag_test(world.env, DAG_ID, "2026-11-25T19:00:00+00:00")
    assert again.returncode == 0 and again.task_states == dict.fromkeys(CHAIN, "success"), again.explain()
    assert world.on_disk(WEDNESDAY) == wednesday.on_disk
    assert world.registered(WEDNESDAY) == wednesday.registered
    export = world.home / "billing" / "outgoing" / "STATUS_20261125.csv"
    assert export.read_bytes() == wednesday.status_export


def ledger_fingerprint(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """What a re-run must leave as it was: the rows that record decisions, and the files epay wrote."""
    queries = {
        "instructions": "SELECT reference, item_id, amount, state, reason, file_id FROM instruction",
        "files": "SELECT direction, name, sha256, state, reason FROM exchange_file",
        "batches": "SELECT business_date, number, state FROM batch",
        "items": "SELECT id, state, tries FROM billing_item",
        "exclusions": "SELECT business_date, item_id, reason FROM exclusion",
        "exports": "SELECT business_date, after_event_id, last_event_id, sha256 FROM status_export",
    }
    with closing(sqlite3.connect(f"file:{world.home / 'epay.sqlite3'}?mode=ro", uri=True)) as connection:
        rows = {key: sorted(connection.execute(sql).fetchall()) for key, sql in queries.items()}
    written = [world.home / "files", world.home / "billing" / "outgoing", world.home / "reports"]
    rows["written"] = sorted(
        (str(p.relative_to(world.home)), hashlib.sha256(p.read_bytes()).hexdigest())
        for folder in written
        for p in folder.rglob("*")
        if p.is_file()
    )
    return rows


def test_clearing_any_single_task_of_a_past_day_changes_nothing(world: World, wednesday: FirstRun) -> None:
    """``airflow tasks test`` runs one task of Wednesday's run again with that run's XComs — what clearing
    the task does: every task is idempotent for its business date."""
    before = ledger_fingerprint(world)
    changed: dict[str, list[str]] = {}
    for task_id in CHAIN:
        run(["airflow", "tasks", "test", DAG_ID, task_id, "2026-11-25T19:00:00+00:00"], world.env)
        after = ledger_fingerprint(world)
        changed[task_id] = [key for key in before if after[key] != before[key]]
    assert changed == {task_id: [] for task_id in CHAIN}, changed


def test_friday_run_skips_everything_after_the_calendar_check(world: World) -> None:
    done = dag_test(world.env, DAG_ID, "2026-11-27T19:00:00+00:00")
    assert done.returncode == 0 and done.run_state == "success", done.explain()
    assert done.task_states == {
        "business_date": "success",
        "night_begins": "success",
        "is_business_day": "success",
        **dict.fromkeys(CHAIN[3:], "skipped"),
    }, done.explain()
    assert world.on_disk(FRIDAY) == {}
    assert world.registered(FRIDAY) == {}
    assert not (world.home / "billing" / "outgoing" / "STATUS_20261127.csv").exists()


# --- the inbound DAG ----------------------------------------------------------------------------------
def test_inbound_dag_polls_and_follows_the_debit_run(description: dict[str, Any]) -> None:
    inbound = description["dags"]["epay_inbound"]
    assert inbound["timetable_class"].endswith("AssetOrTimeSchedule")
    assert inbound["max_active_runs"] == 1
    outbound = description["dags"][DAG_ID]
    # the asset the UI draws between the two DAGs
    assert outbound["outlets"]["send"] == ["sftp://algerie-poste/inbound"]
    assert inbound["outlets"]["apply_returns"] == ["epay://ledger/returns"]


def test_inbound_run_applies_the_returns_of_the_settlement_day(world: World, wednesday: FirstRun) -> None:
    with world.lock:
        published = world.office.tick(date(2026, 11, 26)).published
    assert any(n.startswith("RETR_") for n in published)
    # Inside Airflow the SFTP endpoint comes from an Airflow Connection (EPAY_SFTP_CONN_ID): the port in
    # the settings is made wrong to show the connection is what is used, host key pinned in its extra.
    pinned = tomllib.loads((world.home / "epay.toml").read_text(encoding="utf-8"))["sftp_host_key"]
    connection = {
        "conn_type": "sftp",
        "host": "127.0.0.1",
        "port": int(world.env["EPAY_SFTP_PORT"]),
        "login": "at100237",
        "extra": {"key_file": str(world.home / "keys" / "at_sftp_ecdsa"), "host_key": pinned},
    }
    env = {
        **world.env,
        "EPAY_SFTP_PORT": "1",
        "EPAY_SFTP_CONN_ID": "poste_sftp",
        "AIRFLOW_CONN_POSTE_SFTP": json.dumps(connection),
    }
    done = dag_test(env, "epay_inbound", "2026-11-26T12:00:00+00:00")
    assert done.returncode == 0 and done.run_state == "success", done.explain()
    with closing(sqlite3.connect(f"file:{world.home / 'epay.sqlite3'}?mode=ro", uri=True)) as connection:
        applied = dict(
            connection.execute(
                "SELECT kind, state FROM exchange_file WHERE direction = 'in' AND kind IN ('RETR', 'RELV')"
            ).fetchall()
        )
        final = connection.execute(
            "SELECT count(*) FROM instruction WHERE state IN ('settled', 'rejected')"
        ).fetchone()[0]
    assert applied == {"RETR": "applied", "RELV": "applied"}
    assert final > 0
    assert done.task_states == {"apply_returns": "success", "finance_summary": "success"}, done.explain()
    report = world.home / "reports" / "2026-11-26" / "finance-2026-11-26.json"
    summary = json.loads(report.read_text(encoding="utf-8"))
    reconciliation = summary["reconciliation"]  # a few statuses come back a day or two late: pending
    assert reconciliation["status"] in ("reconciled", "pending") and reconciliation["break_count"] == 0
    assert reconciliation["acsc_amount"] > 0
    first = report.read_bytes()
    again = dag_test(world.env, "epay_inbound", "2026-11-26T12:30:00+00:00")  # nothing new: nothing done
    assert again.returncode == 0 and again.run_state == "success", again.explain()
    assert report.read_bytes() == first  # the finance report is regenerated identically
