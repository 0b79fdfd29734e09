"""The nights on a production-shaped stack (scheduler, two Celery workers, PostgreSQL, Redis, the
simulated post office on the shared clock), driven as a data engineer drives it: the runbook's commands
as written (docs/runbook-commands.toml), Airflow's REST API v2, the shared clock.

The tests run in order on one stack and one world: the backfill of 25–30 November, then Tuesday 1
December with the post office down at send, Wednesday 2 December with a worker killed in the middle of
send, then the night of 30 November run again after it had succeeded; last, every runbook command was run.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from contextlib import closing
from datetime import date, timedelta
from typing import Any

import pytest

from deploy.stack import Stack, _component_pids, kill_component, start_component
from epay.airflow_rest import AirflowApi
from tests.e2e.helpers import (
    Background,
    Runbook,
    diff,
    end_state,
    poste_outbound,
    task_states,
    the_run,
    wait_for,
    wait_for_published,
    wait_for_run,
)

pytestmark = pytest.mark.e2e

OUTBOUND, INBOUND = "epay_debit_outbound", "epay_inbound"
NIGHTS = [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 29), date(2026, 11, 30)]
WEEKEND = [date(2026, 11, 27), date(2026, 11, 28)]
POSTE_DOWN, WORKER_KILLED = date(2026, 12, 1), date(2026, 12, 2)
EXAMPLE = "2026-11-25"  # the date in the runbook's night-level commands
SEEN: dict[str, Any] = {}  # what a test observed, for a later one


def _ledger_url(stack: Stack) -> str:
    return stack.database_url(stack.ledger_db)


def _settle_and_apply(stack: Stack, runbook: Runbook, api: AirflowApi, day: date) -> None:
    """Move the clock past ``day``'s end, let the post office publish, apply it with epay_inbound."""
    after = (day + timedelta(days=1)).isoformat()
    runbook.run("clock_end_of_day", dates={"2026-11-26": after})
    wait_for_published(stack.epay_home, day)
    if day.isoformat() == EXAMPLE:
        runbook.run("inbound_trigger")  # the runbook's command, as written
    else:  # the same trigger through the REST API (the CLI's start-up costs seconds each time)
        api.post(f"/api/v2/dags/{INBOUND}/dagRuns", {"logical_date": f"{day}T21:00:00+00:00"})
    applied = wait_for_run(api, INBOUND, day)
    assert applied["state"] == "success", task_states(api, INBOUND, applied["dag_run_id"])


def _received_once(stack: Stack, day: date) -> list[tuple[str, str]]:
    """The post office's view of ``day``'s PRLV files: each received once (one row per name by its
    primary key, one ACK each) and accepted."""
    stamp = f"PRLV_100237_{day:%Y%m%d}_"
    database = stack.epay_home / "poste" / "poste.sqlite3"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        rows = connection.execute(
            "SELECT name, status FROM received_file WHERE name LIKE ? ORDER BY name", (stamp + "%",)
        ).fetchall()
    acks = sorted(p.name for p in poste_outbound(stack.epay_home).glob(f"ACK_{stamp}*"))
    assert rows, f"the post office received no PRLV file of {day}"
    assert acks == [f"ACK_{name}" for name, _ in rows]
    inbound = stack.epay_home / "poste" / "sftp" / "100237" / "inbound"
    assert not list(inbound.glob("*.part")), "an upload was left half done"
    return [(str(name), str(status)) for name, status in rows]


def _worker_running(stack: Stack, run_id: str, task_id: str, attempt: int) -> str | None:
    """Which Celery worker's log shows it executing that try of that task."""
    needle = f"run_id={run_id}/task_id={task_id}/attempt={attempt}.log"
    for number in stack.worker_numbers():
        log = stack.logs / f"worker-w{number}.log"
        if log.exists() and needle in log.read_text(errors="replace"):
            return f"worker-w{number}"
    return None


