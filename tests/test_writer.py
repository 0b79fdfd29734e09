"""The writer: refuses what the contract forbids, computes trailers, never leaves a half-written file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from epay.formats import EmptyNameError, EncodeError, InvalidFileError, parse_file, read_file, write_file
from epay.formats import synthetic as synth
from tests.conftest import CREATED, SETTLES, default_file

NAME = "PRLV_100237_20261125_01.txt"


def prlv(tmp_path: Path, table: pa.Table | pd.DataFrame) -> Path:
    path = tmp_path / NAME
    write_file(path, "PRLV", synth.standard_header("PRLV", CREATED, SETTLES), table)
    return path


def with_column(
    table: pa.Table, name: str, values: list[object], type_: pa.DataType | None = None
) -> pa.Table:
    index = table.column_names.index(name)
    return table.set_column(index, name, pa.array(values, type_ or table.schema.field(name).type))


def test_trailer_is_computed_from_the_details(tmp_path: Path) -> None:
    table = synth.prlv_details(10, seed=3)
    path = prlv(tmp_path, table)
    trailer = read_file(path).trailer
    accounts = [int(rip[8:18]) for rip in table.column("debtor_rip").to_pylist()]
    assert trailer == {
        "detail_count": 10,
        "total_amount": sum(table.column("amount").to_pylist()),
        "control_hash": sum(accounts) % 10**18,
    }


def test_names_are_normalised(tmp_path: Path) -> None:
    table = synth.prlv_details(3, seed=3)
    table = with_column(table, "debtor_name", ["Zoé Bénaïssa-Œuvré", "  l’Hadj  ", "Ahmed#Ali " * 5])
    details = read_file(prlv(tmp_path, table)).details
    assert details is not None
    assert details.column("debtor_name").to_pylist() == [
        "ZOE BENAISSA-OEUVRE",
        "L'HADJ",
        "AHMED ALI AHMED ALI AHMED ALI",
    ]


def test_arabic_only_name_is_refused_not_transliterated(tmp_path: Path) -> None:
    table = with_column(synth.prlv_details(4, seed=3), "debtor_name", ["BENALI", "محمد بن علي", "KACI", None])
    with pytest.raises(EmptyNameError) as error:
        prlv(tmp_path, table)
    assert error.value.field == "debtor_name" and error.value.rows == [1, 3]
    assert list(tmp_path.iterdir()) == []  # nothing left behind, not even the temporary file


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("end_to_end_reference", "A" * 25, "at most 24"),
        ("end_to_end_reference", "ref-1", "A–Z 0–9"),
        ("mandate_reference", "MANDAT É1", "not ASCII"),
        ("debtor_rip", "0079999912345678900", "exactly 20"),
        ("debtor_rip", "0079999912345678900X", "digits"),
        ("operation", "XX", "FA, RA"),
        ("amount", 0, "greater than zero"),
        ("amount", 10**14, "does not fit 14 digits"),
        ("amount", -5, "does not fit"),
        ("invoice_number", None, "missing"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, column: str, value: object, message: str) -> None:
    table = synth.prlv_details(3, seed=3)
    values = table.column(column).to_pylist()
    values[1] = value
    with pytest.raises(EncodeError, match=message):
        prlv(tmp_path, with_column(table, column, values))
    assert not (tmp_path / NAME).exists()


def test_money_as_float_is_refused(tmp_path: Path) -> None:
    table = synth.prlv_details(2, seed=3)
    table = table.set_column(table.column_names.index("amount"), "amount", pa.array([100.0, 200.0]))
    with pytest.raises(EncodeError, match="integers"):
        prlv(tmp_path, table)


def test_pandas_input(tmp_path: Path) -> None:
    table = synth.prlv_details(5, seed=4)
    frame = table.to_pandas()
    details = read_file(prlv(tmp_path, frame)).details
    assert details is not None
    assert details.select(table.column_names).equals(table)


def test_no_details_no_file(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match="1 to 999999"):
        prlv(tmp_path, synth.prlv_details(0))
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_only_when_complete(tmp_path: Path) -> None:
    path = prlv(tmp_path, synth.prlv_details(5, seed=4))
    before = path.read_bytes()
    bad = with_column(synth.prlv_details(5, seed=5), "operation", ["FA", "FA", "??", "FA", "FA"])
    with pytest.raises(EncodeError):
        prlv(tmp_path, bad)
    assert path.read_bytes() == before


def test_many_chunks_keep_numbering_and_totals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import epay.formats.writer as writer

    monkeypatch.setattr(writer, "CHUNK_ROWS", 7)
    table = synth.prlv_details(50, seed=8)
    report = read_file(prlv(tmp_path, table))
    assert report.details is not None
    assert report.details.column("record_number").to_pylist() == list(range(1, 51))
    assert report.trailer is not None and report.trailer["total_amount"] == sum(
        table.column("amount").to_pylist()
    )


@pytest.mark.parametrize("kind", ["PRLV", "ACK", "RETR", "MNDT", "RELV"])
def test_every_kind_writes_and_reads_back(tmp_path: Path, kind: str) -> None:
    name, header, table = default_file(kind, rows=4)
    result = write_file(tmp_path / name, kind, header, table)
    report = read_file(tmp_path / name)
    assert report.details is not None
    assert report.details.select(table.column_names).equals(table)
    assert report.trailer == result.trailer
    assert result.size == (report.detail_count + 2) * 161 == (tmp_path / name).stat().st_size


def test_header_values_are_checked(tmp_path: Path) -> None:
    header = synth.standard_header("PRLV", CREATED, SETTLES)
    with pytest.raises(EncodeError, match="creation_date must be a date"):
        write_file(tmp_path / NAME, "PRLV", {**header, "creation_date": "20261125"}, synth.prlv_details(1))
    with pytest.raises(EncodeError, match="creditor_rip"):
        write_file(tmp_path / NAME, "PRLV", {**header, "creditor_rip": "123"}, synth.prlv_details(1))
    assert date(2026, 11, 25) == CREATED


@pytest.mark.parametrize("kind", ["PRLV", "ACK", "RETR", "MNDT", "RELV"])
@pytest.mark.parametrize("crlf", [False, True])
def test_parse_file_gives_what_read_file_gives(tmp_path: Path, kind: str, crlf: bool) -> None:
    name, header, table = default_file(kind, rows=9)
    write_file(tmp_path / name, kind, header, table, crlf=crlf)
    checked, parsed = read_file(tmp_path / name), parse_file(tmp_path / name)
    assert parsed.details is not None and checked.details is not None
    assert parsed.details.equals(checked.details)
    assert (parsed.header, parsed.trailer, parsed.detail_count) == (
        checked.header,
        checked.trailer,
        checked.detail_count,
    )


@pytest.mark.parametrize(
    "fault",
    [
        "record-159-chars",
        "mixed-lf-crlf",
        "no-final-newline",
        "blank-line",
        "blank-line-after-trailer",
        "non-ascii-byte",
        "bad-name",
    ],
)
def test_parse_file_refuses_a_badly_framed_file_with_the_full_report(fault: str) -> None:
    from tests.conftest import SAMPLES

    for path in (SAMPLES / "invalid" / fault).glob("*.txt"):
        with pytest.raises(InvalidFileError) as error:
            parse_file(path)
        assert error.value.report.problems, path


def test_writer_refuses_file_level_faults_the_reader_would_report(tmp_path: Path) -> None:
    header = synth.standard_header("PRLV", CREATED, SETTLES)
    table = synth.prlv_details(4, seed=2)
    cases = {
        "settlement on a Friday (DT01)": (NAME, {**header, "settlement_date": date(2026, 11, 27)}, table),
        "sequence not the name's": (NAME, {**header, "sequence": 2}, table),
        "creditor not the name's (AG01)": (NAME, {**header, "creditor_id": 100238}, table),
        "duplicate reference": (
            NAME,
            header,
            with_column(table, "end_to_end_reference", ["R1", "R2", "R1", "R3"]),
        ),
        "name outside the patterns": ("PRLV_100237_2026112_01.txt", header, table),
        "name of another kind": ("RETR_100237_20261125_01.txt", header, table),
    }
    for case, (name, values, details) in cases.items():
        with pytest.raises(EncodeError):
            write_file(tmp_path / name, "PRLV", values, details)
        assert list(tmp_path.iterdir()) == [], case


def test_duplicates_are_found_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import epay.formats.writer as writer

    monkeypatch.setattr(writer, "CHUNK_ROWS", 4)
    table = synth.prlv_details(10, seed=2)
    refs = table.column("end_to_end_reference").to_pylist()
    refs[9] = refs[1]
    with pytest.raises(EncodeError, match="appears more than once"):
        prlv(tmp_path, with_column(table, "end_to_end_reference", refs))


def test_strict_values_with_padding_are_refused(tmp_path: Path) -> None:
    table = synth.prlv_details(2, seed=2)
    with pytest.raises(EncodeError, match="trailing spaces"):
        prlv(tmp_path, with_column(table, "invoice_number", ["FAC1 ", "FAC2"]))


def test_retr_rules_apply_on_the_way_out(tmp_path: Path) -> None:
    name, header, table = default_file("RETR", rows=3)
    bad = with_column(table, "reason", ["AM04", "", ""])  # a reason on a settled record
    bad = with_column(bad, "status", ["ACSC", "ACSC", "ACSC"])
    with pytest.raises(EncodeError, match="reason"):
        write_file(tmp_path / name, "RETR", header, bad)
