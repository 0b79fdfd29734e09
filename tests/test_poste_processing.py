"""The simulated Algérie Poste follows the contract (shared/spec/exchange-files.md): file-level checks
and ACKs (§4), instruction statuses in RETR (§5), MNDT (§6), RELV (§7), timing, idempotent ticks,
accounting, and the scenario's injected faults.

Dates: Wednesday 2026-11-25 (creation), Thursday 26 (settlement), Friday 27 / Saturday 28 weekend,
Sunday 29, Monday 30 and Tuesday 2026-12-01 business days.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from epay.calendar import BusinessCalendar
from epay.formats import read_file, rip_from_account, validate_file
from epay.poste.state import Instruction, ReceivedFile
from tests.conftest import SAMPLES
from tests.poste_helpers import (
    ALGIERS,
    CREDITOR,
    CREDITOR_NAME,
    FRI,
    MON,
    OTHER,
    OTHER_RIP,
    SAT,
    SUN,
    THU,
    TUE,
    WED,
    Debit,
    World,
    at,
    faulty,
    invalid_prlv_samples,
    quiet,
    set_field,
)

WEEK = [WED, THU, FRI, SAT, SUN, MON, TUE]


@pytest.fixture
def world(tmp_path: Path, calendar: BusinessCalendar) -> World:
    return World(tmp_path, calendar)


def three_customers(world: World) -> list[Debit]:
    """Three open accounts with mandates and enough money; one debit each."""
    debits = []
    for i, amount in enumerate((265_000, 438_756, 100_000), start=1):
        mandate = world.customer(1000 + i)
        debits.append(Debit(1000 + i, amount, f"AT20261125FA{i:010d}", mandate))
    return debits


def no_instructions(world: World) -> bool:
    return world.instructions() == []


# =====================================================================================================
# 1. File-level checks and ACKs (§4)
# =====================================================================================================


def test_valid_file_is_accepted_with_counts_as_read(world: World) -> None:
    debits = three_customers(world)
    path = world.prlv(debits)
    record = world.ack(path, at(WED, 21, 15, 0))
    assert record == {
        "prlv_file_name": "PRLV_100237_20261125_01.txt",
        "status": "ACCP",
        "reason": "",
        "faulty_line": 0,
        "detail_count": 3,
        "total_amount": 265_000 + 438_756 + 100_000,
        "free_text": "",
    }
    ack = read_file(world.outbound() / "ACK_PRLV_100237_20261125_01.txt")
    assert ack.header is not None
    assert ack.header["creditor_id"] == int(CREDITOR)
    # within minutes of the arrival (the scenario says 90 s), Africa/Algiers
    stamp = datetime.combine(ack.header["ack_date"], ack.header["ack_time"], tzinfo=ALGIERS)
    assert timedelta(0) <= stamp - at(WED, 21, 15, 0) <= timedelta(minutes=5)
    lines = (world.outbound() / "ACK_PRLV_100237_20261125_01.txt").read_bytes().split(b"\n")
    assert [line[:2] for line in lines] == [b"01", b"02", b"09", b""]
    assert lines[2].startswith(b"09000002")
    assert len(world.instructions()) == 3
    world.all_valid()


INVALID_PRLV = [row for row in invalid_prlv_samples() if row[1] != "AC01"]


@pytest.mark.parametrize(
    ("sample", "code", "line"), INVALID_PRLV, ids=[r[0].split("/")[0] for r in INVALID_PRLV]
)
def test_hand_built_invalid_sample_is_rejected_as_documented(
    world: World, sample: str, code: str, line: int
) -> None:
    """Every invalid hand-built PRLV of sample_files/ (FF01, AM10, DT01): RJCT, the README's code, and
    the README's line (000000 for AM10: the fault concerns the file as a whole)."""
    path = world.inbound() / "PRLV_100237_20261125_01.txt"
    shutil.copyfile(SAMPLES / "invalid" / sample, path)
    record = world.ack(path, at(WED, 20))
    assert (record["status"], record["reason"]) == ("RJCT", code)
    assert record["faulty_line"] == (0 if code == "AM10" else line)
    assert record["free_text"].strip()
    fault = sample.split("/")[0]
    if fault == "letter-in-amount":  # 8 details read, one amount unreadable
        assert record["detail_count"] == 8
    elif fault != "record-159-chars":  # (that one: 7 or 8 "as read" is a matter of reading)
        # every detail readable: count and sum as read (= the valid sample's)
        assert (record["detail_count"], record["total_amount"]) == (8, 2_808_706)
    world.all_valid()
    assert no_instructions(world)  # a rejected file is not processed at all


def test_wrong_key_rip_is_no_file_fault_but_an_ac01_instruction(world: World) -> None:
    """sample rip-wrong-key-AC01: ACK ACCP, then RETR RJCT AC01 for that instruction."""
    path = world.inbound() / "PRLV_100237_20261125_01.txt"
    shutil.copyfile(SAMPLES / "invalid" / "rip-wrong-key-AC01" / path.name, path)
    record = world.ack(path, at(WED, 20))
    assert (record["status"], record["reason"], record["faulty_line"]) == ("ACCP", "", 0)
    assert (record["detail_count"], record["total_amount"]) == (8, 2_808_706)
    world.office.tick(THU)
    assert world.statuses()["AT20261125FA0000000004"] == ("RJCT", "AC01")


def test_valid_sample_file_is_accepted(world: World) -> None:
    path = world.inbound() / "PRLV_100237_20261125_01.txt"
    shutil.copyfile(SAMPLES / path.name, path)
    record = world.ack(path, at(WED, 21, 30))
    assert (record["status"], record["detail_count"], record["total_amount"]) == ("ACCP", 8, 2_808_706)


def test_crlf_sample_file_is_accepted(world: World) -> None:
    path = world.inbound() / "PRLV_100237_20261125_03.txt"
    shutil.copyfile(SAMPLES / path.name, path)
    record = world.ack(path, at(WED, 21, 30))
    assert (record["status"], record["detail_count"], record["total_amount"]) == ("ACCP", 5, 1_338_844)


def test_ag01_creditor_rip_of_another_account(world: World) -> None:
    path = world.prlv(three_customers(world), rip=OTHER_RIP)
    record = world.ack(path)
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "AG01", 1)
    assert (record["detail_count"], record["total_amount"]) == (3, 803_756)
    assert no_instructions(world)
    world.all_valid()