def test_a_backfill_runs_the_nights_in_order_under_the_scheduler_and_ends_as_dags_test(
    stack: Stack, runbook: Runbook, api: AirflowApi, reference: Background
) -> None:
    dry = runbook.run("backfill_dry_run")
    for night in NIGHTS:
        assert f"| {night} 19:00:00+00:00 |" in dry.stdout, dry.stdout
    for day in WEEKEND:  # the timetable runs Sunday–Thursday: no run on the Friday–Saturday weekend
        assert f"{day} 19:00" not in dry.stdout
    assert api.get(f"/api/v2/dags/{OUTBOUND}/dagRuns")["total_entries"] == 0  # a dry run creates nothing

    runbook.run("clock_night")
    runbook.run("backfill")
    for night in NIGHTS:
        runbook.run("clock_night", dates={EXAMPLE: night.isoformat()})
        done = wait_for_run(api, OUTBOUND, night)
        states = task_states(api, OUTBOUND, done["dag_run_id"])
        assert done["state"] == "success", states
        assert done["run_type"] == "backfill"
        assert set(states.values()) == {"success"}, states
        _settle_and_apply(stack, runbook, api, night)
    for day in WEEKEND:
        assert (
            api.get(
                f"/api/v2/dags/{OUTBOUND}/dagRuns",
                logical_date_gte=f"{day}T00:00:00+01:00",
                logical_date_lte=f"{day}T23:59:59+01:00",
            )["dag_runs"]
            == []
        )

    stacked = end_state(_ledger_url(stack), stack.epay_home)
    expected = reference.get()
    assert stacked == expected, diff(stacked, expected)


def test_the_post_office_down_at_send_then_the_runbooks_clear_ends_the_day_right(
    stack: Stack, runbook: Runbook, api: AirflowApi
) -> None:
    day = POSTE_DOWN
    kill_component(stack, "poste", signal.SIGTERM)
    wait_for("the post office to stop", lambda: not _component_pids(stack, "poste"), 60, 0.5)
    runbook.run("clock_night", dates={EXAMPLE: day.isoformat()})
    runbook.run("night_trigger")

    failed = wait_for_run(api, OUTBOUND, day, timeout=600)  # send's retry comes after retry_delay_seconds
    states = task_states(api, OUTBOUND, failed["dag_run_id"])
    assert states["send"] == "failed", states
    assert states["build"] == "success" and states["wait_for_ack"] == "upstream_failed", states
    # What the data engineer sees first; checked at the end, so that the recovery is exercised anyway.
    run_state_seen = failed["state"]
    listed_as_failed = failed["dag_run_id"] in runbook.run("failed_runs").stdout
    alerts = [json.loads(line) for line in runbook.run("last_alert").stdout.splitlines() if line.strip()]
    sent_alert = [a for a in alerts if a.get("task_id") == "send" and a.get("event") == "task_failed"]
    assert sent_alert, alerts
    assert sent_alert[-1]["business_date"] == day.isoformat()
    assert sent_alert[-1]["run_id"] == failed["dag_run_id"]
    assert str(sent_alert[-1]["log_url"]).startswith(stack.api_url + "/"), sent_alert[-1]
    assert "Connection refused" in sent_alert[-1]["message"], sent_alert[-1]
    runbook.run("status")

    start_component(stack, "poste")
    looked = runbook.run("clear_failed_dry_run")
    assert "would clear send (was failed)" in looked.stdout, looked.stdout
    unchanged = the_run(api, OUTBOUND, day)  # a dry run changes nothing
    assert unchanged["state"] == run_state_seen
    assert task_states(api, OUTBOUND, unchanged["dag_run_id"])["send"] == "failed"
    cleared = runbook.run("clear_failed")
    assert "cleared send (was failed)" in cleared.stdout
    assert "cleared wait_for_ack (was upstream_failed)" in cleared.stdout
    assert "build" not in cleared.stdout  # what had succeeded is not run again

    done = wait_for_run(api, OUTBOUND, day, states=frozenset({"success"}))
    assert set(task_states(api, OUTBOUND, done["dag_run_id"]).values()) == {"success"}
    assert {status for _, status in _received_once(stack, day)} == {"ACCP"}
    SEEN["failed night"] = (run_state_seen, listed_as_failed, states)


