"""RETR files from the simulated post office applied to the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text

from epay.calendar import BusinessCalendar
from epay.formats import read_file
from epay.inbound.files import register_inbound
from epay.inbound.retr import apply_retr, records_of
from epay.inbound.returns import ReturnContext
from epay.ledger.db import transaction
from epay.outbound.build import BuildPolicy, build_outbound
from epay.poste.office import PostOffice
from epay.poste.scenario import load_scenario
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings

DAY = date(2026, 11, 25)


def run_post_office(settings: Settings, calendar: BusinessCalendar, files: list[Path]) -> list[Path]:
    """Deliver the PRLV files, let the post office ACK them and work three business days."""
    office = PostOffice(
        settings.poste_dir,
        settings.poste_url,
        calendar=calendar,
        scenario=load_scenario(settings.poste_scenario_file),
    )
    inbound = office.home(settings.creditor_id) / "inbound"
    for path in files:
        shutil.copyfile(path, inbound / path.name)
        office.acknowledge(
            settings.creditor_id, inbound / path.name, datetime.combine(DAY, time(20, 5), tzinfo=ALGIERS)
        )
    settles = calendar.next_business_day(DAY)
    published: list[str] = []
    for day in (settles, calendar.add_business_days(settles, 1), calendar.add_business_days(settles, 2)):
        published += office.tick(day).published
    outbound = office.home(settings.creditor_id) / "outbound"
    return [outbound / n for n in published if n.startswith("RETR_")]


def apply(engine: Engine, settings: Settings, calendar: BusinessCalendar, path: Path):  # type: ignore[no-untyped-def]
    read = read_file(path)
    assert read.details is not None and read.header is not None
    records = records_of(read.details)
    context = ReturnContext(read.header["creation_date"], calendar)
    with transaction(engine) as connection:
        file_id = register_inbound(
            connection,
            path,
            kind="RETR",
            home=settings.home,
            business_date=DAY,
            detail_count=len(records),
            amount=int(records["amount"].sum()),
        )
        return apply_retr(connection, records, file_id=file_id, business_date=DAY, context=context)


def frame(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as c:
        return pd.DataFrame(c.execute(text(sql)).mappings().all())


def test_returns_settle_reject_and_stop_as_the_post_office_decided(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    install_sample(ledger_settings, 600, 5, DAY, calendar)
    built = build_outbound(ledger_engine, ledger_settings, DAY, calendar, BuildPolicy())
    with ledger_engine.begin() as c:  # what the ACK step does for an accepted file (issue #5)
        c.execute(text("UPDATE instruction SET state = 'presented'"))
    retr_files = run_post_office(ledger_settings, calendar, [f.path for f in built.files])
    assert retr_files
    returned = pd.concat([records_of(read_file(p).details) for p in retr_files], ignore_index=True)
    results = [apply(ledger_engine, ledger_settings, calendar, p) for p in retr_files]
    assert sum(r.exceptions for r in results) == 0

    instructions = frame(
        ledger_engine, "SELECT reference, state, reason, amount, item_id, mandate_reference FROM instruction"
    )
    assert set(instructions["state"]) <= {"settled", "rejected"}  # every instruction ends final
    assert len(instructions) == built.instruction_count == len(returned)
    acsc = returned[returned["status"] == "ACSC"]
    settled = instructions[instructions["state"] == "settled"]
    assert int(settled["amount"].sum()) == int(acsc["amount"].sum()) == sum(r.settled_amount for r in results)
    reasons = Counter(instructions.loc[instructions["state"] == "rejected", "reason"])
    assert reasons == Counter(returned.loc[returned["status"] == "RJCT", "reason"])

    items = frame(ledger_engine, "SELECT id, state, paid_by, last_reason FROM billing_item").set_index("id")
    by_item = instructions.set_index("item_id")
    paid = items.loc[by_item.index[by_item["state"] == "settled"]]
    assert set(paid["state"]) == {"paid"} and set(paid["paid_by"]) == {"DEBIT"}
    rejected = by_item[by_item["state"] == "rejected"]
    for item_id, reason in zip(rejected.index, rejected["reason"], strict=True):
        expected = "due" if reason in ("AM04", "MS03") else "stopped"
        assert (items.loc[item_id, "state"], items.loc[item_id, "last_reason"]) == (expected, reason)
    mandates = frame(ledger_engine, "SELECT reference, status, status_reason FROM mandate").set_index(
        "reference"
    )
    for mandate, reason in zip(rejected["mandate_reference"], rejected["reason"], strict=True):
        if reason in ("AC04", "AC06", "MD07"):
            assert mandates.loc[mandate, "status"] == "suspended"
        elif reason in ("AC01", "MD01"):
            assert mandates.loc[mandate, "status"] == "blocked"
    assert {"AM04", "AC04"} <= set(reasons)  # the sample world makes these happen


def test_a_return_that_does_not_match_is_an_exception_and_changes_nothing(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    install_sample(ledger_settings, 200, 6, DAY, calendar)
    built = build_outbound(ledger_engine, ledger_settings, DAY, calendar, BuildPolicy())
    with ledger_engine.begin() as c:
        c.execute(text("UPDATE instruction SET state = 'presented'"))
    retr = run_post_office(ledger_settings, calendar, [f.path for f in built.files])[0]
    read = read_file(retr)
    records = records_of(read.details)
    context = ReturnContext(read.header["creation_date"], calendar)  # type: ignore[index]
    first, second, third = records.iloc[0], records.iloc[1], records.iloc[2]
    records.loc[0, "reference"] = "E99999999990000000000001"  # unknown
    records.loc[1, "amount"] = int(second["amount"]) + 1  # another amount
    with transaction(ledger_engine) as connection:
        file_id = register_inbound(
            connection,
            retr,
            kind="RETR",
            home=ledger_settings.home,
            business_date=DAY,
            detail_count=len(records),
            amount=0,
        )
        result = apply_retr(connection, records, file_id=file_id, business_date=DAY, context=context)
    assert result.exceptions == 2 and result.settled + result.rejected == len(records) - 2
    got = frame(ledger_engine, "SELECT reference, kind FROM return_exception ORDER BY line")
    assert got.to_dict("records") == [
        {"reference": "E99999999990000000000001", "kind": "unknown_reference"},
        {"reference": second["reference"], "kind": "amount_mismatch"},
    ]
    states = frame(ledger_engine, "SELECT reference, state FROM instruction").set_index("reference")["state"]
    assert states[first["reference"]] == "presented" and states[second["reference"]] == "presented"
    assert states[third["reference"]] in ("settled", "rejected")
    # the same statuses again (a RETR delivered twice): repeats, nothing changes, no new exception
    again = records.iloc[2:].reset_index(drop=True)
    with transaction(ledger_engine) as connection:
        repeat = apply_retr(connection, again, file_id=file_id, business_date=DAY, context=context)
    assert (repeat.repeats, repeat.exceptions, repeat.settled, repeat.rejected) == (len(again), 0, 0, 0)
    # a second, different final status never overwrites the first
    flipped = again.iloc[[0]].copy()
    flipped["status"], flipped["reason"] = ("RJCT", "AM04") if third["status"] == "ACSC" else ("ACSC", None)
    with transaction(ledger_engine) as connection:
        conflict = apply_retr(connection, flipped, file_id=file_id, business_date=DAY, context=context)
    assert conflict.exceptions == 1
    assert (
        frame(ledger_engine, f"SELECT state FROM instruction WHERE reference = '{third['reference']}'")[
            "state"
        ][0]
        == states[third["reference"]]
    )
