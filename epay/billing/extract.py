"""Read and check the billing system's daily extract (pure: no database).

The contract is data: ``schemas/billing/extract.toml`` (columns, types, which record types need which
column, value rules, name pattern, uniqueness keys) and the Great Expectations suite it names
(``schemas/expectations/billing_extract.json``) for the value rules. This module only interprets them.

Two levels of failure:

* the file as a whole is unusable (bad name, unreadable, missing/unknown columns, wrong Parquet types):
  :class:`ExtractError`, nothing is accepted;
* a row breaks a rule: it gets one :class:`RowRejection` per broken rule and stays out of the accepted
  frames; the other rows are accepted.

Amounts stay int64 from file to frame: a CSV amount with decimals or an exponent is a rejection.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from epay.quality.runner import SUITES_DIR, load_suite_spec, validate_frame

__all__ = [
    "SCHEMA_FILE",
    "CheckedExtract",
    "ColumnSpec",
    "ExtractError",
    "ExtractSchema",
    "RowRejection",
    "SchemaError",
    "check_extract",
    "extract_date_of",
    "load_schema",
    "suite_drift",
    "write_extract",
]

SCHEMA_FILE: Final = Path(__file__).resolve().parents[2] / "schemas" / "billing" / "extract.toml"
VALUE_WIDTH: Final = 40  # a rejected value is cut to this many characters
REJECTIONS_LISTED: Final = 1000  # in the JSON report; all are kept and counted
_ARROW_TYPES: Final = {"string": pa.string(), "int64": pa.int64(), "date": pa.date32()}
_CSV_INT: Final = r"^-?[0-9]{1,18}$"
_CSV_DATE: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_PARSE_REASONS: Final = {
    "int64": "is not a whole number of centimes (digits only: no decimals, no exponent)",
    "date": "is not a date written YYYY-MM-DD",
}
FRAME_COLUMNS: Final = {
    "subscribers": ("subscriber_number", "subscriber_name"),
    "invoices": ("subscriber_number", "item_number", "amount", "issued_on", "due_date", "status"),
    "recharges": ("subscriber_number", "item_number", "amount", "issued_on", "due_date", "status"),
    "payments": ("item_kind", "item_number", "subscriber_number", "amount", "paid_on", "channel"),
}
_FRAME_RECORDS: Final = {
    "subscribers": "SUBSCRIBER",
    "invoices": "INVOICE",
    "recharges": "RECHARGE",
    "payments": "PAYMENT",
}


class ExtractError(Exception):
    """The extract as a whole is unusable; the message names the file and the problem."""


class SchemaError(ValueError):
    """The extract schema (TOML) is malformed or disagrees with its expectation suite."""


# --- the schema --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # string | int64 | date
    required_for: frozenset[str]
    allowed: tuple[str, ...] | None = None
    allowed_by_record: Mapping[str, tuple[str, ...]] | None = None
    regex: str | None = None
    min: int | None = None
    max: int | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class UniqueKey:
    record: str
    key: tuple[str, ...]


@dataclass(frozen=True)
class NotBefore:
    column: str
    reference: str
    records: tuple[str, ...]


@dataclass(frozen=True)
class ExtractSchema:
    path: Path
    name_pattern: re.Pattern[str]
    suite: str
    record_types: tuple[str, ...]
    reject_extra_columns: bool
    columns: tuple[ColumnSpec, ...]
    unique: tuple[UniqueKey, ...]
    not_before: tuple[NotBefore, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


_COLUMN_KEYS: Final = frozenset(ColumnSpec.__dataclass_fields__)


def _parse_column(raw: Mapping[str, Any], record_types: tuple[str, ...]) -> ColumnSpec:
    name = raw.get("name")
    unknown = sorted(set(raw) - _COLUMN_KEYS)
    if not isinstance(name, str) or raw.get("type") not in _ARROW_TYPES:
        raise SchemaError(f"column {name!r}: needs a name and a type among {', '.join(_ARROW_TYPES)}")
    if unknown:
        raise SchemaError(f"column {name!r}: unknown key(s) {', '.join(unknown)}")
    required = frozenset(raw.get("required_for", ()))
    by_record = raw.get("allowed_by_record")
    if not required <= set(record_types) or not set(by_record or {}) <= set(record_types):
        raise SchemaError(f"column {name!r}: names a record type outside {list(record_types)}")
    return ColumnSpec(
        name=name,
        type=raw["type"],
        required_for=required,
        allowed=tuple(raw["allowed"]) if "allowed" in raw else None,
        allowed_by_record={k: tuple(v) for k, v in by_record.items()} if by_record else None,
        regex=raw.get("regex"),
        min=raw.get("min"),
        max=raw.get("max"),
        min_length=raw.get("min_length"),
        max_length=raw.get("max_length"),
    )


def _read_schema(path: Path) -> ExtractSchema:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"extract schema {path}: {exc}") from exc
    try:
        if raw.get("format_version") != 1:
            raise SchemaError(f"format_version must be 1, got {raw.get('format_version')!r}")
        records = tuple(raw["record_types"])
        columns = tuple(_parse_column(c, records) for c in raw["columns"])
        names = {c.name for c in columns}
        unique = tuple(UniqueKey(u["record"], tuple(u["key"])) for u in raw.get("unique", ()))
        order = tuple(
            NotBefore(o["column"], o["reference"], tuple(o["records"])) for o in raw.get("not_before", ())
        )
        used = {k for u in unique for k in u.key} | {n for o in order for n in (o.column, o.reference)}
        if "record" not in names or not used <= names:
            raise SchemaError(f"unknown column(s) in rules: {sorted(used - names) or ['record']}")
        if raw.get("extra_columns", "reject") not in ("reject", "ignore"):
            raise SchemaError(f"extra_columns must be reject or ignore, got {raw['extra_columns']!r}")
        return ExtractSchema(
            path=path,
            name_pattern=re.compile(raw["name_pattern"]),
            suite=raw["suite"],
            record_types=records,
            reject_extra_columns=raw.get("extra_columns", "reject") == "reject",
            columns=columns,
            unique=unique,
            not_before=order,
        )
    except (KeyError, TypeError, re.error) as exc:
        raise SchemaError(f"extract schema {path}: malformed ({exc!r})") from exc
    except SchemaError as exc:
        raise SchemaError(f"extract schema {path}: {exc}") from exc


def _schema_rules(schema: ExtractSchema) -> set[tuple[str, str, object, str | None]]:
    """The value rules of the TOML as (expectation type, column, parameters, record condition)."""
    rules: set[tuple[str, str, object, str | None]] = set()
    for c in schema.columns:
        if c.allowed is not None:
            rules.add(("expect_column_values_to_be_in_set", c.name, frozenset(c.allowed), None))
        for record, values in (c.allowed_by_record or {}).items():
            rules.add(("expect_column_values_to_be_in_set", c.name, frozenset(values), record))
        if c.regex is not None:
            rules.add(("expect_column_values_to_match_regex", c.name, c.regex, None))
        if c.min is not None or c.max is not None:
            rules.add(("expect_column_values_to_be_between", c.name, (c.min, c.max), None))
        if c.min_length is not None or c.max_length is not None:
            rules.add(
                ("expect_column_value_lengths_to_be_between", c.name, (c.min_length, c.max_length), None)
            )
    return rules


def _suite_params(kind: str, kwargs: Mapping[str, Any]) -> object:
    if kind == "expect_column_values_to_be_in_set":
        return frozenset(kwargs["value_set"])
    if kind == "expect_column_values_to_match_regex":
        return kwargs["regex"]
    return (kwargs.get("min_value"), kwargs.get("max_value"))


def _record_condition(condition: object) -> str | None:
    """The record type of a ``record == X`` row condition (GX comparison form); other conditions as text."""
    if condition is None:
        return None
    if isinstance(condition, Mapping) and condition.get("type") == "comparison":
        column, operator = condition.get("column"), condition.get("operator")
        if isinstance(column, Mapping) and column.get("name") == "record" and operator == "==":
            return str(condition.get("parameter"))
    return repr(condition)


def _suite_rules(spec: Mapping[str, Any]) -> set[tuple[str, str, object, str | None]]:
    """The suite's expectations in the form of :func:`_schema_rules`."""
    rules: set[tuple[str, str, object, str | None]] = set()
    for exp in spec["expectations"]:
        kwargs = exp["kwargs"]
        record = _record_condition(kwargs.get("row_condition"))
        rules.add((exp["type"], kwargs.get("column"), _suite_params(exp["type"], kwargs), record))
    return rules


