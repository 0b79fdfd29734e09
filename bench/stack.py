"""Benchmark of the production-shaped stack (deploy/stack.py): figures printed, nothing asserted.

1. the stack's start: ``up`` from nothing (databases created, ``airflow db migrate``, a small world
   sampled, every component started) until ready (health, Celery ping, DAGs parsed);
2. a three-night backfill (Wednesday 25, Thursday 26, Sunday 29 November 2026) under the scheduler with
   two Celery workers, the clock moved as the e2e tier does (each night at 20:00, then past its end);
3. with ``--big N``: one night of a world of N subscribers (310,000 give about 200,000 instructions on
   the 25th) through the stack, against ``airflow dags test`` of the same night on a twin world (same
   sample, its own PostgreSQL ledger).

    .venv/bin/python bench/stack.py [--big 220000] [--port-base 28280] [--redis-db 9]

The bench stack is named ``bench`` (its own ports, databases and Redis db) and is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deploy.stack import Stack, down, up  # noqa: E402
from epay.airflow_rest import AirflowApi, runs_of_day  # noqa: E402

BIN = Path(sys.executable).parent
NIGHTS = [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 29)]


def api_of(stack: Stack) -> AirflowApi:
    return AirflowApi(stack.api_url, "admin", json.loads(stack.passwords_file.read_text())["admin"])


def shell(stack: Stack, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EPAY_"))}
    for line in stack.env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line and not line.startswith("export PATH="):
            key, value = line.removeprefix("export ").split("=", 1)
            env[key] = _unquote(value)
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)


def _unquote(value: str) -> str:
    import shlex

    return shlex.split(value)[0] if value else ""


def clock(stack: Stack, at: str) -> None:
    shell(stack, [str(BIN / "epay"), "clock", "set", "--at", at, "--speed", "0"])


def wait_run(api: AirflowApi, dag_id: str, day: date, timeout: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of_day(api, dag_id, day)
        if len(runs) == 1 and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(1)
    raise SystemExit(f"{dag_id} {day}: not finished after {timeout:g} s")


def wait_published(stack: Stack, day: date, timeout: float = 600) -> None:
    outbound = stack.epay_home / "poste" / "sftp" / "100237" / "outbound"
    deadline = time.monotonic() + timeout
    while not list(outbound.glob(f"RELV_100237_{day:%Y%m%d}_*")):
        if time.monotonic() > deadline:
            raise SystemExit(f"the post office did not close {day}")
        time.sleep(0.5)


def three_nights(stack: Stack) -> float:
    api = api_of(stack)
    airflow = str(BIN / "airflow")
    started = time.perf_counter()
    clock(stack, f"{NIGHTS[0]}T20:00:00+01:00")
    shell(
        stack,
        [
            *[airflow, "backfill", "create", "--dag-id", "epay_debit_outbound"],
            *["--from-date", f"{NIGHTS[0]}T19:00:00+00:00", "--to-date", f"{NIGHTS[-1]}T19:00:00+00:00"],
            *["--reprocess-behavior", "failed", "--max-active-runs", "1"],
        ],
    )
    for night in NIGHTS:
        clock(stack, f"{night}T20:00:00+01:00")
        done = wait_run(api, "epay_debit_outbound", night)
        print(f"  night {night}: {done['state']} at {time.perf_counter() - started:.0f} s", flush=True)
        clock(stack, f"{night + timedelta(days=1)}T00:05:00+01:00")
        wait_published(stack, night)
        api.post("/api/v2/dags/epay_inbound/dagRuns", {"logical_date": f"{night}T21:00:00+00:00"})
        done = wait_run(api, "epay_inbound", night)
        print(f"  inbound {night}: {done['state']} at {time.perf_counter() - started:.0f} s", flush=True)
    return time.perf_counter() - started


def big_night(subscribers: int, port_base: int, redis_db: int) -> None:
    stack = Stack(
        name="bench_big",
        port_base=port_base + 20,
        redis_db=redis_db,
        poke_seconds=3,
        sample_subscribers=subscribers,
    )
    started = time.perf_counter()
    up(stack, echo=lambda line: print(line, flush=True), fresh=True, timeout=3600)
    print(
        f"  stack with a world of {subscribers:,} subscribers ready in {time.perf_counter() - started:.0f} s"
    )
    try:
        api = api_of(stack)
        clock(stack, f"{NIGHTS[0]}T20:00:00+01:00")
        started = time.perf_counter()
        api.post("/api/v2/dags/epay_debit_outbound/dagRuns", {"logical_date": f"{NIGHTS[0]}T19:00:00+00:00"})
        done = wait_run(api, "epay_debit_outbound", NIGHTS[0])
        stacked = time.perf_counter() - started
        durations = {
            ti["task_id"]: ti["duration"]
            for ti in api.get(f"/api/v2/dags/epay_debit_outbound/dagRuns/{done['dag_run_id']}/taskInstances")[
                "task_instances"
            ]
        }
        print(
            f"  the night through the stack: {done['state']} in {stacked:.0f} s, "
            f"{_instructions(stack, stack.ledger_db):,} instructions; task seconds "
            + ", ".join(f"{task} {seconds:.1f}" for task, seconds in durations.items())
        )
    finally:
        down(stack, echo=lambda line: None)
    dags_test_night(subscribers, stack)


def _instructions(stack: Stack, database: str) -> int:
    import psycopg

    with psycopg.connect(f"{stack.postgres}/{database}") as connection:
        row = connection.execute("SELECT count(*) FROM instruction").fetchone()
    return int(row[0]) if row else 0


def dags_test_night(subscribers: int, stack: Stack) -> None:
    """The same night with ``airflow dags test``: a twin world on its own PostgreSQL database."""
    import psycopg
    from psycopg import sql

    database = "epay_bench_dags_test_ledger"
    folder = Path(tempfile.mkdtemp(prefix="epay-bench-dags-test-"))
    with psycopg.connect(f"{stack.postgres}/{stack.maintenance_db}", autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EPAY_"))}
        env |= {
            "AIRFLOW_HOME": str(folder / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "EPAY_HOME": str(folder / "home"),
            "EPAY_DATABASE_URL": stack.database_url(database),
            "EPAY_CLOCK": f"{NIGHTS[0]}T20:00:00+01:00",
            "EPAY_SENSOR_POKE_SECONDS": "3",
        }
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        sample = [str(BIN / "epay"), "sample", "--subscribers", str(subscribers), "--seed", "1"]
        subprocess.run([*sample, "--as-of", str(NIGHTS[0])], env=env, check=True, capture_output=True)
        poste = subprocess.Popen(
            [str(BIN / "epay"), "poste", "serve", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            port = None
            assert poste.stdout is not None
            while port is None:
                line = poste.stdout.readline()
                if not line:
                    raise SystemExit("the post office did not start")
                if line.startswith("serving SFTP on"):
                    port = line.split(":")[1].split()[0]
            started = time.perf_counter()
            done = subprocess.run(
                [str(BIN / "airflow"), "dags", "test", "epay_debit_outbound", f"{NIGHTS[0]}T19:00:00+00:00"],
                env=env | {"EPAY_SFTP_PORT": port},
                capture_output=True,
                text=True,
                check=False,
            )
            print(
                f"  the same night with airflow dags test: exit {done.returncode} in "
                f"{time.perf_counter() - started:.0f} s, {_instructions(stack, database):,} instructions"
            )
        finally:
            poste.terminate()
            poste.wait(timeout=30)
    finally:
        with psycopg.connect(f"{stack.postgres}/{stack.maintenance_db}", autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port-base", type=int, default=28280)
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--big", type=int, default=0, help="subscribers of the big night (0: skip it)")
    parser.add_argument("--big-only", action="store_true", help="skip the start and the backfill")
    arguments = parser.parse_args()
    if not arguments.big_only:
        stack = Stack(
            name="bench", port_base=arguments.port_base, redis_db=arguments.redis_db, poke_seconds=3
        )
        print("== the stack's start (fresh: databases, migrations, a 2,000-subscriber world, components)")
        seconds = up(stack, echo=lambda line: print(line, flush=True), fresh=True)
        try:
            print(f"  ready in {seconds:.0f} s")
            print("== a three-night backfill (25, 26, 29 November), the clock moved night by night")
            print(f"  three nights and their returns in {three_nights(stack):.0f} s")
        finally:
            down(stack, echo=lambda line: None)
    if arguments.big:
        print(f"== one night of a {arguments.big:,}-subscriber world: the stack vs airflow dags test")
        big_night(arguments.big, arguments.port_base, arguments.redis_db)


if __name__ == "__main__":
    main()
