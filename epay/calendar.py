"""Settlement business days (exchange-files spec §1).

A business day is Sunday to Thursday (Friday and Saturday are the weekend in Algeria) that is not an
Algerian public holiday. The holiday list of a year is the maintained ``holidays`` library's list for
Algeria (category "public", names in English whatever the locale), with its estimated Islamic dates
corrected by ONE corrections file, ``schemas/holidays.toml`` by default. The operator and the post
office read the same file, so for a given file (and the ``holidays`` version pinned in uv.lock) every
answer here is deterministic.

Pure logic: no database, network or clock. Holidays are computed lazily, one year at a time, for years
``MIN_YEAR`` to ``MAX_YEAR``; any other year raises ``ValueError``.
"""

from __future__ import annotations

import functools
import stat
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NoReturn

import holidays
import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_HOLIDAYS_FILE",
    "MAX_YEAR",
    "MIN_YEAR",
    "BusinessCalendar",
    "CalendarRangeError",
    "HolidayFileError",
    "HolidaySource",
    "algeria_holidays",
    "load_calendar",
]

MIN_YEAR: Final = 2000
MAX_YEAR: Final = 2100
DEFAULT_HOLIDAYS_FILE: Final = Path(__file__).resolve().parents[1] / "schemas" / "holidays.toml"
FORMAT_VERSION: Final = 1
ESTIMATED_SUFFIX: Final = " (estimated)"

_WEEKEND: Final = frozenset({4, 5})  # date.weekday(): Friday, Saturday
_WEEKMASK: Final = "1111001"  # numpy busday weekmask, Monday..Sunday
_ONE_DAY: Final = timedelta(days=1)

HolidaySource = Callable[[int], Mapping[date, tuple[str, ...]]]
"""Gives the holidays of one year: date -> the names of the holidays on that date."""


class CalendarRangeError(ValueError):
    """A year outside MIN_YEAR-MAX_YEAR was asked for: the calendar knows nothing of it."""


def _check_year(year: int) -> int:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise CalendarRangeError(f"year {year} is outside the supported range {MIN_YEAR}-{MAX_YEAR}")
    return year


def _as_date(d: object) -> date:
    # datetime is a subclass of date but never equal to one: it would silently miss every holiday.
    if isinstance(d, datetime) or not isinstance(d, date):
        raise TypeError(f"expected a datetime.date, got {type(d).__name__}: {d!r}")
    return d


def algeria_holidays(year: int) -> dict[date, tuple[str, ...]]:
    """Algeria's public holidays of ``year`` per the ``holidays`` library, uncorrected.

    Islamic holidays whose date the library only estimates carry the " (estimated)" suffix.
    """
    _check_year(year)
    # language pinned: the library's default follows $LANG (Arabic names, or English, by machine).
    lib = holidays.country_holidays("DZ", years=year, language="en_US", categories="public")
    return {d: tuple(lib.get_list(d)) for d in sorted(lib) if d.year == year}


@functools.cache
def _library_year(year: int) -> Mapping[date, tuple[str, ...]]:
    return MappingProxyType(algeria_holidays(year))


def _is_estimated(name: str) -> bool:
    return name.endswith(ESTIMATED_SUFFIX)


def _removal_problem(base: HolidaySource, d: date) -> str | None:
    """Why ``d`` cannot be removed from ``base`` (None if it can)."""
    names = base(d.year).get(d, ())
    if not names:
        return f"{d.isoformat()} is not a holiday in the library list: nothing to remove"
    if not any(_is_estimated(n) for n in names):
        return (
            f"{d.isoformat()} ({'; '.join(names)}) is not an estimated date: only estimated "
            "Islamic holidays can be removed"
        )
    return None