def suite_drift(schema: ExtractSchema, suite_spec: Mapping[str, Any]) -> list[str]:
    """Value rules the TOML states but the suite lacks, and the reverse (empty: they agree)."""
    in_toml, in_suite = _schema_rules(schema), _suite_rules(suite_spec)
    return [f"only in {schema.path.name}: {r}" for r in sorted(in_toml - in_suite, key=repr)] + [
        f"only in suite {schema.suite}: {r}" for r in sorted(in_suite - in_toml, key=repr)
    ]


@functools.cache
def _checked_schema(path: Path, suites_dir: Path) -> ExtractSchema:
    schema = _read_schema(path)
    drift = suite_drift(schema, load_suite_spec(schema.suite, suites_dir))
    if drift:
        raise SchemaError(f"extract schema {path} and its suite disagree: " + "; ".join(drift))
    return schema


def load_schema(path: Path | None = None, suites_dir: Path | None = None) -> ExtractSchema:
    """The extract schema, checked against its expectation suite (cached per file)."""
    return _checked_schema(Path(path or SCHEMA_FILE), Path(suites_dir or SUITES_DIR))


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowRejection:
    row: int  # 1-based data row number (the CSV header is not counted)
    record: str | None
    field: str
    value: str  # as written in the file, cut to VALUE_WIDTH characters
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "record": self.record,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CheckedExtract:
    """An extract's accepted rows by record type (RangeIndex, ``row`` = data row number) and its rejections.

    Amounts are int64, dates datetime.date objects, text pandas ``str``.
    """

    extract_id: str  # the file name without extension
    extract_date: date
    path: Path
    sha256: str  # of the file's bytes
    row_count: int
    subscribers: pd.DataFrame  # accepted rows: subscriber_number, subscriber_name, row
    invoices: pd.DataFrame  # subscriber_number, item_number, amount, issued_on, due_date, status, row
    recharges: pd.DataFrame  # same columns as invoices
    payments: pd.DataFrame  # item_kind, item_number, subscriber_number, amount, paid_on, channel, row
    rejections: tuple[RowRejection, ...] = field(default=())  # by row, every broken rule

    def rejected_rows(self) -> set[int]:
        return {r.row for r in self.rejections}

    def to_dict(self) -> dict[str, Any]:
        return {
            "extract_id": self.extract_id,
            "extract_date": self.extract_date.isoformat(),
            "path": str(self.path),
            "sha256": self.sha256,
            "row_count": self.row_count,
            "accepted": {name: len(getattr(self, name)) for name in FRAME_COLUMNS},
            "rejected_rows": len(self.rejected_rows()),
            "rejection_count": len(self.rejections),
            "rejections": [r.to_dict() for r in self.rejections[:REJECTIONS_LISTED]],
        }