def test_ag01_creditor_id_in_header_not_the_accounts(world: World) -> None:
    """A file named for this account whose header carries another creditor id."""
    path = world.prlv(three_customers(world))
    set_field(path, 1, "creditor_id", OTHER)
    record = world.ack(path)
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "AG01", 1)
    assert no_instructions(world)
    world.all_valid()


def test_ag01_another_creditors_file_in_this_inbound(world: World) -> None:
    """Creditor 100238's own valid file, put into 100237's inbound: AG01 there (an ACK, no crash);
    the same file in 100238's own inbound is accepted. Each account gets its own ACK."""
    world.office.add_creditor(OTHER, CREDITOR_NAME, OTHER_RIP)
    world.account(2001)
    world.mandate("APMOTHER0000002001", 2001, creditor=OTHER)
    own = world.prlv([Debit(2001, 5_000, "OTHER1", "APMOTHER0000002001")], creditor=OTHER, rip=OTHER_RIP)
    misplaced = world.inbound(CREDITOR) / own.name
    shutil.copyfile(own, misplaced)
    for path in (own, misplaced):
        os.utime(path, (at(WED, 19).timestamp(), at(WED, 19).timestamp()))
    world.office.tick(WED)
    wrong = world.ack_record(f"ACK_{own.name}", CREDITOR)
    assert (wrong["status"], wrong["reason"], wrong["faulty_line"]) == ("RJCT", "AG01", 1)
    right = world.ack_record(f"ACK_{own.name}", OTHER)
    assert (right["status"], right["reason"]) == ("ACCP", "")
    world.all_valid(CREDITOR)
    world.all_valid(OTHER)


def test_ff01_a_file_without_details(world: World) -> None:
    path = world.prlv(three_customers(world))
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(lines[0] + b"\n" + b"09" + b"0" * 42 + b" " * 116 + b"\n")
    record = world.ack(path)
    assert (record["status"], record["reason"]) == ("RJCT", "FF01")
    assert (record["detail_count"], record["total_amount"]) == (0, 0)
    assert no_instructions(world)


def test_dt01_settlement_on_a_friday(world: World) -> None:
    path = world.prlv(three_customers(world), settles=FRI, validate=False)
    record = world.ack(path)
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "DT01", 1)
    assert (record["detail_count"], record["total_amount"]) == (3, 803_756)
    assert no_instructions(world)


def test_dt01_settlement_on_a_public_holiday(world: World) -> None:
    """Sunday 2026-11-01, Revolution Day: a weekday for the weekend rule, but a holiday."""
    path = world.prlv(
        three_customers(world), created=date(2026, 10, 29), settles=date(2026, 11, 1), validate=False
    )
    record = world.ack(path, at(date(2026, 10, 29), 10))
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "DT01", 1)


@pytest.mark.parametrize("settles", [WED, date(2026, 11, 24)], ids=["same-day", "before"])
def test_dt01_settlement_not_after_creation(world: World, settles: date) -> None:
    path = world.prlv(three_customers(world), settles=settles, validate=False)
    record = world.ack(path, at(date(2026, 11, 24), 9))
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "DT01", 1)


@pytest.mark.parametrize(
    ("settles", "arrival", "expected"),
    [
        (THU, at(WED, 21, 59, 59), "ACCP"),
        (THU, at(WED, 22, 0, 0), "DT01"),
        (THU, at(WED, 23, 30), "DT01"),
        (THU, at(THU, 8), "DT01"),
        # the same instants given in UTC: Algiers is UTC+1
        (THU, datetime.fromisoformat("2026-11-25T20:59:59+00:00"), "ACCP"),
        (THU, datetime.fromisoformat("2026-11-25T21:00:00+00:00"), "DT01"),
        # settling Sunday: the business day before is Thursday, not Saturday
        (SUN, at(THU, 21, 59), "ACCP"),
        (SUN, at(THU, 22, 0), "DT01"),
        (SUN, at(SAT, 10), "DT01"),
    ],
    ids=lambda v: str(v),
)
def test_dt01_cut_off_22h_africa_algiers(
    world: World, settles: date, arrival: datetime, expected: str
) -> None:
    path = world.prlv(three_customers(world), settles=settles)
    record = world.ack(path, arrival)
    assert record["status"] == ("ACCP" if expected == "ACCP" else "RJCT")
    assert record["reason"] == ("" if expected == "ACCP" else expected)
    assert record["faulty_line"] == (0 if expected == "ACCP" else 1)


def test_dt01_cut_off_judged_on_the_files_arrival_time_when_ticking(world: World) -> None:
    """tick() takes the arrival time from the file (mtime), capped at the simulated clock."""
    debits = three_customers(world)
    early = world.prlv(debits[:1], seq=1, arrived=at(WED, 21))
    late = world.prlv(debits[1:], seq=2, arrived=at(THU, 9))
    world.office.tick(THU)
    assert world.ack_record(f"ACK_{early.name}")["status"] == "ACCP"
    assert world.ack_record(f"ACK_{late.name}")["reason"] == "DT01"


@pytest.mark.parametrize(
    ("field", "value"),
    [("detail_count", "4"), ("total_amount", "803757"), ("control_hash", "1")],
)
def test_am10_trailer_does_not_match(world: World, field: str, value: str) -> None:
    path = world.prlv(three_customers(world))
    set_field(path, 5, field, value)
    record = world.ack(path)
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "AM10", 0)
    assert (record["detail_count"], record["total_amount"]) == (3, 803_756)  # as read, not the trailer's
    world.office.tick(THU)
    world.office.tick(SUN)
    assert no_instructions(world) and world.retr() == []
    assert world.balance(1001) == 10_000_000


def _break(path: Path, code: str) -> None:
    if code == "FF01":
        set_field(path, 2, "amount", "1O0")
    elif code == "AG01":
        set_field(path, 1, "creditor_rip", OTHER_RIP)
    elif code == "DT01":
        set_field(path, 1, "settlement_date", "20261127")
    elif code == "AM10":
        set_field(path, 5, "total_amount", "1")


