"""Settlement business days: weekend, holidays, corrections file, vectorised form."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epay.calendar import (
    DEFAULT_HOLIDAYS_FILE,
    BusinessCalendar,
    HolidayFileError,
    algeria_holidays,
    load_calendar,
)

D = date


@pytest.fixture(scope="module")
def cal() -> BusinessCalendar:
    """The calendar in force (library + schemas/holidays.toml)."""
    return load_calendar()


@pytest.fixture(scope="module")
def lib() -> BusinessCalendar:
    """Library estimates only, so tests on estimated dates do not depend on the corrections file."""
    return BusinessCalendar()


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "holidays.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# ---- library data ---------------------------------------------------------------------------------

LIBRARY_2026 = {
    D(2026, 1, 1): "New Year's Day",
    D(2026, 1, 12): "Amazigh New Year",
    D(2026, 3, 20): "Eid al-Fitr (estimated)",
    D(2026, 3, 21): "Eid al-Fitr (estimated)",
    D(2026, 3, 22): "Eid al-Fitr (estimated)",
    D(2026, 5, 1): "Labor Day",
    D(2026, 5, 27): "Eid al-Adha (estimated)",
    D(2026, 5, 28): "Eid al-Adha (estimated)",
    D(2026, 5, 29): "Eid al-Adha (estimated)",
    D(2026, 6, 16): "Islamic New Year (estimated)",
    D(2026, 6, 25): "Ashura (estimated)",
    D(2026, 7, 5): "Independence Day",
    D(2026, 8, 25): "Prophet's Birthday (estimated)",
    D(2026, 11, 1): "Revolution Day",
}


def test_library_2026_is_what_we_reviewed(lib: BusinessCalendar) -> None:
    # Fails if a `holidays` upgrade moves a date: review schemas/holidays.toml, then update this.
    assert lib.holidays_in(2026) == LIBRARY_2026


@pytest.mark.parametrize("year", [2026, 2027, 2030])
def test_library_has_the_fixed_algerian_holidays(year: int) -> None:
    got = algeria_holidays(year)
    for month, day in [(1, 1), (1, 12), (5, 1), (7, 5), (11, 1)]:
        names = got[D(year, month, day)]
        assert not any(n.endswith("(estimated)") for n in names), names


def test_library_gives_three_days_for_each_eid() -> None:
    names = [n for ns in algeria_holidays(2027).values() for n in ns]
    assert names.count("Eid al-Fitr (estimated)") == 3
    assert names.count("Eid al-Adha (estimated)") == 3


def test_holiday_names_do_not_depend_on_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "ar_DZ.UTF-8")
    monkeypatch.setenv("LC_ALL", "ar_DZ.UTF-8")
    assert algeria_holidays(2026)[D(2026, 11, 1)] == ("Revolution Day",)


def test_a_date_with_two_holidays_lists_both(lib: BusinessCalendar) -> None:
    assert lib.holidays_in(2025)[D(2025, 7, 5)] == "Ashura (estimated); Independence Day"


# ---- scalar API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [D(2026, 11, 27), D(2026, 11, 28), D(2027, 1, 8), D(2027, 1, 9)])
def test_friday_and_saturday_are_not_business_days(cal: BusinessCalendar, d: date) -> None:
    assert d.weekday() in (4, 5)
    assert not cal.is_business_day(d)


@pytest.mark.parametrize("d", [D(2026, 11, 29), D(2026, 11, 25), D(2026, 11, 26), D(2026, 11, 30)])
def test_sunday_to_thursday_are_business_days(cal: BusinessCalendar, d: date) -> None:
    assert cal.is_business_day(d)


def test_revolution_day_2026_is_a_sunday_holiday(cal: BusinessCalendar) -> None:
    d = D(2026, 11, 1)
    assert d.weekday() == 6
    assert not cal.is_business_day(d)
    assert cal.holidays_in(2026)[d] == "Revolution Day"


@pytest.mark.parametrize("d", [D(2026, 1, 1), D(2026, 1, 12), D(2026, 7, 5), D(2027, 7, 5), D(2027, 11, 1)])
def test_fixed_holidays_on_weekdays_are_not_business_days(cal: BusinessCalendar, d: date) -> None:
    assert d.weekday() not in (4, 5)
    assert not cal.is_business_day(d)


def test_next_business_day_over_a_weekend(cal: BusinessCalendar) -> None:
    assert cal.next_business_day(D(2026, 11, 26)) == D(2026, 11, 29)
    assert cal.next_business_day(D(2026, 11, 27)) == D(2026, 11, 29)
    assert cal.next_business_day(D(2026, 11, 25)) == D(2026, 11, 26)


def test_next_business_day_over_a_holiday(cal: BusinessCalendar, lib: BusinessCalendar) -> None:
    # Thu 29 Oct 2026 -> Fri, Sat, Sun 1 Nov (Revolution Day) -> Mon 2 Nov
    assert cal.next_business_day(D(2026, 10, 29)) == D(2026, 11, 2)
    # Thu 31 Dec 2026 -> Fri 1 Jan (New Year), Sat -> Sun 3 Jan 2027, across the year
    assert cal.next_business_day(D(2026, 12, 31)) == D(2027, 1, 3)
    # Tue 26 May 2026 -> Eid al-Adha Wed-Fri (estimated), Sat -> Sun 31 May
    assert lib.next_business_day(D(2026, 5, 26)) == D(2026, 5, 31)


def test_previous_business_day(cal: BusinessCalendar) -> None:
    assert cal.previous_business_day(D(2026, 11, 29)) == D(2026, 11, 26)
    assert cal.previous_business_day(D(2026, 11, 2)) == D(2026, 10, 29)
    assert cal.previous_business_day(D(2027, 1, 3)) == D(2026, 12, 31)


def test_add_business_days_forwards(cal: BusinessCalendar) -> None:
    wed = D(2026, 11, 25)
    assert cal.add_business_days(wed, 1) == D(2026, 11, 26)
    assert cal.add_business_days(wed, 2) == D(2026, 11, 29)
    assert cal.add_business_days(wed, 3) == D(2026, 11, 30)
    assert cal.add_business_days(wed, 7) == D(2026, 12, 6)
    # from a non-business day: the n-th business day strictly after it
    assert cal.add_business_days(D(2026, 11, 27), 1) == D(2026, 11, 29)
    assert cal.add_business_days(D(2026, 10, 29), 1) == D(2026, 11, 2)


def test_add_business_days_backwards(cal: BusinessCalendar) -> None:
    wed = D(2026, 11, 25)
    assert cal.add_business_days(wed, -1) == D(2026, 11, 24)
    assert cal.add_business_days(wed, -3) == D(2026, 11, 22)
    assert cal.add_business_days(wed, -4) == D(2026, 11, 19)
    assert cal.add_business_days(D(2026, 11, 2), -1) == D(2026, 10, 29)  # skips 1 Nov and the weekend


def test_add_zero_business_days_rolls_forward_only_when_needed(cal: BusinessCalendar) -> None:
    assert cal.add_business_days(D(2026, 11, 25), 0) == D(2026, 11, 25)
    assert cal.add_business_days(D(2026, 11, 27), 0) == D(2026, 11, 29)
    assert cal.add_business_days(D(2026, 11, 1), 0) == D(2026, 11, 2)


def test_business_days_between(cal: BusinessCalendar) -> None:
    assert cal.business_days_between(D(2026, 11, 26), D(2026, 11, 29)) == 1  # Fri, Sat, Sun
    assert cal.business_days_between(D(2026, 11, 25), D(2026, 11, 26)) == 1  # b counted
    assert cal.business_days_between(D(2026, 11, 25), D(2026, 11, 25)) == 0
    assert cal.business_days_between(D(2026, 10, 29), D(2026, 11, 2)) == 1  # 1 Nov is a holiday
    assert cal.business_days_between(D(2026, 11, 29), D(2026, 11, 26)) == -1
    assert cal.business_days_between(D(2026, 11, 22), D(2026, 12, 6)) == 10


@pytest.mark.parametrize(("year", "expected"), [(2026, 251), (2027, 249)])
def test_business_days_in_a_whole_year(lib: BusinessCalendar, year: int, expected: int) -> None:
    # Counted by hand: 2026 has 261 Sunday-Thursdays, 10 of them holidays (library estimates);
    # 2027 has 260, 11 of them holidays.
    assert lib.business_days_between(D(year - 1, 12, 31), D(year, 12, 31)) == expected
    days = [D(year, 1, 1) + timedelta(days=i) for i in range(365)]
    assert sum(lib.is_business_day(d) for d in days) == expected


def test_datetime_is_refused(cal: BusinessCalendar) -> None:
    with pytest.raises(TypeError, match=r"datetime\.date"):
        cal.is_business_day(datetime(2026, 11, 1, 12, 0))  # would otherwise miss the holiday


@pytest.mark.parametrize("d", [D(1999, 12, 30), D(2101, 1, 2)])
def test_year_out_of_range(cal: BusinessCalendar, d: date) -> None:
    with pytest.raises(ValueError, match="outside the supported range"):
        cal.is_business_day(d)
    with pytest.raises(ValueError, match="outside the supported range"):
        cal.holidays_in(d.year)


def test_calendar_is_immutable(cal: BusinessCalendar) -> None:
    with pytest.raises(AttributeError):
        cal._added = {}
    cal.holidays_in(2026).clear()
    assert D(2026, 11, 1) in cal.holidays_in(2026)


def test_from_holidays_uses_exactly_those_dates() -> None:
    c = BusinessCalendar.from_holidays([D(2026, 11, 25)])
    assert not c.is_business_day(D(2026, 11, 25))
    assert c.is_business_day(D(2026, 11, 1))  # no library behind it
    assert c.holidays_in(2026) == {D(2026, 11, 25): "Holiday"}


# ---- vectorised -------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", [2025, 2026, 2027])
def test_vectorised_agrees_with_scalar_over_a_year(cal: BusinessCalendar, year: int) -> None:
    days = np.arange(f"{year}-01-01", f"{year + 1}-01-01", dtype="datetime64[D]")
    got = cal.is_business_day_array(days)
    assert got.dtype == np.bool_ and got.shape == days.shape
    expected = [cal.is_business_day(D.fromisoformat(str(d))) for d in days]
    assert got.tolist() == expected


def test_vectorised_keeps_shape_and_accepts_other_units(cal: BusinessCalendar) -> None:
    days = np.array([["2026-11-01T10:00", "2026-11-02T23:59"], ["2026-11-27T00:00", "2027-01-03T08:00"]])
    got = cal.is_business_day_array(days.astype("datetime64[ns]"))
    assert got.tolist() == [[False, True], [False, True]]
    assert cal.is_business_day_array(np.array([], dtype="datetime64[D]")).shape == (0,)


def test_vectorised_refuses_nat_and_non_dates(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="NaT"):
        cal.is_business_day_array(np.array(["2026-11-01", "NaT"], dtype="datetime64[D]"))
    with pytest.raises(TypeError):
        cal.is_business_day_array(np.array([20261101]))
    with pytest.raises(ValueError, match="outside the supported range"):
        cal.is_business_day_array(np.array(["2101-01-01"], dtype="datetime64[D]"))


# ---- properties -------------------------------------------------------------------------------------

dates = st.dates(min_value=D(2001, 1, 1), max_value=D(2099, 12, 31))


@settings(max_examples=200, deadline=None)
@given(d=dates, n=st.integers(min_value=-30, max_value=30))
def test_add_business_days_properties(cal: BusinessCalendar, d: date, n: int) -> None:
    r = cal.add_business_days(d, n)
    assert cal.is_business_day(r)
    if n > 0:
        assert r > d and cal.business_days_between(d, r) == n
    elif n < 0:
        assert r < d and cal.business_days_between(r, cal.previous_business_day(d)) == -n - 1
    else:
        assert r >= d and cal.business_days_between(d, r) == (0 if r == d else 1)


@settings(max_examples=200, deadline=None)
@given(
    # a year of margin on each side: a ± 400 days stays inside the calendar's 2000–2100 range
    a=st.dates(min_value=D(2002, 1, 1), max_value=D(2098, 12, 31)),
    offset=st.integers(min_value=-400, max_value=400),
)
def test_business_days_between_matches_a_day_by_day_count(
    cal: BusinessCalendar, a: date, offset: int
) -> None:
    b = a + timedelta(days=offset)
    lo = min(a, b)
    count = sum(cal.is_business_day(lo + timedelta(days=i)) for i in range(1, abs(offset) + 1))
    assert cal.business_days_between(a, b) == (count if offset >= 0 else -count)


# ---- corrections file -------------------------------------------------------------------------------


def test_default_file_loads_and_is_cached(cal: BusinessCalendar) -> None:
    assert DEFAULT_HOLIDAYS_FILE.is_file()
    assert load_calendar() is cal
    assert load_calendar(DEFAULT_HOLIDAYS_FILE).holidays_in(2026) == cal.holidays_in(2026)


def test_default_file_corrects_eid_al_fitr_2025(cal: BusinessCalendar, lib: BusinessCalendar) -> None:
    sun, wed = D(2025, 3, 30), D(2025, 4, 2)
    assert not lib.is_business_day(sun) and lib.is_business_day(wed)
    assert cal.is_business_day(sun) and not cal.is_business_day(wed)
    assert cal.holidays_in(2025)[wed] == "Eid al-Fitr"


def test_file_adds_and_removes_dates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        format_version = 1

        [[remove]]
        date = 2026-03-22
        reason = "Eid al-Fitr announced for 19 March"

        [[add]]
        date = 2026-03-19
        name = "Eid al-Fitr"
        reference = "communiqué"

        [[add]]
        date = 2026-11-25
        name = "Exceptional day off"
        """,
    )
    c = load_calendar(path)
    assert c.is_business_day(D(2026, 3, 22))  # Sunday, estimate removed
    assert not c.is_business_day(D(2026, 3, 19))
    assert not c.is_business_day(D(2026, 11, 25))
    hol = c.holidays_in(2026)
    assert D(2026, 3, 22) not in hol
    assert hol[D(2026, 3, 19)] == "Eid al-Fitr"
    assert hol[D(2026, 3, 20)] == "Eid al-Fitr (estimated)"  # untouched
    assert c.next_business_day(D(2026, 11, 24)) == D(2026, 11, 26)
    assert c.is_business_day_array(
        np.array(["2026-03-22", "2026-11-25"], dtype="datetime64[D]")
    ).tolist() == [
        True,
        False,
    ]
    assert c.business_days_between(D(2026, 11, 24), D(2026, 11, 26)) == 1
    assert c.added == {D(2026, 3, 19): "Eid al-Fitr", D(2026, 11, 25): "Exceptional day off"}
    assert c.removed == {D(2026, 3, 22)}


