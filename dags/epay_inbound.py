"""epay_inbound — fetch what Algérie Poste published in outbound/ and apply each new file once.

Runs every 30 minutes (Africa/Algiers) and also right after a debit run has sent files (the
``algerie_poste_inbound`` asset). ``apply_returns``: a file already applied is skipped, a bad one is
quarantined with its reasons and the others still apply. ``finance_summary``: the settlement date's report
for finance (reports/<D>/finance-<D>.json and .xlsx), written again identically while nothing changed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from epay.airflow_assets import LEDGER_RETURNS, POSTE_INBOUND
from epay.alerts import on_task_failure


@dag(
    dag_id="epay_inbound",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/30 * * * *", timezone="Africa/Algiers"), assets=[POSTE_INBOUND]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="Africa/Algiers"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": on_task_failure,  # log line, alerts.jsonl, EPAY_ALERT_WEBHOOK
    },
    tags=["epay", "inbound"],
    doc_md=__doc__,
)
def epay_inbound() -> None:
    @task(outlets=[LEDGER_RETURNS])
    def apply_returns(**context: Any) -> list[dict[str, Any]]:
        from epay.airflow_support import receive_now

        return receive_now(context)

    @task
    def finance_summary(**context: Any) -> str:
        from epay.airflow_support import finance_summary as summarise
        from epay.airflow_support import inbound_day

        return summarise(inbound_day(context).isoformat())

    apply_returns() >> finance_summary()


epay_inbound()
