"""Writer: a header mapping plus a details table (pyarrow or pandas) -> one exchange file.

Vectorised and chunked: each chunk of details becomes an (n, 160) byte block filled column by column,
checked by the same decoder the reader uses, then streamed to ``NAME.tmp`` and renamed into place, so
a half-written file never exists under its final name. The trailer is computed from the details.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from epay.calendar import BusinessCalendar, load_calendar
from epay.formats.fields import (
    RecordDecoder,
    classes,
    days_to_yyyymmdd,
    digits_to_int,
    int_to_digits,
)
from epay.formats.layout import RECORD_LENGTH, FieldSpec, FileLayout, RecordLayout, get_layout
from epay.formats.names import FileNameError, parse_file_name
from epay.formats.problems import Problem, ProblemCollector
from epay.formats.rules import RULE_COLUMNS, check_details, check_header
from epay.formats.text import normalize_text_block, padded_block
from epay.formats.totals import accumulate, finish
from epay.formats.unique import UniquenessTracker, key_bytes

CHUNK_ROWS = 1 << 14


class EncodeError(ValueError):
    """Data that cannot be written as the spec requires (listed in ``problems``)."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


class EmptyNameError(EncodeError):
    """A text that must not be blank (e.g. a name only in Arabic script) is empty once normalised."""

    def __init__(self, field: str, rows: list[int]) -> None:
        self.field = field
        self.rows = rows
        shown = ", ".join(str(r) for r in rows[:10])
        super().__init__(
            f"{field} is empty after normalisation in {len(rows)} row(s) (first rows: {shown}); "
            "such names must be corrected before they are sent"
        )


@dataclass(frozen=True)
class WriteResult:
    path: Path
    kind: str
    detail_count: int
    trailer: dict[str, Any]
    size: int


