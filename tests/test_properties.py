"""Property tests of the exchange-file codec against the contract (/work/shared/spec/exchange-files.md).

1. Round trip: any valid table of every kind -> file -> table gives the same values (header, details,
   trailer = the computed sums), with LF and CRLF line ends, from pyarrow and from pandas input.
2. The writer never produces a file the validator refuses: valid inputs always give valid files, and
   messy inputs either raise EncodeError or give a valid file.
3. Text normalisation (spec §1, A fields): allowed characters only, cut at the width, left-aligned,
   idempotent; Arabic-only names become empty and the writer refuses them; the writer's vectorised
   normalisation writes exactly what ``normalize_text`` says.
4. Corruption: every single-byte replacement of a valid PRLV / RETR file is either detected (with a
   problem on the corrupted line, the whole file or the trailer) or falls in one of the classes the
   contract cannot detect, spelled out in ``_undetected_class``; deleting or inserting a byte is always
   detected; ``validate_file`` never raises and ``read_file`` raises only InvalidFileError.

The ``test_bug_*`` tests at the end are minimal reproductions of defects these properties found.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from epay.calendar import load_calendar
from epay.formats import (
    KINDS,
    EmptyNameError,
    EncodeError,
    InvalidFileError,
    ValidationReport,
    ack_name,
    build_file_name,
    detail_schema,
    get_layout,
    normalize_text,
    read_file,
    rip_from_account,
    validate_file,
    write_file,
)
from epay.formats import synthetic as synth
from epay.formats.layout import RECORD_LENGTH, FieldSpec
from epay.formats.text import A_CHARACTERS, REFERENCE_CHARACTERS, normalize_text_block

CAL = load_calendar()
FILE_CODES = {"FF01", "AG01", "DT01", "AM10"}  # what the validator can find (DU01 needs history)
PRLV_NAME = re.compile(r"^PRLV_[0-9]{6}_[0-9]{8}_[0-9]{2}\.txt$")

# --- strategies, from the contract ----------------------------------------------------------------

ANY_DAY = st.dates(date(1900, 1, 1), date(2999, 12, 31))  # N date fields: real dates, years 1900-2999
HEADER_DAY = st.dates(date(2000, 1, 1), date(2099, 12, 31))  # within the shared holiday calendar
RIPS = st.integers(1, 9_999_999_999).map(rip_from_account)
AMOUNTS = st.integers(1, 10**14 - 1)
REFERENCES = st.text(REFERENCE_CHARACTERS, min_size=1, max_size=24)


def a_values(width: int) -> st.SearchStrategy[str]:
    """An already normalised A value: allowed characters, non-blank, no leading/trailing space."""
    return st.text(A_CHARACTERS, min_size=1, max_size=width).map(str.strip).filter(bool)


def codes(kind: str, field: str) -> tuple[str, ...]:
    return get_layout(kind).detail.field(field).codes


def column(strategy: st.SearchStrategy[Any], n: int, unique: bool = False) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, min_size=n, max_size=n, unique=unique)


def make_table(kind: str, columns: dict[str, list[Any]]) -> pa.Table:
    """A details table typed exactly as the reader decodes it (``detail_schema``)."""
    schema = detail_schema(get_layout(kind))
    fields = [schema.field(name) for name in columns]
    arrays = [pa.array(values, f.type) for f, values in zip(fields, columns.values(), strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


Case = tuple[str, dict[str, Any], pa.Table]  # (file name, header, details)


@st.composite
def standard_header(draw: st.DrawFn, kind: str) -> tuple[str, dict[str, Any]]:
    creditor = draw(st.integers(1, 999_999))
    created = draw(HEADER_DAY)
    # PRLV: a business day after the creation date; RETR/MNDT/RELV: both dates = processing date.
    settles = CAL.add_business_days(created, draw(st.integers(1, 5))) if kind == "PRLV" else created
    sequence = draw(st.integers(1, 99))
    header = {
        "creditor_id": creditor,
        "creation_date": created,
        "settlement_date": settles,
        "sequence": sequence,
        "creditor_rip": draw(RIPS),
        "creditor_name": draw(a_values(30)),
    }
    return build_file_name(kind, creditor, created, sequence), header


@st.composite
def prlv_cases(draw: st.DrawFn, max_rows: int = 6) -> Case:
    name, header = draw(standard_header("PRLV"))
    n = draw(st.integers(1, max_rows))
    table = make_table(
        "PRLV",
        {
            "operation": draw(column(st.sampled_from(codes("PRLV", "operation")), n)),
            "debtor_rip": draw(column(RIPS, n)),
            "debtor_name": draw(column(a_values(30), n)),
            "amount": draw(column(AMOUNTS, n)),
            "end_to_end_reference": draw(column(REFERENCES, n, unique=True)),
            "mandate_reference": draw(column(a_values(20), n)),
            "invoice_number": draw(column(a_values(20), n)),
            "due_date": draw(column(ANY_DAY, n)),
        },
    )
    return name, header, table


def prlv_names(creditor: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda day, seq: build_file_name("PRLV", creditor, day, seq), HEADER_DAY, st.integers(1, 99)
    )


@st.composite
def retr_cases(draw: st.DrawFn, max_rows: int = 6) -> Case:
    name, header = draw(standard_header("RETR"))
    n = draw(st.integers(1, max_rows))
    outcome = st.one_of(
        st.just(("ACSC", "")),
        st.tuples(st.just("RJCT"), st.sampled_from(codes("RETR", "reason"))),
    )
    outcomes = draw(column(outcome, n))
    table = make_table(
        "RETR",
        {
            "end_to_end_reference": draw(column(REFERENCES, n, unique=True)),
            "debtor_rip": draw(column(RIPS, n)),
            "amount": draw(column(AMOUNTS, n)),
            "status": [status for status, _ in outcomes],
            "reason": [reason for _, reason in outcomes],
            "status_date": draw(column(ANY_DAY, n)),
            "transaction_id": draw(column(a_values(20), n, unique=True)),
            "prlv_file_name": draw(column(prlv_names(header["creditor_id"]), n)),
        },
    )
    return name, header, table


@st.composite
def mndt_cases(draw: st.DrawFn, max_rows: int = 6) -> Case:
    name, header = draw(standard_header("MNDT"))
    n = draw(st.integers(1, max_rows))
    table = make_table(
        "MNDT",
        {
            "mandate_reference": draw(column(a_values(20), n)),
            "debtor_rip": draw(column(RIPS, n)),
            "debtor_name": draw(column(a_values(30), n)),
            "subscriber_number": draw(column(a_values(14), n)),
            "action": draw(column(st.sampled_from(codes("MNDT", "action")), n)),
            "effective_date": draw(column(ANY_DAY, n)),
            "ceiling": draw(column(st.integers(0, 10**14 - 1), n)),  # 0 = no ceiling
        },
    )
    return name, header, table


@st.composite
def relv_cases(draw: st.DrawFn, max_rows: int = 6) -> Case:
    name, header = draw(standard_header("RELV"))
    n = draw(st.integers(0, max_rows))  # RELV is published every business day, even empty
    days = st.dates(date(1900, 1, 1), header["creation_date"])  # not after the processing date
    table = make_table(
        "RELV",
        {
            "debit_date": draw(column(days, n, unique=True)),
            "settled_count": draw(column(st.integers(0, 999_999), n)),
            "amount": draw(column(st.integers(0, 10**17 - 1), n)),  # total must fit 18 digits
        },
    )
    return name, header, table


@st.composite
def ack_cases(draw: st.DrawFn) -> Case:
    creditor = draw(st.integers(1, 999_999))
    prlv = draw(prlv_names(creditor))
    header = {
        "creditor_id": creditor,
        "ack_date": draw(HEADER_DAY),
        "ack_time": draw(st.times().map(lambda t: t.replace(microsecond=0))),
    }
    # ACCP: no reason, line 0; FF01/AG01/DT01: the first faulty line; AM10/DU01: the whole file, 0.
    status, reason, line = draw(
        st.one_of(
            st.just(("ACCP", "", 0)),
            st.tuples(st.just("RJCT"), st.sampled_from(["FF01", "AG01", "DT01"]), st.integers(1, 999_999)),
            st.tuples(st.just("RJCT"), st.sampled_from(["AM10", "DU01"]), st.just(0)),
        )
    )
    table = make_table(
        "ACK",
        {
            "prlv_file_name": [prlv],
            "status": [status],
            "reason": [reason],
            "faulty_line": [line],
            "detail_count": [draw(st.integers(0, 999_999))],
            "total_amount": [draw(st.integers(0, 10**18 - 1))],
            "free_text": [draw(st.one_of(st.just(""), a_values(80)))],
        },
    )
    return ack_name(prlv), header, table


CASES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "PRLV": prlv_cases,
    "ACK": ack_cases,
    "RETR": retr_cases,
    "MNDT": mndt_cases,
    "RELV": relv_cases,
}


def expected_trailer(kind: str, table: pa.Table) -> dict[str, int]:
    """The trailer computed independently from the spec's definitions (§3–§7)."""
    rows = table.to_pylist()
    if kind == "ACK":
        return {}  # record_count is the constant 000002
    trailer = {"detail_count": len(rows)}
    if kind in ("PRLV", "RELV"):
        trailer["total_amount"] = sum(r["amount"] for r in rows)
    if kind == "PRLV":
        trailer["control_hash"] = sum(int(r["debtor_rip"][8:18]) for r in rows) % 10**18
    if kind == "RETR":
        for status, word in (("ACSC", "settled"), ("RJCT", "rejected")):
            trailer[f"{word}_count"] = sum(r["status"] == status for r in rows)
            trailer[f"{word}_amount"] = sum(r["amount"] for r in rows if r["status"] == status)
    return trailer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def _fresh(workdir: Path) -> tempfile.TemporaryDirectory[str]:
    """A fresh empty folder per hypothesis example (function-scoped tmp_path cannot be used)."""
    return tempfile.TemporaryDirectory(dir=workdir)