def test_a_night_whose_send_failed_showed_as_a_failed_run() -> None:
    run_state, listed, states = SEEN["failed night"]
    assert (run_state, listed) == ("failed", True), (
        "a night whose send failed for good must show as a failed run (`airflow dags list-runs --state "
        f"failed`); it showed {run_state!r} with tasks {states}"
    )


def test_a_worker_killed_in_the_middle_of_send_is_noticed_and_the_day_recovered_on_the_other(
    stack: Stack, runbook: Runbook, api: AirflowApi
) -> None:
    day = WORKER_KILLED
    runbook.run("clock_end_of_day", dates={"2026-11-26": day.isoformat()})  # Tuesday closes
    wait_for_published(stack.epay_home, day - timedelta(days=1))
    runbook.run("clock_night", dates={EXAMPLE: day.isoformat()})
    # The post office hangs (stopped, its port still open): send stays in its SSH handshake.
    kill_component(stack, "poste", signal.SIGSTOP)
    try:
        runbook.run("night_trigger", dates={"2026-12-01": day.isoformat()})
        run_id = str(wait_for_run(api, OUTBOUND, day, states=frozenset({"running"}))["dag_run_id"])
        worker = wait_for(
            "send to start on a worker", lambda: _worker_running(stack, run_id, "send", 1), 300, 0.5
        )
        killed = kill_component(stack, worker, signal.SIGKILL)  # as if its machine died
        assert killed
        wait_for(f"{worker} to be gone", lambda: not _component_pids(stack, worker), 30, 0.5)
    finally:
        kill_component(stack, "poste", signal.SIGCONT)

    noticed = wait_for(
        "the scheduler to notice the lost task",
        lambda: task_states(api, OUTBOUND, run_id)["send"] in ("up_for_retry", "failed"),
        300,
    )
    assert noticed
    cleared = runbook.run("clear_send")
    assert "cleared send" in cleared.stdout and "cleared wait_for_ack" in cleared.stdout
    done = wait_for_run(api, OUTBOUND, day, states=frozenset({"success"}))
    assert set(task_states(api, OUTBOUND, done["dag_run_id"]).values()) == {"success"}
    other = {f"worker-w{n}" for n in stack.worker_numbers()} - {worker}
    ran_again = {_worker_running(stack, run_id, "send", attempt) for attempt in (2, 3)} - {None}
    assert ran_again and ran_again <= other, (worker, ran_again)
    assert {status for _, status in _received_once(stack, day)} == {"ACCP"}
    start_component(stack, worker)  # the machine is back


def test_a_night_run_again_after_it_succeeded_changes_nothing(
    stack: Stack, runbook: Runbook, api: AirflowApi
) -> None:
    day = NIGHTS[-1]
    before = end_state(_ledger_url(stack), stack.epay_home)
    first = the_run(api, OUTBOUND, day)
    cleared = runbook.run("clear_day")
    assert "cleared send (was success)" in cleared.stdout, cleared.stdout
    wait_for(
        "the night to be running again",
        lambda: (
            the_run(api, OUTBOUND, day)["state"] != "success"
            or the_run(api, OUTBOUND, day)["end_date"] != first["end_date"]
        ),
        120,
        0.5,
    )
    done = wait_for_run(api, OUTBOUND, day, states=frozenset({"success"}))
    assert done["dag_run_id"] == first["dag_run_id"]
    after = end_state(_ledger_url(stack), stack.epay_home)
    assert after == before, diff(after, before)


def test_every_runbook_command_was_run_as_written(runbook: Runbook) -> None:
    assert set(runbook.commands) - runbook.ran == set(), "\n\n".join(runbook.transcript[-5:])