# --- reading -----------------------------------------------------------------------------------------


def _name_parts(path: Path, schema: ExtractSchema) -> tuple[str, date, str]:
    match = schema.name_pattern.match(path.name)
    if match is None:
        raise ExtractError(
            f"{path.name}: not a billing extract name (expected e.g. BILL_20261125_01.parquet)"
        )
    try:
        day = datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        raise ExtractError(f"{path.name}: {match['date']} in the name is not a date") from None
    return path.name.rsplit(".", 1)[0], day, match["suffix"]


def extract_date_of(path: Path) -> date | None:
    """The business date in an extract's file name, or None if the name is not an extract name."""
    try:
        return _name_parts(Path(path), load_schema())[1]
    except ExtractError:
        return None


def _read_table(path: Path, data: bytes, suffix: str, schema: ExtractSchema) -> pa.Table:
    try:
        if suffix == "parquet":
            return pq.read_table(pa.BufferReader(data))
        convert = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in schema.names},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        return pacsv.read_csv(pa.BufferReader(data), convert_options=convert)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ExtractError(f"{path.name}: unreadable {suffix.upper()} file: {exc}") from exc


def _check_columns(path: Path, table: pa.Table, schema: ExtractSchema) -> None:
    names = table.column_names
    duplicated = sorted({n for n in names if names.count(n) > 1})
    missing = [n for n in schema.names if n not in names]
    extra = [n for n in names if n not in schema.names] if schema.reject_extra_columns else []
    for problem, columns in (("duplicate", duplicated), ("missing", missing), ("unknown", extra)):
        if columns:
            raise ExtractError(f"{path.name}: {problem} column(s): {', '.join(columns)}")