# --- 1 + 2. round trip; the writer's files pass the validator --------------------------------------

INPUT_FORMS = ("arrow", "arrow-crlf", "pandas", "pandas-datetime64")


def as_input(table: pa.Table, form: str) -> pa.Table | pd.DataFrame:
    if form == "arrow":
        return table
    if form == "arrow-crlf":
        # also: columns of two chunks, the second a slice with a non-zero offset
        half = table.num_rows // 2
        return pa.concat_tables([table.slice(0, half), table.slice(half)])
    # pandas: dates as datetime.date objects, or as datetime64 columns (timestamps the writer casts)
    return table.to_pandas(date_as_object=form == "pandas")


def assert_valid_without_problems(report: ValidationReport) -> None:
    assert report.valid, [str(p) for p in report.problems]
    assert [p for p in report.problems if p.severity == "file"] == []
    assert report.problems == []  # all RIPs are well formed with a right key: not even a warning
    assert report.first_rejection() is None


@pytest.mark.parametrize("form", INPUT_FORMS)
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(kind: str, form: str, data: st.DataObject, workdir: Path) -> None:
    name, header, table = data.draw(CASES[kind](), label="case")
    with _fresh(workdir) as folder:
        path = Path(folder) / name
        result = write_file(path, kind, header, as_input(table, form), crlf=form == "arrow-crlf")
        raw = path.read_bytes()
        lines = raw.split(b"\r\n" if form == "arrow-crlf" else b"\n")
        assert lines[-1] == b"" and all(len(line) == RECORD_LENGTH for line in lines[:-1])
        assert len(lines) - 1 == table.num_rows + 2 and result.size == len(raw)

        # 2. whatever the writer produced passes the validator (with the shared calendar)
        assert_valid_without_problems(validate_file(path, calendar=CAL))

        # 1. and reads back to the same values
        report = read_file(path)
    assert report.line_end == ("CRLF" if form == "arrow-crlf" else "LF")
    assert report.header == header
    details = report.details
    assert details is not None and details.num_rows == table.num_rows
    assert details.schema == detail_schema(get_layout(kind))
    decoded = details.select(table.column_names)
    assert decoded.schema == table.schema
    assert decoded.to_pylist() == table.to_pylist()
    if "record_number" in details.column_names:
        assert details.column("record_number").to_pylist() == list(range(1, table.num_rows + 1))
    trailer = expected_trailer(kind, table)
    assert result.trailer == trailer
    assert report.trailer == trailer
    assert report.computed == trailer
    assert result.detail_count == report.detail_count == table.num_rows


