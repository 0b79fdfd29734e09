"""Re-running a past day: never a back-dated file, never a file sent past its cut-off, nights in order,
and a day's view that tells where its instructions went (issue: time-correct, loss-free re-runs)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from epay import jobs
from epay.airflow_support import TaskFailed, business_date_of, night_begun
from epay.calendar import BusinessCalendar
from epay.clock import ALGIERS
from epay.formats import read_file
from epay.inbound.ack import apply_ack
from epay.ledger.db import transaction
from epay.outbound.build import BuildPolicy, BuildResult, BuildWindowClosedError, build_outbound
from epay.outbound.cutoff import build_window_problem, cut_off, expired, next_night
from epay.outbound.send import send_files
from epay.reports.exceptions import daily_exceptions
from epay.reports.status import day_status
from epay.settings import Settings
from epay.transport.sftp import UploadResult
from tests.conftest import at_night, set_clock
from tests.ledger_helpers import TinyWorld

WED, THU, SUN, MON = date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 29), date(2026, 11, 30)
MARGIN = timedelta(minutes=10)


def algiers(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ALGIERS)


# --- the rule, pure ---------------------------------------------------------------------------------------


def test_a_night_builds_from_its_start_until_the_margin_before_its_cut_off(
    calendar: BusinessCalendar,
) -> None:
    assert build_window_problem(WED, algiers(WED, 0), calendar, MARGIN) is None
    assert build_window_problem(WED, algiers(WED, 21, 49), calendar, MARGIN) is None
    closed = build_window_problem(WED, algiers(WED, 21, 50), calendar, MARGIN)
    assert closed is not None and "cut-off of 2026-11-25 has passed" in closed and "DT01" in closed
    assert "next night that can still make it, 2026-11-26" in closed
    early = build_window_problem(THU, algiers(WED, 23, 59), calendar, MARGIN)
    assert early is not None and "has not begun" in early


def test_the_cut_off_moves_over_weekends_and_holidays(calendar: BusinessCalendar) -> None:
    # Thursday's files settle on Sunday: they must reach AP before Thursday 22:00
    assert cut_off(SUN, calendar) == algiers(THU, 22)
    assert not expired(SUN, algiers(THU, 21, 59), calendar)
    assert expired(SUN, algiers(THU, 22), calendar)
    # after Thursday's cut-off, over the weekend, the next night that can make it is Sunday's
    assert next_night(algiers(THU, 21, 55), calendar, MARGIN) == SUN
    assert next_night(algiers(date(2026, 11, 27), 12), calendar, MARGIN) == SUN
    # a holiday (1 November 2026 is a Sunday and Revolution Day) is skipped too
    assert next_night(algiers(date(2026, 10, 29), 23), calendar, MARGIN) == date(2026, 11, 2)


# --- a small world ----------------------------------------------------------------------------------------


@dataclass
class FakePost:
    """The upload side of the SFTP client: records what reached the post office."""

    received: dict[str, str] = field(default_factory=dict)

    def upload(self, path: Path, folder: str) -> UploadResult:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        there = self.received.get(path.name) == digest
        self.received[path.name] = digest
        return UploadResult(path.name, path.stat().st_size, digest, there)


def world(engine: Engine, settings: Settings) -> None:
    w = TinyWorld()
    w.subscriber("0000000001", "Mohamed Benali").mandate("M1", "0000000001", 1001)
    w.invoice("F1", "0000000001", 10_000, WED).invoice("F2", "0000000001", 20_000, WED)
    w.subscriber("0000000002", "Amina Kaci").mandate("M2", "0000000002", 1002)
    w.recharge("R1", "0000000002", 160_000, WED)
    w.load(engine, settings.billing_incoming_dir, WED)


def build(engine: Engine, settings: Settings, day: date, calendar: BusinessCalendar) -> BuildResult:
    return build_outbound(engine, settings, day, calendar, BuildPolicy())


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql)).all()]


def reject_dt01(engine: Engine, built: BuildResult) -> None:
    f = built.files[0]
    with transaction(engine) as connection:
        apply_ack(
            connection,
            prlv_name=f.name,
            status="RJCT",
            reason="DT01",
            detail_count=f.detail_count,
            amount=f.amount,
            business_date=built.business_date,
            acknowledged_on=built.business_date,
        )


def assert_no_file_is_back_dated(engine: Engine, settings: Settings) -> None:
    """Every PRLV file: created no earlier than the night each of its instructions was built, settling
    after its creation date."""
    for name, path in rows(engine, "SELECT name, path FROM exchange_file WHERE kind = 'PRLV'"):
        header = read_file(settings.home / path).header
        assert header is not None
        built_on = rows(
            engine,
            "SELECT max(i.business_date) FROM instruction i JOIN audit_event a ON a.entity_key = i.reference "
            f"AND a.entity = 'instruction' JOIN exchange_file f ON f.id = a.file_id WHERE f.name = '{name}'",
        )[0][0]
        assert header["settlement_date"] > header["creation_date"]
        if built_on is not None:
            assert header["creation_date"] >= date.fromisoformat(str(built_on)[:10]), name


# --- the stories ------------------------------------------------------------------------------------------


def test_a_past_day_rerun_after_dt01_builds_no_back_dated_file(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    """Wednesday's file is rejected DT01. Re-running Wednesday on 7 December re-files nothing into a file
    dated 25 November (the old code wrote PRLV_100237_20261125_02 settling on the 26th, bound to fail):
    the instructions go once into the next night that can still make it."""
    world(ledger_engine, ledger_settings)
    wednesday = build(ledger_engine, ledger_settings, WED, calendar)
    reject_dt01(ledger_engine, wednesday)
    set_clock(algiers(date(2026, 12, 7), 9))
    again = build(ledger_engine, ledger_settings, WED, calendar)  # the re-run: the batch as it was
    assert not again.created and [f.name for f in again.files] == []  # its only file was rejected
    names = [n for (n,) in rows(ledger_engine, "SELECT name FROM exchange_file ORDER BY id")]
    assert names == ["PRLV_100237_20261125_01.txt"]
    with pytest.raises(BuildWindowClosedError, match="cut-off of 2026-11-26 has passed"):
        build(ledger_engine, ledger_settings, THU, calendar)  # a missed night builds nothing late either
    at_night(date(2026, 12, 7))
    tonight = build(ledger_engine, ledger_settings, date(2026, 12, 7), calendar)
    assert [f.name for f in tonight.files] == ["PRLV_100237_20261207_01.txt"]
    header = read_file(tonight.files[0].path).header
    assert header is not None and header["settlement_date"] == date(2026, 12, 8)
    assert rows(ledger_engine, "SELECT count(*), count(DISTINCT reference) FROM instruction") == [(3, 3)]
    assert_no_file_is_back_dated(ledger_engine, ledger_settings)


def test_a_file_not_sent_before_its_cut_off_is_never_sent_and_goes_out_with_the_next_night(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    """The post office was down all Wednesday evening. Thursday's send does not carry Wednesday's file
    (AP would reject it DT01); Thursday's build re-files its instructions, once, with the same references;
    clearing Wednesday's send afterwards finds nothing to send and the day's view says where they went."""
    world(ledger_engine, ledger_settings)
    wednesday = build(ledger_engine, ledger_settings, WED, calendar)
    references = sorted(read_file(wednesday.files[0].path).details.to_pydict()["end_to_end_reference"])
    set_clock(algiers(WED, 22, 30))  # past the cut-off, nothing sent
    late = daily_exceptions(ledger_engine, ledger_settings, WED, calendar)
    [waiting] = late["not_at_post_office"]
    assert late["counts"]["not_at_post_office"] == 3 and "not sent before its cut-off" in waiting["why"]
    post = FakePost()
    assert send_files(ledger_engine, ledger_settings, post, WED, calendar) == []  # expired, not sent
    assert post.received == {}
    assert rows(ledger_engine, "SELECT state FROM exchange_file") == [("expired",)]
    still = daily_exceptions(ledger_engine, ledger_settings, WED, calendar)["not_at_post_office"]
    assert "not re-filed yet" in still[0]["why"]
    at_night(THU)
    w = TinyWorld().subscriber("0000000003", "Karim Said").mandate("M3", "0000000003", 1003)
    w.invoice("F9", "0000000003", 5_000, THU).load(ledger_engine, ledger_settings.billing_incoming_dir, THU)
    thursday = build(ledger_engine, ledger_settings, THU, calendar)
    contents = {
        f.name: sorted(read_file(f.path).details.to_pydict()["end_to_end_reference"]) for f in thursday.files
    }
    [carrier] = [f for f in thursday.files if contents[f.name] == references]  # re-filed once, together
    assert sum(len(refs) for refs in contents.values()) == 4  # Wednesday's three and Thursday's own
    sent = send_files(ledger_engine, ledger_settings, post, THU, calendar)
    assert sorted(s.name for s in sent) == sorted(contents) == sorted(post.received)
    assert send_files(ledger_engine, ledger_settings, post, WED, calendar) == []  # the cleared re-run
    status = day_status(ledger_engine, WED)
    assert [(c["file"], c["file_business_date"], c["count"]) for c in status["carried_by"]] == [
        (carrier.name, "2026-11-26", 3)
    ]
    assert (
        daily_exceptions(ledger_engine, ledger_settings, WED, calendar)["counts"]["not_at_post_office"] == 0
    )
    assert_no_file_is_back_dated(ledger_engine, ledger_settings)


def test_a_batch_rejected_dt01_is_listed_until_it_is_re_filed(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    world(ledger_engine, ledger_settings)
    wednesday = build(ledger_engine, ledger_settings, WED, calendar)
    reject_dt01(ledger_engine, wednesday)
    listed = daily_exceptions(ledger_engine, ledger_settings, WED, calendar)
    assert listed["counts"]["not_at_post_office"] == 3
    assert wednesday.files[0].name in listed["not_at_post_office"][0]["why"]
    at_night(THU)
    build(ledger_engine, ledger_settings, THU, calendar)
    assert (
        daily_exceptions(ledger_engine, ledger_settings, THU, calendar)["counts"]["not_at_post_office"] == 0
    )


def test_a_rerun_of_the_same_night_past_its_cut_off_changes_nothing(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    world(ledger_engine, ledger_settings)
    first = build(ledger_engine, ledger_settings, WED, calendar)
    set_clock(algiers(WED, 23))
    again = build(ledger_engine, ledger_settings, WED, calendar)
    assert (again.created, [f.sha256 for f in again.files]) == (False, [f.sha256 for f in first.files])


def test_validate_says_the_window_is_closed_instead_of_planning_a_late_batch(
    ledger_engine: Engine, ledger_settings: Settings
) -> None:
    world(ledger_engine, ledger_settings)
    set_clock(algiers(THU, 9))
    plan = jobs.validate(ledger_settings, WED)
    assert (
        plan["passed"]
        and plan["selected"] == 0
        and "cut-off of 2026-11-25 has passed" in plan["window_closed"]
    )


# --- which night a run is ---------------------------------------------------------------------------------


def test_a_run_is_always_filed_under_its_own_day() -> None:
    logical = datetime(2026, 11, 25, 19, tzinfo=ALGIERS)
    assert business_date_of({"logical_date": logical, "params": {}}) == WED
    assert business_date_of({"logical_date": logical, "params": {"business_date": "2026-11-25"}}) == WED
    assert business_date_of({"logical_date": None, "params": {"business_date": "2026-11-25"}}) == WED
    with pytest.raises(TaskFailed, match="--logical-date 2026-11-24T19:00:00"):
        business_date_of({"logical_date": logical, "params": {"business_date": "2026-11-24"}})


def test_a_night_waits_for_its_day_by_the_clock(ledger_settings: Settings) -> None:
    set_clock(algiers(WED, 23, 59))
    assert night_begun("2026-11-25") and not night_begun("2026-11-26")
    set_clock(algiers(THU, 0))
    assert night_begun("2026-11-26")


# --- a path out of every runbook case: the release of a rejected file has a command ------------------------


@pytest.mark.parametrize("reason", ["FF01", "AM10"])
def test_a_rejected_file_is_released_with_its_command_and_refiled_by_the_next_night(
    ledger_engine: Engine,
    ledger_settings: Settings,
    calendar: BusinessCalendar,
    monkeypatch: pytest.MonkeyPatch,
    reason: str,
) -> None:
    from click.testing import CliRunner

    from epay.cli import main
    from epay.settings import get_settings

    world(ledger_engine, ledger_settings)
    wednesday = build(ledger_engine, ledger_settings, WED, calendar)
    name = wednesday.files[0].name
    f = wednesday.files[0]
    with transaction(ledger_engine) as connection:
        apply_ack(
            connection,
            prlv_name=name,
            status="RJCT",
            reason=reason,
            detail_count=f.detail_count,
            amount=f.amount,
            business_date=WED,
            acknowledged_on=WED,
        )
    listed = daily_exceptions(ledger_engine, ledger_settings, WED, calendar)["not_at_post_office"]
    assert f"epay outbound release-file --file {name} --by NAME" in listed[0]["why"]
    monkeypatch.setenv("EPAY_HOME", str(ledger_settings.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", ledger_settings.ledger_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        for bad, why in (
            ("../epay.sqlite3", "not a PRLV file name"),
            ("PRLV_100237_20261125_09.txt", "no file"),
        ):
            refused = runner.invoke(main, ["outbound", "release-file", "--file", bad, "--by", "amina"])
            assert refused.exit_code in (1, 2) and why in refused.output, refused.output
        done = runner.invoke(main, ["outbound", "release-file", "--file", name, "--by", "amina.dataeng"])
        assert done.exit_code == 0, done.output
        assert f"released: 3 instruction(s) of {name}" in done.output
        again = runner.invoke(main, ["outbound", "release-file", "--file", name, "--by", "amina.dataeng"])
        assert again.exit_code == 0 and "already released" in again.output  # released once
    finally:
        get_settings.cache_clear()
    at_night(THU)
    thursday = build(ledger_engine, ledger_settings, THU, calendar)
    assert [f.detail_count for f in thursday.files] == [3]
    assert (
        daily_exceptions(ledger_engine, ledger_settings, THU, calendar)["counts"]["not_at_post_office"] == 0
    )


# --- nights in order: the DAG as the scheduler sees it ------------------------------------------------------

_DESCRIBE_ORDER = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1], safe_mode=False).dags["epay_debit_outbound"]
rule = lambda t: getattr(t.trigger_rule, "value", t.trigger_rule)
print("@@" + json.dumps({t.task_id: [t.depends_on_past, rule(t), sorted(t.upstream_task_ids)]
                         for t in dag.tasks}))
"""


