"""The billing extract check: whole-file errors, one rejection per broken rule, int64 amounts end to end."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from epay.billing.extract import (
    CheckedExtract,
    ExtractError,
    check_extract,
    extract_date_of,
    load_schema,
    suite_drift,
    write_extract,
)
from epay.quality.runner import load_suite_spec

COLUMNS = load_schema().names
NAME = "BILL_20261125_01"
ARABIC = "محمد بن علي"
ACCENTED = "Zoé Bénaïssa-Œuvré l’Hadj"


def subscriber(number: str, name: str, **changes: object) -> dict[str, object]:
    return {"record": "SUBSCRIBER", "subscriber_number": number, "subscriber_name": name} | changes


def item(record: str, number: str, subscriber: str = "0000000001", **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "record": record,
        "subscriber_number": subscriber,
        "item_number": number,
        "amount": 250_000,
        "issued_on": date(2026, 11, 1),
        "due_date": date(2026, 11, 20),
        "status": "OPEN" if record == "INVOICE" else "CONFIRMED",
    }
    return row | changes


def payment(number: str, kind: str = "FA", **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "record": "PAYMENT",
        "subscriber_number": "0000000001",
        "item_number": number,
        "item_kind": kind,
        "amount": 100_000,
        "paid_on": date(2026, 11, 24),
        "channel": "COUNTER",
    }
    return row | changes


VALID = [
    subscriber("0000000001", ARABIC),
    subscriber("0000000002", ACCENTED),
    item("INVOICE", "F1001", amount=99_999_999_999_999),  # the largest amount: exact as int64
    item("INVOICE", "F1002", subscriber="0000000002", status="CANCELLED"),
    item(
        "RECHARGE",
        "R2001",
        subscriber="0000000002",
        issued_on=date(2026, 11, 25),
        due_date=date(2026, 11, 25),
    ),
    payment("F0999"),
    payment("F0999", paid_on=date(2026, 11, 25)),  # same item, another day: not a duplicate
]


def write_csv_text(folder: Path, rows: list[dict[str, object]], name: str = f"{NAME}.csv") -> Path:
    """CSV exactly as written here (values as given, so malformed text can be tested)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = folder / name
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def reasons(checked: CheckedExtract) -> set[tuple[int, str, str]]:
    return {(r.row, r.field, r.reason) for r in checked.rejections}


@pytest.fixture(params=["parquet", "csv"])
def valid(request: pytest.FixtureRequest, tmp_path: Path) -> CheckedExtract:
    path = tmp_path / f"{NAME}.{request.param}"
    write_extract(pd.DataFrame(VALID), path)
    return check_extract(path)


def test_a_valid_extract_is_accepted_whole(valid: CheckedExtract) -> None:
    assert valid.rejections == () and valid.rejected_rows() == set()
    assert (valid.extract_id, valid.extract_date, valid.row_count) == (NAME, date(2026, 11, 25), 7)
    assert valid.subscribers.to_dict("list") == {
        "subscriber_number": ["0000000001", "0000000002"],
        "subscriber_name": [ARABIC, ACCENTED],  # unchanged: no normalisation on the way in
        "row": [1, 2],
    }
    assert valid.invoices["item_number"].tolist() == ["F1001", "F1002"]
    assert valid.invoices["amount"].dtype == "int64"
    assert valid.invoices["amount"].tolist() == [99_999_999_999_999, 250_000]
    assert valid.invoices["due_date"].tolist() == [date(2026, 11, 20)] * 2
    assert valid.invoices["issued_on"].map(type).tolist() == [date, date]
    assert valid.invoices["status"].tolist() == ["OPEN", "CANCELLED"]
    assert valid.recharges[["item_number", "row"]].values.tolist() == [["R2001", 5]]
    assert list(valid.payments.columns) == [
        "item_kind",
        "item_number",
        "subscriber_number",
        "amount",
        "paid_on",
        "channel",
        "row",
    ]
    assert valid.payments["paid_on"].tolist() == [date(2026, 11, 24), date(2026, 11, 25)]
    assert valid.sha256 == hashlib.sha256(valid.path.read_bytes()).hexdigest()
    report = json.loads(json.dumps(valid.to_dict()))
    assert report["accepted"] == {"subscribers": 2, "invoices": 2, "recharges": 1, "payments": 2}


def test_the_extract_date_comes_from_the_name(tmp_path: Path) -> None:
    assert extract_date_of(tmp_path / "BILL_20261125_07.csv") == date(2026, 11, 25)
    assert extract_date_of(tmp_path / "BILL_2026112_01.csv") is None
    assert extract_date_of(tmp_path / "bill_20261125_01.csv") is None