class BusinessCalendar:
    """Immutable settlement calendar: Sunday-Thursday minus holidays.

    Holidays of a year = ``base(year)`` (the ``holidays`` library by default), minus the estimated
    holidays on the ``removed`` dates, plus the ``added`` dates (date -> name). Use
    :meth:`from_holidays` for a calendar given by an explicit list of holiday dates.
    """

    __slots__ = ("_added", "_base", "_lock", "_np_years", "_removed", "_years")

    _added: Mapping[date, str]
    _removed: frozenset[date]
    _base: HolidaySource
    _lock: threading.Lock
    _years: dict[int, Mapping[date, str]]
    _np_years: dict[int, npt.NDArray[np.datetime64]]

    def __init__(
        self,
        added: Mapping[date, str] | None = None,
        removed: Iterable[date] = (),
        *,
        base: HolidaySource = _library_year,
    ) -> None:
        added_copy: dict[date, str] = {}
        for d, name in sorted((added or {}).items()):
            _check_year(_as_date(d).year)
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"added holiday {d.isoformat()} needs a non-empty name")
            added_copy[d] = name.strip()
        removed_set = frozenset(_as_date(d) for d in removed)
        for d in sorted(removed_set):
            _check_year(d.year)
            problem = _removal_problem(base, d)
            if problem is not None:
                raise ValueError(problem)
        init = object.__setattr__
        init(self, "_added", MappingProxyType(added_copy))
        init(self, "_removed", removed_set)
        init(self, "_base", base)
        init(self, "_lock", threading.Lock())
        init(self, "_years", {})
        init(self, "_np_years", {})

    @classmethod
    def from_holidays(cls, days: Mapping[date, str] | Iterable[date]) -> BusinessCalendar:
        """Calendar whose holidays are exactly ``days`` (no library), e.g. for tests and simulations."""
        named = dict(days) if isinstance(days, Mapping) else {_as_date(d): "Holiday" for d in days}
        by_year: dict[int, dict[date, tuple[str, ...]]] = {}
        for d, name in named.items():
            by_year.setdefault(_check_year(_as_date(d).year), {})[d] = (name,)

        def base(year: int) -> Mapping[date, tuple[str, ...]]:
            return by_year.get(year, {})

        return cls(base=base)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(added={len(self._added)} dates, removed={len(self._removed)} dates)"

    @property
    def added(self) -> Mapping[date, str]:
        """Dates added on top of the base list (date -> name), read-only."""
        return self._added

    @property
    def removed(self) -> frozenset[date]:
        """Dates whose estimated holidays were removed from the base list."""
        return self._removed

    def _year(self, year: int) -> Mapping[date, str]:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        _check_year(year)
        with self._lock:
            cached = self._years.get(year)
            if cached is None:
                merged: dict[date, list[str]] = {}
                for d, names in self._base(year).items():
                    kept = [n for n in names if not (d in self._removed and _is_estimated(n))]
                    if kept:
                        merged[d] = kept
                for d, name in self._added.items():
                    if d.year == year:
                        merged.setdefault(d, []).append(name)
                cached = MappingProxyType({d: "; ".join(merged[d]) for d in sorted(merged)})
                self._np_years[year] = np.array(sorted(merged), dtype="datetime64[D]")
                self._years[year] = cached
        return cached

    def _holiday_array(self, years: Iterable[int]) -> npt.NDArray[np.datetime64]:
        parts = []
        for year in sorted(set(years)):
            self._year(year)
            parts.append(self._np_years[year])
        return np.concatenate(parts) if parts else np.array([], dtype="datetime64[D]")

    def holidays_in(self, year: int) -> dict[date, str]:
        """The holidays of ``year`` (date -> name, several names joined by "; "), sorted by date.

        Includes holidays falling on a weekend; estimated dates keep their " (estimated)" suffix.
        """
        return dict(self._year(year))

    def is_business_day(self, d: date) -> bool:
        """True if ``d`` is a Sunday-Thursday that is not a holiday."""
        d = _as_date(d)
        return d.weekday() not in _WEEKEND and d not in self._year(d.year)

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after ``d``."""
        d = _as_date(d) + _ONE_DAY
        while not self.is_business_day(d):
            d += _ONE_DAY
        return d

    def previous_business_day(self, d: date) -> date:
        """The last business day strictly before ``d``."""
        d = _as_date(d) - _ONE_DAY
        while not self.is_business_day(d):
            d -= _ONE_DAY
        return d

    def add_business_days(self, d: date, n: int) -> date:
        """Move ``n`` business days from ``d``; the result is always a business day.

        n > 0: the n-th business day strictly after d (n = 1 is :meth:`next_business_day`).
        n < 0: the |n|-th business day strictly before d (n = -1 is :meth:`previous_business_day`).
        n = 0: d itself if it is a business day, else the next business day (roll forward).
        Whether d itself is a business day does not matter for n != 0. For n >= 1,
        ``business_days_between(d, add_business_days(d, n)) == n``.
        """
        d = _as_date(d)
        if n == 0:
            return d if self.is_business_day(d) else self.next_business_day(d)
        step = self.next_business_day if n > 0 else self.previous_business_day
        for _ in range(abs(n)):
            d = step(d)
        return d

    def business_days_between(self, a: date, b: date) -> int:
        """Number of business days in (a, b]: a excluded, b included; negative if b < a.

        business_days_between(a, b) == -business_days_between(b, a); 0 when a == b.
        """
        a, b = _as_date(a), _as_date(b)
        if b < a:
            return -self.business_days_between(b, a)
        if a == b:
            return 0
        hol = self._holiday_array(range(_check_year(a.year), _check_year(b.year) + 1))
        start = np.datetime64(a + _ONE_DAY, "D")
        end = np.datetime64(b, "D") + np.timedelta64(1, "D")
        return int(np.busday_count(start, end, weekmask=_WEEKMASK, holidays=hol))

    def is_business_day_array(self, days: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Vectorised :meth:`is_business_day` over a datetime64 array (cast to datetime64[D]).

        Returns a bool array of the same shape. NaT raises ValueError (a missing date is neither).
        """
        arr = np.asarray(days)
        if not np.issubdtype(arr.dtype, np.datetime64):
            raise TypeError(f"expected a numpy datetime64 array, got dtype {arr.dtype}")
        arr = arr.astype("datetime64[D]")
        if arr.size == 0:
            return np.zeros(arr.shape, dtype=np.bool_)
        if np.isnat(arr).any():
            raise ValueError("is_business_day_array: the array contains NaT")
        years = np.unique(arr.astype("datetime64[Y]").astype(np.int64) + 1970)
        hol = self._holiday_array(_check_year(int(y)) for y in years)
        result: npt.NDArray[np.bool_] = np.is_busday(arr, weekmask=_WEEKMASK, holidays=hol)
        return result


