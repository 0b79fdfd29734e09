"""``make demo``: the nightly cycle over several days, end to end, through the real Airflow DAGs.

1. ``epay sample``: a world of 20,000 subscribers as of Wednesday 2026-11-25, loaded through the real
   billing import, and the simulated Algérie Poste's side of it (accounts, mandates, SFTP account).
2. The simulated post office's SFTP server on loopback (host key pinned by the sample), which
   acknowledges each PRLV file as it arrives.
3. For each day from Wednesday 25 to Monday 30 November 2026 (the Friday–Saturday weekend included):
   the DAG ``epay_debit_outbound`` for that date through ``airflow dags test`` (extract → validate →
   build → send → wait for the ACK → export statuses; skipped on the weekend), the post office's clock
   moved to the end of that day (executions, RETR, RELV, MNDT), then the DAG ``epay_inbound`` (download and
   apply), and the day's ``epay status``.
4. The ledger's account at the end: instructions by final status and reason, and the money settled in
   the ledger against what the RELV statements credited.

Time is simulated on epay's settable clock (``EPAY_CLOCK=file``, ``$EPAY_HOME/demo/clock.json``), read by
every step and by the post office: each night runs at 20:00 on its day, the post office's end of day at
23:30, so a past night is run as it would have been on its date, never late.

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
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from epay import jobs
from epay.calendar import load_calendar
from epay.clock import FileClock, process_clock
from epay.poste.sftp_server import PosteSftpServer
from epay.settings import ALGIERS, REPO_ROOT, Settings, get_settings

FIRST_DAY = date(2026, 11, 25)  # Wednesday
LAST_DAY = date(2026, 11, 30)  # Monday
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
    clock_file = FileClock(home / "clock.json")
    clock_file.set(datetime.combine(FIRST_DAY, clock(19, 0), tzinfo=ALGIERS))
    os.environ["EPAY_CLOCK"] = f"file:{clock_file.path}"  # this process and every one it starts
    settings = Settings(home=home)
    calendar = load_calendar(settings.holidays_file)
    print(f"epay demo — data folder {home} (kept afterwards)")

    started = _step(f"epay sample --subscribers {SUBSCRIBERS} --seed 1 --as-of {FIRST_DAY}")
    from epay.sample.install import install_sample

    report = install_sample(settings, SUBSCRIBERS, 1, FIRST_DAY, calendar)
    print(f"  {report.loaded['items_new']} invoices and recharge orders, {report.mandates} mandates (ledger)")
    print(
        f"  post office: {report.poste_accounts} CCP accounts, {report.poste_mandates} mandates, SFTP account"
    )
    print(f"  ({time.perf_counter() - started:.1f} s)")

    office = _post_office(settings)
    lock = threading.Lock()

    def received(creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            with lock:
                office.acknowledge(creditor, path, process_clock().now().astimezone(ALGIERS))

    with PosteSftpServer(settings.poste_dir, port=0, on_file_received=received) as server:
        print(f"\nthe simulated Algérie Poste listens on 127.0.0.1:{server.port} (host key pinned by sample)")
        env = {**airflow_env(settings), "EPAY_SFTP_PORT": str(server.port)}
        airflow(env, settings, ["db", "migrate"])
        settings = settings.model_copy(update={"sftp_port": server.port, **_pinned(settings)})
        day = FIRST_DAY
        while day <= LAST_DAY:
            business = calendar.is_business_day(day)
            started = _step(f"{day:%A %Y-%m-%d}" + ("" if business else " — weekend: the debit run skips"))
            clock_file.set(datetime.combine(day, clock(20, 0), tzinfo=ALGIERS))
            states = airflow(env, settings, ["dags", "test", "epay_debit_outbound", f"{day}T19:00:00+00:00"])
            print("  epay_debit_outbound: " + ", ".join(f"{t} {s}" for t, s in states))
            clock_file.set(datetime.combine(day, clock(23, 30), tzinfo=ALGIERS))
            with lock:
                published = office.tick(day).published
            print(f"  post office, end of day: {', '.join(published) or 'nothing published'}")
            if business:
                states = airflow(env, settings, ["dags", "test", "epay_inbound", f"{day}T21:00:00+00:00"])
                print("  epay_inbound: " + ", ".join(f"{t} {s}" for t, s in states))
                print_status(settings, day)
            print(f"  ({time.perf_counter() - started:.1f} s)")
            day += timedelta(days=1)
    summarise(settings)
    print(
        "\nDone. Look around:  EPAY_HOME=var/demo .venv/bin/epay status --date 2026-11-25   "
        "(and var/demo/airflow/*.log)"
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
    """What `epay sample` pinned in $EPAY_HOME/epay.toml (this process's settings predate that file)."""
    import tomllib

    config = tomllib.loads((settings.home / "epay.toml").read_text(encoding="utf-8"))
    return {
        "sftp_private_key_file": Path(config["sftp_private_key_file"]),
        "sftp_host_key": config["sftp_host_key"],
    }


def airflow_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EPAY_"))}
    env.update(
        AIRFLOW_HOME=str(settings.home / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        EPAY_HOME=str(settings.home),
        EPAY_CLOCK=os.environ.get("EPAY_CLOCK", "system"),
    )
    return env


def airflow(env: dict[str, str], settings: Settings, args: list[str]) -> list[tuple[str, str]]:
    """Run one airflow command (output to a log); for ``dags test``, the task states of that run."""
    folder = settings.home / "airflow"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{'-'.join(a.replace(':', '') for a in args[:4])}.log"
    with log.open("w", encoding="utf-8") as output:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode:
        raise SystemExit(f"airflow {' '.join(args)} failed; see {log}")
    if args[:2] != ["dags", "test"]:
        return []
    with closing(sqlite3.connect(folder / "airflow.db")) as db:
        states = db.execute(
            "SELECT task_id, coalesce(state, 'none') FROM task_instance WHERE run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1) AND dag_id = ?",
            (args[2], args[2]),
        ).fetchall()
    if any(state not in ("success", "skipped") for _, state in states):
        raise SystemExit(f"the {args[2]} run did not succeed ({states}); see {log}")
    return [(str(t), str(s)) for t, s in states]


def print_status(settings: Settings, day: date) -> None:
    from epay.reports.status import day_status

    engine = jobs.ledger(settings)
    try:
        status = day_status(engine, day)
    finally:
        engine.dispose()
    built = sum(v["count"] for v in status["instructions"].values())
    amount = sum(v["amount"] for v in status["instructions"].values())
    print(
        f"  epay status {day}: {built} instructions built ({_money(amount)}), "
        + ", ".join(f"{s} {v['count']}" for s, v in sorted(status["instructions"].items()))
    )
    files = [f"{f['name']} {f['state']}" for f in status["files"] if f["kind"] == "PRLV"]
    print(
        f"    files: {', '.join(files) or 'none'}; not selected: "
        + ", ".join(f"{k} {v}" for k, v in sorted(status["not_selected"].items()))
    )


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
            retries = connection.exec_driver_sql(
                "SELECT count(*) FROM instruction WHERE try_number > 1"
            ).scalar_one()
    finally:
        engine.dispose()
    print("\n== the ledger afterwards")
    for state, reason, count, amount in rows:
        print(f"  {state} {reason}".rstrip() + f": {count} instructions, {_money(int(amount))}")
    print(f"  presentations after an AM04/MS03 reject: {retries}")
    settled = sum(int(a) for s, _, _, a in rows if s == "settled")
    print(
        f"  settled in the ledger {_money(settled)} = credited in the RELV statements {_money(int(relv))}: "
        f"{'yes' if settled == int(relv) else 'NO'}"
    )


if __name__ == "__main__":
    main()