COMBOS = [c for n in (2, 3, 4) for c in itertools.combinations(("FF01", "AG01", "DT01", "AM10"), n)]


@pytest.mark.parametrize("faults", COMBOS, ids=["+".join(c) for c in COMBOS])
def test_file_checks_run_in_the_specs_order(world: World, faults: tuple[str, ...]) -> None:
    """A file with several faults gets the first in the order FF01, AG01, DT01, AM10 (e.g. AM10+DT01
    gives DT01), with that check's line."""
    path = world.prlv(three_customers(world))
    for code in faults:
        _break(path, code)
    record = world.ack(path)
    expected = faults[0]  # COMBOS keep the spec's order
    assert (record["status"], record["reason"]) == ("RJCT", expected)
    assert record["faulty_line"] == {"FF01": 2, "AG01": 1, "DT01": 1, "AM10": 0}[expected]
    world.all_valid()


def test_du01_same_batch_sent_again_under_a_new_name(world: World) -> None:
    debits = three_customers(world)
    first = world.prlv(debits, seq=1)
    second = world.prlv(debits, seq=2)  # header differs (sequence); records 2..5 byte for byte equal
    assert first.read_bytes().split(b"\n")[1:] == second.read_bytes().split(b"\n")[1:]
    assert world.ack(first)["status"] == "ACCP"
    record = world.ack(second, at(WED, 20, 30))
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "DU01", 0)
    assert (record["detail_count"], record["total_amount"]) == (3, 803_756)
    world.office.tick(THU)
    assert [r["prlv_file_name"] for r in world.retr()] == [first.name] * 3
    assert world.balance(123456) == 803_756  # executed once
    world.all_valid()


def test_du01_also_on_a_later_day(world: World) -> None:
    debits = three_customers(world)
    assert world.ack(world.prlv(debits, seq=1))["status"] == "ACCP"
    again = world.prlv(debits, created=THU, settles=SUN, seq=1)
    # the batch (details and trailer) is the same although the header's dates differ
    record = world.ack(again, at(THU, 12))
    assert (record["status"], record["reason"], record["faulty_line"]) == ("RJCT", "DU01", 0)


def test_not_du01_when_the_earlier_identical_batch_was_rejected(world: World) -> None:
    debits = three_customers(world)
    rejected = world.prlv(debits, seq=1, settles=FRI, validate=False)
    assert world.ack(rejected)["reason"] == "DT01"
    again = world.prlv(debits, seq=2)
    record = world.ack(again, at(WED, 20, 30))
    assert (record["status"], record["reason"], record["faulty_line"]) == ("ACCP", "", 0)
    world.office.tick(THU)
    # the references of a rejected file were never "used" (§3): no AM05 either
    assert set(world.statuses().values()) == {("ACSC", "")}
    assert {r["prlv_file_name"] for r in world.retr()} == {again.name}


def test_resending_an_accepted_name_with_the_same_bytes_is_harmless(world: World) -> None:
    path = world.prlv(three_customers(world), arrived=at(WED, 19))
    world.office.tick(WED)
    before = world.outbound_state()
    assert world.office.acknowledge(CREDITOR, path, at(WED, 21)) is None
    assert world.office.acknowledge_pending(not_after=at(WED, 23)) == []
    assert world.outbound_state() == before


def test_re_ticking_publishes_no_second_ack(world: World) -> None:
    debits = three_customers(world)
    world.prlv(debits[:2], seq=1, arrived=at(WED, 19))
    world.prlv(debits[2:], seq=2, settles=FRI, validate=False, arrived=at(WED, 19))
    first = world.office.tick(WED)
    assert sorted(first.acknowledged) == [
        "ACK_PRLV_100237_20261125_01.txt",
        "ACK_PRLV_100237_20261125_02.txt",
    ]
    before = world.outbound_state()
    second = world.office.tick(WED)
    assert second.acknowledged == [] and second.published == []
    later = world.office.tick(THU)
    assert later.acknowledged == []
    assert [n for n in os.listdir(world.outbound()) if n.startswith("ACK_")] == [
        n for n in before if n.startswith("ACK_")
    ]
    assert {n: b for n, b in world.outbound_state().items() if n.startswith("ACK_")} == {
        n: b for n, b in before.items() if n.startswith("ACK_")
    }


def test_part_files_and_foreign_names_are_not_acknowledged(world: World) -> None:
    path = world.prlv(three_customers(world), arrived=at(WED, 19))
    os.rename(path, path.with_name(path.name + ".part"))
    shutil.copyfile(
        SAMPLES / "invalid" / "bad-name" / "PRLV_100237_2026112_01.txt",
        world.inbound() / "PRLV_100237_2026112_01.txt",
    )
    result = world.office.tick(WED)
    assert result.acknowledged == []
    assert world.published("ACK") == []


# =====================================================================================================
# 2. Instruction-level statuses (§5)
# =====================================================================================================


@dataclass(frozen=True)
class Case:
    """One debtor's situation: the account, the mandate, the instruction's amount."""

    balance: int = 10_000_000
    status: str = "open"  # open | closed | blocked
    deceased: bool = False
    account: str = "ok"  # ok | wrong-key | none
    mandate: str = "valid"  # valid | unknown | other-rip | other-creditor | revoked-before |
    # revoked-on-settlement | revoked-after | effective-after | effective-on-settlement
    ceiling: int = 0
    amount: int = 50_000


def setup_case(world: World, number: int, case: Case) -> Debit:
    rip = rip_from_account(number)
    if case.account != "none":
        world.account(number, case.balance, case.status, case.deceased)
    if case.account == "wrong-key":
        rip = rip[:18] + f"{(int(rip[18:]) % 97) + 1:02d}"
    reference = f"APM{number:010d}"
    if case.mandate == "other-rip":
        world.account(number + 500_000)
        world.mandate(reference, number + 500_000, ceiling=case.ceiling)
    elif case.mandate == "other-creditor":
        world.mandate(reference, number, creditor=OTHER, ceiling=case.ceiling)
    elif case.mandate == "effective-after":
        world.mandate(reference, number, effective=FRI, day=WED, ceiling=case.ceiling)
    elif case.mandate == "effective-on-settlement":
        world.mandate(reference, number, effective=THU, day=WED, ceiling=case.ceiling)
    elif case.mandate != "unknown":
        world.mandate(reference, number, ceiling=case.ceiling)
        revoked = {"revoked-before": WED, "revoked-on-settlement": THU, "revoked-after": SUN}
        if case.mandate in revoked:
            world.office.revoke_mandate(reference, day=WED, effective_date=revoked[case.mandate])
    return Debit(number, case.amount, f"REF{number:010d}", reference, rip=rip)


