"""Helpers for the end-to-end tier: the runbook's commands run as written, waits on Airflow's REST API,
the end state of a world (ledger decisions and the bytes of every file), and the reference world run with
``airflow dags test`` for the same nights."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from deploy.stack import Stack
from epay.airflow_rest import AirflowApi, runs_of_day
from epay.settings import ALGIERS
from tests.airflow_helpers import REPO, airflow_env, clean_env, dag_test, run

RUNBOOK_COMMANDS = REPO / "docs" / "runbook-commands.toml"
CREDITOR = "100237"
FINISHED = frozenset({"success", "failed"})


def runbook_commands() -> dict[str, str]:
    """{id: text} of docs/runbook-commands.toml, in order."""
    document = tomllib.loads(RUNBOOK_COMMANDS.read_text(encoding="utf-8"))
    return {entry["id"]: entry["text"] for entry in document["command"]}


# Airflow's CLI draws its tables to the terminal's width (80 columns in a pipe, wrapping long cells over
# several lines): the commands run as in a data engineer's usual wide terminal, whatever runs the tests.
TERMINAL_COLUMNS = "200"


@dataclass
class Runbook:
    """Runs the runbook's commands as a data engineer would: in bash, after sourcing the stack's env.sh."""

    stack: Stack
    commands: dict[str, str] = field(default_factory=runbook_commands)
    ran: set[str] = field(default_factory=set)
    transcript: list[str] = field(default_factory=list)

    def run(
        self, command_id: str, *, dates: dict[str, str] | None = None, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        """The command ``command_id`` exactly as written, or with ``dates`` replaced (the same command for
        another night); only an exact run counts as the runbook's command having been run."""
        command = self.commands[command_id]
        for old, new in (dates or {}).items():
            command = command.replace(old, new)
        script = f"set -e; . {shlex.quote(str(self.stack.env_file))}; cd {shlex.quote(str(REPO))}; {command}"
        done = subprocess.run(
            ["bash", "-c", script],
            env=clean_env(COLUMNS=TERMINAL_COLUMNS),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        self.transcript.append(f"$ {command}\n{done.stdout}{done.stderr}[exit {done.returncode}]")
        if expect is not None and done.returncode != expect:
            raise AssertionError(
                f"`{command}` exited {done.returncode}, expected {expect}\n{done.stdout}\n{done.stderr}"
            )
        if command == self.commands[command_id]:
            self.ran.add(command_id)
        return done


def api_of(stack: Stack) -> AirflowApi:
    import json

    return AirflowApi(stack.api_url, "admin", json.loads(stack.passwords_file.read_text())["admin"])


def task_states(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, str | None]:
    reply = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)
    return {ti["task_id"]: ti["state"] for ti in reply["task_instances"]}


def the_run(api: AirflowApi, dag_id: str, day: date) -> dict[str, Any]:
    runs = runs_of_day(api, dag_id, day)
    assert len(runs) == 1, f"{dag_id} on {day}: {len(runs)} runs {[r['dag_run_id'] for r in runs]}"
    return runs[0]


