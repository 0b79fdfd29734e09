"""Values that must be unique within a file (end-to-end references, AP transaction ids, RELV dates).

Each chunk's field bytes are kept with a 64-bit fingerprint; at the end sorting the integers (numpy's
radix sort, far faster than hashing strings) finds equal fingerprints, confirmed on the bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from epay.formats.layout import RecordLayout

_MIX = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93], dtype=np.uint64
)


def fingerprints(sub: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.void], npt.NDArray[np.uint64]]:
    """(n, w) field bytes -> (the raw values, one 64-bit fingerprint per row)."""
    n, width = sub.shape
    words = -(-width // 8)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, :width] = sub
    as_words = padded.view(np.uint64)
    fingerprint = np.zeros(n, dtype=np.uint64)
    for column in range(words):
        fingerprint ^= as_words[:, column] * _MIX[column % len(_MIX)]
        fingerprint ^= fingerprint >> np.uint64(29)
    return np.ascontiguousarray(sub).view(f"V{width}").ravel(), fingerprint


def key_bytes(block: npt.NDArray[np.uint8], record: RecordLayout, name: str) -> npt.NDArray[np.uint8]:
    """The bytes that must be unique for field ``name``: the field, or the field and its partner."""
    spec = record.field(name)
    sub = block[:, spec.offset : spec.end]
    if spec.unique_with is None:
        return sub
    partner = record.field(spec.unique_with)
    return np.concatenate((sub, block[:, partner.offset : partner.end]), axis=1)


@dataclass
class Repeats:
    """Rows (by line) whose value already appeared earlier in the file."""

    field: str
    later: npt.NDArray[np.bool_]
    lines: npt.NDArray[np.int64]
    raw: npt.NDArray[np.void]

    def value(self, row: int) -> str:
        text: str = self.raw[row].tobytes().decode("ascii", "replace")
        return " ".join(text.split())

    @property
    def value_of(self) -> Callable[[int], str]:
        return self.value


@dataclass
class UniquenessTracker:
    raw: dict[str, list[npt.NDArray[np.void]]] = field(default_factory=dict)
    hashes: dict[str, list[npt.NDArray[np.uint64]]] = field(default_factory=dict)
    lines: dict[str, list[npt.NDArray[np.int64]]] = field(default_factory=dict)

    def add(self, name: str, sub: npt.NDArray[np.uint8], lines: npt.NDArray[np.int64]) -> None:
        raw, hashes = fingerprints(sub)
        self.raw.setdefault(name, []).append(raw)
        self.hashes.setdefault(name, []).append(hashes)
        self.lines.setdefault(name, []).append(lines)

    def repeats(self) -> Iterator[Repeats]:
        for name, parts in self.hashes.items():
            hashes = np.concatenate(parts)
            ordered = np.sort(hashes)  # numpy sorts integers by radix: ~10 ms for a million
            equal_neighbours = ordered[1:] == ordered[:-1]
            if not equal_neighbours.any():
                continue
            candidates = np.flatnonzero(np.isin(hashes, ordered[1:][equal_neighbours]))
            raw = np.concatenate(self.raw[name])
            seen: set[bytes] = set()
            later = np.zeros(len(hashes), dtype=np.bool_)
            for row in candidates.tolist():
                value = raw[row].tobytes()
                later[row] = value in seen
                seen.add(value)
            if later.any():
                yield Repeats(name, later, np.concatenate(self.lines[name]), raw)