def _typed_column(path: Path, table: pa.Table, spec: ColumnSpec) -> pa.Array:
    """A Parquet column in the schema's Arrow type; an incompatible type makes the file unusable."""
    column = table.column(spec.name).combine_chunks()
    target = _ARROW_TYPES[spec.type]
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    compatible = kind == target or pa.types.is_null(kind)
    if spec.type == "string":
        compatible |= pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    if not compatible:
        raise ExtractError(f"{path.name}: column {spec.name} is of type {column.type}, expected {target}")
    return column.cast(target)


def _parsed_csv_column(raw: pa.Array, spec: ColumnSpec) -> pa.Array:
    """CSV text -> the schema's type; a text that does not parse becomes null (and a rejection)."""
    if spec.type == "string":
        return raw
    if spec.type == "int64":
        ok = pc.fill_null(pc.match_substring_regex(raw, _CSV_INT), False)
        return pc.if_else(ok, raw, None).cast(pa.int64())
    ok = pc.fill_null(pc.match_substring_regex(raw, _CSV_DATE), False)
    stamps = pc.strptime(pc.if_else(ok, raw, None), format="%Y-%m-%d", unit="s", error_is_null=True)
    # Arrow rolls impossible days over (2026-02-30 -> 2026-03-02): keep a date only if it reads back.
    exact = pc.fill_null(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), raw), False)
    return pc.if_else(exact, stamps, None).cast(pa.date32())


def _mask(values: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=np.bool_)


@dataclass
class _Rows:
    """The extract's columns as given (``raw``) and in their schema types (``typed``), plus findings."""

    schema: ExtractSchema
    raw: dict[str, pa.Array]
    typed: dict[str, pa.Array]
    found: list[tuple[npt.NDArray[np.int64], str, str]] = field(default_factory=list)  # rows, field, reason
    _records: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.raw["record"])

    def reject(self, bad: npt.NDArray[np.bool_], column: str, reason: str) -> None:
        if bad.any():
            self.found.append((np.flatnonzero(bad), column, reason))

    def is_record(self, *records: str) -> npt.NDArray[np.bool_]:
        """Rows whose record type is one of ``records``."""
        result = np.zeros(len(self), dtype=np.bool_)
        for record in records:
            if record not in self._records:
                self._records[record] = _mask(pc.equal(self.typed["record"], record))
            result |= self._records[record]
        return result

    def null(self, column: str) -> npt.NDArray[np.bool_]:
        """Empty in the file."""
        return np.asarray(self.raw[column].is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)

    def null_typed(self, column: str) -> npt.NDArray[np.bool_]:
        """Empty in the file, or not parsable as the column's type."""
        return np.asarray(self.typed[column].is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)