def run_cases(world: World, cases: list[Case]) -> list[tuple[str, str]]:
    """One PRLV (created Wednesday, settles Thursday) with one instruction per case; (status, reason)."""
    debits = [setup_case(world, 3000 + i, case) for i, case in enumerate(cases)]
    assert world.ack(world.prlv(debits))["status"] == "ACCP"
    world.office.tick(THU)
    statuses = world.statuses()
    return [statuses[d.ref] for d in debits]


REASONS = {
    "AC01-wrong-key": (Case(account="wrong-key"), "AC01"),
    "AC01-no-such-account": (Case(account="none"), "AC01"),
    "MD07-deceased": (Case(deceased=True), "MD07"),
    "AC04-closed": (Case(status="closed"), "AC04"),
    "AC06-blocked": (Case(status="blocked"), "AC06"),
    "MD01-unknown-reference": (Case(mandate="unknown"), "MD01"),
    "MD01-mandate-of-another-rip": (Case(mandate="other-rip"), "MD01"),
    "MD01-mandate-of-another-creditor": (Case(mandate="other-creditor"), "MD01"),
    "MD01-revoked-before-settlement": (Case(mandate="revoked-before"), "MD01"),
    "MD01-revoked-from-settlement-date": (Case(mandate="revoked-on-settlement"), "MD01"),
    "MD01-not-yet-effective": (Case(mandate="effective-after"), "MD01"),
    "AM02-above-ceiling": (Case(ceiling=49_999), "AM02"),
    "AM04-insufficient-funds": (Case(balance=49_999), "AM04"),
    "ACSC-revoked-only-later": (Case(mandate="revoked-after"), ""),
    "ACSC-effective-on-settlement": (Case(mandate="effective-on-settlement"), ""),
    "ACSC-amount-equals-ceiling": (Case(ceiling=50_000), ""),
    "ACSC-amount-equals-balance": (Case(balance=50_000), ""),
}


@pytest.mark.parametrize(("case", "reason"), list(REASONS.values()), ids=list(REASONS))
def test_instruction_reason(world: World, case: Case, reason: str) -> None:
    before = world.balances()
    [outcome] = run_cases(world, [case])
    assert outcome == (("RJCT", reason) if reason else ("ACSC", ""))
    after = world.balances()
    moved = 0 if reason else case.amount
    assert after[123456] - before[123456] == moved
    if case.account != "none":
        assert after[3000] == case.balance - moved
    world.all_valid()


ORDER = {
    "deceased+closed=MD07": (Case(deceased=True, status="closed"), "MD07"),
    "deceased+blocked=MD07": (Case(deceased=True, status="blocked"), "MD07"),
    "wrong-key+deceased=AC01": (Case(account="wrong-key", deceased=True), "AC01"),
    "no-account+unknown-mandate=AC01": (Case(account="none", mandate="unknown"), "AC01"),
    "closed+above-ceiling=AC04": (Case(status="closed", ceiling=10), "AC04"),
    "closed+no-mandate=AC04": (Case(status="closed", mandate="unknown"), "AC04"),
    "blocked+revoked=AC06": (Case(status="blocked", mandate="revoked-before"), "AC06"),
    "blocked+no-funds=AC06": (Case(status="blocked", balance=0), "AC06"),
    "other-rip+above-ceiling=MD01": (Case(mandate="other-rip", ceiling=10), "MD01"),
    "revoked+no-funds=MD01": (Case(mandate="revoked-before", balance=0), "MD01"),
    "above-ceiling+no-funds=AM02": (Case(ceiling=10, balance=0), "AM02"),
}


@pytest.mark.parametrize(("case", "reason"), list(ORDER.values()), ids=list(ORDER))
def test_first_applicable_reason_in_the_specs_order(world: World, case: Case, reason: str) -> None:
    assert run_cases(world, [case]) == [("RJCT", reason)]


def test_acsc_records(world: World) -> None:
    debits = three_customers(world)
    path = world.prlv(debits)
    world.ack(path)
    world.office.tick(THU)
    [retr] = world.published("RETR")
    assert retr.name == "RETR_100237_20261126_01.txt"
    report = read_file(retr)
    assert report.header is not None
    assert report.header["creation_date"] == report.header["settlement_date"] == THU
    rows = world.records(retr)
    assert [(r["end_to_end_reference"], r["debtor_rip"], r["amount"]) for r in rows] == [
        (d.ref, d.debtor_rip, d.amount) for d in debits
    ]
    assert {(r["status"], r["reason"], r["status_date"], r["prlv_file_name"]) for r in rows} == {
        ("ACSC", "", THU, path.name)
    }
    ids = [r["transaction_id"] for r in rows]
    assert len(set(ids)) == 3 and all(ids)
    assert report.trailer is not None
    assert report.trailer["settled_count"] == 3 and report.trailer["settled_amount"] == 803_756
    balances = world.balances()
    assert [balances[d.account] for d in debits] == [10_000_000 - d.amount for d in debits]
    assert balances[123456] == 803_756


def test_am05_reference_reused_in_a_later_accepted_file_settled_another_day(world: World) -> None:
    """The second file is accepted as a whole; only the reused instruction is RJCT AM05."""
    debits = three_customers(world)
    world.ack(world.prlv(debits[:2], seq=1))
    world.office.tick(THU)
    second = world.prlv([debits[1], debits[2]], created=THU, settles=SUN, seq=1)
    assert world.ack(second, at(THU, 12))["status"] == "ACCP"
    before = world.balances()
    world.office.tick(SUN)
    rows = {
        (r["prlv_file_name"], r["end_to_end_reference"]): (r["status"], r["reason"]) for r in world.retr()
    }
    assert rows[(second.name, debits[1].ref)] == ("RJCT", "AM05")
    assert rows[(second.name, debits[2].ref)] == ("ACSC", "")
    assert world.balances()[1002] == before[1002]  # nothing debited for the AM05
    assert world.balances()[123456] == before[123456] + debits[2].amount


