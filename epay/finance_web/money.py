"""Money for people: integer centimes shown as DZD with two decimals, by integer arithmetic only."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral
from typing import Any

NBSP = "\u00a0"


def centimes(value: Any) -> int:
    """An amount read from the ledger as an int; a float (or anything that is not a whole number of
    centimes) is refused rather than rounded."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, Integral):
        return int(value)
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":  # numpy integer scalar
        return int(value)
    raise TypeError(f"amounts are integer centimes, got {type(value).__name__}: {value!r}")


def total(values: Iterable[Any]) -> int:
    return sum((centimes(v) for v in values), 0)


def dzd(amount: Any) -> str:
    """12345678 → '123 456.78 DZD' (non-breaking spaces between thousands)."""
    value = centimes(amount)
    sign = "-" if value < 0 else ""
    dinars, cents = divmod(abs(value), 100)
    return f"{sign}{dinars:,}.{cents:02d}".replace(",", NBSP) + f"{NBSP}DZD"