def test_removal_keeps_a_fixed_holiday_on_the_same_day(tmp_path: Path) -> None:
    path = write(tmp_path, 'format_version = 1\n[[remove]]\ndate = 2025-07-05\nreason = "moved"\n')
    assert load_calendar(path).holidays_in(2025)[D(2025, 7, 5)] == "Independence Day"


def test_remove_and_add_the_same_date_confirms_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        format_version = 1
        [[remove]]
        date = 2026-06-16
        reason = "confirmed"
        [[add]]
        date = 2026-06-16
        name = "Islamic New Year"
        """,
    )
    c = load_calendar(path)
    assert c.holidays_in(2026)[D(2026, 6, 16)] == "Islamic New Year"
    assert not c.is_business_day(D(2026, 6, 16))


def test_empty_file_with_version_is_the_library(tmp_path: Path, lib: BusinessCalendar) -> None:
    c = load_calendar(write(tmp_path, "format_version = 1\n"))
    assert c.holidays_in(2026) == lib.holidays_in(2026)


@pytest.mark.parametrize(
    ("body", "entry", "problem"),
    [
        ("format_version = 1\n[[add]\n", None, "not valid TOML"),
        ("[[add]]\ndate = 2026-03-19\nname = 'x'\n", None, "format_version must be 1"),
        ("format_version = 2\n", None, "format_version must be 1"),
        ("format_version = 1\nextra = 3\n", None, "unknown top-level key"),
        ("format_version = 1\n[add]\ndate = 2026-03-19\n", "[add]", "written [[add]]"),
        ("format_version = 1\n[[add]]\ndate = 2026-03-19\n", "[[add]] entry #1", "missing key(s): name"),
        (
            "format_version = 1\n[[add]]\ndate = '2026-03-19'\nname = 'x'\n",
            "[[add]] entry #1",
            "unquoted TOML date",
        ),
        (
            "format_version = 1\n[[add]]\ndate = 2026-03-19T10:00:00\nname = 'x'\n",
            "[[add]] entry #1",
            "unquoted TOML date",
        ),
        ("format_version = 1\n[[add]]\ndate = 2026-03-19\nname = ' '\n", "[[add]] entry #1", "non-empty"),
        (
            "format_version = 1\n[[add]]\ndate = 2026-03-19\nname = 'x'\nnmae = 'y'\n",
            "[[add]] entry #1 (date = 2026-03-19)",
            "unknown key(s): nmae",
        ),
        (
            "format_version = 1\n[[add]]\ndate = 2026-03-19\nname = 'x'\n"
            "[[add]]\ndate = 2026-03-19\nname = 'y'\n",
            "[[add]] entry #2",
            "already appears in [[add]] entry #1",
        ),
        ("format_version = 1\n[[add]]\ndate = 2101-01-01\nname = 'x'\n", "[[add]] entry #1", "outside"),
        (
            "format_version = 1\n[[remove]]\ndate = 2026-11-01\nreason = 'x'\n",
            "[[remove]] entry #1 (date = 2026-11-01)",
            "not an estimated date",
        ),
        (
            "format_version = 1\n[[remove]]\ndate = 2026-11-25\nreason = 'x'\n",
            "[[remove]] entry #1",
            "not a holiday in the library list",
        ),
        ("format_version = 1\n[[remove]]\ndate = 2026-03-22\n", "[[remove]] entry #1", "reason"),
    ],
)
def test_malformed_file_names_the_file_and_entry(
    tmp_path: Path, body: str, entry: str | None, problem: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(HolidayFileError) as info:
        load_calendar(path)
    message = str(info.value)
    assert str(path) in message
    assert problem in message
    if entry is not None:
        assert entry in message
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_calendar(tmp_path / "nope.toml")


def test_constructor_checks_removals_too() -> None:
    with pytest.raises(ValueError, match="only estimated"):
        BusinessCalendar(removed=[D(2026, 11, 1)])
    with pytest.raises(ValueError, match="non-empty name"):
        BusinessCalendar(added={D(2026, 11, 25): ""})
