"""Vectorised decoding and checking of one record type's fields over an (n, 160) byte block.

Every check here is visible from the record alone; rules that need several records or the file's
name live in ``rules.py``. Decoding never raises on bad content: bad values are reported to the
collector and decoded harmlessly (zeros, '?') so that one pass reports every problem.

Speed: the character classes of every position of every record are checked at once — the chunk is
mapped byte -> class bits with ``bytes.translate`` and AND-ed with the record's per-position mask —
and only rows that fail are examined field by field.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from epay.formats.layout import FieldSpec, RecordLayout
from epay.formats.names import FileNameError, parse_file_name
from epay.formats.problems import ProblemCollector, Severity
from epay.formats.rip import ACCOUNT_DIGITS, expected_keys, mask_rip, rip_bodies, rip_prefix_ok, written_keys
from epay.formats.rules import per_distinct
from epay.formats.text import A_CHARACTERS, F_CHARACTERS, REFERENCE_CHARACTERS

Block = npt.NDArray[np.uint8]
Lines = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
SPACE = 32
_EPOCH_YEAR = 1970
MIN_YEAR, MAX_YEAR = 1900, 2999

# Character class bits: a byte is acceptable at a position when it has one of the position's bits.
DIGIT, A_CHAR, REF_CHAR, F_CHAR, PAD, PRINT = 1, 2, 4, 8, 16, 32


def _class_table() -> bytes:
    table = bytearray(256)
    for byte in range(0x20, 0x7F):
        table[byte] |= PRINT
    for chars, bit in (
        (b"0123456789", DIGIT),
        (A_CHARACTERS.encode(), A_CHAR),
        (REFERENCE_CHARACTERS.encode(), REF_CHAR),
        (F_CHARACTERS.encode(), F_CHAR),
        (b" ", PAD),
    ):
        for byte in chars:
            table[byte] |= bit
    return bytes(table)


CLASS_TABLE = _class_table()
KIND_TEXT = {
    DIGIT: "N field must hold digits only",
    A_CHAR: "characters outside A–Z 0–9 space . , - ' / & ( )",
    REF_CHAR | PAD: "characters outside A–Z 0–9",
    F_CHAR | PAD: "characters outside A–Z a–z 0–9 _ .",
    PRINT: "characters outside printable ASCII",
    PAD: "must be spaces",
}


def classes(data: bytes) -> npt.NDArray[np.uint8]:
    """Byte -> class bits, for a whole chunk at C speed."""
    return np.frombuffer(data.translate(CLASS_TABLE), dtype=np.uint8)


def field_class(spec: FieldSpec) -> int:
    if spec.format == "reserved":
        return PAD
    if spec.format == "constant":
        return PRINT
    if spec.kind == "N":
        return DIGIT
    if spec.kind == "F":
        return F_CHAR | PAD
    if spec.format == "reference":
        return REF_CHAR | PAD
    return A_CHAR


def raw_text(block: Block, spec: FieldSpec, row: int) -> str:
    value = bytes(block[row, spec.offset : spec.end]).decode("ascii", errors="replace")
    return mask_rip(value) if spec.format == "rip" else value


def digits_to_int(digits: Block) -> npt.NDArray[np.int64]:
    """(n, w) digit values 0–9 -> int64, one vector pass per column (w <= 18)."""
    value = np.zeros(digits.shape[0], dtype=np.int64)
    for column in range(digits.shape[1]):
        value *= 10
        value += digits[:, column]
    return value


def exact_sum(values: npt.NDArray[np.int64]) -> int:
    """Sum without int64 wrap-around: trailer totals are up to 18 digits (and a bad file may exceed them)."""
    if values.size == 0:
        return 0
    if int(values.max()) < 2**63 // max(values.size, 1) and int(values.min()) >= 0:
        return int(values.sum())
    return sum(values.tolist())


def int_to_digits(values: npt.NDArray[np.int64], width: int, out: Block) -> None:
    """Write non-negative ints as zero-padded ASCII digits into the (n, width) view ``out``.

    Digits are produced into a contiguous (width, n) scratch array and transposed once: writing
    column by column into a row-major block is several times slower.
    """
    remaining = values.astype(np.int64, copy=True)
    columns = np.empty((width, len(values)), dtype=np.uint8)
    quotient = np.empty_like(remaining)
    for column in range(width - 1, -1, -1):
        np.floor_divide(remaining, 10, out=quotient)
        columns[column] = remaining - quotient * 10
        remaining, quotient = quotient, remaining
    columns += np.uint8(48)
    out[:] = columns.T


def yyyymmdd_to_days(value: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int32], Mask]:
    """YYYYMMDD ints -> (days since 1970-01-01, valid calendar date mask)."""
    if value.size > 1 and (value == value[0]).all():  # common: one due / status date for a whole file
        days, ok = _yyyymmdd_to_days(value[:1])
        return np.full(value.size, days[0], dtype=np.int32), np.full(value.size, ok[0], dtype=np.bool_)
    return _yyyymmdd_to_days(value)


def _yyyymmdd_to_days(value: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int32], Mask]:
    year = value // 10000
    month = (value // 100) % 100
    day = value % 100
    ok = (year >= MIN_YEAR) & (year <= MAX_YEAR) & (month >= 1) & (month <= 12) & (day >= 1)
    if not ok.all():
        year = np.where(ok, year, _EPOCH_YEAR)
        month = np.where(ok, month, 1)
    months = (year - _EPOCH_YEAR) * 12 + (month - 1)
    first = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    next_first = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    ok &= day <= next_first - first
    days = (first + np.where(ok, day - 1, 0)).astype(np.int32)
    return days, ok


def days_to_yyyymmdd(days: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    d64 = days.astype("datetime64[D]")
    months = d64.astype("datetime64[M]")
    year = months.astype(np.int64) // 12 + _EPOCH_YEAR
    month = months.astype(np.int64) % 12 + 1
    day = (d64 - months.astype("datetime64[D]")).astype(np.int64) + 1
    return np.asarray(year * 10000 + month * 100 + day, dtype=np.int64)


def strings_from_block(sub: Block, strip: bool = True) -> pa.Array:
    """(n, w) ASCII bytes -> pyarrow strings, trailing spaces removed."""
    n, width = sub.shape
    data = np.ascontiguousarray(sub)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    arr = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    return pc.ascii_rtrim(arr, characters=" ") if strip else arr


def as_integers(sub: Block) -> npt.NDArray[np.uint64]:
    """Each row of an (n, w <= 8) block as one integer, for fast comparisons with codes."""
    n, width = sub.shape
    padded = np.zeros((n, 8), dtype=np.uint8)
    padded[:, :width] = sub
    return padded.view(np.uint64).ravel()


@cache
def code_integers(spec: FieldSpec) -> tuple[np.uint64, ...]:
    return tuple(
        as_integers(np.frombuffer(c.ljust(spec.length).encode(), np.uint8)[None, :])[0] for c in spec.codes
    )


def _names_a(value: str, kind: str | None) -> bool:
    """Is ``value`` a file name of ``kind`` by the spec's patterns (names.py, from the layouts)?"""
    try:
        return parse_file_name(value).kind == kind
    except FileNameError:
        return False


