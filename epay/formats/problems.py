"""Problems found in an exchange file, with the spec's reason codes, and a bounded collector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

# File-level codes in the order the post office checks them (spec §4); the first found is reported.
FILE_CODES_IN_ORDER = ("FF01", "AG01", "DT01", "AM10", "DU01")
FILE_CODE_MEANINGS = {
    "FF01": "malformed file",
    "AG01": "creditor id or creditor RIP is not the account's",
    "DT01": "settlement date not allowed",
    "AM10": "trailer count, sum or control hash does not match the details",
    "DU01": "same batch as a file already accepted",
}
# A RIP with 20 digits but a wrong key or prefix rejects the instruction (RETR AC01), not the file.
INSTRUCTION_CODES = ("AC01",)
DEFAULT_LIMIT = 1000

Severity = Literal["file", "instruction"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file. ``line`` is the record's line number (header = 1), 0 = whole file."""

    file: str
    line: int
    field: str | None
    value: str | None
    code: str
    message: str
    severity: Severity = "file"

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        what = f" {self.field}" if self.field else ""
        value = f" = {self.value!r}" if self.value is not None else ""
        return f"{self.file}: {where}{what}{value}: {self.code} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProblemCollector:
    """Keeps the first ``limit`` problems and counts the rest, per code."""

    file: str
    limit: int = DEFAULT_LIMIT
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        line: int,
        field_name: str | None,
        value: str | None,
        code: str,
        message: str,
        severity: Severity = "file",
    ) -> None:
        self.counts[code] = self.counts.get(code, 0) + 1
        if code not in self.first_line or (
            line and (not self.first_line[code] or line < self.first_line[code])
        ):
            self.first_line[code] = line
        if len(self.problems) < self.limit:
            self.problems.append(Problem(self.file, line, field_name, value, code, message, severity))

    def add_rows(
        self,
        bad: npt.NDArray[np.bool_],
        lines: npt.NDArray[np.int64],
        field_name: str | None,
        value_of: Callable[[int], str | None],
        code: str,
        message: str | Callable[[int], str],
        severity: Severity = "file",
    ) -> None:
        """Report every row where ``bad`` is true; values and messages are built only for kept rows."""
        rows = np.flatnonzero(bad)
        if rows.size == 0:
            return
        room = max(self.limit - len(self.problems), 0)
        for row in rows[:room].tolist():
            text = message(row) if callable(message) else message
            self.problems.append(
                Problem(self.file, int(lines[row]), field_name, value_of(row), code, text, severity)
            )
        self.counts[code] = self.counts.get(code, 0) + int(rows.size)
        first = int(lines[rows[0]])
        if code not in self.first_line or (
            first and (not self.first_line[code] or first < self.first_line[code])
        ):
            self.first_line[code] = first

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def has_file_errors(self) -> bool:
        return any(code not in INSTRUCTION_CODES for code in self.counts)

    def first_rejection(self) -> tuple[str, int] | None:
        """(code, line) the post office would put in its ACK: first failing check in spec order."""
        for code in FILE_CODES_IN_ORDER:
            if code in self.counts:
                line = 0 if code in ("AM10", "DU01") else self.first_line.get(code, 0)
                return code, line
        return None
