"""The committed sample files, hand-built from the spec without epay's codec, read by epay's codec."""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path

import pytest

from epay.calendar import BusinessCalendar
from epay.formats import read_file, validate_file
from tests.conftest import SAMPLES

INVALID_ROW = re.compile(
    r"^\| `(?P<path>[^`]+)` \| [^|]+ \| (?P<code>[A-Z]{2}[0-9]{2})[^|]* \| (?P<line>[0-9-]+) \| "
    r"(?P<field>[a-z_]+) \|$"
)


def invalid_samples() -> list[tuple[str, str, int, str]]:
    rows = []
    for text in (SAMPLES / "README.md").read_text(encoding="utf-8").splitlines():
        m = INVALID_ROW.match(text)
        if m:
            line = 0 if m["line"] == "-" else int(m["line"])
            rows.append((m["path"], m["code"], line, m["field"]))
    return rows


def test_every_invalid_sample_is_documented() -> None:
    documented = {row[0] for row in invalid_samples()}
    on_disk = {str(p.relative_to(SAMPLES / "invalid")) for p in (SAMPLES / "invalid").glob("*/*")}
    assert documented == on_disk and len(on_disk) >= 10


@pytest.mark.parametrize(("path", "code", "line", "field"), invalid_samples())
def test_invalid_sample_is_reported_as_documented(
    calendar: BusinessCalendar, path: str, code: str, line: int, field: str
) -> None:
    report = validate_file(SAMPLES / "invalid" / path, calendar=calendar)
    found = {(p.code, p.line, p.field) for p in report.problems}
    assert (code, line, field) in found, report.problems
    if code == "AC01":  # a wrong RIP key rejects the instruction, not the file (spec §5)
        assert report.valid
    else:
        assert not report.valid


def test_prlv_sample(calendar: BusinessCalendar) -> None:
    report = read_file(SAMPLES / "PRLV_100237_20261125_01.txt", calendar=calendar)
    assert report.header == {
        "creditor_id": 100237,
        "creation_date": date(2026, 11, 25),
        "settlement_date": date(2026, 11, 26),
        "sequence": 1,
        "creditor_rip": "00799999000012345687",
        "creditor_name": "ALGERIE TELECOM",
    }
    assert report.trailer == {"detail_count": 8, "total_amount": 2808706, "control_hash": 14308891984}
    details = report.details
    assert details is not None and details.num_rows == 8
    assert details.column("operation").to_pylist().count("FA") == 5
    assert sum(details.column("amount").to_pylist()) == 2808706
    first = details.slice(0, 1).to_pylist()[0]
    assert first["debtor_name"] == "BENALI MOHAMED"
    assert first["end_to_end_reference"] == "AT20261125FA0000000001"
    assert first["due_date"] == date(2026, 11, 20)


def test_crlf_prlv_sample(calendar: BusinessCalendar) -> None:
    report = read_file(SAMPLES / "PRLV_100237_20261125_03.txt", calendar=calendar)
    assert report.line_end == "CRLF" and report.size == 1134
    assert report.trailer == {"detail_count": 5, "total_amount": 1338844, "control_hash": 5018821128}


def test_retr_sample(calendar: BusinessCalendar) -> None:
    report = read_file(SAMPLES / "RETR_100237_20261126_01.txt", calendar=calendar)
    assert report.trailer == {
        "detail_count": 8,
        "settled_count": 5,
        "settled_amount": 1849950,
        "rejected_count": 3,
        "rejected_amount": 958756,
    }
    assert report.details is not None
    rejected = [
        (r["record_number"] + 1, r["reason"]) for r in report.details.to_pylist() if r["status"] == "RJCT"
    ]
    assert rejected == [(3, "AM04"), (6, "AC04"), (8, "MD01")]


def test_ack_samples(calendar: BusinessCalendar) -> None:
    accepted = read_file(SAMPLES / "ACK_PRLV_100237_20261125_01.txt", calendar=calendar)
    assert accepted.header == {
        "creditor_id": 100237,
        "ack_date": date(2026, 11, 25),
        "ack_time": time(21, 30, 15),
    }
    assert accepted.details is not None
    row = accepted.details.to_pylist()[0]
    assert (row["status"], row["reason"], row["detail_count"], row["total_amount"]) == (
        "ACCP",
        "",
        8,
        2808706,
    )
    rejected = read_file(SAMPLES / "ACK_PRLV_100237_20261125_02.txt", calendar=calendar)
    assert rejected.details is not None
    row = rejected.details.to_pylist()[0]
    assert (row["status"], row["reason"], row["faulty_line"]) == ("RJCT", "AM10", 0)
    assert row["free_text"]


def test_mndt_and_relv_samples(calendar: BusinessCalendar) -> None:
    mandates = read_file(SAMPLES / "MNDT_100237_20261125_01.txt", calendar=calendar)
    assert mandates.details is not None
    assert mandates.details.column("action").to_pylist() == ["N", "N", "M", "R", "N"]
    statement = read_file(SAMPLES / "RELV_100237_20261126_01.txt", calendar=calendar)
    assert statement.details is not None
    assert statement.details.to_pylist() == [
        {"debit_date": date(2026, 11, 26), "settled_count": 5, "amount": 1849950}
    ]
    empty = read_file(SAMPLES / "RELV_100237_20261129_01.txt", calendar=calendar)
    assert empty.details is not None and empty.details.num_rows == 0
    assert empty.trailer == {"detail_count": 0, "total_amount": 0}


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.txt")), ids=lambda p: Path(p).name)
def test_valid_samples_have_no_problem(calendar: BusinessCalendar, path: Path) -> None:
    report = validate_file(path, calendar=calendar)
    assert report.valid and report.problems == []
