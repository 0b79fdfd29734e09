"""Text normalisation for A fields, spec §1.

Senders upper-case, strip accents, expand ligatures, turn any other character into a space and cut at
the field's width. This is deliberately *not* a transliteration: a name written only in Arabic script
becomes empty, and the sender must flag it for correction instead of inventing a Latin spelling.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

A_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-'/&()"
F_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_."
REFERENCE_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Letters that Unicode decomposition leaves whole; expanded the way French and German write them.
LIGATURES = {
    "Œ": "OE",
    "œ": "OE",
    "Æ": "AE",
    "æ": "AE",
    "ß": "SS",
    "ẞ": "SS",
    "Ø": "O",
    "ø": "O",
    "Đ": "D",
    "đ": "D",
    "Ł": "L",
    "ł": "L",
    "Þ": "TH",
    "þ": "TH",
    "Ð": "D",
    "ð": "D",
    "ı": "I",
    "’": "'",
    "‘": "'",
    "ʼ": "'",  # typographic apostrophes are apostrophes
}


def _lookup(allowed: str) -> npt.NDArray[np.bool_]:
    table = np.zeros(256, dtype=np.bool_)
    table[np.frombuffer(allowed.encode("ascii"), dtype=np.uint8)] = True
    return table


A_ALLOWED = _lookup(A_CHARACTERS)

# ASCII byte -> byte it becomes in an A field: lower case up, anything not allowed to a space.
_A_MAP = np.full(256, ord(" "), dtype=np.uint8)
_A_MAP[A_ALLOWED] = np.flatnonzero(A_ALLOWED).astype(np.uint8)
_A_MAP[ord("a") : ord("z") + 1] = np.arange(ord("A"), ord("Z") + 1, dtype=np.uint8)


def to_ascii(value: str) -> str:
    """Strip accents and expand ligatures; any character left outside ASCII becomes a space."""
    if value.isascii():
        return value
    value = "".join(LIGATURES.get(ch, ch) for ch in value)
    decomposed = unicodedata.normalize("NFKD", value)
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    kept = "".join(LIGATURES.get(ch, ch) for ch in kept)
    return "".join(ch if ch.isascii() else " " for ch in kept)


def normalize_text(value: str, width: int) -> str:
    """The A-field form of ``value`` (upper-case, allowed characters only, left-aligned, cut at width).

    Returns the value *without* padding; an empty string means nothing sendable is left.
    """
    raw = to_ascii(value).encode("ascii")
    mapped = _A_MAP[np.frombuffer(raw, dtype=np.uint8)].tobytes().decode("ascii")
    return mapped.strip()[:width].rstrip()


_A_TRANSLATE = _A_MAP.tobytes()


def normalize_text_block(values: pa.Array, width: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Vectorised ``normalize_text`` of a string array into an (n, width) space-padded byte block.

    Returns the block and a mask of the rows left empty (nulls included), which a sender must not
    send. ASCII values are mapped byte by byte through the A-field table in one pass; the rare
    non-ASCII value goes through the exact per-value function first.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    nulls = values.is_null().to_numpy(zero_copy_only=False)
    values = values.fill_null("")
    non_ascii = pc.invert(pc.string_is_ascii(values))
    if pc.any(non_ascii).as_py():
        # names repeat: each distinct non-ASCII value goes through the exact function once
        odd = values.filter(non_ascii)
        distinct = pc.unique(odd)
        normalized = pa.array([normalize_text(v, width) for v in distinct.to_pylist()], type=pa.string())
        values = pc.replace_with_mask(
            values, non_ascii, pc.take(normalized, pc.index_in(odd, value_set=distinct))
        )
    # Map every byte first (lower case up, anything not allowed to a space), then trim, cut and pad:
    # the same order as normalize_text, so a value starting with "*" loses it before the cut.
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[
        values.offset : values.offset + len(values) + 1
    ]
    data = values.buffers()[2]
    used = memoryview(data)[offsets[0] : offsets[-1]] if data is not None else memoryview(b"")
    mapped = pa.py_buffer(bytes(used).translate(_A_TRANSLATE))  # only this slice's bytes, not the column's
    values = pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets - offsets[0]), mapped]
    )
    cut = pc.utf8_slice_codeunits(pc.ascii_trim(values, characters=" "), 0, width)
    block = padded_block(cut, width)
    empty = nulls | (block == 32).all(axis=1)
    return block, empty


def padded_block(values: pa.Array, width: int) -> npt.NDArray[np.uint8]:
    """ASCII strings of at most ``width`` bytes -> (n, width) block, padded with spaces."""
    padded = pc.ascii_rpad(values, width=width, padding=" ")
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)[
        padded.offset : padded.offset + len(padded) + 1
    ]
    data = padded.buffers()[2]
    flat = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    flat = flat[offsets[0] : offsets[-1]]
    if flat.size != len(padded) * width:
        raise ValueError(f"a value is longer than {width} bytes")
    return flat.reshape(len(padded), width)