class RecordDecoder:
    """Decodes and checks one record type; reports into a ProblemCollector."""

    def __init__(self, record: RecordLayout, problems: ProblemCollector) -> None:
        self.record = record
        self.problems = problems
        self.mask = np.zeros(160, dtype=np.uint8)
        for spec in record.fields:
            self.mask[spec.offset : spec.end] = field_class(spec)
        self.extras: dict[str, npt.NDArray[np.int64]] = {}

    def decode(
        self, block: Block, lines: Lines, cls: Block | None = None, wanted: frozenset[str] | None = None
    ) -> dict[str, pa.Array]:
        """Check every field of ``block`` and decode the value fields.

        ``cls`` are the block's class bits if already known. ``wanted`` limits which text columns are
        built (numbers are always decoded: the checks need them); None builds every column.
        """
        if cls is None:
            cls = classes(np.ascontiguousarray(block).tobytes()).reshape(block.shape)
        allowed = cls & self.mask  # non-zero wherever the byte is of a class its position allows
        bad_rows: Mask | None = None
        unprintable: Mask | None = None
        wrong = allowed  # placeholder, replaced below when something is wrong
        if allowed.min(initial=1) == 0:
            wrong = allowed == 0
            bad_rows = wrong.any(axis=1)
            unprintable = ((cls & PRINT) == 0).any(axis=1)
            self._report_characters(block, cls, wrong, bad_rows, lines)
            if unprintable.any():
                block = np.where((cls & PRINT) == 0, np.uint8(ord("?")), block).astype(np.uint8)
        columns: dict[str, pa.Array] = {}
        for spec in self.record.fields:
            sub = block[:, spec.offset : spec.end]
            field_bad = None if bad_rows is None else np.asarray(wrong[:, spec.offset : spec.end].any(axis=1))
            keep = wanted is None or spec.name in wanted
            if spec.format == "constant":
                self._check_fixed(spec, block, sub, lines, unprintable)
            elif spec.format == "reserved":
                continue  # spaces only: the class pass checked them
            elif spec.kind == "N":
                column = self._numeric(spec, block, sub, lines, field_bad, keep)
                if column is not None:
                    columns[spec.name] = column
            else:
                column = self._alpha(spec, block, sub, lines, field_bad, keep)
                if column is not None:
                    columns[spec.name] = column
        return columns

    def parse(self, block: Block) -> dict[str, pa.Array]:
        """Decode the value fields without checking them: for files already validated (printable ASCII)."""
        columns: dict[str, pa.Array] = {}
        for spec in self.record.value_fields:
            sub = block[:, spec.offset : spec.end]
            if spec.format == "rip":
                columns[spec.name] = strings_from_block(sub, strip=False)
            elif spec.kind == "N":
                value = digits_to_int(sub - np.uint8(48))
                if spec.format == "date":
                    columns[spec.name] = pa.array(yyyymmdd_to_days(value)[0], type=pa.int32()).view(
                        pa.date32()
                    )
                elif spec.format == "time":
                    seconds = (value // 10000 * 3600 + (value // 100) % 100 * 60 + value % 100).astype(
                        np.int32
                    )
                    columns[spec.name] = pa.array(seconds, type=pa.int32()).view(pa.time32("s"))
                else:
                    columns[spec.name] = pa.array(value, type=pa.int64())
            else:
                columns[spec.name] = strings_from_block(sub)
        return columns

    def _report(
        self,
        bad: Mask,
        spec: FieldSpec,
        block: Block,
        lines: Lines,
        code: str,
        message: str | Callable[[int], str],
        severity: Severity = "file",
    ) -> None:
        if bad.any():
            self.problems.add_rows(
                bad, lines, spec.name, lambda row: raw_text(block, spec, row), code, message, severity
            )

    def _report_characters(self, block: Block, cls: Block, wrong: Mask, bad_rows: Mask, lines: Lines) -> None:
        for row in np.flatnonzero(bad_rows).tolist():
            for spec in self.record.fields:
                bad = np.flatnonzero(wrong[row, spec.offset : spec.end])
                if bad.size == 0:
                    continue
                position = spec.offset + int(bad[0])
                byte = int(block[row, position])
                if not cls[row, position] & PRINT:
                    what = "a tab character" if byte == 9 else f"byte 0x{byte:02X} outside printable ASCII"
                    self.problems.add(
                        int(lines[row]), spec.name, None, "FF01", f"{what} at position {position + 1}"
                    )
                else:
                    self.problems.add(
                        int(lines[row]),
                        spec.name,
                        raw_text(block, spec, row),
                        "FF01",
                        f"{KIND_TEXT[field_class(spec)]} (position {position + 1})",
                    )

    def _check_fixed(
        self, spec: FieldSpec, block: Block, sub: Block, lines: Lines, unprintable: Mask | None
    ) -> None:
        expected = np.frombuffer(spec.fixed_bytes, dtype=np.uint8)
        bad = (sub != expected).any(axis=1)
        if unprintable is not None:
            bad &= ~unprintable  # already reported as a bad byte
        what = "spaces" if spec.format == "reserved" else repr(spec.fixed_bytes.decode())
        self._report(bad, spec, block, lines, "FF01", f"must be {what}")

    def _numeric(
        self, spec: FieldSpec, block: Block, sub: Block, lines: Lines, field_bad: Mask | None, keep: bool
    ) -> pa.Array | None:
        digits = sub - np.uint8(48)
        ok_digits: Mask | bool = True
        if field_bad is not None and field_bad.any():
            digits[field_bad] = 0
            ok_digits = ~field_bad
        if spec.format == "rip":
            return self._rip(spec, block, sub, digits, ok_digits, lines, keep)
        value = digits_to_int(digits)
        if spec.format == "date":
            days, ok = yyyymmdd_to_days(value)
            self._report(~ok & ok_digits, spec, block, lines, "FF01", "not a real calendar date (YYYYMMDD)")
            valid = ok & ok_digits
            # an unreadable date decodes as null, so no later rule mistakes a placeholder for a date
            return pa.array(days, type=pa.int32(), mask=None if valid.all() else ~valid).view(pa.date32())
        if spec.format == "time":
            hh, mm, ss = value // 10000, (value // 100) % 100, value % 100
            ok = (hh < 24) & (mm < 60) & (ss < 60)
            self._report(~ok & ok_digits, spec, block, lines, "FF01", "not a real time (HHMMSS)")
            seconds = np.where(ok, hh * 3600 + mm * 60 + ss, 0).astype(np.int32)
            return pa.array(seconds, type=pa.int32()).view(pa.time32("s"))
        if spec.positive:
            self._report((value <= 0) & ok_digits, spec, block, lines, "FF01", "must be greater than zero")
        return pa.array(value, type=pa.int64())

    def _rip(
        self,
        spec: FieldSpec,
        block: Block,
        sub: Block,
        digits: Block,
        ok_digits: Mask | bool,
        lines: Lines,
        keep: bool,
    ) -> pa.Array | None:
        prefix_ok = rip_prefix_ok(digits)
        body = rip_bodies(digits)
        key = written_keys(digits)
        expected = expected_keys(body)
        self._report(
            ok_digits & ~prefix_ok,
            spec,
            block,
            lines,
            "AC01",
            "bank or agency code is not 007 99999 (the instruction would be rejected)",
            "instruction",
        )
        self._report(
            ok_digits & prefix_ok & (key != expected),
            spec,
            block,
            lines,
            "AC01",
            lambda row: f"wrong RIP key, expected {expected[row]:02d} (the instruction would be rejected)",
            "instruction",
        )
        self.extras[f"{spec.name}:ccp"] = body % 10**ACCOUNT_DIGITS
        return strings_from_block(sub, strip=False) if keep else None

    def _alpha(
        self, spec: FieldSpec, block: Block, sub: Block, lines: Lines, field_bad: Mask | None, keep: bool
    ) -> pa.Array | None:
        if spec.format == "filename" and len(sub) > 1 and (sub == sub[0]).all():
            # One PRLV file name on every record is the usual case: check it once.
            scratch = RecordDecoder(self.record, ProblemCollector(self.problems.file, limit=1))
            row_bad = None if field_bad is None else field_bad[:1]
            scratch._alpha(spec, block[:1], sub[:1], lines[:1], row_bad, False)
            if scratch.problems.total == 0:
                return strings_from_block(sub) if keep else None
        first_space = sub[:, 0] == SPACE
        blank = first_space.copy()
        if blank.any():
            blank &= (sub == SPACE).all(axis=1)
        ok_chars: Mask | bool = True if field_bad is None else ~field_bad
        if spec.format in ("reference", "filename"):
            is_space = sub == SPACE
            spaced = (is_space[:, :-1] & ~is_space[:, 1:]).any(axis=1) | (first_space & ~blank)
            self._report(spaced & ok_chars, spec, block, lines, "FF01", "must not contain spaces")
        else:
            self._report(first_space & ~blank & ok_chars, spec, block, lines, "FF01", "must be left-aligned")
        if spec.format == "code":
            values = as_integers(sub)
            known = np.zeros(len(values), dtype=np.bool_)
            for code in code_integers(spec):
                known |= values == code
            if spec.optional:
                known |= blank
            self._report(
                ~known & ok_chars, spec, block, lines, "FF01", f"must be one of {', '.join(spec.codes)}"
            )
        elif spec.format in ("reference", "identifier", "filename") or spec.required:
            self._report(blank, spec, block, lines, "FF01", "must not be blank")
        strings = strings_from_block(sub) if keep or spec.format == "filename" else None
        if strings is not None and spec.format == "filename" and spec.file_kind:
            wrong_name = per_distinct(strings, lambda v: not _names_a(v, spec.file_kind))
            self._report(
                wrong_name & ~blank & ok_chars,
                spec,
                block,
                lines,
                "FF01",
                f"not a {spec.file_kind} file name",
            )
        return strings if keep else None
