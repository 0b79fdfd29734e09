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
from collections import Counter
from contextlib import closing
from datetime import date, datetime
from datetime import time as clock
from pathlib import Path

from epay import jobs
from epay.calendar import load_calendar
from epay.formats import read_file, validate_file
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

    started = _step(f"Airflow: airflow dags test epay_debit_outbound {DAY} (about 20 s)")
    run_dag(settings, DAY)
    print(f"  ({time.perf_counter() - started:.1f} s)")

    result = jobs.build(settings, DAY)  # the day's batch exists: returned as it is, nothing changes
    print(
        f"  batch {result.batch_number}: {result.instruction_count} instructions, {_money(result.amount)}, "
        f"settlement {result.settlement_date}"
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
            f"epay check: {'VALID' if check.valid else 'INVALID'}; sha256 {built.sha256[:16]}…"
        )
        if not check.valid:
            raise SystemExit(f"the build wrote an invalid file: {check.problems[:3]}")
    print(f"  quality gate report: {settings.reports_dir / DAY.isoformat()}")
    print(f"  statuses for billing: {settings.billing_outgoing_dir / f'STATUS_{DAY:%Y%m%d}.csv'}")

    started = _step("the simulated Algérie Poste: SFTP upload, ACK, execution on the settlement day")
    post_office_round_trip(settings, [f.path for f in result.files], result.settlement_date)
    print(f"  ({time.perf_counter() - started:.1f} s)")
    print(
        "\nDone. Look around:  EPAY_HOME=var/demo .venv/bin/epay outbound build --date 2026-11-25  "
        "(re-run: same files)"
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


def run_dag(settings: Settings, day: date) -> None:
    env = airflow_env(settings)
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


def post_office_round_trip(settings: Settings, files: list[Path], settles: date) -> None:
    """Upload the built files by SFTP (pinned host key), get the ACKs, run the settlement day."""
    import paramiko

    from epay.poste.office import PostOffice
    from epay.poste.scenario import load_scenario
    from epay.poste.sftp_server import PosteSftpServer

    calendar = load_calendar(settings.holidays_file)
    office = PostOffice(
        settings.poste_dir,
        settings.poste_url,
        calendar=calendar,
        scenario=load_scenario(settings.poste_scenario_file),
    )
    acked = threading.Event()
    pending = {f.name for f in files}

    def received(creditor: str, name: str, path: Path) -> None:
        office.acknowledge(creditor, path, datetime.combine(DAY, clock(20, 5), tzinfo=ALGIERS))
        pending.discard(name)
        if not pending:
            acked.set()

    key = paramiko.ECDSAKey.from_private_key_file(str(settings.home / "keys" / "at_sftp_ecdsa"))
    with PosteSftpServer(settings.poste_dir, port=0, on_file_received=received) as server:
        transport = paramiko.Transport(("127.0.0.1", server.port))
        transport.connect(hostkey=server.host_key, username=settings.sftp_username, pkey=key)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        for path in files:
            sftp.put(str(path), f"/inbound/{path.name}.part", confirm=True)
            sftp.rename(f"/inbound/{path.name}.part", f"/inbound/{path.name}")
            print(f"  uploaded {path.name}")
        acked.wait(timeout=120)
        print(f"  acknowledgements: {sorted(n for n in sftp.listdir('/outbound') if n.startswith('ACK_'))}")
        transport.close()
    outbound = office.home(settings.creditor_id) / "outbound"
    for day in (settles, calendar.next_business_day(settles), calendar.add_business_days(settles, 2)):
        published = office.tick(day).published
        for name in published:
            report = validate_file(outbound / name, calendar=calendar)
            line = f"  {day} published {name}: {'valid' if report.valid else 'INVALID'}"
            if name.startswith("RETR_"):
                details = read_file(outbound / name, calendar=calendar).details
                assert details is not None
                statuses = Counter(
                    (s, r)
                    for s, r in zip(
                        details.column("status").to_pylist(),
                        details.column("reason").to_pylist(),
                        strict=True,
                    )
                )
                line += "; " + ", ".join(
                    f"{s} {r or ''}".strip() + f" {n}" for (s, r), n in sorted(statuses.items())
                )
            print(line)


if __name__ == "__main__":
    main()