def test_every_step_of_a_night_waits_for_the_previous_nights_and_for_its_date(tmp_path: Path) -> None:
    import json
    import subprocess

    from tests.airflow_helpers import DAGS, PYTHON, airflow_env

    done = subprocess.run(
        [PYTHON, "-c", _DESCRIBE_ORDER, str(DAGS)],
        env=airflow_env(tmp_path / "airflow"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    [line] = [x for x in done.stdout.splitlines() if x.startswith("@@")] or [done.stderr[-2000:]]
    tasks = json.loads(line[2:])
    assert all(depends for depends, _, _ in tasks.values()), tasks  # nights never overtake each other
    assert tasks["night_begins"][2] == ["business_date"] and "night_begins" in tasks["is_business_day"][2]
    assert tasks["export_statuses"][1] == "none_failed"  # runs when a closed window skipped the build
    assert tasks["daily_exceptions"][1] == "all_done"


def test_a_file_quarantined_while_a_past_night_runs_is_dated_by_the_clock(tmp_path: Path) -> None:
    from epay.quarantine import quarantine_file
    from epay.reports.exceptions import quarantined_files

    set_clock(algiers(WED, 21, 15))
    bad = tmp_path / "ACK_PRLV_100237_20261125_01.txt"
    bad.write_text("forged\n", encoding="utf-8")
    quarantine_file(tmp_path / "quarantine" / "inbound", bad, ["not a valid ACK"])
    [listed] = quarantined_files(tmp_path / "quarantine")
    assert listed.quarantined_on == WED  # not the machine's date
    assert abs(listed.quarantined_at - algiers(WED, 21, 15)) < timedelta(minutes=1)