def test_am05_reference_reused_in_a_file_settled_the_same_day(world: World) -> None:
    """Two accepted files for the same settlement date, the second reusing a reference of the first:
    the RETR of that day reports both (ACSC for the first, RJCT AM05 for the second)."""
    debits = three_customers(world)
    first = world.prlv(debits[:2], seq=1)
    second = world.prlv([Debit(1002, 7_000, debits[1].ref, debits[1].mandate), debits[2]], seq=2)
    assert world.ack(first)["status"] == "ACCP"
    assert world.ack(second, at(WED, 20, 10))["status"] == "ACCP"
    world.office.tick(THU)
    rows = {
        (r["prlv_file_name"], r["end_to_end_reference"]): (r["status"], r["reason"]) for r in world.retr()
    }
    assert rows == {
        (first.name, debits[0].ref): ("ACSC", ""),
        (first.name, debits[1].ref): ("ACSC", ""),
        (second.name, debits[1].ref): ("RJCT", "AM05"),
        (second.name, debits[2].ref): ("ACSC", ""),
    }
    assert world.balance(1002) == 10_000_000 - debits[1].amount


def test_am05_comes_before_every_account_check(world: World) -> None:
    """A reused reference on a closed account: AM05, not AC04."""
    world.account(4001, status="closed")
    world.mandate("APM4001", 4001)
    debit = Debit(4001, 1_000, "REUSED1", "APM4001")
    world.ack(world.prlv([debit]))
    world.office.tick(THU)
    assert world.statuses() == {"REUSED1": ("RJCT", "AC04")}  # rejected, but the reference is used
    again = Debit(4001, 2_000, "REUSED1", "APM4001")  # another amount: not the same batch (DU01)
    assert world.ack(world.prlv([again], created=THU, settles=SUN), at(THU, 9))["status"] == "ACCP"
    world.office.tick(SUN)
    [later] = [r for r in world.retr() if r["status_date"] == SUN]
    assert (later["status"], later["reason"]) == ("RJCT", "AM05")


def test_am04_two_debits_on_one_account_only_the_first_fits(world: World) -> None:
    mandate = world.customer(5001, balance=100_000)
    debits = [Debit(5001, 60_000, "TWICE1", mandate), Debit(5001, 60_000, "TWICE2", mandate)]
    world.ack(world.prlv(debits))
    world.office.tick(THU)
    assert world.statuses() == {"TWICE1": ("ACSC", ""), "TWICE2": ("RJCT", "AM04")}
    assert world.balance(5001) == 40_000
    assert world.balance(123456) == 60_000


def test_am04_across_two_files_in_file_order(world: World) -> None:
    mandate = world.customer(5002, balance=100_000)
    world.ack(world.prlv([Debit(5002, 70_000, "FIRST1", mandate)], seq=1))
    world.ack(world.prlv([Debit(5002, 40_000, "SECOND1", mandate)], seq=2))
    world.office.tick(THU)
    assert world.statuses() == {"FIRST1": ("ACSC", ""), "SECOND1": ("RJCT", "AM04")}
    assert world.balance(5002) == 30_000


def test_ms03_everywhere_nothing_debited(tmp_path: Path, calendar: BusinessCalendar) -> None:
    world = World(tmp_path, calendar, quiet(ms03_rate=1.0))
    cases = [Case(), Case(deceased=True), Case(balance=1), Case(mandate="unknown")]
    assert run_cases(world, cases) == [("RJCT", "MS03")] * 4
    assert world.balance(123456) == 0 and world.transfers() == []
    world.all_valid()


# =====================================================================================================
# 3. Timing: RETR, RELV, MNDT
# =====================================================================================================


def test_statuses_on_the_settlement_date_not_before(world: World) -> None:
    world.prlv(three_customers(world), arrived=at(WED, 19))
    world.office.tick(WED)
    assert world.published("RETR") == [] and world.balance(123456) == 0
    world.office.tick(THU)
    assert [p.name for p in world.published("RETR")] == ["RETR_100237_20261126_01.txt"]
    assert {r["status_date"] for r in world.retr()} == {THU}


def test_delayed_statuses_come_within_two_business_days(tmp_path: Path, calendar: BusinessCalendar) -> None:
    """delayed_share = 1: nothing on Thursday; everything on Sunday or Monday (Friday and Saturday are
    the weekend), and the money moves on the day of the status."""
    world = World(tmp_path, calendar, quiet(delayed_share=1.0))
    debits = []
    for i in range(24):
        debits.append(Debit(6000 + i, 1_000 + i, f"LATE{i:04d}", world.customer(6000 + i)))
    world.ack(world.prlv(debits))
    world.office.tick(THU)
    assert world.published("RETR") == [] and world.balance(123456) == 0
    [relv] = [p for p in world.published("RELV") if "20261126" in p.name]
    assert world.records(relv) == []
    for day in (FRI, SAT, SUN, MON, TUE):
        world.office.tick(day)
    rows = world.retr()
    assert sorted(r["end_to_end_reference"] for r in rows) == sorted(d.ref for d in debits)
    days = {r["status_date"] for r in rows}
    assert days == {SUN, MON}  # 1 and 2 business days after Thursday (24 draws: both occur)
    for r in rows:
        assert r["retr"] == f"RETR_100237_{r['status_date']:%Y%m%d}_01.txt"
    transfers = world.transfers()
    assert {t.day for t in transfers} == {SUN, MON}
    assert world.balance(123456) == sum(d.amount for d in debits)


def test_delays_skip_weekends_and_holidays(tmp_path: Path, calendar: BusinessCalendar) -> None:
    """Settlement Thursday 2026-10-29; Friday, Saturday and Sunday 1 November (a holiday) are skipped:
    delayed statuses come on Monday 2 or Tuesday 3 November; RELV only on business days."""
    world = World(tmp_path, calendar, quiet(delayed_share=1.0))
    oct28, oct29 = date(2026, 10, 28), date(2026, 10, 29)
    debits = [Debit(6100 + i, 500 + i, f"HOL{i:04d}", world.customer(6100 + i)) for i in range(24)]
    world.ack(world.prlv(debits, created=oct28, settles=oct29), at(oct28, 12))
    day = oct28
    while day <= date(2026, 11, 4):
        world.office.tick(day)
        day += timedelta(days=1)
    assert {r["status_date"] for r in world.retr()} == {date(2026, 11, 2), date(2026, 11, 3)}
    assert [p.name[12:20] for p in world.published("RELV")] == [
        "20261028", "20261029", "20261102", "20261103", "20261104"
    ]  # fmt: skip