# Text biased towards what makes normalisation interesting: ASCII punctuation and controls that
# become spaces, accents, ligatures, Arabic, anything.
MESSY_TEXT = st.text(
    st.sampled_from(' \t*_!"#@;:éÉçÇœŒßæ’ﬁ')
    | st.characters(max_codepoint=0x7F)
    | st.characters(codec="utf-8"),
    max_size=60,
)

# Messy inputs for the writer: arbitrary unicode names, identifiers with any printable ASCII, amounts
# and dates at and beyond the limits, RIPs with wrong keys or lengths.
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def sometimes(valid: st.SearchStrategy[Any], messy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid values (9 in 10), so that files get written, with messy ones mixed in."""
    return st.integers(0, 9).flatmap(lambda i: messy if i == 0 else valid)


@st.composite
def messy_prlv(draw: st.DrawFn) -> Case:
    name, header, _ = draw(prlv_cases(max_rows=1))
    n = draw(st.integers(1, 5))
    refs = sometimes(REFERENCES, st.text(REFERENCE_CHARACTERS + "az -", max_size=26))
    table = make_table(
        "PRLV",
        {
            "operation": draw(column(sometimes(st.just("FA"), st.sampled_from(("fa", "XX", "", "F"))), n)),
            "debtor_rip": draw(column(sometimes(RIPS, st.text("0123456789", min_size=19, max_size=21)), n)),
            "debtor_name": draw(column(sometimes(a_values(30), MESSY_TEXT), n)),
            "amount": draw(column(sometimes(AMOUNTS, st.integers(-1, 10**14)), n)),
            # unique once padded: "A" and "A " are the same 24 bytes
            "end_to_end_reference": draw(st.lists(refs, min_size=n, max_size=n, unique_by=str.rstrip)),
            "mandate_reference": draw(column(sometimes(a_values(20), st.text(PRINTABLE, max_size=22)), n)),
            "invoice_number": draw(column(sometimes(a_values(20), st.text(PRINTABLE, max_size=22)), n)),
            "due_date": draw(column(sometimes(ANY_DAY, st.dates()), n)),
        },
    )
    return name, header, table


@settings(max_examples=100, deadline=None)
@given(case=messy_prlv())
def test_writer_refuses_or_writes_a_valid_file(case: Case, workdir: Path) -> None:
    name, header, table = case
    with _fresh(workdir) as folder:
        path = Path(folder) / name
        try:
            write_file(path, "PRLV", header, table)
        except EncodeError:
            event("refused")
            assert list(Path(folder).iterdir()) == []  # nothing left behind, not even NAME.tmp
            return
        event("written")
        report = validate_file(path)
    assert report.valid, [str(p) for p in report.problems]
    assert [p for p in report.problems if p.severity == "file"] == []
    # only wrong RIP keys/prefixes may remain, as instruction-level warnings (spec §5: AC01)
    assert {p.code for p in report.problems} <= {"AC01"}


# --- 3. text normalisation --------------------------------------------------------------------------

ARABIC = st.text(
    st.characters(min_codepoint=0x0621, max_codepoint=0x064A)  # Arabic letters hamza .. yeh
    | st.characters(min_codepoint=0xFE70, max_codepoint=0xFEFC)  # Arabic presentation forms-B
    | st.sampled_from(" \u064b\u064e\u0651"),  # spaces and harakat
    min_size=1,
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(value=st.text(max_size=100) | MESSY_TEXT, width=st.integers(1, 80))
def test_normalize_text(value: str, width: int) -> None:
    result = normalize_text(value, width)
    assert set(result) <= set(A_CHARACTERS)
    assert len(result) <= width
    assert result == result.strip(" ")  # left-aligned, no trailing space (that is padding)
    assert normalize_text(result, width) == result  # idempotent
    if value.isascii():
        # plain ASCII: exactly "upper-case, other characters to spaces, left-align, cut"
        mapped = "".join(ch if ch in A_CHARACTERS else " " for ch in value.upper())
        assert result == mapped.strip(" ")[:width].rstrip(" ")


@settings(max_examples=100, deadline=None)
@given(value=ARABIC, width=st.integers(1, 80))
@example(value="محمد", width=30)
@example(value="عبد القادر بن علي", width=30)
def test_arabic_only_text_is_empty(value: str, width: int) -> None:
    assert normalize_text(value, width) == ""


@settings(max_examples=300, deadline=None)
@given(values=st.lists(MESSY_TEXT, min_size=1, max_size=8), width=st.integers(1, 40))
@example(values=["*" * 30 + "BENALI"], width=30)  # see test_bug_text_block_*
def test_vectorised_normalisation_matches_normalize_text(values: list[str], width: int) -> None:
    """The writer normalises with ``normalize_text_block``: it must write exactly ``normalize_text``."""
    block, empty = normalize_text_block(pa.array(values, pa.string()), width)
    expected = [normalize_text(v, width) for v in values]
    assert [bytes(row).decode("ascii") for row in block] == [e.ljust(width) for e in expected]
    assert empty.tolist() == [e == "" for e in expected]


@settings(max_examples=60, deadline=None)
@given(names=st.lists(MESSY_TEXT | ARABIC, min_size=1, max_size=5), data=st.data())
def test_writer_writes_normalised_names(names: list[str], data: st.DataObject, workdir: Path) -> None:
    """Debtor names go out as ``normalize_text(name, 30)``; a name left empty is refused (spec §1)."""
    name, header, table = data.draw(prlv_cases(max_rows=1), label="file")
    n = len(names)
    table = make_table(
        "PRLV",
        {
            "operation": ["FA"] * n,
            "debtor_rip": [rip_from_account(i + 1) for i in range(n)],
            "debtor_name": names,
            "amount": [100] * n,
            "end_to_end_reference": [f"R{i}" for i in range(n)],
            "mandate_reference": ["M"] * n,
            "invoice_number": ["F"] * n,
            "due_date": [date(2026, 11, 20)] * n,
        },
    )
    expected = [normalize_text(v, 30) for v in names]
    with _fresh(workdir) as folder:
        path = Path(folder) / name
        if "" in expected:
            with pytest.raises(EmptyNameError) as raised:
                write_file(path, "PRLV", header, table)
            assert raised.value.field == "debtor_name"
            assert raised.value.rows == [i for i, e in enumerate(expected) if e == ""]
            assert list(Path(folder).iterdir()) == []
            return
        write_file(path, "PRLV", header, table)
        details = read_file(path).details
    assert details is not None
    assert details.column("debtor_name").to_pylist() == expected


def test_writer_refuses_an_arabic_only_debtor_name(tmp_path: Path) -> None:
    created = date(2026, 11, 25)
    name = build_file_name("PRLV", synth.CREDITOR_ID, created, 1)
    header = synth.standard_header("PRLV", created, CAL.next_business_day(created))
    details = synth.prlv_details(3, seed=3)
    names = details.column("debtor_name").to_pylist()
    names[1] = "محمد"
    details = details.set_column(2, "debtor_name", pa.array(names))
    with pytest.raises(EmptyNameError) as raised:
        write_file(tmp_path / name, "PRLV", header, details)
    assert raised.value.field == "debtor_name" and raised.value.rows == [1]
    assert list(tmp_path.iterdir()) == []


# --- 4. corruption ----------------------------------------------------------------------------------

CREATED = date(2026, 11, 25)  # Wednesday
SETTLES = date(2026, 11, 26)  # Thursday, the next business day
ACCOUNT = {"expected_creditor": f"{synth.CREDITOR_ID:06d}", "expected_creditor_rip": synth.CREDITOR_RIP}


def _corruption_sources() -> dict[str, Case]:
    prlv = build_file_name("PRLV", synth.CREDITOR_ID, CREATED, 1)
    retr = build_file_name("RETR", synth.CREDITOR_ID, SETTLES, 1)
    retr_table = make_table(
        "RETR",
        {
            "end_to_end_reference": ["AT2026112500000000000001", "AT20261125000002", "R3"],
            "debtor_rip": [rip_from_account(a) for a in (1234567890, 4, 9_999_999_999)],
            "amount": [150_000, 2_500, 99_999_999_999_999],
            "status": ["ACSC", "RJCT", "RJCT"],
            "reason": ["", "AM04", "AC01"],
            "status_date": [SETTLES] * 3,
            "transaction_id": ["TX0001", "TX0002", "TX 3"],
            "prlv_file_name": [prlv, prlv, build_file_name("PRLV", synth.CREDITOR_ID, date(2026, 11, 19), 2)],
        },
    )
    return {
        "PRLV": (prlv, synth.standard_header("PRLV", CREATED, SETTLES), synth.prlv_details(3, seed=5)),
        "RETR": (retr, synth.standard_header("RETR", SETTLES, SETTLES), retr_table),
    }


@pytest.fixture(scope="module")
def originals(workdir: Path) -> dict[tuple[str, bool], tuple[Path, bytes, ValidationReport]]:
    """A valid PRLV and RETR, LF and CRLF, as written by the writer, and their decoded reports."""
    out = {}
    for kind, (name, header, table) in _corruption_sources().items():
        for crlf in (False, True):
            folder = workdir / f"original-{kind}-{crlf}"
            folder.mkdir()
            write_file(folder / name, kind, header, table, crlf=crlf)
            report = read_file(folder / name, **ACCOUNT)
            assert_valid_without_problems(report)
            out[kind, crlf] = (folder / name, (folder / name).read_bytes(), report)
    return out


def check_reader(path: Path) -> ValidationReport:
    """validate_file must never raise; read_file raises InvalidFileError exactly when it is invalid."""
    report = validate_file(path, **ACCOUNT)
    if report.valid:
        read = read_file(path, **ACCOUNT)
        assert read.valid and read.details is not None
        return read
    with pytest.raises(InvalidFileError) as raised:
        read_file(path, **ACCOUNT)
    assert raised.value.report.problems == report.problems
    return report


def _differences(a: ValidationReport, b: ValidationReport) -> list[tuple[str, int, str]]:
    """(where, row, field) of every decoded value that differs; where = header/detail/trailer."""
    diffs = [("header", 0, k) for k in a.header or {} if (a.header or {})[k] != (b.header or {}).get(k)]
    assert a.details is not None and b.details is not None
    assert a.details.num_rows == b.details.num_rows
    for row, (x, y) in enumerate(zip(a.details.to_pylist(), b.details.to_pylist(), strict=True)):
        diffs += [("detail", row, k) for k in x if x[k] != y[k]]
    diffs += [("trailer", 0, k) for k in a.trailer or {} if (a.trailer or {})[k] != (b.trailer or {}).get(k)]
    return diffs


def _undetected_class(
    kind: str, original: ValidationReport, corrupted: ValidationReport, line: int, column: int, new: int
) -> str:
    """Name the class of an undetected single-byte replacement, failing if it is not one of these:

    - ``text``: a free text (debtor_name, creditor_name) got another allowed A character or space; no
      leading space, non-blank. The contract has no checksum over names.
    - ``identifier``: an identifier (mandate reference, invoice number, transaction id) or an
      end-to-end reference got another allowed character (A charset; A–Z 0–9 for references, or a
      space that only shortens it); still non-blank, left-aligned and unique in the file.
    - ``code``: a code changed into another code of its list (PRLV FA<->RA, RETR reason AM04<->AM05,
      AC01<->AC04...); RETR status/reason stay consistent (ACSC/RJCT differ in every byte).
    - ``date``: a detail date (due date, status date) changed into another real calendar date, or the
      PRLV settlement date into another business day after the creation date.
    - ``file name``: a RETR's PRLV file name changed into another well-formed name of the same
      creditor (date or sequence digits).
    - ``rip``: a RIP digit changed; the key no longer matches (97 cannot divide a one-digit change)
      or the bank/agency code is wrong, which the spec makes an instruction-level AC01 (the file stays
      valid) — the report must carry that AC01 warning on the corrupted line.
    Amounts, counts, record numbers, the creditor id and RIP (AG01), the sequence, the creation
    date, constants, reserved spaces, line ends and the trailer are never allowed to change unnoticed.
    """
    layout = get_layout(kind)
    assert column < RECORD_LENGTH, f"a line-end byte of line {line} was replaced unnoticed"
    total_lines = 2 + original.detail_count
    where = "header" if line == 1 else "trailer" if line == total_lines else "detail"
    record = {"header": layout.header, "detail": layout.detail, "trailer": layout.trailer}[where]
    spec: FieldSpec = record.field_at(column)
    row = line - 2 if where == "detail" else 0
    assert _differences(original, corrupted) == [(where, row, spec.name)], (where, row, spec.name)
    if where == "header":
        value = (corrupted.header or {})[spec.name]
    else:
        assert corrupted.details is not None
        value = corrupted.details.column(spec.name)[row].as_py()
    char = chr(new)
    if spec.format == "text":
        assert char in A_CHARACTERS
        assert value and value[0] != " " and set(value) <= set(A_CHARACTERS)
        return "text"
    if spec.format in ("identifier", "reference"):
        allowed = A_CHARACTERS if spec.format == "identifier" else REFERENCE_CHARACTERS
        assert char in allowed or (char == " " and spec.format == "reference" and value == value.strip())
        assert value and value[0] != " " and set(value) <= set(allowed)
        if spec.unique:
            assert corrupted.details is not None
            assert len(set(corrupted.details.column(spec.name).to_pylist())) == corrupted.detail_count
        return "identifier"
    if spec.format == "code":
        assert value in spec.codes or (spec.optional and value == "")
        if kind == "RETR" and corrupted.details is not None:
            status = corrupted.details.column("status")[row].as_py()
            reason = corrupted.details.column("reason")[row].as_py()
            assert (status == "ACSC") == (reason == "")
        return "code"
    if spec.format == "date":
        assert isinstance(value, date) and 1900 <= value.year <= 2999
        if where == "header":
            assert kind == "PRLV" and spec.name == "settlement_date", spec.name
            header = corrupted.header or {}
            assert value > header["creation_date"] and CAL.is_business_day(value)
        return "date"
    if spec.format == "filename":
        assert PRLV_NAME.match(value) and value.startswith(f"PRLV_{synth.CREDITOR_ID:06d}_")
        return "file name"
    if spec.format == "rip":
        assert where == "detail"  # the header's creditor RIP is checked against the account (AG01)
        warnings = [(p.line, p.code, p.severity) for p in corrupted.problems]
        assert (line, "AC01", "instruction") in warnings, warnings
        return "rip"
    raise AssertionError(f"{where} field {spec.name} ({spec.format}) changed and nothing noticed it")


def _assert_detected(
    kind: str, report: ValidationReport, corrupted: bytes, line: int, total_lines: int
) -> None:
    assert not report.valid
    rejection = report.first_rejection()
    assert rejection is not None and rejection[0] in FILE_CODES
    records = corrupted.split(b"\n")
    unique = {s.name: s for s in get_layout(kind).detail.fields if s.unique}

    def points_at_corruption(p: Any) -> bool:
        if p.code not in FILE_CODES:
            return False
        if p.line in (line, 0, total_lines):
            return True
        # a value made equal to a later record's is reported on that later record, with the value
        if p.field in unique and "more than once" in p.message and 0 < line <= len(records):
            spec = unique[p.field]
            return records[line - 1][spec.offset : spec.end].decode("ascii", "replace").rstrip() == p.value
        return False

    assert any(points_at_corruption(p) for p in report.problems), [str(p) for p in report.problems]


SPECIAL_BYTES = st.sampled_from(b"\n\r\x00\xff\t A0 9Z.'-/_az\x7f\x80")


@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
@pytest.mark.parametrize("kind", ["PRLV", "RETR"])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0, 10**6), new=SPECIAL_BYTES | st.integers(0, 255))
@example(position=21, new=ord("1"))  # PRLV settlement date 20261126 -> 21261126: see test_bug_*
@example(position=20, new=ord("9"))  # settlement date 90261126: not a real date (year > 2999)
@example(position=27, new=ord("9"))  # PRLV: settles on Sunday 20261129 instead, a business day
@example(position=161 + 8, new=ord("R"))  # PRLV operation FA -> RA
@example(position=2 * 161 + 73, new=ord("5"))  # RETR LF: reason AM04 -> AM05
@example(position=161 + 11, new=ord("9"))  # PRLV: RIP bank code 007 -> 097 (AC01 warning)
def test_single_byte_replacement(
    kind: str, crlf: bool, position: int, new: int, originals: dict[Any, Any], workdir: Path
) -> None:
    path, data, original = originals[kind, crlf]
    position %= len(data)
    if data[position] == new:  # a replacement must change the byte
        new = (new + 1) % 256
    corrupted = bytearray(data)
    corrupted[position] = new
    line_end = b"\r\n" if crlf else b"\n"
    stride = RECORD_LENGTH + len(line_end)
    line, column = position // stride + 1, position % stride
    with _fresh(workdir) as folder:
        target = Path(folder) / path.name
        target.write_bytes(bytes(corrupted))
        report = check_reader(target)
    if report.valid:
        event(f"undetected: {_undetected_class(kind, original, report, line, column, new)}")
    else:
        event("detected")
        _assert_detected(kind, report, bytes(corrupted), line, 2 + original.detail_count)


@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
@pytest.mark.parametrize("kind", ["PRLV", "RETR"])
@settings(max_examples=80, deadline=None)
@given(position=st.integers(0, 10**6), new=SPECIAL_BYTES | st.integers(0, 255), insert=st.booleans())
@example(position=0, new=10, insert=True)  # a blank line before the header
@example(position=10**6, new=10, insert=True)  # a blank line after the trailer
@example(position=10**6, new=0, insert=False)  # the trailer's line end removed
def test_byte_deletion_or_insertion_is_detected(
    kind: str, crlf: bool, position: int, new: int, insert: bool, originals: dict[Any, Any], workdir: Path
) -> None:
    path, data, _ = originals[kind, crlf]
    # position scaled onto the file: 0 is the first byte, 10**6 the end (insertion after the trailer)
    if insert:
        position = position * (len(data) + 1) // (10**6 + 1)
        changed = data[:position] + bytes([new]) + data[position:]
    else:
        position = position * len(data) // (10**6 + 1)
        changed = data[:position] + data[position + 1 :]
    with _fresh(workdir) as folder:
        target = Path(folder) / path.name
        target.write_bytes(changed)
        report = check_reader(target)
    assert not report.valid, f"{'inserting' if insert else 'deleting'} a byte at {position} went unnoticed"
    rejection = report.first_rejection()
    assert rejection is not None and rejection[0] in FILE_CODES


# --- regressions: defects these properties found (fixed) ---------------------------------------------------


def test_settlement_year_outside_the_calendar_is_reported_not_raised(tmp_path: Path) -> None:
    """validate_file must report, never raise (spec §4: the file is rejected FF01 or DT01).

    PRLV header settlement date 21261126 (a real date, year 2126) or 90261126 (not a date: decoded
    as the 1970-01-01 placeholder) is handed to the business calendar, which only knows 2000–2100
    and raises ValueError out of validate_file / read_file.
    """
    name = build_file_name("PRLV", synth.CREDITOR_ID, CREATED, 1)
    path = tmp_path / name
    write_file(path, "PRLV", synth.standard_header("PRLV", CREATED, SETTLES), synth.prlv_details(1))
    original = path.read_bytes()
    for settlement in (b"21261126", b"90261126"):
        path.write_bytes(original[:20] + settlement + original[28:])
        report = validate_file(path)
        assert not report.valid
        assert report.first_rejection() in (("FF01", 1), ("DT01", 1))


def test_text_block_maps_characters_before_cutting(tmp_path: Path) -> None:
    """Spec §1: other characters become spaces, the value is left-aligned, then cut at the width.

    ``normalize_text("*" * 30 + "BENALI", 30) == "BENALI"``, but the writer's vectorised
    ``normalize_text_block`` cuts before mapping, sees 30 spaces and reports the row as empty:
    the writer refuses the debtor name (EmptyNameError), and an optional text (ACK free_text)
    would silently be written blank.
    """
    value = "*" * 30 + "BENALI"
    assert normalize_text(value, 30) == "BENALI"
    block, empty = normalize_text_block(pa.array([value]), 30)
    assert bytes(block[0]).decode() == "BENALI".ljust(30)
    assert not empty[0]
    created = date(2026, 11, 25)
    details = synth.prlv_details(1).set_column(2, "debtor_name", pa.array([value]))
    path = tmp_path / build_file_name("PRLV", synth.CREDITOR_ID, created, 1)
    write_file(path, "PRLV", synth.standard_header("PRLV", created, SETTLES), details)
    details_read = read_file(path).details
    assert details_read is not None and details_read.column("debtor_name").to_pylist() == ["BENALI"]


def test_trailer_total_beyond_18_digits_is_refused(tmp_path: Path) -> None:
    """An 18-digit trailer sum that cannot hold the total must be refused (EncodeError).

    19 RELV details of 999 999 999 999 999 999 centimes (each fits the 18-digit amount) total
    18 999 999 999 999 999 981, which fits no 18-digit trailer. The writer sums in int64
    (pyarrow ``sum`` wraps silently) and writes 553 255 926 290 448 365 — a file its own reader
    rejects with AM10.
    """
    days = [SETTLES - timedelta(days=i) for i in range(19)]
    details = synth.relv_details(days, [1] * 19, [10**18 - 1] * 19)
    path = tmp_path / build_file_name("RELV", synth.CREDITOR_ID, SETTLES, 1)
    with pytest.raises(EncodeError, match="does not fit 18 digits"):
        write_file(path, "RELV", synth.standard_header("RELV", SETTLES, SETTLES), details)
    assert not path.exists()
