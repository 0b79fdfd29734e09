"""One test per validation rule of the contract: each asserts the reason code, the line and the field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from epay.calendar import BusinessCalendar
from epay.formats import get_layout, validate_file
from epay.formats.reader import ValidationReport
from tests.conftest import FileFactory


def problems_of(report: ValidationReport) -> set[tuple[str, int, str | None]]:
    return {(p.code, p.line, p.field) for p in report.problems}


def assert_rejected(report: ValidationReport, code: str, line: int, field: str | None) -> None:
    assert not report.valid
    assert (code, line, field) in problems_of(report), report.problems


# -- framing -----------------------------------------------------------------------------------------
def test_a_valid_file_has_no_problem(files: FileFactory, calendar: BusinessCalendar) -> None:
    for kind in ("PRLV", "ACK", "RETR", "MNDT", "RELV"):
        report = validate_file(files.write(kind), calendar=calendar)
        assert report.valid and report.problems == [], (kind, report.problems)


def test_crlf_line_ends_are_accepted(files: FileFactory) -> None:
    report = validate_file(files.write("PRLV", crlf=True))
    assert report.valid and report.line_end == "CRLF"


def test_short_record(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.edit(path, lambda r: [*r[:2], r[2][:159], *r[3:]])
    report = validate_file(path)
    assert_rejected(report, "FF01", 3, "record_length")
    assert next(p for p in report.problems if p.line == 3).value == "159"


def test_long_record(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.edit(path, lambda r: [*r[:2], r[2] + b" ", *r[3:]])
    assert_rejected(validate_file(path), "FF01", 3, "record_length")


def test_blank_line(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.edit(path, lambda r: [*r[:3], b"", *r[3:]])
    assert_rejected(validate_file(path), "FF01", 4, "record_length")


def test_mixed_line_ends(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.edit(path, lambda r: [*r[:2], r[2] + b"\r", *r[3:]])
    assert_rejected(validate_file(path), "FF01", 3, "line_end")


def test_missing_final_newline(files: FileFactory) -> None:
    path = files.write("PRLV", rows=3)
    path.write_bytes(path.read_bytes()[:-1])
    report = validate_file(path)
    assert_rejected(report, "FF01", 5, "line_end")
    assert report.trailer is not None  # the last record is still read


def test_non_ascii_byte_names_the_field(files: FileFactory) -> None:
    path = files.write("PRLV")
    spec = get_layout("PRLV").detail.field("debtor_name")
    records = files.records(path)
    records[1] = records[1][: spec.offset + 2] + b"\xc9" + records[1][spec.offset + 3 :]
    files.save(path, records)
    report = validate_file(path)
    assert_rejected(report, "FF01", 2, "debtor_name")
    assert "0xC9" in report.problems[0].message


def test_tab_character(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.set_field(path, 3, "mandate_reference", b"APM\t1")
    report = validate_file(path)
    assert_rejected(report, "FF01", 3, "mandate_reference")
    assert "tab" in report.problems[0].message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "PRLV_100237_20261125_01.txt"
    path.write_bytes(b"")
    assert_rejected(validate_file(path), "FF01", 0, None)


# -- record order --------------------------------------------------------------------------------------
def test_first_record_must_be_the_header(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.edit(path, lambda r: r[1:2] + r[0:1] + r[2:])
    assert_rejected(validate_file(path), "FF01", 1, "record_type")


def test_missing_trailer(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.edit(path, lambda r: r[:-1])
    assert_rejected(validate_file(path), "FF01", 0, "record_type")


def test_record_after_trailer(files: FileFactory) -> None:
    path = files.write("PRLV", rows=2)
    files.edit(path, lambda r: [*r, r[1]])
    assert_rejected(validate_file(path), "FF01", 5, "record_type")


def test_unknown_record_type(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.set_field(path, 3, "record_type", "07")
    assert_rejected(validate_file(path), "FF01", 3, "record_type")


def test_a_second_header(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.edit(path, lambda r: [r[0], r[0], *r[1:]])
    assert_rejected(validate_file(path), "FF01", 2, "record_type")


def test_prlv_without_details(files: FileFactory) -> None:
    path = files.write("PRLV", rows=1)
    files.edit(path, lambda r: [r[0], r[2]])
    report = validate_file(path)
    assert_rejected(report, "FF01", 0, None)


def test_ack_has_exactly_one_status_record(files: FileFactory) -> None:
    path = files.write("ACK")
    files.edit(path, lambda r: [r[0], r[1], r[1], r[2]])
    assert_rejected(validate_file(path), "FF01", 0, None)


# -- fields ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "line", "field", "value", "code"),
    [
        ("PRLV", 2, "amount", "00000001O00000", "FF01"),  # letters in an N field
        ("PRLV", 2, "amount", "0", "FF01"),  # amount must be > 0
        ("PRLV", 3, "due_date", "20261131", "FF01"),  # not a real date
        ("PRLV", 3, "due_date", "20261301", "FF01"),
        ("PRLV", 3, "due_date", "00000000", "FF01"),
        ("PRLV", 2, "operation", "XX", "FF01"),  # not an allowed code
        ("PRLV", 2, "debtor_name", "Benali", "FF01"),  # lower case in an A field
        ("PRLV", 2, "debtor_name", " BENALI", "FF01"),  # not left-aligned
        ("PRLV", 2, "debtor_name", "", "FF01"),  # required text blank
        ("PRLV", 2, "debtor_name", "BENALI#1", "FF01"),  # character outside the A set
        ("PRLV", 4, "end_to_end_reference", "AT 2026", "FF01"),  # space inside a reference
        ("PRLV", 4, "end_to_end_reference", "AT-2026", "FF01"),  # reference is A–Z 0–9 only
        ("PRLV", 4, "end_to_end_reference", "", "FF01"),
        ("PRLV", 5, "mandate_reference", "", "FF01"),  # identifier blank
        ("PRLV", 5, "invoice_number", "", "FF01"),
        ("PRLV", 2, "debtor_rip", "0079999912345678900X", "FF01"),  # RIP not 20 digits
        ("PRLV", 2, "reserved", "X", "FF01"),  # reserved must be spaces
        ("PRLV", 1, "file_kind", "RETR", "FF01"),  # fixed value
        ("PRLV", 1, "currency", "EUR", "FF01"),
        ("PRLV", 1, "format_version", "002", "FF01"),
        ("PRLV", 1, "creation_date", "20261232", "FF01"),
        ("PRLV", 1, "creditor_name", "", "FF01"),
        ("ACK", 1, "ack_time", "246000", "FF01"),  # not a real time
        ("ACK", 2, "status", "OKAY", "FF01"),
        ("ACK", 3, "record_count", "000003", "FF01"),
        ("RETR", 2, "reason", "XX99", "FF01"),
        ("RETR", 3, "prlv_file_name", "PRLV_100237.txt", "FF01"),  # not a PRLV file name
        ("RETR", 3, "prlv_file_name", "../etc/passwd", "FF01"),  # F field characters
        ("RETR", 3, "transaction_id", "", "FF01"),
        ("MNDT", 2, "action", "X", "FF01"),
        ("MNDT", 2, "subscriber_number", "", "FF01"),
    ],
)
def test_field_rule(files: FileFactory, kind: str, line: int, field: str, value: str, code: str) -> None:
    path = files.write(kind)
    files.set_field(path, line, field, value)
    report = validate_file(path)
    assert_rejected(report, code, line, field)
    problem = next(p for p in report.problems if (p.line, p.field) == (line, field))
    assert problem.file == path.name and problem.value is not None


def test_rip_with_wrong_key_is_an_instruction_level_ac01(files: FileFactory) -> None:
    path = files.write("PRLV")
    spec = get_layout("PRLV").detail.field("debtor_rip")
    rip = files.records(path)[1][spec.offset : spec.end].decode()
    wrong = rip[:18] + f"{(int(rip[18:]) % 97) + 1:02d}"
    files.set_field(path, 2, "debtor_rip", wrong)
    report = validate_file(path)
    assert report.valid  # the post office accepts the file and rejects that instruction (spec §5)
    [warning] = report.warnings
    assert (warning.code, warning.line, warning.field, warning.severity) == (
        "AC01",
        2,
        "debtor_rip",
        "instruction",
    )
    assert warning.value is not None and "*" in warning.value  # RIPs are masked in reports


def test_rip_with_another_bank_code_is_ac01(files: FileFactory) -> None:
    path = files.write("PRLV")
    spec = get_layout("PRLV").detail.field("debtor_rip")
    rip = files.records(path)[1][spec.offset : spec.end].decode()
    files.set_field(path, 2, "debtor_rip", "008" + rip[3:])  # same account: the control hash still holds
    report = validate_file(path)
    assert report.valid and [w.code for w in report.warnings] == ["AC01"]


def test_record_number_gap(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.set_field(path, 4, "record_number", "4")
    assert_rejected(validate_file(path), "FF01", 4, "record_number")


def test_record_numbers_start_at_one(files: FileFactory) -> None:
    path = files.write("MNDT")
    files.set_field(path, 2, "record_number", "0")
    assert_rejected(validate_file(path), "FF01", 2, "record_number")


def test_duplicate_end_to_end_reference_reports_the_repetition(files: FileFactory) -> None:
    path = files.write("PRLV")
    spec = get_layout("PRLV").detail.field("end_to_end_reference")
    first = files.records(path)[1][spec.offset : spec.end].decode().strip()
    files.set_field(path, 5, "end_to_end_reference", first)
    report = validate_file(path)
    assert_rejected(report, "FF01", 5, "end_to_end_reference")
    assert not any(p.line == 2 for p in report.problems)


def test_duplicate_transaction_id_in_retr(files: FileFactory) -> None:
    path = files.write("RETR")
    spec = get_layout("RETR").detail.field("transaction_id")
    first = files.records(path)[1][spec.offset : spec.end].decode().strip()
    files.set_field(path, 3, "transaction_id", first)
    assert_rejected(validate_file(path), "FF01", 3, "transaction_id")


# -- header against the name, the account, the calendar ------------------------------------------------
def test_header_sequence_must_be_the_names(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.set_field(path, 1, "sequence", "02")
    report = validate_file(path)
    assert_rejected(report, "FF01", 1, "sequence")
    assert report.problems[0].value == "02"


def test_header_creation_date_must_be_the_names(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.set_field(path, 1, "creation_date", "20261124")
    assert_rejected(validate_file(path), "FF01", 1, "creation_date")


def test_header_creditor_must_be_the_names(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.set_field(path, 1, "creditor_id", "100238")
    assert_rejected(validate_file(path), "AG01", 1, "creditor_id")


def test_creditor_of_the_account(files: FileFactory) -> None:
    path = files.write("PRLV")
    assert_rejected(validate_file(path, expected_creditor="100999"), "AG01", 1, "creditor_id")
    assert_rejected(
        validate_file(path, expected_creditor_rip="00799999000000000497"), "AG01", 1, "creditor_rip"
    )


def test_settlement_date_must_be_a_business_day(files: FileFactory, calendar: BusinessCalendar) -> None:
    path = files.write("PRLV")
    files.set_field(path, 1, "settlement_date", "20261127")  # a Friday
    assert_rejected(validate_file(path, calendar=calendar), "DT01", 1, "settlement_date")


def test_settlement_date_on_a_holiday(files: FileFactory, calendar: BusinessCalendar) -> None:
    path = files.write("PRLV")
    assert not calendar.is_business_day(date(2027, 1, 12))  # Yennayer, a Tuesday
    files.set_field(path, 1, "settlement_date", "20270112")
    assert_rejected(validate_file(path, calendar=calendar), "DT01", 1, "settlement_date")


def test_settlement_date_must_be_after_creation(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.set_field(path, 1, "settlement_date", "20261125")
    assert_rejected(validate_file(path), "DT01", 1, "settlement_date")


def test_settlement_date_already_reached_after_cutoff(files: FileFactory) -> None:
    path = files.write("PRLV")  # settles Thursday 26: cut-off Wednesday 25 at 22:00 Algiers (21:00 UTC)
    assert validate_file(path, received_at=datetime(2026, 11, 25, 20, 59, tzinfo=UTC)).valid
    late = validate_file(path, received_at=datetime(2026, 11, 25, 21, 0, tzinfo=UTC))
    assert_rejected(late, "DT01", 1, "settlement_date")


def test_processing_dates_must_be_equal(files: FileFactory) -> None:
    path = files.write("RETR")
    files.set_field(path, 1, "settlement_date", "20261129")
    assert_rejected(validate_file(path), "FF01", 1, "settlement_date")


# -- trailer totals (AM10) -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("PRLV", "detail_count"),
        ("PRLV", "total_amount"),
        ("PRLV", "control_hash"),
        ("RETR", "settled_count"),
        ("RETR", "settled_amount"),
        ("RETR", "rejected_count"),
        ("RETR", "rejected_amount"),
        ("MNDT", "detail_count"),
        ("RELV", "total_amount"),
    ],
)
def test_trailer_totals(files: FileFactory, kind: str, field: str) -> None:
    path = files.write(kind, rows=6)
    last = len(files.records(path))
    spec = get_layout(kind).trailer.field(field)
    current = int(files.records(path)[-1][spec.offset : spec.end])
    files.set_field(path, last, field, str(current + 1))
    report = validate_file(path)
    assert_rejected(report, "AM10", last, field)
    assert report.first_rejection() == ("AM10", 0)  # the ACK names no line for AM10
    assert report.computed[field] == current


# -- kind-specific consistency ----------------------------------------------------------------------
def test_retr_settled_record_has_no_reason(files: FileFactory) -> None:
    path = files.write("RETR", rows=8)
    report = validate_file(path, keep_details=True)
    assert report.details is not None
    line = 2 + report.details.column("status").to_pylist().index("ACSC")
    files.set_field(path, line, "reason", "AM04")
    assert_rejected(validate_file(path), "FF01", line, "reason")


def test_retr_rejected_record_has_a_reason(files: FileFactory) -> None:
    path = files.write("RETR", rows=8)
    report = validate_file(path, keep_details=True)
    assert report.details is not None
    line = 2 + report.details.column("status").to_pylist().index("ACSC")
    files.set_field(path, line, "status", "RJCT")
    assert_rejected(validate_file(path), "FF01", line, "reason")


def test_retr_of_another_creditors_prlv(files: FileFactory) -> None:
    path = files.write("RETR")
    files.set_field(path, 2, "prlv_file_name", "PRLV_999999_20261125_01.txt")
    assert_rejected(validate_file(path), "AG01", 2, "prlv_file_name")


def test_ack_names_the_file_it_is_named_after(files: FileFactory) -> None:
    path = files.write("ACK")
    files.set_field(path, 2, "prlv_file_name", "PRLV_100237_20261125_02.txt")
    assert_rejected(validate_file(path), "FF01", 2, "prlv_file_name")


def test_ack_accepted_has_no_reason_and_no_line(files: FileFactory) -> None:
    path = files.write("ACK")
    files.set_field(path, 2, "faulty_line", "4")
    assert_rejected(validate_file(path), "FF01", 2, "faulty_line")
    path = files.write("ACK")
    files.set_field(path, 2, "reason", "FF01")
    assert_rejected(validate_file(path), "FF01", 2, "reason")


def test_ack_rejection_line_rules(files: FileFactory) -> None:
    path = files.write("ACK")
    files.set_field(path, 2, "status", "RJCT")
    assert_rejected(validate_file(path), "FF01", 2, "reason")  # RJCT needs a reason
    files.set_field(path, 2, "reason", "FF01")
    assert_rejected(validate_file(path), "FF01", 2, "faulty_line")  # FF01 names its line
    files.set_field(path, 2, "faulty_line", "3")
    assert validate_file(path).valid
    files.set_field(path, 2, "reason", "AM10")
    assert_rejected(validate_file(path), "FF01", 2, "faulty_line")  # AM10 concerns the whole file


def test_relv_debit_date_not_after_processing_date(files: FileFactory) -> None:
    path = files.write("RELV")
    files.set_field(path, 3, "debit_date", "20261127")
    assert_rejected(validate_file(path), "FF01", 3, "debit_date")


def test_relv_one_detail_per_debit_date(files: FileFactory) -> None:
    path = files.write("RELV")
    files.set_field(path, 3, "debit_date", "20261125")
    assert_rejected(validate_file(path), "FF01", 3, "debit_date")


def test_relv_without_details_is_valid(files: FileFactory) -> None:
    path = files.write("RELV")
    layout = get_layout("RELV")
    files.edit(path, lambda r: [r[0], r[-1]])
    total = layout.trailer.field("total_amount")
    count = layout.trailer.field("detail_count")
    files.set_field(path, 2, count.name, "0")
    files.set_field(path, 2, total.name, "0")
    assert validate_file(path).valid


# -- names, ordering of reasons, limits ---------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "PRLV_100237_2026112_01.txt",
        "prlv_100237_20261125_01.txt",
        "PRLV_100237_20261125_00.txt",
        "PRLV_100237_20261131_01.txt",
        "PRLV_100237_20261125_01.TXT",
        "ACK_RETR_100237_20261125_01.txt",
    ],
)
def test_file_name_outside_the_patterns(files: FileFactory, name: str) -> None:
    path = files.write("PRLV")
    path = path.rename(path.with_name(name))
    report = validate_file(path)
    assert_rejected(report, "FF01", 0, "file_name")
    assert report.kind == "PRLV"  # the content is still checked, by the kind its header declares


def test_first_rejection_follows_the_spec_order(files: FileFactory) -> None:
    path = files.write("PRLV")
    files.set_field(path, 7, "total_amount", "1")  # AM10
    files.set_field(path, 1, "settlement_date", "20261127")  # DT01
    assert validate_file(path).first_rejection() == ("DT01", 1)
    files.set_field(path, 4, "amount", "ABC")  # FF01
    assert validate_file(path).first_rejection() == ("FF01", 4)


def test_many_problems_are_all_counted_but_bounded(files: FileFactory) -> None:
    path = files.write("PRLV", rows=3000)
    records = files.records(path)
    spec = get_layout("PRLV").detail.field("operation")
    for i in range(1, len(records) - 1):
        records[i] = records[i][: spec.offset] + b"ZZ" + records[i][spec.end :]
    files.save(path, records)
    report = validate_file(path, problem_limit=100)
    assert len(report.problems) == 100
    assert report.problem_count == 3000
    assert [p.line for p in report.problems[:3]] == [2, 3, 4]


def test_a_file_without_line_ends_is_reported_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "PRLV_100237_20261125_01.txt"
    path.write_bytes(b"01PRLV" + b"X" * (5 << 20))  # 5 MiB, not one line end
    report = validate_file(path)
    assert_rejected(report, "FF01", 1, "record_length")
    assert ("FF01", 1, "line_end") in problems_of(report)
    assert next(p for p in report.problems if p.field == "record_length").value == str(6 + (5 << 20))


def test_an_overlong_line_then_good_records(files: FileFactory) -> None:
    path = files.write("PRLV", rows=3)
    files.edit(path, lambda r: [r[0], b"06" + b"9" * (3 << 20), *r[1:]])
    report = validate_file(path)
    assert_rejected(report, "FF01", 2, "record_length")
    assert report.detail_count == 3  # the records after it are still read and checked
