"""``make demo``: the nightly debit run end to end on this machine, on the embedded default.

1. ``epay sample``: a world of 20,000 subscribers as of Wednesday 2026-11-25, loaded through the real
   billing import, and the simulated Algérie Poste's side of it (accounts, mandates, SFTP account).
2. The Airflow DAG ``epay_debit_outbound`` for that business date, run by ``airflow dags test`` (Airflow's
   own SQLite metadata database under the data folder): load extracts → validate (quality gate) →
   build and register the PRLV files → export statuses.
3. The files checked by ``epay check``'s validator, then uploaded by SFTP (key authentication, host key
   pinned) to the simulated post office on loopback, acknowledged, executed on the settlement day; the
   returns it publishes are validated. (The operator's own send/receive steps and the returns applied to
   the ledger come with the end-to-end issue, #5.)

Everything stays under ``$EPAY_HOME/demo/`` for inspection afterwards; a new demo starts from scratch.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from datetime import date, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any

from epay import jobs
from epay.calendar import load_calendar
from epay.formats import validate_file
from epay.poste.sftp_server import PosteSftpServer
from epay.settings import ALGIERS, REPO_ROOT, Settings, get_settings

DAY = date(2026, 11, 25)
SUBSCRIBERS = 20_000


def _step(text: str) -> float:
    print(f"\n== {text}", flush=True)
    return time.perf_counter()


def _money(centimes: int) -> str:
    return f"{centimes // 100:,}.{centimes % 100:02d} DZD".replace(",", " ")


def main() -> None:
    home = get_settings().home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings = Settings(home=home)
    calendar = load_calendar(settings.holidays_file)
    print(f"epay demo — data folder {home} (kept afterwards)")

    started = _step(f"epay sample --subscribers {SUBSCRIBERS} --seed 1 --as-of {DAY}")
    from epay.sample.install import install_sample

    report = install_sample(settings, SUBSCRIBERS, 1, DAY, calendar)
    print(
        f"  {report.loaded['items_new']} invoices and recharge orders, "
        f"{report.mandates} mandates in the ledger"
    )
    print(
        f"  post office: {report.poste_accounts} CCP accounts, {report.poste_mandates} mandates, SFTP account"
    )
    print(f"  ({time.perf_counter() - started:.1f} s)")

    office = _post_office(settings)
    lock = threading.Lock()

    def received(creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            with lock:
                office.acknowledge(creditor, path, datetime.combine(DAY, clock(20, 5), tzinfo=ALGIERS))

    with PosteSftpServer(settings.poste_dir, port=0, on_file_received=received) as server:
        started = _step(
            f"Airflow: airflow dags test epay_debit_outbound {DAY} — the simulated Algérie Poste listens "
            f"on 127.0.0.1:{server.port} (host key pinned); about 30 s"
        )
        run_dag(settings, DAY, server.port)
        print(f"  ({time.perf_counter() - started:.1f} s)")
        settings = settings.model_copy(update={"sftp_port": server.port, **_pinned(settings)})
        result = jobs.build(settings, DAY)  # the day's batch exists: returned as it is, nothing changes
        print(
            f"  batch {result.batch_number}: {result.instruction_count} instructions, "
            f"{_money(result.amount)}, settlement {result.settlement_date}"
        )
        print("  held back by the gate: " + ", ".join(f"{k} {v}" for k, v in sorted(result.held.items())))
        print("  not selected: " + ", ".join(f"{k} {v}" for k, v in sorted(result.excluded.items())))
        for built in result.files:
            check = validate_file(
                built.path,
                calendar=calendar,
                expected_creditor=settings.creditor_id,
                expected_creditor_rip=settings.creditor_rip,
            )
            print(
                f"  {built.name}: {built.detail_count} details, {_money(built.amount)}, "
                f"epay check: {'VALID' if check.valid else 'INVALID'}; sent and acknowledged: "
                f"{'yes' if not jobs.unacknowledged(settings, DAY) else 'NO'}"
            )
            if not check.valid:
                raise SystemExit(f"the build wrote an invalid file: {check.problems[:3]}")
        print(f"  quality gate report: {settings.reports_dir / DAY.isoformat()}")
        print(f"  statuses for billing: {settings.billing_outgoing_dir / f'STATUS_{DAY:%Y%m%d}.csv'}")

        started = _step("the settlement days at the post office, then `epay inbound` applies the returns")
        day = result.settlement_date
        for _ in range(3):
            with lock:
                published = office.tick(day).published
            applied = jobs.receive(settings, day)
            print(
                f"  {day}: published {', '.join(published) or 'nothing'}; applied "
                + ", ".join(f"{r['name'].split('_')[0]} {r['outcome']}" for r in applied)
            )
            day = calendar.next_business_day(day)
        print(f"  ({time.perf_counter() - started:.1f} s)")
    summarise(settings)
    print(
        "\nDone. Look around:  EPAY_HOME=var/demo .venv/bin/epay outbound build --date 2026-11-25  "
        "(re-run: same files)"
    )


def _post_office(settings: Settings) -> Any:
    from epay.poste.office import PostOffice
    from epay.poste.scenario import load_scenario

    return PostOffice(
        settings.poste_dir,
        settings.poste_url,
        calendar=load_calendar(settings.holidays_file),
        scenario=load_scenario(settings.poste_scenario_file),
    )


def _pinned(settings: Settings) -> dict[str, Any]:
    """What `epay sample` pinned in $EPAY_HOME/epay.toml (read here explicitly: this process's settings
    were made before that file existed)."""
    import tomllib

    config = tomllib.loads((settings.home / "epay.toml").read_text(encoding="utf-8"))
    return {
        "sftp_private_key_file": Path(config["sftp_private_key_file"]),
        "sftp_host_key": config["sftp_host_key"],
    }


def summarise(settings: Settings) -> None:
    engine = jobs.ledger(settings)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT state, coalesce(reason, ''), count(*), sum(amount) FROM instruction "
                "GROUP BY state, reason ORDER BY state, reason"
            ).all()
            relv = connection.exec_driver_sql(
                "SELECT coalesce(sum(amount), 0) FROM exchange_file WHERE kind = 'RELV'"
            ).scalar_one()
    finally:
        engine.dispose()
    print("\n== the ledger afterwards")
    for state, reason, count, amount in rows:
        print(f"  {state} {reason}".rstrip() + f": {count} instructions, {_money(int(amount))}")
    settled = sum(int(a) for s, _, _, a in rows if s == "settled")
    print(
        f"  settled in the ledger {_money(settled)} = credited in the RELV statements {_money(int(relv))}: "
        f"{'yes' if settled == int(relv) else 'NO'}"
    )


def airflow_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EPAY_"))}
    env.update(
        AIRFLOW_HOME=str(settings.home / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        EPAY_HOME=str(settings.home),
    )
    return env


def run_dag(settings: Settings, day: date, sftp_port: int) -> None:
    env = {**airflow_env(settings), "EPAY_SFTP_PORT": str(sftp_port)}
    log = settings.home / "airflow" / f"dags-test-{day}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    airflow = [sys.executable, "-m", "airflow"]
    logical = f"{day}T19:00:00+00:00"  # 20:00 in Algiers, the DAG's schedule
    with log.open("w", encoding="utf-8") as output:
        for argv in ([*airflow, "db", "migrate"], [*airflow, "dags", "test", "epay_debit_outbound", logical]):
            print(f"  $ airflow {' '.join(argv[3:])}   (log: {log})", flush=True)
            done = subprocess.run(argv, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)
            if done.returncode:
                raise SystemExit(f"airflow {' '.join(argv[3:])} failed; see {log}")
    with closing(sqlite3.connect(settings.home / "airflow" / "airflow.db")) as db:
        states = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = 'epay_debit_outbound' AND run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = 'epay_debit_outbound' ORDER BY id DESC LIMIT 1)"
        ).fetchall()
    print("  tasks: " + ", ".join(f"{task} {state}" for task, state in sorted(states)))
    if any(state != "success" for _, state in states):
        raise SystemExit(f"the DAG run did not succeed; see {log}")


if __name__ == "__main__":
    main()