def _load_rows(path: Path, data: bytes, suffix: str, schema: ExtractSchema) -> _Rows:
    table = _read_table(path, data, suffix, schema)
    _check_columns(path, table, schema)
    if suffix == "parquet":
        typed = {c.name: _typed_column(path, table, c) for c in schema.columns}
        return _Rows(schema, raw=typed, typed=typed)
    raw = {c.name: table.column(c.name).combine_chunks() for c in schema.columns}
    rows = _Rows(schema, raw=raw, typed={c.name: _parsed_csv_column(raw[c.name], c) for c in schema.columns})
    for c in schema.columns:
        if c.type in _PARSE_REASONS:
            rows.reject(~rows.null(c.name) & rows.null_typed(c.name), c.name, _PARSE_REASONS[c.type])
    return rows


# --- the rules ---------------------------------------------------------------------------------------


def _check_presence(rows: _Rows) -> None:
    """Each record type fills exactly the columns that apply to it."""
    every = set(rows.schema.record_types)
    for c in rows.schema.columns:
        empty = rows.null(c.name)
        if c.required_for == every:  # also catches a row whose record type is empty or unknown
            rows.reject(empty, c.name, "is required")
            continue
        for record in rows.schema.record_types:
            on = rows.is_record(record)
            if record in c.required_for:
                rows.reject(on & empty, c.name, f"is required on a {record} record")
            else:
                rows.reject(on & ~empty, c.name, f"must be empty on a {record} record")


def _pandas_column(values: pa.Array, spec: ColumnSpec) -> pd.Series:
    if spec.type == "string":
        return pd.Series(values.to_pandas(), dtype="str")
    if spec.type == "int64":
        return pd.Series(values.to_pandas(types_mapper=pd.ArrowDtype))
    stamps = values.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False)
    return pd.Series(stamps, dtype="datetime64[ns]")


def _check_values(rows: _Rows) -> None:
    """The value rules of the expectation suite, on the parsed columns (names stripped)."""
    columns = {c.name: _pandas_column(rows.typed[c.name], c) for c in rows.schema.columns}
    if "subscriber_name" in columns:
        columns["subscriber_name"] = columns["subscriber_name"].str.strip()
    result = validate_frame(pd.DataFrame(columns), rows.schema.suite)
    for outcome in result.failures():
        bad = np.zeros(len(rows), dtype=np.bool_)
        bad[np.asarray(outcome.unexpected_rows, dtype=np.int64)] = True
        rows.reject(bad, outcome.column or "", outcome.rule)


def _check_unique(rows: _Rows) -> None:
    """Every copy of a duplicated key is rejected, naming the rows that share it."""
    for unique in rows.schema.unique:
        candidates = np.flatnonzero(rows.is_record(unique.record))
        keys = pd.DataFrame(
            {k: _pandas_column(rows.typed[k].take(candidates), rows.schema.column(k)) for k in unique.key}
        )
        duplicated = keys.duplicated(keep=False).to_numpy()
        if not duplicated.any():
            continue
        groups = keys[duplicated].groupby(list(unique.key), dropna=False, sort=False).ngroup().to_numpy()
        members = candidates[duplicated]
        for group in np.unique(groups):
            shared = members[groups == group]
            listed = ", ".join(str(r + 1) for r in shared[:5]) + (", ..." if shared.size > 5 else "")
            bad = np.zeros(len(rows), dtype=np.bool_)
            bad[shared] = True
            rows.reject(bad, ",".join(unique.key), f"duplicate {unique.record} key, rows {listed}")


def _check_order(rows: _Rows) -> None:
    for rule in rows.schema.not_before:
        earlier = _mask(pc.less(rows.typed[rule.column], rows.typed[rule.reference]))
        rows.reject(rows.is_record(*rule.records) & earlier, rule.column, f"is before {rule.reference}")


