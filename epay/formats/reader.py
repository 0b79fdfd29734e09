"""Streaming reader and validator of exchange files.

One pass over the file in chunks: framing (line ends, record length, bytes), record order, field
checks, record numbering, uniqueness, trailer totals and the kind's own rules. ``validate_file``
keeps no detail table (memory stays flat); ``read_file`` keeps the decoded details as a pyarrow Table
and refuses a file with any file-level problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from epay.formats.fields import RecordDecoder, classes
from epay.formats.layout import RECORD_LENGTH, FileLayout, RecordLayout, all_layouts, get_layout
from epay.formats.names import FileName, FileNameError, parse_file_name
from epay.formats.problems import DEFAULT_LIMIT, Problem, ProblemCollector
from epay.formats.rules import RULE_COLUMNS, check_details, check_header
from epay.formats.totals import accumulate, finish
from epay.formats.unique import UniquenessTracker, key_bytes

if TYPE_CHECKING:
    from epay.calendar import BusinessCalendar

CHUNK_BYTES = 2 << 20
MAX_LINE = 64 << 10  # a longer line is reported by its length and skipped, never held in memory
LF, CR = 10, 13


class InvalidFileError(ValueError):
    """A file failed validation; ``report`` holds every problem found."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        first = report.problems[0] if report.problems else None
        super().__init__(f"{report.name}: {report.problem_count} problem(s); first: {first}")


@dataclass
class ValidationReport:
    name: str
    kind: str | None
    size: int = 0
    line_end: str | None = None
    header: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    detail_count: int = 0
    computed: dict[str, int] = field(default_factory=dict)  # trailer aggregates as computed from details
    collector: ProblemCollector | None = None
    details: pa.Table | None = None

    @property
    def problems(self) -> list[Problem]:
        return self.collector.problems if self.collector else []

    @property
    def problem_count(self) -> int:
        return self.collector.total if self.collector else 0

    @property
    def valid(self) -> bool:
        """True when the post office's file-level checks would accept the file (warnings allowed)."""
        return self.collector is not None and not self.collector.has_file_errors()

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "instruction"]

    def first_rejection(self) -> tuple[str, int] | None:
        return self.collector.first_rejection() if self.collector else None

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, date | datetime):
                return value.isoformat()
            return value

        rejection = self.first_rejection()
        return {
            "file": self.name,
            "kind": self.kind,
            "valid": self.valid,
            "size": self.size,
            "line_end": self.line_end,
            "detail_count": self.detail_count,
            "header": {k: plain(v) for k, v in (self.header or {}).items() if k != "creditor_rip"},
            "trailer": {k: plain(v) for k, v in (self.trailer or {}).items()},
            "computed": self.computed,
            "rejection": {"code": rejection[0], "line": rejection[1]} if rejection else None,
            "problem_count": self.problem_count,
            "problem_counts": dict(self.collector.counts) if self.collector else {},
            "problems": [p.to_dict() for p in self.problems],
        }


def validate_file(
    path: str | Path,
    *,
    calendar: BusinessCalendar | None = None,
    expected_creditor: str | None = None,
    expected_creditor_rip: str | None = None,
    received_at: datetime | None = None,
    problem_limit: int = DEFAULT_LIMIT,
    keep_details: bool = False,
    name: str | None = None,
) -> ValidationReport:
    """Check a whole file against every rule visible from the file (and the optional account data).

    ``calendar`` defaults to the shared holiday list (schemas/holidays.toml).
    """
    path = Path(path)
    if calendar is None:
        from epay.calendar import load_calendar

        calendar = load_calendar()
    with path.open("rb") as handle:
        scanner = _Scanner(
            name or path.name,
            calendar=calendar,
            expected_creditor=expected_creditor,
            expected_creditor_rip=expected_creditor_rip,
            received_at=received_at,
            problem_limit=problem_limit,
            keep_details=keep_details,
        )
        return scanner.run(handle)


def read_file(path: str | Path, **options: Any) -> ValidationReport:
    """Decode a file into header, details (pyarrow Table) and trailer; raise if it is not valid."""
    report = validate_file(path, keep_details=True, **options)
    if not report.valid:
        raise InvalidFileError(report)
    return report


