"""What epay judges in a file from Algérie Poste before applying anything (issue #14, items 1–3):
statuses whose dates cannot be right, files dated where no file can be, a name republished with other
bytes, and a quarantined file that must not hide the genuine one published later under its name."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from epay import jobs
from epay.calendar import BusinessCalendar
from epay.formats import read_file, write_file
from epay.settings import ALGIERS, Settings
from tests.conftest import REPO, at_night
from tests.cycle_helpers import post_office_online
from tests.test_inbound_faults import START, Cycle, scenario_with

SETTLES = date(2026, 11, 26)  # Thursday: START's files settle then
LATE_DAY = date(2026, 12, 1)  # Tuesday, three business days after (Sunday 29, Monday 30, Tuesday 1)


def exceptions_document(settings: Settings, day: date, monkeypatch: pytest.MonkeyPatch) -> tuple[int, Any]:
    """What the data engineer runs: ``epay exceptions --date DAY --json``."""
    from epay.cli import main
    from epay.settings import get_settings

    monkeypatch.setenv("EPAY_HOME", str(settings.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", settings.ledger_url)
    get_settings.cache_clear()  # the command reads these settings, not an earlier test's
    try:
        result = CliRunner().invoke(main, ["exceptions", "--date", day.isoformat(), "--json"])
    finally:
        get_settings.cache_clear()
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def states(engine: Engine, references: list[str]) -> dict[str, tuple[str, Any]]:
    with engine.connect() as c:
        rows = c.execute(text("SELECT reference, state, status_date FROM instruction")).all()
    return {r: (s, str(d) if d is not None else None) for r, s, d in rows if r in references}


def forged_retr(cycle: Cycle, genuine: str, day: date, sequence: int, change: Any) -> str:
    """A valid RETR of ``day`` (header, name) with the genuine file's records as ``change`` edits them."""
    read = read_file(cycle.outbound / genuine)
    assert read.details is not None and read.header is not None
    name = f"RETR_{cycle.settings.creditor_id}_{day:%Y%m%d}_{sequence:02d}.txt"
    header = read.header | {"creation_date": day, "settlement_date": day, "sequence": sequence}
    write_file(cycle.outbound / name, "RETR", header, change(read.details), calendar=cycle.calendar)
    return name


