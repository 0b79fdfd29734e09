"""The data-quality gate every batch of debit instructions passes before a PRLV file is written.

Two layers, on purpose:

1. Row screening (vectorised pandas/numpy): an instruction that is bad on its own (a name with nothing
   sendable left, a RIP the post office would reject, an amount above the mandate's ceiling) is held
   back with a reason code; the others go on. Holding such a row is routine business, not a failure.
2. The ``prlv_batch`` expectation suite (schemas/expectations/prlv_batch.json) on the rows that go on:
   invariants of the whole batch. A failure there means a bug upstream, and the file must not be written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from epay.calendar import BusinessCalendar
from epay.formats.rip import RIP_LENGTH, mask_rip, rip_keys_ok, rip_prefix_ok, rip_problem
from epay.formats.text import normalize_text_block, padded_block
from epay.quality.runner import ExpectationOutcome, SuiteResult, jsonable, validate_frame

__all__ = [
    "BATCH_COLUMNS",
    "HOLD_REASONS",
    "MAX_AMOUNT",
    "NAME_WIDTH",
    "SUITE",
    "GateResult",
    "gate_batch",
]

SUITE: Final = "prlv_batch"
BATCH_COLUMNS: Final = (
    "reference",
    "operation",
    "rip",
    "debtor_name",
    "amount",
    "ceiling",
    "mandate_reference",
    "item_number",
    "due_date",
)
HOLD_REASONS: Final = ("name_to_correct", "rip_invalid", "above_ceiling")  # checked in this order
NAME_WIDTH: Final = 30  # the PRLV debtor_name field
MAX_AMOUNT: Final = 99_999_999_999_999  # the 14-digit amount field
REFERENCES_LISTED: Final = 20  # offending references named per failed expectation
HELD_LISTED: Final = 100  # held rows listed in the JSON report (all are counted)
_MASKED_COLUMNS: Final = frozenset({"rip"})  # values never shown in clear in a report


@dataclass(frozen=True)
class GateResult:
    accepted: pd.DataFrame  # rows that may be written: original columns and order, names normalised
    held: pd.DataFrame  # rows held back: original columns + reason + detail (RIP masked)
    suite: SuiteResult  # prlv_batch on the accepted rows

    @property
    def passed(self) -> bool:
        return self.suite.success

    def references(self, outcome: ExpectationOutcome) -> list[str]:
        """Distinct end-to-end references of the first rows an expectation failed on."""
        rows = list(outcome.unexpected_rows[: REFERENCES_LISTED * 2])
        distinct = dict.fromkeys(_text(v) for v in self.accepted["reference"].iloc[rows])
        return list(distinct)[:REFERENCES_LISTED]

    def failure_message(self) -> str:
        """One line per failed expectation: its rule, the row count and the offending references."""
        total = len(self.accepted)
        if self.passed:
            return f"suite {SUITE} passed on {total} instruction(s)"
        lines = [f"suite {SUITE} failed on {total} instruction(s); the PRLV file must not be written:"]
        for outcome in self.suite.failures():
            refs = self.references(outcome)
            listed = ", ".join(refs) or "(none)"
            if outcome.unexpected_count > len(refs):
                listed += " (first distinct ones)"
            lines.append(
                f"- {outcome.expectation} on {outcome.column}: {outcome.rule} "
                f"{outcome.unexpected_count} row(s); references: {listed}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The gate's JSON report; a RIP only ever appears masked."""
        held = self.held.head(HELD_LISTED)
        return {
            "suite": SUITE,
            "passed": self.passed,
            "rows": len(self.accepted) + len(self.held),
            "accepted": len(self.accepted),
            "held": len(self.held),
            "held_by_reason": {r: int((self.held["reason"] == r).sum()) for r in HOLD_REASONS},
            "held_rows": [
                {"reference": _text(ref), "reason": reason, "detail": detail}
                for ref, reason, detail in zip(held["reference"], held["reason"], held["detail"], strict=True)
            ],
            "failures": [
                {
                    "expectation": o.expectation,
                    "column": o.column,
                    "rule": o.rule,
                    "unexpected_count": o.unexpected_count,
                    "references": self.references(o),
                    "values": [_shown(o.column, v) for v in o.unexpected_values],
                }
                for o in self.suite.failures()
            ],
        }


def _text(value: object) -> str:
    """A cell as text, "" for a missing value."""
    missing = value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
    return "" if missing else str(value)


def _shown(column: str | None, value: object) -> object:
    """A failing value for the report: JSON-ready, a RIP masked."""
    if column in _MASKED_COLUMNS and value is not None:
        return mask_rip(_text(value))
    return jsonable(value)


# --- screening ---------------------------------------------------------------------------------------


def _strings(values: pd.Series) -> pa.Array:
    """A pandas column as an Arrow string array (nulls kept as nulls)."""
    return pa.array(values.astype(object).to_numpy(), type=pa.string(), from_pandas=True)


def normalized_names(names: pd.Series) -> tuple[pd.Series, npt.NDArray[np.bool_]]:
    """The A-field form of each name (at most NAME_WIDTH, trailing spaces cut) and the empty-name mask."""
    block, empty = normalize_text_block(_strings(names), NAME_WIDTH)
    fixed = pa.Array.from_buffers(pa.binary(NAME_WIDTH), len(block), [None, pa.py_buffer(block.tobytes())])
    trimmed = pc.utf8_rtrim(fixed.cast(pa.binary()).cast(pa.string()), characters=" ")
    return pd.Series(trimmed.to_numpy(zero_copy_only=False), index=names.index, dtype="str"), empty