def parse_file(path: str | Path, **options: Any) -> ValidationReport:
    """Decode a file already known to be valid, without re-checking every field (about twice as fast).

    Only the framing is verified (uniform record length and line ends, ASCII, header / details /
    trailer types); anything unexpected falls back to ``read_file``, which raises InvalidFileError
    with the full report. Use ``read_file`` for anything that comes from outside.
    """
    path = Path(path)
    try:
        return _parse(path)
    except (_NotPlainError, FileNameError):
        return read_file(path, **options)


class _NotPlainError(Exception):
    """The file is not a plainly framed valid file: let the full validator explain why."""


def _parse(path: Path) -> ValidationReport:
    name = parse_file_name(path.name)
    layout = get_layout(name.kind)
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        first = handle.read(RECORD_LENGTH + 2)
        if len(first) < RECORD_LENGTH + 1:
            raise _NotPlainError
        stride = RECORD_LENGTH + (2 if first[RECORD_LENGTH : RECORD_LENGTH + 2] == b"\r\n" else 1)
        if size % stride or size // stride < 2:
            raise _NotPlainError
        total = size // stride
        handle.seek(0)
        report = ValidationReport(
            name=path.name, kind=layout.kind, size=size, line_end="CRLF" if stride == 162 else "LF"
        )
        report.collector = ProblemCollector(path.name)
        batches: list[pa.RecordBatch] = []
        detail_type = np.frombuffer(layout.detail.type.encode(), dtype=np.uint8)
        per_chunk = max(CHUNK_BYTES // stride, 1)
        index = 0
        while index < total:
            buf = handle.read(min(per_chunk, total - index) * stride)
            if not buf.isascii():
                raise _NotPlainError
            records = np.frombuffer(buf, dtype=np.uint8).reshape(-1, stride)
            if (records[:, RECORD_LENGTH] != (CR if stride == 162 else LF)).any() or (
                records[:, -1] != LF
            ).any():
                raise _NotPlainError
            block = records[:, :RECORD_LENGTH]
            start = 1 if index == 0 else 0
            stop = len(block) - 1 if index + len(block) == total else len(block)
            if start == 1:
                report.header = _single(layout.header, block[:1], report.collector)
            if stop < len(block):
                report.trailer = _single(layout.trailer, block[stop:], report.collector)
            details = block[start:stop]
            if len(details):
                if (details[:, :2] != detail_type).any():
                    raise _NotPlainError
                batches.append(
                    pa.RecordBatch.from_pydict(RecordDecoder(layout.detail, report.collector).parse(details))
                )
            index += len(block)
    report.detail_count = total - 2
    if report.collector.total or report.header is None or report.trailer is None:
        raise _NotPlainError
    report.details = pa.Table.from_batches(batches) if batches else detail_schema(layout).empty_table()
    return report


def _single(record: RecordLayout, block: npt.NDArray[np.uint8], problems: ProblemCollector) -> dict[str, Any]:
    if bytes(block[0, :2]).decode() != record.type:
        raise _NotPlainError
    lines = np.zeros(1, dtype=np.int64)
    columns = RecordDecoder(record, problems).decode(block, lines)
    return {name: column[0].as_py() for name, column in columns.items()}


def _iter_chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk


class _Scanner:
    def __init__(
        self,
        name: str,
        *,
        calendar: BusinessCalendar | None,
        expected_creditor: str | None,
        expected_creditor_rip: str | None,
        received_at: datetime | None,
        problem_limit: int,
        keep_details: bool,
    ) -> None:
        self.name = name
        self.calendar = calendar
        self.expected_creditor = expected_creditor
        self.expected_creditor_rip = expected_creditor_rip
        self.received_at = received_at
        self.keep_details = keep_details
        self.problems = ProblemCollector(name, limit=problem_limit)
        self.report = ValidationReport(name=name, kind=None, collector=self.problems)
        self.file_name: FileName | None = None
        self.layout: FileLayout | None = None
        self.line = 0  # lines consumed so far
        self.crlf: bool | None = None
        self.header_seen = False
        self.trailer_line = 0
        self.last_record_number = 0
        self.batches: list[pa.RecordBatch] = []
        self.unique = UniquenessTracker()
        self.wanted: frozenset[str] | None = None
        self.sums: dict[str, int] = {}
        try:
            self.file_name = parse_file_name(name)
            self._use_layout(get_layout(self.file_name.kind))
        except FileNameError as exc:
            self.problems.add(0, "file_name", name, "FF01", str(exc))

    def _use_layout(self, layout: FileLayout) -> None:
        self.layout = layout
        self.report.kind = layout.kind
        if not self.keep_details:
            needed = set(RULE_COLUMNS.get(layout.kind, frozenset()))
            for spec in layout.trailer.fields:
                if spec.aggregate is not None:
                    needed |= {c for c in (spec.aggregate.column, spec.aggregate.where_column) if c}
            self.wanted = frozenset(needed)

    # -- framing ---------------------------------------------------------------------------------
    def run(self, handle: BinaryIO) -> ValidationReport:
        pending = b""
        overlong = 0  # bytes of a line already known to be too long, skipped up to its line end
        for chunk in _iter_chunks(handle, CHUNK_BYTES):
            self.report.size += len(chunk)
            if overlong:
                end = chunk.find(b"\n")
                if end < 0:
                    overlong += len(chunk)
                    continue
                self._overlong_line(overlong + end)
                overlong, chunk = 0, chunk[end + 1 :]
            buf = pending + chunk if pending else chunk
            pending = self._frame(buf)
            if len(pending) > MAX_LINE:  # no line end in sight: never buffer a whole bad file
                overlong, pending = len(pending), b""
        if overlong:
            self._overlong_line(overlong)
            self.problems.add(self.line, "line_end", None, "FF01", "the last record has no line end")
        if pending:
            self.problems.add(self.line + 1, "line_end", None, "FF01", "the last record has no line end")
            self._frame(pending + b"\n")
        self._finish()
        return self.report

    def _overlong_line(self, length: int) -> None:
        self.line += 1
        self.problems.add(
            self.line, "record_length", str(length), "FF01", f"record is not {RECORD_LENGTH} characters"
        )

    def _frame(self, buf: bytes) -> bytes:
        """Split ``buf`` into records; return the incomplete last line to carry over."""
        data = np.frombuffer(buf, dtype=np.uint8)
        if self.crlf is None and (first_end := buf.find(b"\n")) > 0:
            self.crlf = buf[first_end - 1] == CR
            self.report.line_end = "CRLF" if self.crlf else "LF"
        if self.crlf is not None:
            stride = RECORD_LENGTH + (2 if self.crlf else 1)
            count = len(buf) // stride
            whole = data[: count * stride].reshape(count, stride)
            if count and (whole[:, -1] == LF).all() and (not self.crlf or (whole[:, -2] == CR).all()):
                # Fast path: every record well framed. A stray LF inside a record shows as a bad byte.
                first_line = self.line + 1
                self.line += count
                lines = np.arange(first_line, first_line + count, dtype=np.int64)
                cls = classes(buf[: count * stride]).reshape(count, stride)[:, :RECORD_LENGTH]
                self._records(whole[:, :RECORD_LENGTH], lines, cls)
                if count * stride < len(buf):
                    return (
                        self._frame(buf[count * stride :])
                        if LF in buf[count * stride :]
                        else buf[count * stride :]
                    )
                return b""
        newlines = np.flatnonzero(data == LF)
        if newlines.size == 0:
            return buf
        end = int(newlines[-1]) + 1
        self._lines(data[:end], newlines)
        return buf[end:]

    def _lines(self, data: npt.NDArray[np.uint8], newlines: npt.NDArray[np.intp]) -> None:
        """Slow path: lines of any length and line end, each checked and reported."""
        count = newlines.size
        first_line = self.line + 1
        self.line += count
        lines = np.arange(first_line, first_line + count, dtype=np.int64)
        starts = np.concatenate(([0], newlines[:-1] + 1))
        ends = newlines.copy()
        has_cr = np.zeros(count, dtype=np.bool_)
        nonempty = ends > starts
        has_cr[nonempty] = data[ends[nonempty] - 1] == CR
        body_len = ends - starts - has_cr
        if self.crlf is None:
            self.crlf = bool(has_cr[0])
            self.report.line_end = "CRLF" if self.crlf else "LF"
        mixed = has_cr != self.crlf
        expected_end = "CRLF" if self.crlf else "LF"
        self.problems.add_rows(
            mixed & (body_len > 0),
            lines,
            "line_end",
            lambda r: None,
            "FF01",
            f"line end differs from the file's first line ({expected_end})",
        )
        self.problems.add_rows(body_len == 0, lines, "record_length", lambda r: "", "FF01", "blank line")
        wrong = (body_len != RECORD_LENGTH) & (body_len > 0)
        self.problems.add_rows(
            wrong,
            lines,
            "record_length",
            lambda r: str(int(body_len[r])),
            "FF01",
            f"record is not {RECORD_LENGTH} characters",
        )
        good = body_len == RECORD_LENGTH
        if good.any():
            index = starts[good][:, None] + np.arange(RECORD_LENGTH)
            block = data[index]
            self._records(block, lines[good], classes(block.tobytes()).reshape(block.shape))

    # -- records ---------------------------------------------------------------------------------
    def _records(
        self, block: npt.NDArray[np.uint8], lines: npt.NDArray[np.int64], cls: npt.NDArray[np.uint8]
    ) -> None:
        if self.layout is None:
            self._guess_layout(block)
            if self.layout is None:
                return
        layout = self.layout
        types = np.ascontiguousarray(block[:, :2]).view("S2").ravel()
        if self.trailer_line:
            self.problems.add_rows(
                np.ones(len(lines), np.bool_),
                lines,
                "record_type",
                lambda r: types[r].decode("ascii", "replace"),
                "FF01",
                "record after the trailer",
            )
            return
        is_first = lines == 1
        header_type = layout.header.type.encode()
        detail_type = layout.detail.type.encode()
        trailer_type = layout.trailer.type.encode()
        if is_first.any():
            if types[0] == header_type:
                self._header(block[:1], lines[:1])
            else:
                self.problems.add(
                    1,
                    "record_type",
                    types[0].decode("ascii", "replace"),
                    "FF01",
                    f"the first record must be the header ({layout.header.type})",
                )
        rest = ~is_first
        is_detail = rest & (types == detail_type)
        is_trailer = rest & (types == trailer_type)
        unknown = rest & ~is_detail & ~is_trailer
        self.problems.add_rows(
            unknown,
            lines,
            "record_type",
            lambda r: types[r].decode("ascii", "replace"),
            "FF01",
            f"expected a detail ({layout.detail.type}) or the trailer ({layout.trailer.type})",
        )
        if is_trailer.any():
            first_trailer = int(np.flatnonzero(is_trailer)[0])
            after = np.zeros(len(lines), np.bool_)
            after[first_trailer + 1 :] = True
            self.problems.add_rows(
                after,
                lines,
                "record_type",
                lambda r: types[r].decode("ascii", "replace"),
                "FF01",
                "record after the trailer",
            )
            is_detail &= ~after
            before = ~after
            before[first_trailer] = False
            keep = is_detail & before
            self._details(block[keep], lines[keep], cls[keep])
            self._trailer(block[first_trailer : first_trailer + 1], lines[first_trailer : first_trailer + 1])
        elif is_detail.any():
            if is_detail.all():
                self._details(block, lines, cls)
            else:
                self._details(block[is_detail], lines[is_detail], cls[is_detail])

    def _guess_layout(self, block: npt.NDArray[np.uint8]) -> None:
        """No usable name: still check the content, using the kind the header declares."""
        if self.line - len(block) != 0:
            return
        declared = bytes(block[0, 2:6]).decode("ascii", "replace").strip()
        if declared in all_layouts():
            self._use_layout(get_layout(declared))

    def _decode(
        self,
        record: RecordLayout,
        block: npt.NDArray[np.uint8],
        lines: npt.NDArray[np.int64],
        cls: npt.NDArray[np.uint8] | None = None,
        wanted: frozenset[str] | None = None,
    ) -> tuple[dict[str, pa.Array], RecordDecoder]:
        decoder = RecordDecoder(record, self.problems)
        return decoder.decode(block, lines, cls, wanted), decoder

    def _header(self, block: npt.NDArray[np.uint8], lines: npt.NDArray[np.int64]) -> None:
        assert self.layout is not None
        columns, _ = self._decode(self.layout.header, block, lines)
        self.report.header = {name: column[0].as_py() for name, column in columns.items()}
        self.header_seen = True
        check_header(
            self.layout,
            self.report.header,
            self.file_name,
            self.problems,
            calendar=self.calendar,
            expected_creditor=self.expected_creditor,
            expected_creditor_rip=self.expected_creditor_rip,
            received_at=self.received_at,
        )

    def _trailer(self, block: npt.NDArray[np.uint8], lines: npt.NDArray[np.int64]) -> None:
        assert self.layout is not None
        columns, _ = self._decode(self.layout.trailer, block, lines)
        self.report.trailer = {name: column[0].as_py() for name, column in columns.items()}
        self.trailer_line = int(lines[0])

    def _details(
        self, block: npt.NDArray[np.uint8], lines: npt.NDArray[np.int64], cls: npt.NDArray[np.uint8]
    ) -> None:
        if len(lines) == 0:
            return
        layout = self.layout
        assert layout is not None
        columns, decoder = self._decode(layout.detail, block, lines, cls, self.wanted)
        self.report.detail_count += len(lines)
        if "record_number" in columns:
            self._numbering(columns["record_number"], lines)
        check_details(layout, self.report.header, columns, lines, self.file_name, self.problems)
        for spec in layout.detail.fields:
            if spec.unique:
                self.unique.add(spec.name, key_bytes(block, layout.detail, spec.name), lines)
        self._accumulate(columns, decoder, len(lines))
        if self.keep_details:
            self.batches.append(pa.RecordBatch.from_pydict(columns))

    def _numbering(self, numbers: pa.Array, lines: npt.NDArray[np.int64]) -> None:
        values = numbers.to_numpy()
        previous = np.concatenate(([self.last_record_number], values[:-1]))
        bad = values != previous + 1
        self.problems.add_rows(
            bad,
            lines,
            "record_number",
            lambda r: f"{values[r]:06d}",
            "FF01",
            lambda r: f"expected {previous[r] + 1:06d} (numbers start at 000001, no gaps)",
        )
        self.last_record_number = int(values[-1])

    def _accumulate(self, columns: dict[str, pa.Array], decoder: RecordDecoder, rows: int) -> None:
        assert self.layout is not None
        accounts = {key.split(":")[0]: value for key, value in decoder.extras.items() if key.endswith(":ccp")}
        accumulate(self.layout, rows, columns, accounts, self.sums)

    # -- whole-file checks -------------------------------------------------------------------------
    def _finish(self) -> None:
        layout = self.layout
        if self.line == 0:
            self.problems.add(0, None, None, "FF01", "empty file")
            return
        if layout is None:
            return
        if not self.header_seen and not any(
            p.line == 1 and p.field == "record_type" for p in self.problems.problems
        ):
            self.problems.add(1, "record_type", None, "FF01", "no header record")
        if not self.trailer_line:
            self.problems.add(0, "record_type", None, "FF01", f"no trailer record ({layout.trailer.type})")
        count = self.report.detail_count
        if count < layout.min_details or count > layout.max_details:
            self.problems.add(
                0,
                None,
                str(count),
                "FF01",
                f"a {layout.kind} file holds {layout.min_details} to {layout.max_details} details",
            )
        self._check_unique()
        self._check_trailer()
        if self.keep_details:
            self.report.details = self._details_table()

    def _check_unique(self) -> None:
        for repeats in self.unique.repeats():
            self.problems.add_rows(
                repeats.later, repeats.lines, repeats.field, repeats.value_of, "FF01",
                "appears more than once in the file",
            )  # fmt: skip

    def _check_trailer(self) -> None:
        assert self.layout is not None
        self.report.computed = finish(self.layout, self.sums)
        trailer = self.report.trailer or {}
        for name, computed in self.report.computed.items():
            if trailer.get(name) is not None and trailer[name] != computed:
                self.problems.add(
                    self.trailer_line, name, str(trailer[name]), "AM10", f"the details give {computed}"
                )

    def _details_table(self) -> pa.Table:
        assert self.layout is not None
        if self.batches:
            return pa.Table.from_batches(self.batches)
        schema = detail_schema(self.layout)
        return schema.empty_table()


ARROW_TYPES = {
    "record_number": pa.int64(),
    "number": pa.int64(),
    "count": pa.int64(),
    "amount": pa.int64(),
    "date": pa.date32(),
    "time": pa.time32("s"),
    "rip": pa.string(),
    "text": pa.string(),
    "identifier": pa.string(),
    "reference": pa.string(),
    "code": pa.string(),
    "filename": pa.string(),
}


def detail_schema(layout: FileLayout) -> pa.Schema:
    """The arrow schema of a kind's decoded details (the columns the writer accepts)."""
    return pa.schema([(f.name, ARROW_TYPES[f.format]) for f in layout.detail.value_fields])