# --- the corrections file ----------------------------------------------------------------------------


class HolidayFileError(ValueError):
    """The holiday corrections file is malformed; the message names the file and the entry."""

    def __init__(self, path: Path, entry: str | None, problem: str) -> None:
        self.path = path
        self.entry = entry
        self.problem = problem
        where = f"{path}: {entry}" if entry else str(path)
        super().__init__(f"holiday corrections file {where}: {problem}")


_TOP_KEYS: Final = frozenset({"format_version", "add", "remove"})
# section -> (required keys, optional keys); every value but `date` is a non-empty string
_ENTRY_KEYS: Final = {
    "add": (("date", "name"), ("reference",)),
    "remove": (("date", "reason"), ()),
}


def _parse_entries(path: Path, raw: dict[str, Any], section: str) -> dict[date, tuple[str, str]]:
    """The [[section]] entries as date -> (text, entry label); checks keys, types, duplicates."""

    def fail(entry: str | None, problem: str) -> NoReturn:
        raise HolidayFileError(path, entry, problem)

    entries = raw.get(section, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        fail(f"[{section}]", f"must be an array of tables, written [[{section}]]")
    required, optional = _ENTRY_KEYS[section]
    text_key = required[1]
    result: dict[date, tuple[str, str]] = {}
    for i, entry in enumerate(entries, start=1):
        label = f"[[{section}]] entry #{i}"
        if isinstance(entry.get("date"), date):
            label += f" (date = {entry['date'].isoformat()})"
        missing = [k for k in required if k not in entry]
        if missing:
            fail(label, f"missing key(s): {', '.join(missing)}")
        unknown = sorted(set(entry) - set(required) - set(optional))
        if unknown:
            fail(label, f"unknown key(s): {', '.join(unknown)} (allowed: {', '.join(required + optional)})")
        d = entry["date"]
        if isinstance(d, datetime) or not isinstance(d, date):
            fail(label, f"date must be an unquoted TOML date like 2026-03-20, got {d!r}")
        if not MIN_YEAR <= d.year <= MAX_YEAR:
            fail(label, f"year {d.year} is outside the supported range {MIN_YEAR}-{MAX_YEAR}")
        for key in (*required[1:], *optional):
            if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
                fail(label, f"{key} must be a non-empty string, got {entry[key]!r}")
        if d in result:
            fail(label, f"{d.isoformat()} already appears in {result[d][1]}")
        result[d] = (entry[text_key].strip(), label)
    return result


def _read_calendar(path: Path) -> BusinessCalendar:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would wait forever, /dev/zero never end
            raise HolidayFileError(path, None, "not a regular file")
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise HolidayFileError(path, None, f"not valid TOML: {exc}") from exc
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise HolidayFileError(path, None, f"cannot be read: {exc}") from exc
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise HolidayFileError(
            path,
            None,
            f"unknown top-level key(s): {', '.join(unknown)} (allowed: {', '.join(sorted(_TOP_KEYS))})",
        )
    version = raw.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise HolidayFileError(path, None, f"format_version must be {FORMAT_VERSION}, got {version!r}")
    added = _parse_entries(path, raw, "add")
    removed = _parse_entries(path, raw, "remove")
    for d, (_, label) in removed.items():
        problem = _removal_problem(_library_year, d)
        if problem is not None:
            raise HolidayFileError(path, label, problem)
    return BusinessCalendar({d: name for d, (name, _) in added.items()}, removed)


@functools.cache
def _default_calendar() -> BusinessCalendar:
    return _read_calendar(DEFAULT_HOLIDAYS_FILE)


def load_calendar(path: Path | None = None) -> BusinessCalendar:
    """The settlement calendar: library holidays corrected by the file at ``path``.

    ``path=None`` reads the repository's ``schemas/holidays.toml`` once per process (cached).
    Raises ``HolidayFileError`` (a ValueError) naming the file and entry if the file is malformed,
    and ``FileNotFoundError`` if it does not exist.
    """
    if path is None:
        return _default_calendar()
    return _read_calendar(Path(path))
