"""The nightly cycle over several business days through real SFTP: build → send → ACK → returns, on SQLite
and PostgreSQL, with the invariants that matter: each item paid at most once, every instruction sent ends
in exactly one final state, money settled in the ledger = ACSC returned = RELV credited, nothing lost."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text

from epay import jobs
from epay.calendar import BusinessCalendar, load_calendar
from epay.formats import build_file_name, read_file, write_file
from epay.sample.install import install_sample
from epay.settings import Settings
from tests.cycle_helpers import DECREE_HOLIDAY, decree_holiday_file, post_office_online

START = date(2026, 11, 25)  # Wednesday; Friday and Saturday follow


def frame(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as c:
        return pd.DataFrame(c.execute(text(sql)).mappings().all())


HOLIDAY = DECREE_HOLIDAY
ALL_RETURN_REASONS = {"AM05", "AC01", "MD07", "AC04", "AC06", "MD01", "AM02", "AM04", "MS03"}
# Counter activity turned up so that a few days show every reason: mandates revoked, and ceilings set
# low, after AT built its file and before AP executes it (MD01 and AM02 on the instructions in flight).
BUSY_SCENARIO = """seed = 7
ms03_rate = 0.01
delayed_share = 0.05
revoke_rate = 0.01
ceiling_change_rate = 0.05
new_ceiling = 100000
"""


def hand_made_copy(settings: Settings, calendar: BusinessCalendar, day: date, ledger_engine: Engine) -> Path:
    """What an operator copying part of an accepted file by hand would send: three records of the first
    day's file, in a new file of its own (new name, header and trailer) — AP answers them AM05."""
    first = frame(
        ledger_engine, f"SELECT path FROM exchange_file WHERE kind = 'PRLV' AND business_date = '{START}'"
    )
    report = read_file(settings.home / first["path"][0])
    header = dict(report.header)
    header.update(creation_date=day, settlement_date=calendar.next_business_day(day), sequence=99)
    name = build_file_name("PRLV", settings.creditor_id, day, 99)
    target = settings.home / "by-hand" / name
    target.parent.mkdir()
    write_file(target, "PRLV", header, report.details.slice(0, 3), calendar=calendar, name=name)
    return target


def test_several_days_end_to_end(ledger_engine: Engine, ledger_settings: Settings, tmp_path: Path) -> None:
    scenario_file = tmp_path / "busy.toml"
    scenario_file.write_text(BUSY_SCENARIO, encoding="utf-8")
    ledger_settings = ledger_settings.model_copy(
        update={"holidays_file": decree_holiday_file(tmp_path), "poste_scenario_file": scenario_file}
    )
    calendar = load_calendar(ledger_settings.holidays_file)
    assert not calendar.is_business_day(HOLIDAY)
    install_sample(ledger_settings, 400, 11, START, calendar)
    with post_office_online(ledger_settings, calendar) as poste:
        settings = poste.settings
        day = START
        days_run = []
        while len(days_run) < 4:
            if calendar.is_business_day(day):
                poste.business_day(day)
                days_run.append(day)
            poste.end_of_day(day)
            if len(days_run) == 2 and calendar.is_business_day(day):  # a file sent outside epay
                with jobs.sftp_client(settings) as client:
                    client.upload(hand_made_copy(settings, calendar, day, ledger_engine))
                outcomes = {r["name"]: r["outcome"] for r in jobs.receive(settings, day)}
                assert list(outcomes.values()) == ["quarantined"]  # its ACK: a file this ledger never built
            day = date.fromordinal(day.toordinal() + 1)
        for _ in range(3):  # let the last presentations come back
            day = calendar.next_business_day(day)
            poste.end_of_day(day)

    assert len(days_run) == 4 and date(2026, 11, 27) not in days_run  # the weekend was skipped
    assert HOLIDAY not in days_run and date(2026, 12, 1) in days_run  # and the holiday too
    with ledger_engine.connect() as c:  # nothing settles on the holiday: Sunday's file settles on Tuesday
        settles = dict(
            c.execute(
                text("SELECT business_date, settlement_date FROM exchange_file WHERE kind = 'PRLV'")
            ).all()
        )
    assert {str(k): str(v) for k, v in settles.items()}["2026-11-29"] == "2026-12-01"
    instructions = frame(ledger_engine, "SELECT reference, item_id, state, reason, amount FROM instruction")
    files = frame(ledger_engine, "SELECT name, kind, direction, state, amount FROM exchange_file")
    assert set(instructions["state"]) <= {"settled", "rejected"}  # every instruction sent ends final
    assert set(files.loc[files["kind"] == "PRLV", "state"]) == {"accepted"}
    paid = instructions[instructions["state"] == "settled"]
    assert paid["item_id"].is_unique  # no invoice or order paid twice
    retr_acsc = frame(ledger_engine, "SELECT sum(amount) AS s FROM instruction WHERE state = 'settled'")["s"][
        0
    ]
    credited = files.loc[files["kind"] == "RELV", "amount"].sum()
    assert int(paid["amount"].sum()) == int(retr_acsc) == int(credited)
    # the hand-made file's records came back AM05 (nothing debited); they are exceptions, never applied
    exceptions = frame(ledger_engine, "SELECT reference, kind FROM return_exception")
    assert len(exceptions) == 3 and set(exceptions["kind"]) == {"file_mismatch"}
    assert (
        instructions.set_index("reference")
        .loc[exceptions["reference"], "state"]
        .isin(["settled", "rejected"])
        .all()
    )
    returned = set()
    for path in frame(ledger_engine, "SELECT path FROM exchange_file WHERE kind = 'RETR'")["path"]:
        returned |= set(read_file(settings.home / path).details["reason"].to_pylist()) - {""}
    assert returned == ALL_RETURN_REASONS  # every return reason occurred
    assert set(instructions["reason"].dropna()) == ALL_RETURN_REASONS - {"AM05"}
    blocked = frame(ledger_engine, "SELECT status, status_reason FROM mandate WHERE status <> 'active'")
    assert {"AC01", "MD01"} <= set(blocked.loc[blocked["status"] == "blocked", "status_reason"])
    assert {"AC04"} <= set(blocked.loc[blocked["status"] == "suspended", "status_reason"])
    # AM04 rejects came back as new presentations on a later day
    retried = frame(ledger_engine, "SELECT count(*) AS n FROM instruction WHERE try_number > 1")["n"][0]
    assert retried > 0
    items = frame(ledger_engine, "SELECT state, count(*) AS n FROM billing_item GROUP BY state")
    assert "in_collection" not in set(items["state"])  # nothing left hanging

    # `epay status` of the first day tells the same story as the ledger's rows
    from epay.reports.status import day_status

    first = day_status(ledger_engine, START)
    of_day = frame(
        ledger_engine, f"SELECT state, reason, amount FROM instruction WHERE business_date = '{START}'"
    )
    assert first["pending"] == {"count": 0, "amount": 0}
    assert first["instructions"]["settled"]["amount"] == int(
        of_day.loc[of_day["state"] == "settled", "amount"].sum()
    )
    assert sum(v["count"] for v in first["rejected_by_reason"].values()) == int(
        (of_day["state"] == "rejected").sum()
    )
    assert first["exceptions"] == {} and first["not_selected"]
    assert [f["state"] for f in first["files"] if f["kind"] == "PRLV"] == ["accepted"]