def test_statuses_dated_where_no_debit_can_be_are_held_as_exceptions(
    ledger_engine: Engine,
    ledger_settings: Settings,
    calendar: BusinessCalendar,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A RETR of Tuesday 1 December carries statuses of instructions settling Thursday 26 November. The
    contract allows a status dated from the settlement date to two business days after it (Monday 30),
    and never after the RETR's own date. Every record dated otherwise is held, with its reason, and its
    instruction stays presented; the plausible records apply."""
    cycle = Cycle(ledger_engine, ledger_settings, calendar, scenario_with(tmp_path, ledger_settings))
    cycle.send(START)
    genuine = next(n for n in cycle.publish(SETTLES) if n.startswith("RETR_"))
    for day in (date(2026, 11, 29), date(2026, 11, 30), LATE_DAY):
        cycle.publish(day)
    references = read_file(cycle.outbound / genuine).details.column("end_to_end_reference").to_pylist()  # type: ignore[union-attr]
    dates = {
        0: date(2026, 11, 24),  # before the settlement date
        1: date(2026, 12, 1),  # three business days after it
        2: date(2026, 11, 28),  # a Saturday, between the two
        3: date(2031, 11, 26),  # years away (and after the RETR's own date)
        5: date(2026, 11, 30),  # two business days late: allowed
    }

    def change(details: pa.Table) -> pa.Table:
        status_dates = details.column("status_date").to_pylist()
        for row, day in dates.items():
            status_dates[row] = day
        column = details.schema.get_field_index("status_date")
        details = details.set_column(column, "status_date", pa.array(status_dates, pa.date32()))
        statuses, reasons = details.column("status").to_pylist(), details.column("reason").to_pylist()
        statuses[8], reasons[8] = "RJCT", "AM05"  # "already used in an earlier accepted file": never here
        details = details.set_column(details.schema.get_field_index("status"), "status", pa.array(statuses))
        return details.set_column(details.schema.get_field_index("reason"), "reason", pa.array(reasons))

    forged = forged_retr(cycle, genuine, LATE_DAY, 9, change)
    got = cycle.receive(LATE_DAY, forged)
    assert got.outcome == "applied" and got.detail["exceptions"] == 5, got.detail
    used = read_file(cycle.outbound / forged).details.column("transaction_id")[4].as_py()  # type: ignore[union-attr]

    def reuse(details: pa.Table) -> pa.Table:  # record 6's status, with record 4's AP transaction id
        one = details.slice(6, 1)
        column = one.schema.get_field_index("transaction_id")
        return one.set_column(column, "transaction_id", pa.array([used]))

    again = forged_retr(cycle, genuine, LATE_DAY, 10, reuse)
    got = cycle.receive(LATE_DAY, again)
    assert got.outcome == "applied" and got.detail["exceptions"] == 1, got.detail

    status, document = exceptions_document(ledger_settings, LATE_DAY, monkeypatch)
    assert status == 1
    listed = {e["instruction_reference"]: e for e in document["return_exceptions"]}
    expected = {references[r]: "implausible_status_date" for r in (0, 1, 2, 3)}
    expected[references[6]] = "duplicate_transaction"
    expected[references[8]] = "implausible_reason"
    assert {r: e["kind"] for r, e in listed.items()} == expected
    assert {r: e["file"] for r, e in listed.items()} == {r: forged for r in expected} | {references[6]: again}
    assert "AM05 says the reference was in an earlier accepted file" in listed[references[8]]["detail"]
    assert "before the settlement date 2026-11-26" in listed[references[0]]["detail"]
    assert "more than 2 business days after" in listed[references[1]]["detail"]
    assert "not a business day" in listed[references[2]]["detail"]
    assert "after the RETR file's own date 2026-12-01" in listed[references[3]]["detail"]
    assert f"AP transaction id {used} is already used" in listed[references[6]]["detail"]
    held = states(ledger_engine, [references[r] for r in (0, 1, 2, 3, 8)])
    assert {state for state, _ in held.values()} == {"presented"}  # nothing of them applied
    with ledger_engine.connect() as c:  # record 6 keeps the status and transaction id it was first given
        kept = c.execute(
            text("SELECT transaction_id FROM instruction WHERE reference = :r"), {"r": references[6]}
        ).scalar_one()
    assert kept == read_file(cycle.outbound / forged).details.column("transaction_id")[6].as_py()  # type: ignore[union-attr]
    assert states(ledger_engine, [references[5]])[references[5]][1] == "2026-11-30"  # the late one applied
    assert states(ledger_engine, [references[4]])[references[4]][0] in ("settled", "rejected")


def test_files_dated_where_no_file_can_be_are_quarantined(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    """A RETR dated after today by epay's clock or on a weekend, a RELV crediting a debit date before the
    contract's late-return window or on a weekend, and a second RELV of a day already stated are quarantined
    with their reasons, nothing of them applied (ACKs timed where none can be: tests/test_inbound_ack.py)."""
    cycle = Cycle(ledger_engine, ledger_settings, calendar, scenario_with(tmp_path, ledger_settings))
    cycle.send(START)
    published = cycle.publish(SETTLES)
    genuine = next(n for n in published if n.startswith("RETR_"))
    before = cycle.snapshot()

    tomorrow = forged_retr(cycle, genuine, date(2026, 11, 29), 9, lambda details: details)
    at_night(SETTLES, 23, 30)
    got = cycle.receive(SETTLES, tomorrow)
    assert got.outcome == "quarantined"
    assert "header date 2026-11-29 is after today (2026-11-26)" in got.detail["reasons"][0]

    statement = next(n for n in published if n.startswith("RELV_"))
    read = read_file(cycle.outbound / statement)
    assert read.details is not None and read.header is not None
    credited = pa.table(
        {
            "debit_date": pa.array([date(2026, 11, 24), date(2026, 11, 28)], pa.date32()),
            "settled_count": pa.array([1, 1], pa.int64()),
            "amount": pa.array([100, 200], pa.int64()),
        }
    )
    sunday = date(2026, 11, 29)
    relv = f"RELV_{ledger_settings.creditor_id}_20261129_09.txt"
    header = read.header | {"creation_date": sunday, "settlement_date": sunday, "sequence": 9}
    write_file(cycle.outbound / relv, "RELV", header, credited, calendar=calendar)
    at_night(sunday, 23, 30)
    got = cycle.receive(sunday, relv)
    assert got.outcome == "quarantined"
    assert got.detail["reasons"] == [
        "line 2: credited debit date 2026-11-24 is more than 2 business days before the statement's date "
        "2026-11-29 (earliest possible: 2026-11-25)",
        "line 3: credited debit date 2026-11-28 is not a business day",
    ]

    saturday = forged_retr(cycle, genuine, date(2026, 11, 28), 9, lambda details: details)
    at_night(date(2026, 11, 30), 23, 30)
    got = cycle.receive(date(2026, 11, 30), saturday)
    assert got.outcome == "quarantined"
    assert got.detail["reasons"] == [
        "header date 2026-11-28 is not a business day: AP executes, credits and states on business days"
    ]
    assert cycle.snapshot() == before

    first = next(n for n in published if n.startswith("RELV_"))
    assert cycle.receive(date(2026, 11, 30), first).outcome == "applied"
    second = f"RELV_{ledger_settings.creditor_id}_20261126_02.txt"
    write_file(
        cycle.outbound / second, "RELV", read.header | {"sequence": 2}, read.details, calendar=calendar
    )
    got = cycle.receive(date(2026, 11, 30), second)
    assert got.outcome == "quarantined"
    assert got.detail["reasons"] == [
        f"{first} already stated this business day: a second statement of the day is never applied (its "
        "credits would count twice)"
    ]


def test_a_forged_ack_never_hides_the_genuine_one_published_later_under_its_name(
    ledger_engine: Engine,
    ledger_settings: Settings,
    calendar: BusinessCalendar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ACK of a PRLV file has exactly one possible name. A forged ACK under it (an acceptance of other
    totals) is quarantined; the genuine ACK AP publishes later under the same name is read and applied,
    and the forged bytes, seen again, are not quarantined twice."""
    with post_office_online(ledger_settings, calendar) as poste:
        install_world(ledger_settings, calendar)
        settings = poste.settings
        poste.now = datetime.combine(START, time(20, 5), tzinfo=ALGIERS)  # when AP acknowledges
        at_night(START, 20, 5)
        jobs.build(settings, START)
        jobs.send(settings, START)
        outbound = poste.office.home(settings.creditor_id) / "outbound"
        [ack] = [p for p in outbound.iterdir() if p.name.startswith("ACK_")]
        genuine = ack.read_bytes()
        records = genuine.split(b"\n")
        status = bytearray(records[1])
        status[62:80] = b"%018d" % (int(status[62:80]) + 1)  # accepted, with other totals than sent
        forged = b"\n".join([records[0], bytes(status), *records[2:]])
        ack.write_bytes(forged)

        first = jobs.receive(settings, START)
        assert [(r["name"], r["outcome"]) for r in first] == [(ack.name, "quarantined")]
        assert "as read" in first[0]["detail"]["reasons"][0]
        assert jobs.receive(settings, START) == []  # the same forged bytes: already quarantined
        assert scalar(ledger_engine, "SELECT count(*) FROM instruction WHERE state = 'presented'") == 0

        ack.write_bytes(genuine)  # AP publishes the genuine ACK under the same name
        second = jobs.receive(settings, START)
        assert [(r["name"], r["outcome"]) for r in second] == [(ack.name, "applied")]
        assert scalar(ledger_engine, "SELECT count(*) FROM instruction WHERE state <> 'presented'") == 0
        quarantined = settings.quarantine_dir / "inbound"
        assert (quarantined / ack.name).read_bytes() == forged  # the forged one is kept
    status, document = exceptions_document(ledger_settings, START, monkeypatch)
    assert status == 1  # the forged ACK stays listed until handled; the genuine one was applied
    [listed] = document["quarantined_files"]
    assert (listed["name"], listed["business_date"]) == (ack.name, START.isoformat())
    assert listed["reference"].startswith("QF-") and "as read" in listed["reasons"][0]


def test_a_name_republished_with_other_bytes_is_an_incident_and_both_versions_are_kept(
    ledger_engine: Engine,
    ledger_settings: Settings,
    calendar: BusinessCalendar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A RETR already applied is published again with other bytes: once with another size (seen from the
    listing alone), once with the same size and the old time put back (seen by the nightly hash re-check).
    Each is an incident: quarantined with both sha256, nothing applied, reported once, the applied
    version kept where it was."""
    with post_office_online(ledger_settings, calendar) as poste:
        install_world(ledger_settings, calendar)
        settings = poste.settings
        poste.business_day(START)
        poste.end_of_day(SETTLES)
        outbound = poste.office.home(settings.creditor_id) / "outbound"
        [retr] = [p for p in outbound.iterdir() if p.name.startswith("RETR_")]
        applied = retr.read_bytes()
        kept = settings.inbound_dir(SETTLES) / retr.name
        assert kept.read_bytes() == applied
        with ledger_engine.connect() as c:
            before = c.execute(text("SELECT reference, state, status_date FROM instruction")).all()

        records = applied.split(b"\n")
        records[1] = records[1][:81] + (b"7" if records[1][81:82] != b"7" else b"8") + records[1][82:]
        listed_at = retr.stat().st_mtime
        retr.write_bytes(b"\n".join(records))  # one day-digit of a status date changed, same size
        os.utime(retr, (listed_at, listed_at))  # and the time the listing saw put back
        at_night(date(2026, 11, 29), 23, 30)
        got = jobs.receive(settings.model_copy(update={"inbound_recheck_files": 50}), date(2026, 11, 29))
        incidents = [r for r in got if r["name"] == retr.name]
        assert [r["outcome"] for r in incidents] == ["quarantined"]
        reason = incidents[0]["detail"]["reasons"][0]
        assert "published again with other bytes" in reason and "incident" in reason
        assert (
            jobs.receive(settings.model_copy(update={"inbound_recheck_files": 50}), date(2026, 11, 29)) == []
        )

        retr.write_bytes(b"\n".join(records[:-2]) + b"\n")  # now shorter: the listing alone shows it
        got = jobs.receive(settings.model_copy(update={"inbound_recheck_files": 0}), date(2026, 11, 29))
        assert [r["outcome"] for r in got if r["name"] == retr.name] == ["quarantined"]
        with ledger_engine.connect() as c:
            after = c.execute(text("SELECT reference, state, status_date FROM instruction")).all()
        assert sorted(after) == sorted(before)  # nothing of either version applied
        assert kept.read_bytes() == applied  # the applied version stays where it was
        versions = sorted((settings.quarantine_dir / "inbound").glob(f"{retr.name}*"))
        assert len([v for v in versions if not v.name.endswith(".reason.txt")]) == 2
        with ledger_engine.connect() as c:
            assert (
                c.execute(
                    text("SELECT count(*) FROM audit_event WHERE entity_key = :n AND to_state = 'incident'"),
                    {"n": retr.name},
                ).scalar_one()
                == 2
            )
    status, document = exceptions_document(ledger_settings, date(2026, 11, 29), monkeypatch)
    assert status == 1
    incidents = [q for q in document["quarantined_files"] if q["name"] == retr.name]
    assert len(incidents) == 2 and len({q["reference"] for q in incidents}) == 2
    assert all("published again with other bytes" in q["reasons"][0] for q in incidents)


def install_world(settings: Settings, calendar: BusinessCalendar) -> None:
    from epay.sample.install import install_sample

    install_sample(settings, 60, 5, START, calendar)


def scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as c:
        return c.execute(text(sql)).scalar_one()


def test_a_file_quarantined_only_for_its_date_is_judged_again_once_the_clock_reaches_it(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    """epay's clock still on Wednesday while AP has published Thursday's returns: they are quarantined as
    from the future, once (the same bytes are not quarantined again that night). When the clock reaches
    Thursday, the same bytes are judged again and applied: a clock that lagged loses nothing."""
    cycle = Cycle(ledger_engine, ledger_settings, calendar, scenario_with(tmp_path, ledger_settings))
    cycle.send(START)
    settings = ledger_settings.model_copy(
        update={"transport_folder": cycle.office.home(ledger_settings.creditor_id)}
    )
    published = cycle.office.tick(SETTLES).published  # the clock stays on Wednesday evening
    early = jobs.receive(settings, START)
    assert {r["name"] for r in early if r["outcome"] == "quarantined"} == set(published)
    assert all("from the future" in r["detail"]["reasons"][0] for r in early)
    assert jobs.receive(settings, START) == []  # the same bytes, still early: not quarantined again
    at_night(SETTLES, 23, 30)
    late = jobs.receive(settings, SETTLES)
    assert {r["name"]: r["outcome"] for r in late} == dict.fromkeys(published, "applied")
    assert scalar(ledger_engine, "SELECT count(*) FROM instruction WHERE state = 'presented'") < len(
        cycle.states()
    )


def test_mandate_actions_that_cannot_be_right_are_held_and_the_rest_applies(
    ledger_engine: Engine,
    ledger_settings: Settings,
    calendar: BusinessCalendar,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An MNDT's N for a reference the ledger holds for another subscriber, an M for a mandate nobody
    signed, an R effective in 1950: held as exceptions (the mandate as it was), the file's other actions
    applied — an N and the M that follows it in the same file."""
    from epay.formats.rip import rip_from_account as rip
    from epay.inbound.receive import receive_file
    from epay.ledger.db import transaction
    from epay.ledger.mandates import ACTION_COLUMNS, apply_mandate_actions

    def act(reference: str, kind: str, subscriber: str, effective: date, account: int) -> dict[str, Any]:
        return {
            "mandate_reference": reference,
            "debtor_rip": rip(account),
            "debtor_name": "BENALI MOHAMED",
            "subscriber_number": subscriber,
            "action": kind,
            "effective_date": effective,
            "ceiling": 0,
        }

    with transaction(ledger_engine) as connection:  # the ledger knows M00000001, Benali's
        apply_mandate_actions(
            connection,
            pd.DataFrame(
                [act("M00000001", "N", "0000000001", date(2026, 1, 4), 1001)], columns=ACTION_COLUMNS
            ),
            actor="test",
            business_date=START,
        )
    actions = [
        act("M00000001", "N", "0000000002", START, 1002),  # another subscriber's "new" mandate
        act("M00000777", "M", "0000000007", START, 1007),  # nobody signed it
        act("M00000001", "R", "0000000001", date(1950, 1, 1), 1001),  # years away
        act("M00000003", "N", "0000000003", START, 1003),  # a genuine new mandate
        act("M00000003", "M", "0000000003", START, 1004),  # and its change, later in the same file
    ]
    header = read_file(REPO / "sample_files" / "MNDT_100237_20261125_01.txt").header
    name = f"MNDT_{ledger_settings.creditor_id}_20261125_07.txt"
    path = tmp_path / name
    write_file(path, "MNDT", header | {"sequence": 7}, pd.DataFrame(actions), calendar=calendar)
    got = receive_file(ledger_engine, ledger_settings, path, calendar, START)
    assert got.outcome == "applied" and got.detail["exceptions"] == 3, got.detail

    status, document = exceptions_document(ledger_settings, START, monkeypatch)
    assert status == 1
    listed = [
        (e["file"], e["line"], e["instruction_reference"], e["kind"]) for e in document["return_exceptions"]
    ]
    assert listed == [
        (name, 2, "M00000001", "mandate_conflict"),
        (name, 3, "M00000777", "unknown_mandate"),
        (name, 4, "M00000001", "far_effective_date"),
    ]
    with ledger_engine.connect() as c:
        held = c.execute(text("SELECT reference, subscriber_number, rip, revoked_from FROM mandate")).all()
    by_reference = {r[0]: r[1:] for r in held}
    assert by_reference["M00000001"] == ("0000000001", rip(1001), None)  # as it was
    assert "M00000777" not in by_reference
    assert by_reference["M00000003"][:2] == ("0000000003", rip(1004))  # the N, then its M


def test_a_version_left_by_a_crash_before_its_judgement_is_never_lost_nor_silently_replaced(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    """A run died after downloading Thursday's RETR, before judging it. If AP's file is the same when the
    next run comes, that first copy is read (nothing duplicated); if AP changed it meanwhile, the first
    version is quarantined as an incident (two versions of one name, contract §1) and the current one is
    judged as usual."""
    cycle = Cycle(ledger_engine, ledger_settings, calendar, scenario_with(tmp_path, ledger_settings))
    cycle.send(START)
    settings = ledger_settings.model_copy(
        update={"transport_folder": cycle.office.home(ledger_settings.creditor_id)}
    )
    published = cycle.publish(SETTLES)
    [retr] = [n for n in published if n.startswith("RETR_")]
    [relv] = [n for n in published if n.startswith("RELV_")]
    folder = settings.inbound_dir(SETTLES)
    folder.mkdir(parents=True)
    (folder / relv).write_bytes((cycle.outbound / relv).read_bytes())  # the same bytes as AP's now
    first = (cycle.outbound / retr).read_bytes()
    (folder / retr).write_bytes(first[:200] + (b"X" if first[200:201] != b"X" else b"Y") + first[201:])
    # (that first copy has other bytes than AP's file now: AP changed it after the crashed download)
    got = jobs.receive(settings, SETTLES)
    outcomes = [(r["name"], r["outcome"]) for r in got]
    assert (
        (retr, "quarantined") in outcomes and (retr, "applied") in outcomes and (relv, "applied") in outcomes
    )
    [earlier] = [r for r in got if r["name"] == retr and r["outcome"] == "quarantined"]
    assert "downloaded before a crash and never judged" in earlier["detail"]["reasons"][0]
    assert (folder / relv).is_file() and not (folder / "v1" / relv).exists()  # the first copy was read
    assert scalar(ledger_engine, f"SELECT path FROM exchange_file WHERE name = '{relv}'").endswith(
        f"{SETTLES.isoformat()}/{relv}"
    )
