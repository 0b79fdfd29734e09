"""The nightly build on the ledger, on SQLite and PostgreSQL: selection, gate, files, registration,
determinism, day ceilings and release, retries."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from epay.calendar import BusinessCalendar
from epay.formats import read_file, validate_file
from epay.ledger.audit import history
from epay.outbound.build import BuildError, BuildPolicy, GateRefusedError, build_outbound, sha256_of
from epay.outbound.release import ReleaseError, cancel_batch, release_batch
from epay.outbound.selection import RetryPolicy
from epay.settings import ALGIERS, Settings
from tests.conftest import at_night
from tests.ledger_helpers import TinyWorld

DAY = date(2026, 11, 25)  # Wednesday
NEXT = date(2026, 11, 26)  # Thursday: the settlement date


def world() -> TinyWorld:
    w = TinyWorld()
    w.subscriber("0000000001", "Mohamed Benali").mandate("M1", "0000000001", 1001)
    w.invoice("F1001", "0000000001", 190_000, date(2026, 11, 20))
    w.invoice("F1002", "0000000001", 250_050, DAY)
    w.invoice("F1003", "0000000001", 99_900, date(2026, 11, 26))  # due tomorrow: not yet
    w.invoice("F1004", "0000000001", 99_900, date(2026, 11, 2), status="CANCELLED")
    w.recharge("R2001", "0000000001", 210_000, DAY)
    w.recharge("R2002", "0000000001", 160_000, DAY, status="PENDING")
    w.subscriber("0000000002", "Chérif Aït Saïd").mandate("M2", "0000000002", 1002, ceiling=200_000)
    w.invoice("F1010", "0000000002", 180_000, DAY)
    w.invoice("F1011", "0000000002", 200_001, DAY)  # above the mandate's ceiling: held
    w.subscriber("0000000003", "محمد بن علي").mandate("M3", "0000000003", 1003)  # Arabic only
    w.invoice("F1020", "0000000003", 150_000, DAY)
    w.subscriber("0000000004", "Lynda Kaci")  # no mandate: pays at the counter
    w.invoice("F1030", "0000000004", 150_000, DAY)
    w.subscriber("0000000005", "Yacine Hamidi").mandate("M5", "0000000005", 1005, revoked_from=DAY)
    w.invoice("F1040", "0000000005", 150_000, DAY)
    w.subscriber("0000000006", "Nadia Meziane").mandate("M6", "0000000006", 1006, effective=NEXT)
    w.invoice("F1050", "0000000006", 150_000, DAY)
    w.subscriber("0000000007", "Karim O'Brien").mandate("M7", "0000000007", 1007, rip="00799999000000100700")
    w.invoice("F1060", "0000000007", 150_000, DAY)  # the mandate's RIP key is wrong: held
    w.subscriber("0000000008", "Samir Larbi").mandate("M8", "0000000008", 1008)
    w.invoice("F1070", "0000000008", 75_000, DAY)
    w.payment("F1070", "FA", "0000000008", 75_000, date(2026, 11, 24))  # paid at a counter
    return w


@pytest.fixture
def loaded(ledger_engine: Engine, ledger_settings: Settings) -> Engine:
    world().load(ledger_engine, ledger_settings.billing_incoming_dir, DAY)
    return ledger_engine


def build(engine: Engine, settings: Settings, calendar: BusinessCalendar, day: date = DAY, **policy: object):  # type: ignore[no-untyped-def]
    at_night(day)  # the evening run of that night, by epay's clock
    return build_outbound(engine, settings, day, calendar, BuildPolicy(**policy))  # type: ignore[arg-type]


def numbers_in(result) -> list[str]:  # type: ignore[no-untyped-def]
    """Invoice / order numbers carried by a build's files, in file order."""
    return [n for f in result.files for n in read_file(f.path).details.to_pydict()["invoice_number"]]


def instructions(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(text("SELECT * FROM instruction ORDER BY reference"))]


def item_states(engine: Engine) -> dict[str, str]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT number, state FROM billing_item")).all())  # type: ignore[arg-type]