# --- assembling the result ---------------------------------------------------------------------------


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, date) else str(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def _rejections(rows: _Rows) -> tuple[RowRejection, ...]:
    """One RowRejection per finding, ordered by row, then in the order the rules ran."""
    entries = sorted(
        (int(row), order, column, reason)
        for order, (found, column, reason) in enumerate(rows.found)
        for row in found
    )
    cache: dict[str, list[Any]] = {}

    def cell(column: str, row: int) -> object:
        if column not in cache:
            cache[column] = rows.raw[column].to_pylist()
        return cache[column][row]

    def text(column: str, row: int) -> str:
        parts = [_cell_text(cell(c, row)) for c in column.split(",")] if column else [""]
        return _cell_text("/".join(parts))

    return tuple(
        RowRejection(row + 1, _record_or_none(cell("record", row)), column, text(column, row), reason)
        for row, _, column, reason in entries
    )


def _record_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _frame(rows: _Rows, keep: npt.NDArray[np.bool_], columns: Iterable[str]) -> pd.DataFrame:
    picked = np.flatnonzero(keep)
    frame = {}
    for name in columns:
        spec, values = rows.schema.column(name), rows.typed[name].take(picked)
        if spec.type == "int64" and values.null_count == 0:
            frame[name] = pd.Series(values.to_numpy(zero_copy_only=False), dtype="int64")
        elif spec.type == "date":  # datetime.date objects: what every consumer (SQL drivers...) takes
            frame[name] = pd.Series(values.to_pandas(date_as_object=True), dtype=object)
        else:
            frame[name] = _pandas_column(values, spec)
    frame["row"] = pd.Series(picked + 1, dtype="int64")
    return pd.DataFrame(frame)


def check_extract(path: Path) -> CheckedExtract:
    """Read and check one billing extract (Parquet or CSV, by its name)."""
    path = Path(path)
    schema = load_schema()
    extract_id, extract_date, suffix = _name_parts(path, schema)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExtractError(f"{path.name}: cannot be read: {exc.strerror or exc}") from exc
    rows = _load_rows(path, data, suffix, schema)
    for check in (_check_presence, _check_values, _check_unique, _check_order):
        check(rows)
    rejections = _rejections(rows)
    rejected = np.zeros(len(rows), dtype=np.bool_)
    for found, _, _ in rows.found:
        rejected[found] = True
    frames = {
        name: _frame(rows, rows.is_record(_FRAME_RECORDS[name]) & ~rejected, columns)
        for name, columns in FRAME_COLUMNS.items()
    }
    return CheckedExtract(
        extract_id=extract_id,
        extract_date=extract_date,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        row_count=len(rows),
        rejections=rejections,
        **frames,
    )


# --- writing -----------------------------------------------------------------------------------------


def _arrow_column(frame: pd.DataFrame, spec: ColumnSpec) -> pa.Array:
    target = _ARROW_TYPES[spec.type]
    if spec.name not in frame.columns:
        return pa.nulls(len(frame), type=target)
    values = frame[spec.name]
    try:
        if spec.type == "date" and pd.api.types.is_datetime64_any_dtype(values.dtype):
            return pa.array(values, from_pandas=True).cast(target)
        return pa.array(values, type=target, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"column {spec.name}: cannot be written as {target}: {exc}") from exc


def write_extract(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as an extract in the schema's column order and types (Parquet or CSV by suffix).

    Absent schema columns are written empty; a column outside the schema is a ValueError. The file
    appears atomically: written beside the target, flushed to disk, then renamed over it.
    """
    path = Path(path)
    schema = load_schema()
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path.name}: an extract is written as .parquet or .csv")
    unknown = [str(c) for c in frame.columns if c not in schema.names]
    if unknown:
        raise ValueError(f"column(s) outside the extract schema: {', '.join(unknown)}")
    table = pa.table({c.name: _arrow_column(frame, c) for c in schema.columns})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp)
        with tmp.open("rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