def test_relv_every_business_day_with_the_days_credits(world: World) -> None:
    debits = three_customers(world)
    world.prlv(debits, arrived=at(WED, 19))
    for day in WEEK:
        world.office.tick(day)
    relvs = world.published("RELV")
    assert [p.name for p in relvs] == [
        "RELV_100237_20261125_01.txt",
        "RELV_100237_20261126_01.txt",
        "RELV_100237_20261129_01.txt",
        "RELV_100237_20261130_01.txt",
        "RELV_100237_20261201_01.txt",
    ]
    contents = {p.name[12:20]: world.records(p) for p in relvs}
    assert contents.pop("20261126") == [{"debit_date": THU, "settled_count": 3, "amount": 803_756}]
    assert all(rows == [] for rows in contents.values())  # zero details when nothing was credited
    for p in relvs:
        report = read_file(p)
        assert report.header is not None and report.trailer is not None
        assert report.header["creation_date"] == report.header["settlement_date"]
    world.all_valid()


def test_mndt_for_mandate_events_on_the_tick_of_their_day_once(world: World) -> None:
    world.account(7001)
    world.account(7002)
    world.office.register_mandate(
        "APM7001", CREDITOR, rip_from_account(7001), "GHERBI WALID", "TLF0021345678",
        effective_date=WED, day=WED, ceiling=1_000_000,
    )  # fmt: skip
    world.office.register_mandate(
        "APM7002",
        CREDITOR,
        rip_from_account(7002),
        "LAMRI SOUAD",
        "ADS0031877203",
        effective_date=WED,
        day=WED,
    )
    world.office.tick(WED)
    [wed] = world.published("MNDT")
    assert wed.name == "MNDT_100237_20261125_01.txt"
    assert [
        (r["mandate_reference"], r["action"], r["effective_date"], r["ceiling"]) for r in world.records(wed)
    ] == [
        ("APM7001", "N", WED, 1_000_000),
        ("APM7002", "N", WED, 0),
    ]
    assert world.records(wed)[0]["debtor_rip"] == rip_from_account(7001)
    assert world.records(wed)[0]["subscriber_number"] == "TLF0021345678"
    assert world.office.tick(WED).published == []
    # Thursday: a new ceiling and a revocation, reported in that order
    world.office.register_mandate(
        "APM7001", CREDITOR, rip_from_account(7001), "GHERBI WALID", "TLF0021345678",
        effective_date=THU, day=THU, ceiling=2_500_000,
    )  # fmt: skip
    world.office.revoke_mandate("APM7002", day=THU, effective_date=SUN)
    world.office.tick(THU)
    thu = world.outbound() / "MNDT_100237_20261126_01.txt"
    assert [
        (r["mandate_reference"], r["action"], r["effective_date"], r["ceiling"]) for r in world.records(thu)
    ] == [
        ("APM7001", "M", THU, 2_500_000),
        ("APM7002", "R", SUN, 0),
    ]
    # an event on a Friday: reported on the next business day's tick, once
    world.office.register_mandate(
        "APM7002",
        CREDITOR,
        rip_from_account(7002),
        "LAMRI SOUAD",
        "ADS0031877203",
        effective_date=SUN,
        day=FRI,
    )
    world.office.tick(FRI)
    world.office.tick(SAT)
    assert len(world.published("MNDT")) == 2
    world.office.tick(SUN)
    world.office.tick(MON)
    assert [p.name for p in world.published("MNDT")] == [
        "MNDT_100237_20261125_01.txt",
        "MNDT_100237_20261126_01.txt",
        "MNDT_100237_20261129_01.txt",
    ]
    [sun] = world.records(world.outbound() / "MNDT_100237_20261129_01.txt")
    assert (sun["mandate_reference"], sun["action"], sun["effective_date"]) == ("APM7002", "N", SUN)
    world.all_valid()


def test_mandate_revoked_after_acceptance_applies_on_the_settlement_date(world: World) -> None:
    mandate = world.customer(7101)
    world.ack(world.prlv([Debit(7101, 1_000, "REVOKED1", mandate)]))
    world.office.revoke_mandate(mandate, day=WED)
    world.office.tick(THU)
    assert world.statuses() == {"REVOKED1": ("RJCT", "MD01")}


# =====================================================================================================
# 4. Idempotence and catching up
# =====================================================================================================


def test_ticking_the_same_day_twice_changes_nothing(world: World) -> None:
    world.prlv(three_customers(world), arrived=at(WED, 19))
    world.office.tick(WED)
    world.office.tick(THU)
    outbound, balances = world.outbound_state(), world.balances()
    again = world.office.tick(THU)
    assert again.acknowledged == [] and again.published == []
    assert world.outbound_state() == outbound and world.balances() == balances


def test_a_skipped_stretch_is_caught_up(tmp_path: Path, calendar: BusinessCalendar) -> None:
    """Tick Wednesday, then Tuesday: Thursday's statuses and a RELV for every business day between."""
    world = World(tmp_path, calendar, quiet(delayed_share=0.5))
    debits = [Debit(8000 + i, 1_000 + i, f"CATCH{i:04d}", world.customer(8000 + i)) for i in range(16)]
    world.prlv(debits, arrived=at(WED, 19))
    world.office.tick(WED)
    result = world.office.tick(TUE)
    relvs = sorted(n for n in result.published if n.startswith("RELV_"))
    assert relvs == [
        "RELV_100237_20261126_01.txt",
        "RELV_100237_20261129_01.txt",
        "RELV_100237_20261130_01.txt",
        "RELV_100237_20261201_01.txt",
    ]
    rows = world.retr()
    assert sorted(r["end_to_end_reference"] for r in rows) == sorted(d.ref for d in debits)
    assert {r["status_date"] for r in rows} <= {THU, SUN, MON} and THU in {r["status_date"] for r in rows}
    for r in rows:  # each status published on its own day's RETR
        assert r["retr"].startswith(f"RETR_100237_{r['status_date']:%Y%m%d}_")
    relv_total = sum(row["amount"] for p in world.published("RELV") for row in world.records(p))
    assert relv_total == sum(r["amount"] for r in rows if r["status"] == "ACSC") == world.balance(123456)
    assert world.office.tick(MON).published == []  # an earlier day than the last one ticked: nothing