def wait_for(what: str, probe: Any, timeout: float = 420.0, every: float = 2.0, explain: Any = None) -> Any:
    """Call ``probe()`` until it returns something true; fail with ``explain()`` after ``timeout`` s
    (a deadline against a hang, never an assertion on speed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}" + (f": {explain()}" if explain else ""))
        time.sleep(every)


def wait_for_run(
    api: AirflowApi, dag_id: str, day: date, states: frozenset[str] = FINISHED, timeout: float = 420.0
) -> dict[str, Any]:
    """The run of ``dag_id`` on ``day`` once it is in one of ``states``."""

    def probe() -> dict[str, Any] | None:
        runs = runs_of_day(api, dag_id, day)
        return runs[0] if len(runs) == 1 and runs[0]["state"] in states else None

    def explain() -> str:
        runs = runs_of_day(api, dag_id, day)
        return "; ".join(
            f"{r['dag_run_id']} {r['state']} {task_states(api, dag_id, r['dag_run_id'])}" for r in runs
        )

    found: dict[str, Any] = wait_for(
        f"{dag_id} on {day} to be {sorted(states)}", probe, timeout, 2.0, explain
    )
    return found


def poste_outbound(home: Path) -> Path:
    return home / "poste" / "sftp" / CREDITOR / "outbound"


def wait_for_published(home: Path, day: date, timeout: float = 180.0) -> None:
    """The post office closed ``day``: its RELV statement is published."""
    stamp = f"RELV_{CREDITOR}_{day:%Y%m%d}_"
    wait_for(
        f"the post office to close {day}",
        lambda: any(p.name.startswith(stamp) for p in poste_outbound(home).glob("RELV_*")),
        timeout,
        1.0,
    )


# -- end state -------------------------------------------------------------------------------------------
LEDGER_QUERIES = {
    "files": "SELECT direction, kind, name, business_date, sha256, state, reason, detail_count, amount "
    "FROM exchange_file",
    "instructions": "SELECT i.reference, b.kind, b.number, i.try_number, i.amount, i.rip, i.business_date, "
    "i.settlement_date, i.line, i.state, i.reason FROM instruction i JOIN billing_item b ON b.id = i.item_id",
    "items": "SELECT kind, number, state, tries, last_reason, last_reason_on, paid_by, paid_on "
    "FROM billing_item",
    "batches": "SELECT business_date, number, settlement_date, state, amount FROM batch",
    "exclusions": "SELECT e.business_date, b.kind, b.number, e.reason FROM exclusion e "
    "JOIN billing_item b ON b.id = e.item_id",
    "mandates": "SELECT reference, rip, status_reason FROM mandate",
    "exports": "SELECT business_date, name FROM status_export",
}
# What epay wrote and what the post office published or received; a name ending .part never stays.
SHARED_FOLDERS = ("files", "billing/outgoing", "poste/sftp", "reports")


def end_state(ledger_url: str, home: Path) -> dict[str, Any]:
    from epay.ledger.db import open_ledger

    state: dict[str, Any] = {}
    engine = open_ledger(ledger_url)
    try:
        with engine.connect() as connection:
            for name, query in LEDGER_QUERIES.items():
                rows = connection.execute(text(query)).all()
                state[name] = sorted(tuple(_plain(v) for v in row) for row in rows)
    finally:
        engine.dispose()
    files: dict[str, str] = {}
    for folder in SHARED_FOLDERS:
        for path in sorted((home / folder).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    state["file_bytes"] = files
    return state


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def diff(left: dict[str, Any], right: dict[str, Any]) -> str:
    """What differs, briefly (the assertion message)."""
    lines = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key), right.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            only_a = sorted(set(a) - set(b))[:8]
            only_b = sorted(set(b) - set(a))[:8]
            changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])[:8]
            lines.append(f"{key}: only left {only_a}, only right {only_b}, other bytes {changed}")
        else:
            sa, sb = set(a or []), set(b or [])
            lines.append(f"{key}: only left {sorted(sa - sb)[:5]}, only right {sorted(sb - sa)[:5]}")
    return "\n".join(lines)


class Background:
    """A computation in a thread: the reference world runs while the stack starts and runs its nights."""

    def __init__(self, work: Callable[[], dict[str, object]]) -> None:
        self.result: dict[str, object] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), name="e2e-reference", daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], dict[str, object]]) -> None:
        try:
            self.result = work()
        except BaseException as error:  # handed to the test that asks for the result
            self.error = error

    def get(self) -> dict[str, object]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


# -- the reference: the same nights with `airflow dags test` ----------------------------------------------
def reference_world(
    folder: Path, subscribers: int, seed: int, first: date, last: date
) -> tuple[str, Path, list[str]]:
    """The nights ``first``..``last`` run with ``airflow dags test`` against a simulated post office on
    loopback, each step on the same clock readings the e2e tier gives the stack: the night at 20:00
    Algiers (arrivals stamped then), the post office closing the day, ``epay_inbound`` for the business
    date. Returns (ledger URL, EPAY_HOME, the runs' summaries)."""
    from epay.calendar import load_calendar
    from epay.clock import FileClock
    from epay.formats import parse_file_name
    from epay.poste.office import PostOffice
    from epay.poste.sftp_server import PosteSftpServer

    home = folder / "home"
    clock_file = home / "clock.json"
    env = airflow_env(
        folder / "airflow", EPAY_HOME=home, EPAY_SENSOR_POKE_SECONDS="3", EPAY_CLOCK=f"file:{clock_file}"
    )
    run(["airflow", "db", "migrate"], env, timeout=300)
    FileClock(clock_file).set(datetime.fromisoformat(f"{first.isoformat()}T19:00:00+01:00"), speed=0)
    sample = ["epay.cli", "sample", "--subscribers", str(subscribers), "--seed", str(seed)]
    run([*sample, "--as-of", first.isoformat()], env, timeout=300)
    calendar = load_calendar()
    office = PostOffice(home / "poste", f"sqlite:///{home / 'poste' / 'poste.sqlite3'}", calendar=calendar)
    lock = threading.Lock()

    def received(creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            day = parse_file_name(name).day
            with lock:
                office.acknowledge(creditor, path, datetime.combine(day, clock_time(20, 0), tzinfo=ALGIERS))

    summaries = []
    with PosteSftpServer(home / "poste", port=0, on_file_received=received) as server:
        env = {**env, "EPAY_SFTP_PORT": str(server.port)}
        day = first
        while day <= last:
            night = dag_test(env, "epay_debit_outbound", f"{day}T19:00:00+00:00")  # clock: D 20:00
            assert night.run_state == "success", night.explain()
            summaries.append(f"{day} outbound {night.task_states}")
            with lock:
                office.tick(day)
            if calendar.is_business_day(day):
                inbound = dag_test(env, "epay_inbound", f"{day}T21:00:00+00:00")
                assert inbound.run_state == "success", inbound.explain()
            day += timedelta(days=1)
    return f"sqlite:///{home / 'epay.sqlite3'}", home, summaries