BROKEN: list[dict[str, object]] = [
    subscriber("0000000001", "BENALI"),  # 1: fine
    {"record": "REFUND", "subscriber_number": "0000000001"},  # 2
    subscriber("12345", "KACI"),  # 3
    subscriber("0000000004", ""),  # 4: empty cell = null
    subscriber("0000000005", "A" * 61),  # 5
    subscriber("0000000006", "   "),  # 6
    item("INVOICE", "f12"),  # 7
    payment("F1", kind="XX"),  # 8
    item("INVOICE", "F8", amount="12.5"),  # 9
    item("INVOICE", "F9", amount="1e3"),  # 10
    item("INVOICE", "F10", amount=0),  # 11
    item("INVOICE", "F11", issued_on="2026-02-30"),  # 12
    item("INVOICE", "F12", due_date="25/11/2026"),  # 13
    item("INVOICE", "F13", issued_on=date(2026, 11, 21)),  # 14: due 11-20 < issued
    item("INVOICE", "F14", status="PENDING"),  # 15
    item("RECHARGE", "R15", status="OPEN"),  # 16
    payment("F16", channel="ONLINE"),  # 17
    item("INVOICE", "F17"),  # 18 and 19: same invoice twice
    item("INVOICE", "F17", amount=1),  # 19
    subscriber("0000000001", "BENALI BIS", amount=5),  # 20: duplicate subscriber + amount on a subscriber
    payment("F20"),  # 21 and 22: the same payment twice
    payment("F20"),  # 22
    item("RECHARGE", "F18", amount=""),  # 23: amount required
    {"record": "", "subscriber_number": "0000000009"},  # 24
    item("RECHARGE", "F17"),  # 25: fine, an invoice number may equal an order number
]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> CheckedExtract:
    return check_extract(write_csv_text(tmp_path_factory.mktemp("broken"), BROKEN))


def test_each_rule_rejects_the_right_row_with_field_and_reason(broken: CheckedExtract) -> None:
    invoice_key = "duplicate INVOICE key, rows 18, 19"
    assert reasons(broken) == {
        (2, "record", "The record type is SUBSCRIBER, INVOICE, RECHARGE or PAYMENT."),
        (3, "subscriber_number", "A subscriber number is 10 digits."),
        (4, "subscriber_name", "is required on a SUBSCRIBER record"),
        (
            5,
            "subscriber_name",
            "A subscriber name is 1 to 60 characters once surrounding spaces are stripped.",
        ),
        (
            6,
            "subscriber_name",
            "A subscriber name is 1 to 60 characters once surrounding spaces are stripped.",
        ),
        (7, "item_number", "An invoice or recharge order number is 1 to 20 characters A-Z 0-9."),
        (8, "item_kind", "A payment pays an invoice (FA) or a recharge order (RA)."),
        (9, "amount", "is not a whole number of centimes (digits only: no decimals, no exponent)"),
        (10, "amount", "is not a whole number of centimes (digits only: no decimals, no exponent)"),
        (11, "amount", "An amount is 1 to 99,999,999,999,999 centimes."),
        (12, "issued_on", "is not a date written YYYY-MM-DD"),
        (13, "due_date", "is not a date written YYYY-MM-DD"),
        (14, "due_date", "is before issued_on"),
        (15, "status", "An invoice is OPEN or CANCELLED."),
        (16, "status", "A recharge order is PENDING, CONFIRMED or CANCELLED."),
        (17, "channel", "A payment was made at the COUNTER or by CARD."),
        (18, "item_number", invoice_key),
        (19, "item_number", invoice_key),
        (1, "subscriber_number", "duplicate SUBSCRIBER key, rows 1, 20"),
        (20, "subscriber_number", "duplicate SUBSCRIBER key, rows 1, 20"),
        (20, "amount", "must be empty on a SUBSCRIBER record"),
        (21, "item_kind,item_number,paid_on,channel", "duplicate PAYMENT key, rows 21, 22"),
        (22, "item_kind,item_number,paid_on,channel", "duplicate PAYMENT key, rows 21, 22"),
        (23, "amount", "is required on a RECHARGE record"),
        (24, "record", "is required"),
    }
    assert [r.row for r in broken.rejections] == sorted(r.row for r in broken.rejections)


def test_rejected_rows_stay_out_and_the_rest_is_accepted(broken: CheckedExtract) -> None:
    assert broken.rejected_rows() == set(range(1, 25))
    assert broken.subscribers.empty and broken.invoices.empty and broken.payments.empty
    assert broken.recharges[["item_number", "row"]].values.tolist() == [["F17", 25]]
    assert broken.to_dict()["rejected_rows"] == 24


