"""The GX suite runner and the outbound gate before a PRLV file is written.

Each GX run costs a fraction of a second once GX is imported (seconds, once per process), so defects
are grouped: one screening batch, one broken batch, one run per settlement-date case.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from epay.calendar import BusinessCalendar
from epay.formats.rip import mask_rip, rip_from_account
from epay.quality import runner
from epay.quality.outbound_gate import GateResult, gate_batch
from epay.quality.runner import SuiteError, load_suite_spec, validate_frame

BUSINESS = date(2026, 11, 25)  # Wednesday
SETTLES = date(2026, 11, 26)  # Thursday, a business day
GOOD_RIP = rip_from_account(1234567)


def rip_with_wrong_key(account: int) -> str:
    rip = rip_from_account(account)
    return rip[:18] + f"{(int(rip[18:]) + 1) % 100:02d}"


def instruction(n: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "reference": f"E{n:011d}",
        "operation": "FA" if n % 2 else "RA",
        "rip": rip_from_account(1000 + n),
        "debtor_name": f"Benali Mohamed {n}",
        "amount": 10_000 + n,
        "ceiling": 0,
        "mandate_reference": f"M{n:07d}",
        "item_number": f"F{n:07d}",
        "due_date": date(2026, 11, 20),
    }
    return row | changes


def batch(*rows: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    return frame.astype({"amount": "int64", "ceiling": "int64"})


def gate(frame: pd.DataFrame, calendar: BusinessCalendar, settlement: date = SETTLES) -> GateResult:
    return gate_batch(frame, business_date=BUSINESS, settlement_date=settlement, calendar=calendar)


def failed(result: GateResult) -> dict[tuple[str, str | None], list[str]]:
    """(expectation, column) -> offending references, for every failed expectation."""
    return {(o.expectation, o.column): result.references(o) for o in result.suite.failures()}


# --- screening ---------------------------------------------------------------------------------------

SCREENED = batch(
    instruction(1, debtor_name="Zoé Bénaïssa-Œuvré l’Hadj"),
    instruction(2, debtor_name="محمد بن علي"),  # Arabic only: nothing sendable
    instruction(3, rip=rip_with_wrong_key(3)),
    instruction(4, rip="00812345000012345687"),  # wrong bank code
    instruction(5, rip="0079999900001234"),  # not 20 digits
    instruction(6, amount=50_001, ceiling=50_000),
    instruction(7, amount=50_000, ceiling=50_000),  # at the ceiling: fine
    instruction(8, amount=99_999_999, ceiling=0),  # no ceiling
    instruction(9, debtor_name="  ", rip="123", amount=9, ceiling=1),  # all three: the first wins
    instruction(10, debtor_name=None),
).set_axis(range(100, 110))  # labels that are not positions


@pytest.fixture(scope="module")
def screened(calendar: BusinessCalendar) -> GateResult:
    return gate(SCREENED, calendar)


def test_each_bad_row_is_held_with_its_reason_and_the_rest_go_on(screened: GateResult) -> None:
    held = dict(zip(screened.held["reference"], screened.held["reason"], strict=True))
    assert held == {
        "E00000000002": "name_to_correct",
        "E00000000003": "rip_invalid",
        "E00000000004": "rip_invalid",
        "E00000000005": "rip_invalid",
        "E00000000006": "above_ceiling",
        "E00000000009": "name_to_correct",
        "E00000000010": "name_to_correct",
    }
    assert screened.accepted["reference"].tolist() == ["E00000000001", "E00000000007", "E00000000008"]
    assert screened.passed, screened.failure_message()


def test_accepted_rows_keep_columns_and_order_with_normalised_names(screened: GateResult) -> None:
    assert list(screened.accepted.columns) == list(SCREENED.columns)
    assert screened.accepted.index.tolist() == [100, 106, 107]
    assert screened.accepted["debtor_name"].tolist() == [
        "ZOE BENAISSA-OEUVRE L'HADJ",
        "BENALI MOHAMED 7",
        "BENALI MOHAMED 8",
    ]
    assert screened.accepted["amount"].dtype == np.int64
    assert SCREENED.loc[100, "debtor_name"] == "Zoé Bénaïssa-Œuvré l’Hadj"  # the input is not modified


def test_repeated_index_labels_do_not_mix_rows_up(calendar: BusinessCalendar) -> None:
    result = gate(SCREENED.set_axis([7] * len(SCREENED)), calendar)
    assert result.accepted["reference"].tolist() == ["E00000000001", "E00000000007", "E00000000008"]
    assert result.accepted["debtor_name"].tolist()[1:] == ["BENALI MOHAMED 7", "BENALI MOHAMED 8"]
    assert result.held["reason"].tolist()[:2] == ["name_to_correct", "rip_invalid"]


def test_held_rows_explain_themselves_with_masked_rips(screened: GateResult) -> None:
    assert list(screened.held.columns) == [*SCREENED.columns, "reason", "detail"]
    detail = dict(zip(screened.held["reference"], screened.held["detail"], strict=True))
    wrong_key = rip_with_wrong_key(3)
    assert detail["E00000000003"].startswith(f"RIP {mask_rip(wrong_key)}: key ")
    assert "bank code 008" in detail["E00000000004"]
    assert "not 20 digits" in detail["E00000000005"]
    assert "50001" in detail["E00000000006"] and "50000" in detail["E00000000006"]
    # the explanation names the problem, never the subscriber (reports are read by many)
    assert "no A-field character" in detail["E00000000002"] and "محمد" not in detail["E00000000002"]


def test_the_report_never_shows_a_full_rip(screened: GateResult) -> None:
    report = json.dumps(screened.to_dict(), ensure_ascii=False) + screened.failure_message()
    for rip in SCREENED["rip"]:
        assert len(rip) < 20 or rip not in report
    assert report.count("****") >= 3  # the held RIPs are there, masked
    assert screened.to_dict()["held_by_reason"] == {
        "name_to_correct": 3,
        "rip_invalid": 3,
        "above_ceiling": 1,
    }


# --- the suite: batch invariants ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken(calendar: BusinessCalendar) -> GateResult:
    return gate(
        batch(
            instruction(1),
            instruction(2, reference="E00000000001"),  # duplicated reference
            instruction(3, amount=0),
            instruction(4, due_date=date(2026, 11, 26)),  # due after the business date
            instruction(5, operation="XX"),
            instruction(6, mandate_reference="   "),
            instruction(7, reference="e-7"),
            instruction(8),
        ),
        calendar,
    )


def test_a_broken_batch_fails_naming_each_rule_and_its_rows(broken: GateResult) -> None:
    assert not broken.passed
    assert len(broken.held) == 0  # nothing here is a per-row hold: these are upstream bugs
    assert failed(broken) == {
        ("expect_column_values_to_be_unique", "reference"): ["E00000000001"],
        ("expect_column_values_to_be_between", "amount"): ["E00000000003"],
        ("expect_column_pair_values_a_to_be_greater_than_b", "business_date,due_date"): ["E00000000004"],
        ("expect_column_values_to_be_in_set", "operation"): ["E00000000005"],
        ("expect_column_values_to_match_regex", "mandate_reference"): ["E00000000006"],
        ("expect_column_values_to_match_regex", "reference"): ["e-7"],
    }
    assert broken.suite.failed_rows().tolist() == [0, 1, 2, 3, 4, 5, 6]


def test_the_failure_message_names_rules_and_references(broken: GateResult) -> None:
    message = broken.failure_message()
    for text in ("E00000000001", "E00000000003", "E00000000004", "E00000000005", "e-7"):
        assert text in message
    assert "The operation is FA (invoice) or RA (ADSL recharge)." in message
    assert "E00000000008" not in message
    report = broken.to_dict()
    assert report["passed"] is False and report["accepted"] == 8
    by_column = {f["column"]: f for f in report["failures"]}
    assert by_column["amount"]["references"] == ["E00000000003"] and by_column["amount"]["values"] == [0]
    assert by_column["business_date,due_date"]["values"] == [["2026-11-25T00:00:00", "2026-11-26T00:00:00"]]
    json.dumps(report)


@pytest.mark.parametrize(
    "settlement",
    [date(2026, 11, 27), date(2026, 11, 25)],
    ids=["a Friday", "the business date itself"],
)
def test_settlement_date_must_be_a_later_business_day(calendar: BusinessCalendar, settlement: date) -> None:
    result = gate(batch(instruction(1), instruction(2)), calendar, settlement)
    assert not result.passed
    assert all(refs == ["E00000000001", "E00000000002"] for refs in failed(result).values())
    assert "E00000000001, E00000000002" in result.failure_message()


def test_settlement_on_a_holiday_fails(calendar: BusinessCalendar) -> None:
    revolution_day = date(2026, 11, 1)  # a Sunday
    assert not calendar.is_business_day(revolution_day)
    result = gate_batch(
        batch(instruction(1, due_date=date(2026, 10, 29))),
        business_date=date(2026, 10, 29),
        settlement_date=revolution_day,
        calendar=calendar,
    )
    assert list(failed(result)) == [("expect_column_values_to_be_in_set", "settlement_is_business_day")]
    assert "E00000000001" in result.failure_message()


def test_a_clean_batch_passes_whatever_the_date_type(calendar: BusinessCalendar) -> None:
    clean = batch(*(instruction(n) for n in range(1, 6)))
    due = clean["due_date"]
    for dates in (
        due,
        pd.Series(pd.to_datetime(due), dtype="datetime64[ns]"),
        pd.Series(pa.array(due, pa.date32()).to_pandas(types_mapper=pd.ArrowDtype)),
    ):
        result = gate(clean.assign(due_date=dates), calendar)
        assert result.passed, result.failure_message()
        assert len(result.accepted) == 5 and len(result.held) == 0
        assert result.failure_message() == "suite prlv_batch passed on 5 instruction(s)"


def test_an_empty_batch_passes(calendar: BusinessCalendar) -> None:
    empty = batch(instruction(1)).iloc[0:0]
    result = gate(empty, calendar)
    assert result.passed and result.accepted.empty and result.held.empty
    assert result.to_dict()["rows"] == 0


def test_a_batch_missing_a_column_is_a_caller_bug(calendar: BusinessCalendar) -> None:
    with pytest.raises(KeyError, match="ceiling"):
        gate(batch(instruction(1)).drop(columns="ceiling"), calendar)
    with pytest.raises(TypeError, match="amount"):
        gate(batch(instruction(1)).astype({"amount": "float64"}), calendar)


# --- the runner on its own ---------------------------------------------------------------------------


def write_suite(folder: Path, name: str, expectations: list[dict[str, object]]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "expectations": expectations}), encoding="utf-8")
    return folder


def rule(kind: str, text: str, **kwargs: object) -> dict[str, object]:
    return {"type": kind, "kwargs": kwargs, "meta": {"rule": text}}


def test_runner_reports_positions_all_rows_and_json(tmp_path: Path) -> None:
    folder = write_suite(
        tmp_path,
        "small",
        [
            rule("expect_column_values_to_be_between", "x is 1..9", column="x", min_value=1, max_value=9),
            rule("expect_column_values_to_match_regex", "code is upper", column="code", regex="^[A-Z]+$"),
        ],
    )
    n = 50
    frame = pd.DataFrame(
        {"x": np.where(np.arange(n) % 2 == 0, 0, 5), "code": ["AB"] * n},
        index=pd.RangeIndex(100, 100 + n),  # not positions: the runner must report positions
    )
    result = validate_frame(frame, "small", suites_dir=folder)
    x_rule, code_rule = result.outcomes
    assert (x_rule.rule, x_rule.column, x_rule.success, x_rule.unexpected_count) == (
        "x is 1..9",
        "x",
        False,
        25,
    )
    assert x_rule.unexpected_rows == tuple(range(0, n, 2))  # all of them, not the first 20
    assert x_rule.unexpected_values == (0,) * 20
    assert code_rule.success and result.failures() == [x_rule]
    assert result.failed_rows().tolist() == list(range(0, n, 2))
    report = json.loads(json.dumps(result.to_dict()))
    assert report["failed_rows"] == 25 and report["outcomes"][0]["unexpected_rows"][:3] == [0, 2, 4]


def test_runner_reuses_its_context_and_picks_up_a_changed_suite(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3]})
    folder = write_suite(
        tmp_path, "s", [rule("expect_column_values_to_be_between", "r", column="x", max_value=3)]
    )
    assert validate_frame(frame, "s", suites_dir=folder).success
    engine = runner._engine
    write_suite(tmp_path, "s", [rule("expect_column_values_to_be_between", "r", column="x", max_value=2)])
    assert not validate_frame(frame, "s", suites_dir=folder).success
    assert runner._engine is engine and engine is not None
    assert len(engine.context.validation_results_store.list_keys()) == 0  # nothing piles up


def test_runner_refuses_malformed_suites_and_missing_columns(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite_spec("nope", tmp_path)
    write_suite(
        tmp_path, "norule", [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "x"}}]
    )
    with pytest.raises(SuiteError, match=r"meta\.rule"):
        load_suite_spec("norule", tmp_path)
    (tmp_path / "renamed.json").write_text(json.dumps({"name": "other", "expectations": []}))
    with pytest.raises(SuiteError, match="'name' must be 'renamed'"):
        load_suite_spec("renamed", tmp_path)
    with pytest.raises(SuiteError, match="the frame lacks: amount, business_date"):
        validate_frame(pd.DataFrame({"y": [1]}), "prlv_batch")


def test_the_shipped_suites_load() -> None:
    for name in ("prlv_batch", "billing_extract"):
        spec = load_suite_spec(name)
        assert spec["expectations"], name
