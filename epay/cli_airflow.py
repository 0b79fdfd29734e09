"""``epay airflow clear``: re-run a day's tasks on a running Airflow, by exact task id.

Airflow 3.3.2's ``airflow tasks clear -t/--task-regex`` is a substring match (``-t '^send$'`` clears
nothing and exits 0), so the runbook clears through the REST API's ``clearTaskInstances`` instead, with
exact task ids and the run found by its business date (logical date in Africa/Algiers).
"""

from __future__ import annotations

from datetime import datetime

import click

from epay.airflow_rest import AirflowApi, AirflowApiError, UsageError, clear, runs_of_day
from epay.cli_params import AIRFLOW_ID, RUN_ID, BusinessDate, HttpUrl


@click.group()
def airflow() -> None:
    """Talk to a running Airflow (api-server at AIRFLOW__API__BASE_URL) as the runbook does."""


@airflow.command("clear")
@click.option("--dag", "dag_id", type=AIRFLOW_ID, required=True, help="e.g. epay_debit_outbound")
@click.option(
    "--date",
    "day",
    required=True,
    type=BusinessDate(),
    help="the business date: the run whose logical date falls on it in Africa/Algiers",
)
@click.option(
    "--task", "tasks", type=AIRFLOW_ID, multiple=True, help="exact task id (repeatable); default: every task"
)
@click.option("--only-failed", is_flag=True, help="only failed and upstream_failed task instances")
@click.option("--dry-run", is_flag=True, help="list what would be cleared; change nothing")
@click.option(
    "--downstream/--no-downstream",
    default=True,
    show_default=True,
    help="with --task: also the tasks after it (their upstream_failed state is cleared too)",
)
@click.option("--run-id", type=RUN_ID, help="the run to clear, when the day has several")
@click.option("--api-url", type=HttpUrl(), help="default: $AIRFLOW__API__BASE_URL")
def clear_command(
    dag_id: str,
    day: datetime,
    tasks: tuple[str, ...],
    only_failed: bool,
    dry_run: bool,
    downstream: bool,
    run_id: str | None,
    api_url: str | None,
) -> None:
    """Clear a day's task instances (exact ids) so the scheduler runs them again."""
    try:
        api = AirflowApi.from_environment(api_url)
    except UsageError as error:
        raise click.UsageError(str(error)) from None
    try:
        runs = runs_of_day(api, dag_id, day.date())
        if run_id is None:
            if not runs:
                raise click.ClickException(f"{dag_id} has no run on {day:%Y-%m-%d} (Africa/Algiers)")
            if len(runs) > 1:
                listed = ", ".join(f"{r['dag_run_id']} ({r['state']})" for r in runs)
                raise click.ClickException(
                    f"{dag_id} has {len(runs)} runs on {day:%Y-%m-%d}: {listed}; choose one with --run-id"
                )
            run_id = str(runs[0]["dag_run_id"])
        chosen = list(tasks) or None
        # A dry run first: the API answers with the task instances' states as they are, which the
        # real clear (that answers with them reset) reports as what they were.
        seen = clear(
            api, dag_id, run_id, chosen, only_failed=only_failed, dry_run=True, downstream=downstream
        )
        if not dry_run and seen.task_instances:
            clear(api, dag_id, run_id, chosen, only_failed=only_failed, dry_run=False, downstream=downstream)
    except AirflowApiError as error:
        raise click.ClickException(str(error)) from None
    verb = "would clear" if dry_run else "cleared"
    if not seen.task_instances:
        click.echo(f"{dag_id} {seen.dag_run_id}: nothing to clear")
        return
    for task_id, state in seen.task_instances:
        click.echo(f"{dag_id} {seen.dag_run_id}: {verb} {task_id} (was {state or 'none'})")