def test_rejections_show_the_value_as_written_cut_to_40(broken: CheckedExtract) -> None:
    values = {(r.row, r.field): r.value for r in broken.rejections}
    assert values[(9, "amount")] == "12.5" and values[(10, "amount")] == "1e3"
    assert values[(12, "issued_on")] == "2026-02-30"
    assert values[(5, "subscriber_name")] == "A" * 37 + "..."
    assert values[(21, "item_kind,item_number,paid_on,channel")] == "FA/F20/2026-11-24/COUNTER"
    assert values[(24, "record")] == "" and {r.record for r in broken.rejections if r.row == 24} == {None}


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("BILL_20261125_1.csv", "not a billing extract name"),
        ("BILL_20261125_00.csv", "not a billing extract name"),
        ("BILL_20261125_01.txt", "not a billing extract name"),
        ("BILL_20261332_01.csv", "20261332 in the name is not a date"),
    ],
)
def test_a_bad_name_is_an_extract_error(tmp_path: Path, name: str, problem: str) -> None:
    path = write_csv_text(tmp_path, VALID, name)
    with pytest.raises(ExtractError, match=problem) as error:
        check_extract(path)
    assert name in str(error.value)


def test_missing_unknown_or_mistyped_columns_make_the_file_unusable(tmp_path: Path) -> None:
    table = pq.read_table(_written(tmp_path, "parquet"))
    cases = {
        "missing column(s): channel": table.drop_columns(["channel"]),
        "unknown column(s): note": table.append_column("note", pa.array([""] * table.num_rows)),
        "column amount is of type double, expected int64": table.set_column(
            table.column_names.index("amount"), "amount", table.column("amount").cast(pa.float64())
        ),
        "column due_date is of type string, expected date32": table.set_column(
            table.column_names.index("due_date"), "due_date", table.column("due_date").cast(pa.string())
        ),
    }
    for problem, broken in cases.items():
        path = tmp_path / f"{NAME}.parquet"
        pq.write_table(broken, path)
        with pytest.raises(ExtractError, match=re.escape(problem)) as error:
            check_extract(path)
        assert str(error.value).startswith(f"{NAME}.parquet: ")
    csv_path = _written(tmp_path, "csv")
    csv_path.write_text(
        csv_path.read_text(encoding="utf-8").replace('"channel"', '"chanel"', 1), encoding="utf-8"
    )
    with pytest.raises(ExtractError, match="missing column"):
        check_extract(csv_path)


def test_unreadable_files_are_extract_errors(tmp_path: Path) -> None:
    garbage = tmp_path / f"{NAME}.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(ExtractError, match="unreadable PARQUET"):
        check_extract(garbage)
    latin1 = tmp_path / f"{NAME}.csv"
    latin1.write_bytes(",".join(COLUMNS).encode() + b"\nSUBSCRIBER,0000000001,B\xe9nali,,,,,,,,\n")
    with pytest.raises(ExtractError, match="unreadable CSV"):
        check_extract(latin1)
    with pytest.raises(ExtractError, match="cannot be read"):
        check_extract(tmp_path / "BILL_20261125_02.csv")


def test_an_empty_extract_is_valid(tmp_path: Path) -> None:
    for suffix in ("csv", "parquet"):
        path = tmp_path / f"{NAME}.{suffix}"
        write_extract(pd.DataFrame(columns=list(COLUMNS)), path)
        checked = check_extract(path)
        assert checked.row_count == 0 and checked.rejections == () and checked.invoices.empty


def test_write_extract_refuses_what_the_schema_cannot_hold(tmp_path: Path) -> None:
    path = tmp_path / f"{NAME}.parquet"
    with pytest.raises(ValueError, match="amount"):
        write_extract(pd.DataFrame([item("INVOICE", "F1", amount=12.5)]), path)
    with pytest.raises(ValueError, match="outside the extract schema: note"):
        write_extract(pd.DataFrame([item("INVOICE", "F1", note="x")]), path)
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        write_extract(pd.DataFrame([item("INVOICE", "F1")]), tmp_path / f"{NAME}.json")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_the_schema_and_its_suite_agree_and_drift_is_caught() -> None:
    schema = load_schema()
    spec = load_suite_spec(schema.suite)
    assert suite_drift(schema, spec) == []
    spec["expectations"] = [e for e in spec["expectations"] if e["kwargs"].get("column") != "channel"]
    spec["expectations"][0]["kwargs"]["value_set"] = ["SUBSCRIBER"]
    drift = suite_drift(schema, spec)
    assert len(drift) == 3 and any("channel" in d for d in drift)


def _written(folder: Path, suffix: str) -> Path:
    path = folder / f"{NAME}.{suffix}"
    write_extract(pd.DataFrame(VALID), path)
    return path
