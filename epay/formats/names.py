"""Exchange file names (spec §2): parse a name into its kind and parts, build one from its parts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from epay.formats.layout import all_layouts

_PLACEHOLDERS = {
    "creditor": r"(?P<creditor>[0-9]{6})",
    "date": r"(?P<date>[0-9]{8})",
    "sequence": r"(?P<sequence>[0-9]{2})",
    "prlv_name": r"(?P<prlv_name>PRLV_[0-9]{6}_[0-9]{8}_[0-9]{2}\.txt)",
}


class FileNameError(ValueError):
    """A file name does not follow the spec's patterns."""


@dataclass(frozen=True)
class FileName:
    kind: str
    name: str
    creditor: str
    day: date
    sequence: int
    prlv_name: str | None = None  # ACK only: the acknowledged PRLV file


def _regex(pattern: str) -> re.Pattern[str]:
    escaped = re.escape(pattern)
    for key, group in _PLACEHOLDERS.items():
        escaped = escaped.replace(re.escape("{" + key + "}"), group)
    return re.compile(f"^{escaped}$")


def _patterns() -> dict[str, re.Pattern[str]]:
    return {kind: _regex(layout.name_pattern) for kind, layout in all_layouts().items()}


def parse_file_name(name: str) -> FileName:
    """Recognise a file's kind from its name; raise FileNameError with the reason otherwise."""
    for kind, regex in _patterns().items():
        m = regex.match(name)
        if not m:
            continue
        if kind == "ACK":
            inner = parse_file_name(m["prlv_name"])
            return FileName("ACK", name, inner.creditor, inner.day, inner.sequence, prlv_name=inner.name)
        try:
            day = datetime.strptime(m["date"], "%Y%m%d").date()
        except ValueError:
            raise FileNameError(f"{name}: {m['date']} is not a real date") from None
        sequence = int(m["sequence"])
        if not 1 <= sequence <= 99:
            raise FileNameError(f"{name}: sequence {m['sequence']} is not 01–99")
        return FileName(kind, name, m["creditor"], day, sequence)
    expected = ", ".join(layout.name_pattern for layout in all_layouts().values())
    raise FileNameError(f"{name!r} matches none of the spec's file name patterns ({expected})")


def build_file_name(kind: str, creditor: str | int, day: date, sequence: int) -> str:
    """The name of a PRLV, RETR, MNDT or RELV file (for an ACK use ``ack_name``)."""
    if kind == "ACK":
        raise ValueError("an ACK is named after its PRLV file: use ack_name()")
    if not 1 <= sequence <= 99:
        raise FileNameError(f"sequence {sequence} is not 01–99")
    name = f"{kind}_{int(creditor):06d}_{day:%Y%m%d}_{sequence:02d}.txt"
    parse_file_name(name)
    return name


def ack_name(prlv_name: str) -> str:
    parsed = parse_file_name(prlv_name)
    if parsed.kind != "PRLV":
        raise FileNameError(f"{prlv_name} is not a PRLV file name")
    return f"ACK_{prlv_name}"