def test_first_tick_after_the_settlement_date_runs_it(world: World) -> None:
    """Files acknowledged (not ticked) on Wednesday; the first tick is on Monday."""
    world.ack(world.prlv(three_customers(world)))
    world.office.tick(MON)
    assert {r["status_date"] for r in world.retr()} == {THU}
    assert world.balance(123456) == 803_756


# =====================================================================================================
# 5. Accounting
# =====================================================================================================


def check_day(world: World, day: date, before: dict[int, int], creditor_account: int = 123456) -> None:
    """Money debited from CCPs on ``day`` = credited to AT = ACSC of that day's RETR = RELV of that day."""
    after = world.balances()
    assert sum(after.values()) == sum(before.values())  # conserved
    credited = after[creditor_account] - before[creditor_account]
    debited = sum(before[n] - after[n] for n in after if n != creditor_account)
    assert debited == credited
    assert all(after[n] <= before[n] for n in after if n != creditor_account)
    acsc = sum(
        r["amount"]
        for r in world.retr()
        if r["retr"].startswith(f"RETR_100237_{day:%Y%m%d}_") and r["status"] == "ACSC"
    )
    assert acsc == credited
    relv = [p for p in world.published("RELV") if p.name.startswith(f"RELV_100237_{day:%Y%m%d}_")]
    if world.calendar.is_business_day(day):
        [statement] = relv
        rows = world.records(statement)
        assert sum(r["amount"] for r in rows) == credited
        assert all(r["debit_date"] == day for r in rows)
        assert sum(r["settled_count"] for r in rows) == sum(
            1
            for r in world.retr()
            if r["retr"].startswith(f"RETR_100237_{day:%Y%m%d}_") and r["status"] == "ACSC"
        )
    else:
        assert relv == [] and credited == 0


def test_accounting_over_a_week_with_delays_and_technical_failures(
    tmp_path: Path, calendar: BusinessCalendar
) -> None:
    world = World(tmp_path, calendar, quiet(delayed_share=0.3, ms03_rate=0.1))
    debits = []
    for i in range(30):
        mandate = world.customer(9000 + i, balance=(i % 5) * 40_000, ceiling=150_000 if i % 7 == 0 else 0)
        debits.append(Debit(9000 + i, 20_000 + 7_919 * i, f"ACC{i:05d}", mandate))
    world.prlv(debits[:12], seq=1, arrived=at(WED, 18))
    world.prlv(debits[12:20], seq=2, settles=SUN, arrived=at(WED, 18))
    world.prlv(debits[20:], created=THU, settles=MON, seq=1, arrived=at(THU, 18))
    for day in [*WEEK, date(2026, 12, 2), date(2026, 12, 3)]:
        before = world.balances()
        world.office.tick(day)
        check_day(world, day, before)
    assert sorted(r["end_to_end_reference"] for r in world.retr()) == sorted(d.ref for d in debits)
    world.all_valid()


@dataclass(frozen=True)
class Subscriber:
    balance: int
    status: str
    deceased: bool
    mandate: str  # valid | unknown | revoked | future
    ceiling: int


SUBSCRIBERS = st.builds(
    Subscriber,
    balance=st.integers(0, 300_000),
    status=st.sampled_from(["open", "open", "open", "closed", "blocked"]),
    deceased=st.sampled_from([False, False, False, True]),
    mandate=st.sampled_from(["valid", "valid", "valid", "unknown", "revoked", "future"]),
    ceiling=st.sampled_from([0, 0, 100_000]),
)