def _as_table(details: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(details, pd.DataFrame):
        return pa.Table.from_pandas(details, preserve_index=False)
    return details


def _column(table: pa.Table, spec: FieldSpec) -> pa.Array:
    if spec.name not in table.column_names:
        raise EncodeError(f"the details table has no column {spec.name!r}")
    column = table.column(spec.name)
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    # A missing text counts as an empty one (EmptyNameError lists every such row for correction).
    if array.null_count and spec.format != "text" and not spec.optional:
        row = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise EncodeError(f"{spec.name} is missing (null) in row {row}")
    return array


def _ints(array: pa.Array, spec: FieldSpec) -> npt.NDArray[np.int64]:
    if pa.types.is_floating(array.type):
        raise EncodeError(f"{spec.name}: money and counts are integers, got {array.type}")
    values: npt.NDArray[np.int64] = np.asarray(
        array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    )
    if values.size and (values.min() < 0 or values.max() >= 10**spec.length):
        row = int(np.flatnonzero((values < 0) | (values >= 10**spec.length))[0])
        raise EncodeError(f"{spec.name} = {values[row]} in row {row} does not fit {spec.length} digits")
    return values


def _days(array: pa.Array, spec: FieldSpec) -> npt.NDArray[np.int64]:
    if pa.types.is_timestamp(array.type) or pa.types.is_null(array.type):  # null: an empty pandas column
        array = array.cast(pa.date32())
    if not pa.types.is_date32(array.type):
        raise EncodeError(f"{spec.name}: expected dates, got {array.type}")
    days: npt.NDArray[np.int64] = np.asarray(
        array.cast(pa.int32()).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    return days


def _strict_strings(array: pa.Array, spec: FieldSpec) -> npt.NDArray[np.uint8]:
    """References, codes, RIPs, file names: written as given, never altered; too long is an error."""
    strings = (
        array.cast(pa.string()).fill_null("") if array.type != pa.string() or array.null_count else array
    )
    ascii_ = np.asarray(pc.string_is_ascii(strings).to_numpy(zero_copy_only=False), dtype=np.bool_)
    if not ascii_.all():
        row = int(np.flatnonzero(~ascii_)[0])
        raise EncodeError(f"{spec.name} = {strings[row].as_py()!r} in row {row} is not ASCII")
    lengths = np.asarray(pc.utf8_length(strings).to_numpy(zero_copy_only=False), dtype=np.int64)
    wrong_length = lengths != spec.length if spec.format == "rip" else lengths > spec.length
    if wrong_length.any():
        row = int(np.flatnonzero(wrong_length)[0])
        raise EncodeError(
            f"{spec.name} = {strings[row].as_py()!r} in row {row} must be "
            f"{'exactly' if spec.format == 'rip' else 'at most'} {spec.length} characters"
        )
    block = padded_block(strings, spec.length)
    filled = lengths > 0
    last = block[np.arange(len(block)), np.maximum(lengths - 1, 0)]
    padded_ends = filled & ((block[:, 0] == ord(" ")) | (last == ord(" ")))
    if padded_ends.any():
        row = int(np.flatnonzero(padded_ends)[0])
        raise EncodeError(
            f"{spec.name} = {strings[row].as_py()!r} in row {row} has leading or trailing spaces: "
            "padding is the format's job, and a trimmed value would no longer match"
        )
    return block


class RecordEncoder:
    """Encodes rows of one record type into a reusable buffer of records with their line ends.

    Constants, padding and line ends are written once when the buffer is made; each chunk only
    overwrites the value fields, so the buffer stays warm in memory and nothing is allocated per row.
    """

    def __init__(self, record: RecordLayout, line_end: bytes, capacity: int) -> None:
        self.record = record
        self.width = RECORD_LENGTH + len(line_end)
        self.buffer = np.full((capacity, self.width), ord(" "), dtype=np.uint8)
        for spec in record.fields:
            if spec.format in ("constant", "reserved"):
                self.buffer[:, spec.offset : spec.end] = np.frombuffer(spec.fixed_bytes, dtype=np.uint8)
        self.buffer[:, RECORD_LENGTH:] = np.frombuffer(line_end, dtype=np.uint8)

    def encode(self, table: pa.Table, first_number: int = 1) -> npt.NDArray[np.uint8]:
        """Encode ``table`` (at most ``capacity`` rows); returns the (n, width) records with line ends."""
        n = table.num_rows
        if n > len(self.buffer):
            raise ValueError(f"{n} rows do not fit a buffer of {len(self.buffer)}")
        block = self.buffer[:n]
        for spec in self.record.value_fields:
            out = block[:, spec.offset : spec.end]
            if spec.format == "record_number":
                int_to_digits(np.arange(first_number, first_number + n, dtype=np.int64), spec.length, out)
            elif spec.format == "date":
                int_to_digits(days_to_yyyymmdd(_days(_column(table, spec), spec)), spec.length, out)
            elif spec.format == "time":
                seconds = (
                    _column(table, spec).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
                )
                hhmmss = (seconds // 3600) * 10000 + (seconds // 60 % 60) * 100 + seconds % 60
                int_to_digits(hhmmss, spec.length, out)
            elif spec.kind == "N" and spec.format != "rip":
                int_to_digits(_ints(_column(table, spec), spec), spec.length, out)
            elif spec.format == "text":
                text, empty = normalize_text_block(_column(table, spec), spec.length)
                if spec.required and empty.any():
                    raise EmptyNameError(spec.name, (np.flatnonzero(empty) + first_number - 1).tolist())
                out[:] = text
            else:
                out[:] = _strict_strings(_column(table, spec), spec)
        return block


def _scalar_table(record: RecordLayout, values: Mapping[str, Any]) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for spec in record.value_fields:
        if spec.name not in values:
            raise EncodeError(f"record {record.type}: no value for {spec.name}")
        value = values[spec.name]
        if spec.format == "date":
            if not isinstance(value, date):
                raise EncodeError(f"{spec.name} must be a date, got {value!r}")
            columns[spec.name] = pa.array([value], pa.date32())
        elif spec.format == "time":
            if not isinstance(value, time):
                raise EncodeError(f"{spec.name} must be a time, got {value!r}")
            columns[spec.name] = pa.array([value], pa.time32("s"))
        elif spec.kind == "N" and spec.format != "rip":
            if not 0 <= int(value) < 10**spec.length:
                raise EncodeError(
                    f"record {record.type}: {spec.name} = {value} does not fit {spec.length} digits"
                )
            columns[spec.name] = pa.array([int(value)], pa.int64())
        else:
            columns[spec.name] = pa.array([value], pa.string())
    return pa.table(columns) if columns else pa.table({"_": [0]})


def _raise_problems(problems: ProblemCollector, layout: FileLayout, name: str) -> None:
    file_level = [p for p in problems.problems if p.severity == "file"]
    if file_level:
        raise EncodeError(
            f"{name}: the data would make an invalid {layout.kind} file: {file_level[0]}", file_level
        )


class FileWriter:
    """Streams one file: header, details in chunks, computed trailer; atomic rename on close."""

    def __init__(
        self,
        path: str | Path,
        kind: str,
        header: Mapping[str, Any],
        *,
        crlf: bool = False,
        validate: bool = True,
        calendar: BusinessCalendar | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name  # the file's name in the contract (path may be a staging name)
        self.layout = get_layout(kind)
        self.validate = validate
        self.line_end = b"\r\n" if crlf else b"\n"
        self.count = 0
        self.sums: dict[str, int] = {}
        self.size = 0
        self.header: dict[str, Any] = {}
        self._encoders: dict[str, RecordEncoder] = {}
        self._unique = UniquenessTracker()
        self._problems = ProblemCollector(self.name, limit=20)
        try:
            self.file_name = parse_file_name(self.name)
        except FileNameError as exc:
            raise EncodeError(str(exc)) from None
        if self.file_name.kind != kind:
            raise EncodeError(f"{self.name} is the name of a {self.file_name.kind} file, not {kind}")
        # ".part" last: readers of an exchange folder ignore it while it is being written (spec §2)
        self._tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp.part")
        self._handle = self._tmp.open("wb")
        try:
            self._write(self.layout.header, _scalar_table(self.layout.header, {**header}), 1)
            if validate:
                check_header(self.layout, self.header, self.file_name, self._problems,
                             calendar=calendar if calendar is not None else load_calendar())  # fmt: skip
                _raise_problems(self._problems, self.layout, self.name)
        except BaseException:
            self.abort()
            raise

    def _write(self, record: RecordLayout, table: pa.Table, first_number: int) -> None:
        encoder = self._encoders.get(record.type)
        if encoder is None or len(encoder.buffer) < table.num_rows:
            encoder = RecordEncoder(record, self.line_end, max(min(table.num_rows, CHUNK_ROWS), 1))
            self._encoders[record.type] = encoder
        records = encoder.encode(table, first_number)
        first_line = {"header": 1, "detail": 1 + first_number}.get(record.role, self.count + 2)
        extras = self._check(record, records, first_line) if self.validate else None
        if record.role == "detail":
            self._accumulate(table, records, extras)
        self._handle.write(records.data if records.flags.c_contiguous else records.tobytes())
        self.size += records.size

    def _check(
        self, record: RecordLayout, records: npt.NDArray[np.uint8], first_line: int
    ) -> dict[str, npt.NDArray[np.int64]]:
        """Run the reader's checks on what was just encoded: the writer never emits what it refuses.

        Returns the decoder's by-products (e.g. CCP account numbers for the control hash).
        """
        lines = np.arange(first_line, first_line + len(records), dtype=np.int64)
        block = records[:, :RECORD_LENGTH]
        cls = classes(records.tobytes()).reshape(records.shape)[:, :RECORD_LENGTH]
        decoder = RecordDecoder(record, self._problems)
        wanted = None if record.role == "header" else RULE_COLUMNS.get(self.layout.kind, frozenset())
        columns = decoder.decode(block, lines, cls, wanted)
        if record.role == "header":
            self.header = {name: column[0].as_py() for name, column in columns.items()}
        elif record.role == "detail":
            check_details(self.layout, self.header, columns, lines, self.file_name, self._problems)
            for spec in record.fields:
                if spec.unique:
                    self._unique.add(spec.name, key_bytes(block, record, spec.name), lines)
        _raise_problems(self._problems, self.layout, self.name)
        return decoder.extras

    def write_details(self, details: pa.Table | pd.DataFrame) -> None:
        table = _as_table(details)
        for start in range(0, table.num_rows, CHUNK_ROWS):
            chunk = table.slice(start, CHUNK_ROWS)
            self._write(self.layout.detail, chunk, self.count + 1)
            self.count += chunk.num_rows

    def _accumulate(
        self, chunk: pa.Table, records: npt.NDArray[np.uint8], extras: dict[str, npt.NDArray[np.int64]] | None
    ) -> None:
        """Trailer totals from the input values; the control hash from the RIP digits actually written."""
        accounts: dict[str, npt.NDArray[np.int64]] = {}
        for spec in self.layout.detail.fields:
            if spec.format != "rip":
                continue
            if extras is not None and f"{spec.name}:ccp" in extras:
                accounts[spec.name] = extras[f"{spec.name}:ccp"]
            else:
                accounts[spec.name] = digits_to_int(records[:, spec.offset + 8 : spec.end - 2] - np.uint8(48))
        columns = {name: chunk.column(name) for name in chunk.column_names}
        accumulate(self.layout, chunk.num_rows, columns, accounts, self.sums)

    def trailer_values(self) -> dict[str, Any]:
        return dict(finish(self.layout, self.sums))

    def close(self, trailer_overrides: Mapping[str, Any] | None = None) -> WriteResult:
        """Write the trailer (computed; overrides only for building deliberately bad test files)."""
        try:
            if not self.layout.min_details <= self.count <= self.layout.max_details:
                raise EncodeError(
                    f"a {self.layout.kind} file holds {self.layout.min_details} to {self.layout.max_details} "
                    f"details, not {self.count}"
                )
            for repeats in self._unique.repeats():
                row = int(np.flatnonzero(repeats.later)[0])
                raise EncodeError(
                    f"{self.name}: {repeats.field} = {repeats.value(row)!r} appears more than once "
                    f"(first repeated at line {repeats.lines[row]})"
                )
            trailer = {**self.trailer_values(), **(trailer_overrides or {})}
            self._write(self.layout.trailer, _scalar_table(self.layout.trailer, trailer), self.count + 2)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return WriteResult(self.path, self.layout.kind, self.count, trailer, self.size)

    def abort(self) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)


def write_file(
    path: str | Path,
    kind: str,
    header: Mapping[str, Any],
    details: pa.Table | pd.DataFrame,
    *,
    crlf: bool = False,
    validate: bool = True,
    calendar: BusinessCalendar | None = None,
    name: str | None = None,
) -> WriteResult:
    """Write a complete file (header, details, computed trailer) atomically; return its summary.

    With ``validate`` (the default) everything the reader would check is checked on the way out:
    fields, the header against the name and the calendar, per-kind rules, uniqueness; an EncodeError
    leaves no file behind. ``validate=False`` is for building deliberately broken test files.
    """
    writer = FileWriter(path, kind, header, crlf=crlf, validate=validate, calendar=calendar, name=name)
    try:
        writer.write_details(details)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