def rip_checks(rips: pd.Series) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(well formed: 20 digits with prefix 00799999, key right) per RIP, vectorised."""
    values = _strings(rips)
    digits_ok = pc.match_substring_regex(values, f"^[0-9]{{{RIP_LENGTH}}}$").fill_null(False)
    safe = pc.if_else(digits_ok, values, "0" * RIP_LENGTH)
    digits = padded_block(safe, RIP_LENGTH) - ord("0")
    well_formed = np.asarray(digits_ok.to_numpy(zero_copy_only=False), dtype=np.bool_)
    return well_formed & rip_prefix_ok(digits), well_formed & rip_keys_ok(digits)


def _integers(values: pd.Series, column: str) -> npt.NDArray[np.int64]:
    if not pd.api.types.is_integer_dtype(values.dtype):
        raise TypeError(f"batch column {column!r} must hold integer centimes, got dtype {values.dtype}")
    return np.asarray(values.fillna(0).to_numpy(dtype=np.int64), dtype=np.int64)


def _screen(batch: pd.DataFrame) -> tuple[npt.NDArray[np.object_], pd.Series, npt.NDArray[np.bool_]]:
    """(hold reason or None per row, normalised names, RIP-key-valid mask); the first reason applies."""
    names, empty_name = normalized_names(batch["debtor_name"])
    prefix_ok, key_ok = rip_checks(batch["rip"])
    amount = _integers(batch["amount"], "amount")
    ceiling = _integers(batch["ceiling"], "ceiling")
    codes = np.zeros(len(batch), dtype=np.int8)  # 0 = goes on, else 1 + index in HOLD_REASONS
    checks = (empty_name, ~(prefix_ok & key_ok), (ceiling > 0) & (amount > ceiling))
    for code, bad in enumerate(checks, start=1):
        codes[(codes == 0) & bad] = code
    reasons = np.array((None, *HOLD_REASONS), dtype=object)[codes]
    return reasons, names, key_ok


def _detail(reason: str, name: object, rip: object, amount: object, ceiling: object) -> str:
    """A short explanation of a hold; a RIP only appears masked."""
    if reason == "name_to_correct":
        return "debtor name has no A-field character left once normalised (e.g. Arabic script only)"
    if reason == "rip_invalid":
        text = _text(rip)
        return f"RIP {mask_rip(text)}: {rip_problem(text) or 'invalid'}"
    return f"amount {amount} is above the mandate's ceiling {ceiling} (centimes)"


def _details(held: pd.DataFrame) -> list[str]:
    columns = (held[c] for c in ("reason", "debtor_name", "rip", "amount", "ceiling"))
    return [_detail(*row) for row in zip(*columns, strict=True)]


# --- the gate ----------------------------------------------------------------------------------------


def _as_datetime64(values: pd.Series) -> pd.Series:
    """Dates given as datetime.date objects, datetime64 or Arrow date32 -> datetime64[ns] (NaT for null)."""
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.astype("datetime64[ns]")
    arrow = pa.array(values.astype(object).to_numpy(), type=pa.date32(), from_pandas=True)
    days = arrow.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False)
    return pd.Series(days, index=values.index, dtype="datetime64[ns]")


def _suite_frame(
    accepted: pd.DataFrame,
    key_ok: npt.NDArray[np.bool_],
    business_date: date,
    settlement_date: date,
    calendar: BusinessCalendar,
) -> pd.DataFrame:
    """The accepted rows plus the helper columns the prlv_batch suite reads (positional index)."""
    accepted = accepted.reset_index(drop=True)
    ceiling = accepted["ceiling"].fillna(0).astype("int64")
    n = len(accepted)
    return pd.DataFrame(
        {
            "reference": accepted["reference"],
            "operation": accepted["operation"],
            "rip": accepted["rip"],
            "rip_key_valid": key_ok,
            "debtor_name": accepted["debtor_name"],
            "amount": accepted["amount"],
            "ceiling_limit": ceiling.where(ceiling > 0, MAX_AMOUNT),
            "mandate_reference": accepted["mandate_reference"],
            "item_number": accepted["item_number"],
            "due_date": _as_datetime64(accepted["due_date"]),
            "business_date": np.full(n, np.datetime64(business_date, "ns")),
            "settlement_date": np.full(n, np.datetime64(settlement_date, "ns")),
            "settlement_is_business_day": np.full(n, calendar.is_business_day(settlement_date)),
        }
    )


def gate_batch(
    batch: pd.DataFrame, *, business_date: date, settlement_date: date, calendar: BusinessCalendar
) -> GateResult:
    """Screen ``batch`` row by row, then check the rows that go on against the ``prlv_batch`` suite.

    ``batch`` has the columns of BATCH_COLUMNS (amount and ceiling integer centimes, ceiling 0 = none).
    Raises KeyError for a missing column and TypeError for non-integer amounts: those are caller bugs.
    """
    missing = [c for c in BATCH_COLUMNS if c not in batch.columns]
    if missing:
        raise KeyError(f"the batch lacks column(s): {', '.join(missing)}")
    reasons, names, key_ok = _screen(batch)
    go_on = np.asarray(pd.isna(reasons))
    accepted = batch[go_on].copy()
    accepted["debtor_name"] = names[go_on].to_numpy()  # by position: the index may repeat labels
    held = batch[~go_on].copy()
    held["reason"] = pd.array(reasons[~go_on], dtype="str")
    held["detail"] = pd.array(_details(held), dtype="str")
    frame = _suite_frame(accepted, key_ok[go_on], business_date, settlement_date, calendar)
    return GateResult(accepted=accepted, held=held, suite=validate_frame(frame, SUITE))
