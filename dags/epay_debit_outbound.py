"""epay_debit_outbound — the evening debit run of each business day (Africa/Algiers).

business date → the night has begun by epay's clock (a sensor: a backfill on a simulated clock waits here
for its night) → (stop on a holiday) → load the billing extracts → validate (selection + quality gate)
→ build and register the PRLV files → send them by SFTP → wait for Algérie Poste's ACKs (a sensor in
reschedule mode: no worker slot held while waiting; past the deadline the run fails loudly and nothing
is re-sent on a guess) → export the day's statuses to billing → the day's exceptions list (logged, and
sent to the alert notifiers when it is not empty; made even after a failure) → ``night_done``, which
runs only when the night's steps succeeded, so a night whose send failed for good is a failed run.
Every step is one call into ``epay.airflow_support`` / ``epay.jobs``, keyed by the run's business date
(never "now"), so clearing any task re-runs it safely.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task

from epay.airflow_assets import POSTE_INBOUND
from epay.alerts import on_task_failure

# The ACK deadline itself is EPAY_ACK_DEADLINE_MINUTES (default 120), counted in the ledger from when each
# file was sent, so clearing the sensor does not restart it; this timeout is only a backstop.
SENSOR_BACKSTOP_SECONDS = 12 * 3600
# How often the sensors look again (read when the DAG file is parsed; a test stack sets it low).
POKE_SECONDS = int(os.environ.get("EPAY_SENSOR_POKE_SECONDS", "30"))
NIGHT_WAIT_SECONDS = 36 * 3600  # a night triggered ahead of its date fails after this long
RETRY_DELAY_SECONDS = int(os.environ.get("EPAY_RETRY_DELAY_SECONDS", "120"))  # a test stack sets it low


@dag(
    dag_id="epay_debit_outbound",
    schedule=CronTriggerTimetable("0 20 * * 0-4", timezone="Africa/Algiers"),  # Sun–Thu, before 22:00
    start_date=pendulum.datetime(2026, 1, 1, tz="Africa/Algiers"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "depends_on_past": True,  # nights in order: each step waits for the previous night's
        "retries": 1,
        "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS),
        "on_failure_callback": on_task_failure,  # log line, alerts.jsonl, EPAY_ALERT_WEBHOOK
    },
    params={
        "business_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="re-run a given business date (YYYY-MM-DD); default: the run's own date",
        )
    },
    tags=["epay", "outbound"],
    doc_md=__doc__,
)
def epay_debit_outbound() -> None:
    @task
    def business_date(**context: Any) -> str:
        from epay.airflow_support import business_date_of

        return business_date_of(context).isoformat()

    @task.sensor(poke_interval=POKE_SECONDS, timeout=NIGHT_WAIT_SECONDS, mode="reschedule")
    def night_begins(day: str) -> bool:
        from epay.airflow_support import night_begun

        return night_begun(day)

    @task.short_circuit
    def is_business_day(day: str) -> bool:
        from epay.airflow_support import is_business_day as check

        return check(day)

    @task
    def extract(day: str) -> list[dict[str, Any]]:
        from epay.airflow_support import load_extracts

        return load_extracts(day)

    @task
    def validate(day: str) -> dict[str, Any]:
        from epay.airflow_support import validate as check_batch

        return check_batch(day)

    @task
    def build(day: str) -> dict[str, Any]:
        from epay.airflow_support import build as build_files

        return build_files(day)

    @task(outlets=[POSTE_INBOUND])
    def send(day: str) -> list[dict[str, Any]]:
        from epay.airflow_support import send as upload

        return upload(day)

    @task.sensor(poke_interval=POKE_SECONDS, timeout=SENSOR_BACKSTOP_SECONDS, mode="reschedule")
    def wait_for_ack(day: str) -> bool:
        from epay.airflow_support import acknowledged

        return acknowledged(day)

    @task(trigger_rule="none_failed")  # runs when a closed build window skipped build, send and wait
    def export_statuses(day: str) -> str:
        from epay.airflow_support import export_statuses as export

        return export(day)

    @task(trigger_rule="all_done")  # the list is made even when the night failed
    def daily_exceptions(day: str) -> dict[str, int]:
        from epay.airflow_support import daily_exceptions as listed

        return listed(day)

    @task
    def night_done(day: str) -> str:
        """The night's last step: it runs only when every step before it succeeded (or was skipped by
        design), so a night whose send or ACK wait failed for good ends as a failed run."""
        return day

    day = business_date()
    begun = night_begins(day)
    gate = is_business_day(day)
    loaded = extract(day)
    checked = validate(day)
    built = build(day)
    sent = send(day)
    acked = wait_for_ack(day)
    exported = export_statuses(day)
    listed = daily_exceptions(day)
    done = night_done(day)
    begun >> gate >> loaded >> checked >> built >> sent >> acked >> exported >> listed >> done
    exported >> done  # the list runs after any outcome; the night's own outcome is here


epay_debit_outbound()