def test_build_selects_what_is_due_and_writes_a_valid_file(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    result = build(loaded, ledger_settings, calendar)
    assert result.created and result.batch_state == "released"
    assert result.settlement_date == NEXT
    assert [f.name for f in result.files] == ["PRLV_100237_20261125_01.txt"]
    path = result.files[0].path
    assert path == ledger_settings.outbound_dir(DAY) / "PRLV_100237_20261125_01.txt"
    report = validate_file(
        path, expected_creditor="100237", expected_creditor_rip=ledger_settings.creditor_rip
    )
    assert report.valid, report.problems
    table = read_file(path).details.to_pydict()
    assert table["invoice_number"] == ["F1001", "F1002", "F1010", "R2001"]
    assert table["operation"] == ["FA", "FA", "FA", "RA"]
    assert table["amount"] == [190_000, 250_050, 180_000, 210_000]
    assert table["debtor_name"] == ["MOHAMED BENALI", "MOHAMED BENALI", "CHERIF AIT SAID", "MOHAMED BENALI"]
    assert result.instruction_count == 4 and result.amount == 830_050 == result.files[0].amount
    # the ledger says the same as the file
    rows = instructions(loaded)
    assert [r["reference"] for r in rows] == table["end_to_end_reference"]
    assert {r["state"] for r in rows} == {"built"} and {r["try_number"] for r in rows} == {1}
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    states = item_states(loaded)
    assert {n: states[n] for n in ("F1001", "F1002", "F1010", "R2001")} == dict.fromkeys(
        ("F1001", "F1002", "F1010", "R2001"), "in_collection"
    )
    assert states["F1003"] == "due" and states["F1004"] == "cancelled" and states["R2002"] == "pending"
    assert states["F1070"] == "paid"
    # what was due but not sent, and why
    assert result.held == {"above_ceiling": 1, "name_to_correct": 1, "rip_invalid": 1}
    assert result.excluded == {"no_mandate": 1, "mandate_revoked": 1, "mandate_not_yet_effective": 1}
    with loaded.connect() as c:
        why = dict(
            c.execute(
                text("SELECT b.number, e.reason FROM exclusion e JOIN billing_item b ON b.id = e.item_id")
            ).all()
        )
    assert why == {
        "F1011": "above_ceiling",
        "F1020": "name_to_correct",
        "F1060": "rip_invalid",
        "F1030": "no_mandate",
        "F1040": "mandate_revoked",
        "F1050": "mandate_not_yet_effective",
    }
    # the audit trail has the file, each instruction, each item
    with loaded.connect() as c:
        assert [e["to_state"] for e in history(c, "file", path.name)] == ["built"]
        assert [e["to_state"] for e in history(c, "instruction", rows[0]["reference"])] == ["built"]
        assert [e["to_state"] for e in history(c, "item", "FA:F1001")] == ["loaded", "in_collection"]
    # references say nothing personal: date, batch, position
    assert all(len(r) == 24 and r.startswith("E2026112501") for r in table["end_to_end_reference"])


def test_same_day_again_returns_the_same_bytes(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    first = build(loaded, ledger_settings, calendar)
    digest = sha256_of(first.files[0].path)
    again = build(loaded, ledger_settings, calendar)
    assert not again.created
    assert again.files == first.files and sha256_of(again.files[0].path) == digest
    assert len(instructions(loaded)) == 4
    # lost from disk: written again from the ledger, byte for byte
    first.files[0].path.unlink()
    third = build(loaded, ledger_settings, calendar)
    assert sha256_of(third.files[0].path) == digest
    assert sorted(p.name for p in ledger_settings.outbound_dir(DAY).iterdir() if p.is_file()) == [
        first.files[0].name
    ]


def test_two_ledgers_from_the_same_data_write_the_same_bytes(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    from epay.ledger.db import open_ledger

    world().load(ledger_engine, ledger_settings.billing_incoming_dir, DAY)
    first = build(ledger_engine, ledger_settings, calendar)
    other_settings = Settings(home=tmp_path / "other", database_url=f"sqlite:///{tmp_path / 'other.db'}")
    other = open_ledger(other_settings.ledger_url)
    world().load(other, other_settings.billing_incoming_dir, DAY)
    second = build(other, other_settings, calendar)
    other.dispose()
    assert sha256_of(first.files[0].path) == sha256_of(second.files[0].path)


def test_not_on_a_weekend_or_holiday(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    with pytest.raises(BuildError, match="not a business day"):
        build(loaded, ledger_settings, calendar, day=date(2026, 11, 27))  # Friday
    with pytest.raises(BuildError, match="not a business day"):
        build(loaded, ledger_settings, calendar, day=date(2026, 11, 1))  # 1 November, a holiday
    assert instructions(loaded) == []


def test_files_split_at_the_limit(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    result = build(loaded, ledger_settings, calendar, max_details_per_file=3)
    assert [f.name[-6:-4] for f in result.files] == ["01", "02"]
    assert [f.detail_count for f in result.files] == [3, 1]
    for f in result.files:
        assert validate_file(f.path).valid
    assert sum(f.amount for f in result.files) == result.amount


def test_a_batch_above_the_day_ceiling_is_held_until_released(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    result = build(loaded, ledger_settings, calendar, day_max_amount=500_000)
    assert result.batch_state == "held" and [f.state for f in result.files] == ["held"]
    assert validate_file(result.files[0].path).valid  # built, just not sendable
    assert build(loaded, ledger_settings, calendar).batch_state == "held"  # a re-run does not release
    evening = datetime(2026, 11, 25, 21, 0, tzinfo=ALGIERS)  # before the 22:00 cut-off
    assert release_batch(loaded, DAY, "amina.dataeng", calendar, now=evening) == [result.files[0].name]
    assert release_batch(loaded, DAY, "amina.dataeng", calendar, now=evening) == []  # twice: nothing more
    again = build(loaded, ledger_settings, calendar, day_max_amount=500_000)
    assert again.batch_state == "released" and [f.state for f in again.files] == ["built"]
    with loaded.connect() as c:
        events = history(c, "file", result.files[0].name)
    assert [(e["from_state"], e["to_state"]) for e in events] == [(None, "held"), ("held", "built")]
    assert "amina.dataeng" in events[1]["reason"]


def _reject(engine: Engine, reference: str, reason: str, on: date) -> None:
    """What the returns step does with an instruction-level reject (the RETR applier, issue #5)."""
    with engine.begin() as c:
        c.execute(
            text("UPDATE instruction SET state='rejected', reason=:r, status_date=:d WHERE reference=:ref"),
            {"r": reason, "d": on, "ref": reference},
        )
        c.execute(
            text(
                "UPDATE billing_item SET state='due', last_reason=:r, last_reason_on=:d WHERE id = "
                "(SELECT item_id FROM instruction WHERE reference=:ref)"
            ),
            {"r": reason, "d": on, "ref": reference},
        )


def test_am04_comes_back_later_with_a_new_reference_until_tries_run_out(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    policy = {"retry": RetryPolicy(after_business_days=2, max_tries=2)}
    first = build(loaded, ledger_settings, calendar, **policy)
    ref = next(r["reference"] for r in instructions(loaded) if r["item_number"] == "F1001")
    _reject(loaded, ref, "AM04", NEXT)
    # Sunday 29: one business day since Thursday 26 → too soon
    sunday = build(loaded, ledger_settings, calendar, day=date(2026, 11, 29), **policy)
    assert "F1001" not in numbers_in(sunday)
    assert sunday.excluded.get("retry_later") == 1
    monday = build(loaded, ledger_settings, calendar, day=date(2026, 11, 30), **policy)
    # new rule: after F1001's retry, Monday re-files what Wednesday's and Sunday's never-sent files carried
    assert numbers_in(monday) == ["F1001", "F1002", "F1010", "R2001", "F1003", "F1050"]
    retry = next(r for r in instructions(loaded) if r["item_number"] == "F1001" and r["reference"] != ref)
    assert retry["try_number"] == 2 and retry["reference"].startswith("E20261130")
    _reject(loaded, retry["reference"], "AM04", date(2026, 12, 1))
    later = build(loaded, ledger_settings, calendar, day=date(2026, 12, 6), **policy)
    assert "F1001" not in numbers_in(later) and later.stopped == 1
    assert item_states(loaded)["F1001"] == "stopped"
    assert first.instruction_count == 4


def test_an_item_in_a_live_instruction_is_never_selected_again(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    build(loaded, ledger_settings, calendar)
    # even if billing's state were wrong, the live instruction keeps it out
    with loaded.begin() as c:
        c.execute(text("UPDATE billing_item SET state = 'due' WHERE number = 'F1001'"))
    nxt = build(loaded, ledger_settings, calendar, day=NEXT)
    # due tomorrow / mandate effective tomorrow: yes; then, new rule: Wednesday's never-sent file expired
    # and its instructions (F1001's live one among them, the same instruction) are re-filed
    assert numbers_in(nxt) == ["F1003", "F1050", "F1001", "F1002", "F1010", "R2001"]
    assert sum(1 for r in instructions(loaded) if r["item_number"] == "F1001") == 1


def test_a_failed_expectation_stops_the_file_and_names_the_rows(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    with loaded.begin() as c:  # corrupt data that no rule upstream caught
        c.execute(text("UPDATE billing_item SET amount = 0 WHERE number = 'F1002'"))
    with pytest.raises(GateRefusedError) as refused:
        build(loaded, ledger_settings, calendar)
    assert "E2026112501" in str(refused.value) and "amount" in str(refused.value)
    assert refused.value.report.exists()
    assert instructions(loaded) == []
    with loaded.connect() as c:
        assert c.execute(text("SELECT count(*) FROM exchange_file")).scalar_one() == 0
        assert c.execute(text("SELECT count(*) FROM batch")).scalar_one() == 0
    assert not any(p.is_file() for p in ledger_settings.outbound_dir(DAY).glob("*"))


def test_two_builds_of_the_same_day_at_once_make_one_batch(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    """A scheduled run and a manual re-run together: one does the work, the other returns its result."""
    from concurrent.futures import ThreadPoolExecutor

    from epay.ledger.db import open_ledger

    engines = [loaded, open_ledger(ledger_settings.ledger_url, migrate=False)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda e: build(e, ledger_settings, calendar), engines))
    engines[1].dispose()
    assert sorted(r.created for r in results) == [False, True]
    assert results[0].files == results[1].files
    with loaded.connect() as c:
        assert c.execute(text("SELECT count(*) FROM batch")).scalar_one() == 1
        assert c.execute(text("SELECT count(*) FROM exchange_file")).scalar_one() == 1
    assert len(instructions(loaded)) == 4
    folder = ledger_settings.outbound_dir(DAY)
    assert sorted(p.name for p in folder.iterdir()) == [results[0].files[0].name]  # no staging left


def test_one_live_instruction_per_item_is_a_database_rule(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    from sqlalchemy.exc import IntegrityError

    build(loaded, ledger_settings, calendar)
    row = next(r for r in instructions(loaded) if r["item_number"] == "F1001")
    with pytest.raises(IntegrityError), loaded.begin() as c:
        c.execute(
            text(
                "INSERT INTO instruction (reference, item_id, try_number, operation, amount,"
                " mandate_reference, rip, debtor_name, item_number, due_date, business_date,"
                " settlement_date, batch_id, state,"
                " updated_at) SELECT 'EXTRA', item_id, 2, operation, amount, mandate_reference, rip,"
                " debtor_name, item_number, due_date, business_date, settlement_date, batch_id, 'built',"
                " updated_at FROM instruction WHERE reference = :ref"
            ),
            {"ref": row["reference"]},
        )


def test_values_that_look_like_nulls_survive_the_round_trip(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    """PostgreSQL's rows come back through COPY and Arrow's CSV reader: 'NA' is an invoice number."""
    w = TinyWorld()
    w.subscriber("0000000001", "N/A").mandate("M1", "0000000001", 1001)
    w.invoice("NA", "0000000001", 10_000, DAY)
    w.load(ledger_engine, ledger_settings.billing_incoming_dir, DAY)
    result = build(ledger_engine, ledger_settings, calendar)
    assert numbers_in(result) == ["NA"]
    assert read_file(result.files[0].path).details.to_pydict()["debtor_name"] == ["N/A"]


def test_a_held_batch_too_late_to_release_is_cancelled_and_its_items_come_back(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    held = build(loaded, ledger_settings, calendar, day_max_count=1)
    assert held.batch_state == "held"
    too_late = datetime(2026, 11, 25, 22, 0, tzinfo=ALGIERS)  # the cut-off for settlement on the 26th
    with pytest.raises(ReleaseError, match="Cancel it"):
        release_batch(loaded, DAY, "amina.dataeng", calendar, now=too_late)
    assert cancel_batch(loaded, DAY, "amina.dataeng") == 4
    assert cancel_batch(loaded, DAY, "amina.dataeng") == 0  # twice: nothing more
    assert {r["state"] for r in instructions(loaded)} == {"cancelled"}
    states = item_states(loaded)
    assert {states[n] for n in ("F1001", "F1002", "F1010", "R2001")} == {"due"}
    with loaded.connect() as c:
        assert c.execute(text("SELECT state FROM exchange_file")).scalar_one() == "cancelled"
        assert c.execute(text("SELECT max(tries) FROM billing_item")).scalar_one() == 0
    # the next business day's build takes them again, with new references
    nxt = build(loaded, ledger_settings, calendar, day=NEXT)
    assert {"F1001", "F1002", "F1010", "R2001"} <= set(numbers_in(nxt))
    assert all(
        r.startswith("E20261126")
        for f in nxt.files
        for r in read_file(f.path).details.to_pydict()["end_to_end_reference"]
    )


def test_the_file_is_the_spec_to_the_byte(
    loaded: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    """Header, details and trailer rebuilt by hand from the spec's positions (§1, §3), not by the codec."""
    from epay.formats.rip import rip_from_account

    result = build(loaded, ledger_settings, calendar)
    lines = result.files[0].path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(len(line) == 160 for line in lines[:-1])
    header = (
        "01"
        + "PRLV"
        + "100237"
        + "20261125"
        + "20261126"
        + "01"
        + ledger_settings.creditor_rip
        + "ALGERIE TELECOM".ljust(30)
        + "DZD"
        + "001"
        + " " * 74
    )
    assert lines[0].decode("ascii") == header
    refs = [r["reference"] for r in instructions(loaded)]
    expected = [
        ("FA", 1001, "MOHAMED BENALI", 190_000, "M1", "F1001", "20261120"),
        ("FA", 1001, "MOHAMED BENALI", 250_050, "M1", "F1002", "20261125"),
        ("FA", 1002, "CHERIF AIT SAID", 180_000, "M2", "F1010", "20261125"),
        ("RA", 1001, "MOHAMED BENALI", 210_000, "M1", "R2001", "20261125"),
    ]
    for number, (op, account, name, amount, mandate, item, due) in enumerate(expected, start=1):
        detail = (
            "06"
            + f"{number:06d}"
            + op
            + rip_from_account(account)
            + name.ljust(30)
            + f"{amount:014d}"
            + refs[number - 1].ljust(24)
            + mandate.ljust(20)
            + item.ljust(20)
            + due
            + " " * 14
        )
        assert lines[number].decode("ascii") == detail
    control = sum(a for _, a, *_ in expected) % 10**18  # CCP account numbers, RIP digits 9–18
    trailer = "09" + "000004" + f"{830_050:018d}" + f"{control:018d}" + " " * 116
    assert lines[5].decode("ascii") == trailer
