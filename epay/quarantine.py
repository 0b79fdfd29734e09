"""Quarantine: a file epay must not use is moved aside with its reasons beside it, never over another.

The reasons file (``<name>.reason.txt``) starts with what the exceptions list needs to place the file:

    business date: 2026-11-25        the business date of the run that quarantined it
    sha256: 9f86d0...                the file's bytes (its exception's reference is derived from them)

then one reason per line. The business date is the run's (the job's or the DAG run's day), never the
machine's: a file quarantined while a past day is re-run belongs to that day's exceptions list. The
reasons file's time is when it was written, by epay's clock.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REASON_SUFFIX = ".reason.txt"
_FIELD = re.compile(r"^(business date|sha256): (\S+)$")


@dataclass(frozen=True)
class ReasonsFile:
    """What a reasons file says: the run's business date and the file's sha256 (None in a reasons file
    written before they were recorded) and the reasons."""

    business_date: date | None
    sha256: str | None
    reasons: tuple[str, ...]


def quarantine_file(
    folder: Path, path: Path, reasons: list[str], *, business_date: date | None = None
) -> Path:
    """Move ``path`` into ``folder`` (``NAME``, or ``NAME.1``, ``NAME.2``... if taken) and write the run's
    ``business_date`` (default: today in Algiers by epay's clock), the file's sha256 and the reasons to
    ``<that name>.reason.txt``; return where the file went."""
    from epay.clock import process_clock
    from epay.settings import ALGIERS

    moment = process_clock().now()
    day = business_date or moment.astimezone(ALGIERS).date()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    counter = 1
    while target.exists():
        target = folder / f"{path.name}.{counter}"
        counter += 1
    digest = file_sha256(path)
    shutil.move(path, target)
    reasons_file = target.with_name(target.name + REASON_SUFFIX)
    lines = [f"business date: {day.isoformat()}", f"sha256: {digest}", *reasons]
    reasons_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # the reasons file's time is when it was quarantined, by epay's clock
    os.utime(reasons_file, (moment.timestamp(), moment.timestamp()))
    return target


def read_reasons(text: str) -> ReasonsFile:
    """Parse a reasons file: its leading ``business date:`` and ``sha256:`` lines, then the reasons."""
    fields: dict[str, str] = {}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    while lines and (match := _FIELD.match(lines[0])) and match.group(1) not in fields:
        fields[match.group(1)] = match.group(2)
        lines.pop(0)
    day: date | None = None
    if "business date" in fields:
        try:
            day = date.fromisoformat(fields["business date"])
        except ValueError:
            day = None
    return ReasonsFile(day, fields.get("sha256"), tuple(lines))


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