def expected_reason(s: Subscriber, amount: int) -> str | None:
    """The spec's order (§5) without AM05 (references are fresh) and AM04 (balance replayed below)."""
    if s.deceased:
        return "MD07"
    if s.status == "closed":
        return "AC04"
    if s.status == "blocked":
        return "AC06"
    if s.mandate != "valid":
        return "MD01"
    if s.ceiling and amount > s.ceiling:
        return "AM02"
    return None


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subscribers=st.lists(SUBSCRIBERS, min_size=1, max_size=5),
    debits=st.lists(
        st.tuples(st.integers(0, 4), st.integers(1, 200_000), st.sampled_from([THU, SUN, MON])),
        min_size=1,
        max_size=10,
    ),
    ms03_rate=st.sampled_from([0.0, 0.3]),
    delayed_share=st.sampled_from([0.0, 0.5]),
)
def test_property_money_is_conserved_and_every_instruction_reported_once(
    calendar: BusinessCalendar,
    subscribers: list[Subscriber],
    debits: list[tuple[int, int, date]],
    ms03_rate: float,
    delayed_share: float,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        world = World(Path(folder), calendar, quiet(ms03_rate=ms03_rate, delayed_share=delayed_share))
        for n, s in enumerate(subscribers):
            account = 10_000 + n
            world.account(account, s.balance, s.status, s.deceased)
            if s.mandate != "unknown":
                effective = FRI + timedelta(days=30) if s.mandate == "future" else date(2026, 11, 1)
                world.mandate(f"APM{account}", account, ceiling=s.ceiling, effective=effective)
                if s.mandate == "revoked":
                    world.office.revoke_mandate(f"APM{account}", day=WED, effective_date=WED)
        files: dict[date, list[Debit]] = {}
        who: dict[str, Subscriber] = {}
        for i, (index, amount, settles) in enumerate(debits):
            n = index % len(subscribers)
            debit = Debit(10_000 + n, amount, f"P{i:06d}", f"APM{10_000 + n}")
            files.setdefault(settles, []).append(debit)
            who[debit.ref] = subscribers[n]
        where: dict[str, tuple[str, int]] = {}
        for seq, (settles, batch) in enumerate(sorted(files.items()), start=1):
            path = world.prlv(batch, seq=seq, settles=settles, arrived=at(WED, 18))
            for line, d in enumerate(batch, start=2):
                where[d.ref] = (path.name, line)
        for day in [*WEEK, date(2026, 12, 2), date(2026, 12, 3)]:
            before = world.balances()
            world.office.tick(day)
            check_day(world, day, before, creditor_account=123456)

        rows = world.retr()
        amounts = {d.ref: d.amount for batch in files.values() for d in batch}
        settles_of = {d.ref: s for s, batch in files.items() for d in batch}
        assert sorted(r["end_to_end_reference"] for r in rows) == sorted(amounts)  # exactly once each
        assert len({r["transaction_id"] for r in rows}) == len(rows)
        balances = {10_000 + n: s.balance for n, s in enumerate(subscribers)}
        # replay in execution order: status date, PRLV file, line
        for r in sorted(rows, key=lambda r: (r["status_date"], *where[r["end_to_end_reference"]])):
            ref = r["end_to_end_reference"]
            settles = settles_of[ref]
            assert settles <= r["status_date"] <= calendar.add_business_days(settles, 2)
            if delayed_share == 0:
                assert r["status_date"] == settles
            assert r["amount"] == amounts[ref] and r["prlv_file_name"] == where[ref][0]
            reason = r["reason"] or None
            if reason == "MS03":
                assert ms03_rate > 0
                continue
            assert reason == expected_reason(who[ref], amounts[ref]) or (
                reason == "AM04" and expected_reason(who[ref], amounts[ref]) is None
            )
            account = int(r["debtor_rip"][8:18])
            if reason is None:
                assert r["status"] == "ACSC" and balances[account] >= amounts[ref]
                balances[account] -= amounts[ref]
            elif reason == "AM04":
                assert balances[account] < amounts[ref]
        assert {n: b for n, b in world.balances().items() if n != 123456} == balances


def test_two_creditors_are_kept_apart(world: World) -> None:
    """Each creditor's files, statuses, statements and money stay in its own account and folders."""
    world.office.add_creditor(OTHER, "ALGERIE TELECOM", OTHER_RIP)
    ours = three_customers(world)
    world.mandate("APMOTHER1", 1001, creditor=OTHER)
    theirs = [Debit(1001, 12_345, "THEIRS1", "APMOTHER1")]
    world.prlv(ours, arrived=at(WED, 19))
    world.prlv(theirs, creditor=OTHER, rip=OTHER_RIP, arrived=at(WED, 19))
    world.office.tick(WED)
    world.office.tick(THU)
    assert {r["end_to_end_reference"] for r in world.retr(CREDITOR)} == {d.ref for d in ours}
    assert [r["end_to_end_reference"] for r in world.retr(OTHER)] == ["THEIRS1"]
    ids = [r["transaction_id"] for r in world.retr(CREDITOR) + world.retr(OTHER)]
    assert len(set(ids)) == len(ids) == 4
    balances = world.balances()
    assert (balances[123456], balances[654321]) == (803_756, 12_345)
    assert balances[1001] == 10_000_000 - 265_000 - 12_345
    assert [p.name for p in world.published("RELV", OTHER)] == [
        "RELV_100238_20261125_01.txt",
        "RELV_100238_20261126_01.txt",
    ]
    world.all_valid(CREDITOR)
    world.all_valid(OTHER)


# =====================================================================================================
# 6. Injected faults (scenario [faults])
# =====================================================================================================


def run_thursday(world: World) -> list[Debit]:
    debits = three_customers(world)
    world.ack(world.prlv(debits))
    world.office.tick(THU)
    return debits


def retr_files(world: World) -> list[Path]:
    return world.published("RETR")


def test_fault_redeliver_retr(tmp_path: Path, calendar: BusinessCalendar) -> None:
    world = World(tmp_path, calendar, faulty(redeliver_retr=True))
    run_thursday(world)
    first, second = retr_files(world)
    assert (first.name, second.name) == ("RETR_100237_20261126_01.txt", "RETR_100237_20261126_02.txt")
    assert world.records(first) == world.records(second) and len(world.records(first)) == 3
    world.all_valid()
    assert world.office.tick(THU).published == []


@pytest.mark.parametrize("fault", ["corrupt_retr", "truncate_retr"])
def test_fault_broken_retr_copy(tmp_path: Path, calendar: BusinessCalendar, fault: str) -> None:
    world = World(tmp_path, calendar, faulty(**{fault: True}))
    run_thursday(world)
    first, second = retr_files(world)
    assert validate_file(first, calendar=calendar).valid
    assert second.name == "RETR_100237_20261126_02.txt"
    assert not validate_file(second, calendar=calendar).valid


def test_fault_unknown_reference(tmp_path: Path, calendar: BusinessCalendar) -> None:
    world = World(tmp_path, calendar, faulty(unknown_reference=True))
    debits = run_thursday(world)
    sent = {d.ref for d in debits}
    rows = world.retr()
    unknown = [r for r in rows if r["end_to_end_reference"] not in sent]
    assert len(unknown) == 1
    assert {r["end_to_end_reference"] for r in rows} - {unknown[0]["end_to_end_reference"]} == sent
    with world.office.sessions() as session:
        known = set(session.scalars(select(Instruction.reference)))
    assert unknown[0]["end_to_end_reference"] not in known
    world.all_valid()


@pytest.mark.parametrize(("late", "published_on"), [(1, SUN), (2, MON)])
def test_fault_late_retr(tmp_path: Path, calendar: BusinessCalendar, late: int, published_on: date) -> None:
    world = World(tmp_path, calendar, faulty(late_retr_days=late))
    run_thursday(world)
    assert retr_files(world) == []
    assert world.balance(123456) == 803_756  # executed and credited on the settlement date
    for day in (FRI, SAT, SUN, MON, TUE):
        world.office.tick(day)
    [retr] = retr_files(world)
    assert retr.name == f"RETR_100237_{published_on:%Y%m%d}_01.txt"
    assert {r["status_date"] for r in world.records(retr)} == {THU}
    world.all_valid()


def test_received_files_are_recorded(world: World) -> None:
    path = world.prlv(three_customers(world))
    world.ack(path, at(WED, 21))
    with world.office.sessions() as session:
        [received] = session.scalars(select(ReceivedFile))
    assert (received.name, received.status, received.settlement_date) == (path.name, "ACCP", THU)
