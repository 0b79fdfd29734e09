"""The selection rules, alone: mandates active on the day, retries and their limit (pure, no database)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from epay.calendar import BusinessCalendar
from epay.outbound.selection import RetryPolicy, mandate_on, select_due

DAY = date(2026, 11, 25)  # a Wednesday


def items(*rows: dict[str, object]) -> pd.DataFrame:
    base = {
        "kind": "FA",
        "subscriber_name": "Amina Kaci",
        "amount": 150_000,
        "due_date": pd.Timestamp(DAY),
        "tries": 0,
        "last_reason": None,
        "last_reason_on": pd.NaT,
    }
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["last_reason_on"] = pd.to_datetime(frame["last_reason_on"])
    return frame


def mandates(*rows: dict[str, object]) -> pd.DataFrame:
    base = {
        "rip": "00799999123456789006",
        "ceiling": 0,
        "effective_date": pd.Timestamp(2026, 1, 1),
        "revoked_from": pd.NaT,
        "status": "active",
    }
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["revoked_from"] = pd.to_datetime(frame["revoked_from"])
    return frame


def reasons(selection_excluded: pd.DataFrame) -> dict[int, str]:
    return dict(zip(selection_excluded["item_id"], selection_excluded["reason"], strict=True))


def test_mandate_states_on_the_day(calendar: BusinessCalendar) -> None:
    due = items(
        {"item_id": 1, "number": "F1", "subscriber_number": "S1"},
        {"item_id": 2, "number": "F2", "subscriber_number": "S2"},
        {"item_id": 3, "number": "F3", "subscriber_number": "S3"},
        {"item_id": 4, "number": "F4", "subscriber_number": "S4"},
        {"item_id": 5, "number": "F5", "subscriber_number": "S5"},
        {"item_id": 6, "number": "F6", "subscriber_number": "S6"},
        {"item_id": 7, "number": "F7", "subscriber_number": "S7"},
        {"item_id": 8, "number": "F8", "subscriber_number": "S8"},
    )
    known = mandates(
        {"reference": "M1", "subscriber_number": "S1"},
        {"reference": "M2", "subscriber_number": "S2", "revoked_from": pd.Timestamp(DAY)},
        {"reference": "M3", "subscriber_number": "S3", "effective_date": pd.Timestamp(2026, 11, 26)},
        {"reference": "M4", "subscriber_number": "S4", "status": "suspended"},
        {"reference": "M5", "subscriber_number": "S5", "status": "blocked"},
        # revoked tomorrow: still active today
        {"reference": "M6", "subscriber_number": "S6", "revoked_from": pd.Timestamp(2026, 11, 26)},
        # an old revoked mandate and a newer active one: the active one is used
        {"reference": "M7A", "subscriber_number": "S7", "revoked_from": pd.Timestamp(2026, 3, 1)},
        {"reference": "M7B", "subscriber_number": "S7", "effective_date": pd.Timestamp(2026, 3, 1)},
    )
    selection = select_due(due, known, DAY, calendar, RetryPolicy())
    assert selection.selected["item_id"].tolist() == [1, 6, 7]
    assert selection.selected["mandate_reference"].tolist() == ["M1", "M6", "M7B"]
    assert reasons(selection.excluded) == {
        2: "mandate_revoked",
        3: "mandate_not_yet_effective",
        4: "mandate_suspended",
        5: "mandate_blocked",
        8: "no_mandate",
    }


def test_mandate_effective_today_is_active() -> None:
    chosen = mandate_on(
        mandates({"reference": "M1", "subscriber_number": "S1", "effective_date": pd.Timestamp(DAY)}), DAY
    )
    assert chosen["usable"].tolist() == [True]


@pytest.mark.parametrize(
    ("rejected_on", "day", "eligible"),
    [
        # AM04 on Monday 23 Nov; 2 business days later is Wednesday 25
        (date(2026, 11, 23), date(2026, 11, 24), False),
        (date(2026, 11, 23), date(2026, 11, 25), True),
        # rejected Thursday 26 Nov: Friday and Saturday don't count; Sunday 29 is 1, Monday 30 is 2
        (date(2026, 11, 26), date(2026, 11, 29), False),
        (date(2026, 11, 26), date(2026, 11, 30), True),
    ],
)
def test_am04_comes_back_after_business_days(
    calendar: BusinessCalendar, rejected_on: date, day: date, eligible: bool
) -> None:
    due = items(
        {
            "item_id": 1,
            "number": "F1",
            "subscriber_number": "S1",
            "tries": 1,
            "last_reason": "AM04",
            "last_reason_on": pd.Timestamp(rejected_on),
        }
    )
    selection = select_due(
        due,
        mandates({"reference": "M1", "subscriber_number": "S1"}),
        day,
        calendar,
        RetryPolicy(after_business_days=2, max_tries=3),
    )
    assert (len(selection.selected) == 1) is eligible
    if not eligible:
        assert reasons(selection.excluded) == {1: "retry_later"}


def test_holiday_does_not_count_as_a_waiting_day() -> None:
    holiday = date(2026, 11, 24)  # a Tuesday made a holiday
    with_holiday = BusinessCalendar.from_holidays({holiday: "test holiday"})
    due = items(
        {
            "item_id": 1,
            "number": "F1",
            "subscriber_number": "S1",
            "tries": 1,
            "last_reason": "MS03",
            "last_reason_on": pd.Timestamp(2026, 11, 23),
        }
    )
    known = mandates({"reference": "M1", "subscriber_number": "S1"})
    policy = RetryPolicy(after_business_days=2, max_tries=3)
    assert len(select_due(due, known, date(2026, 11, 25), with_holiday, policy).selected) == 0
    assert len(select_due(due, known, date(2026, 11, 26), with_holiday, policy).selected) == 1


def test_tries_run_out_and_the_item_stops(calendar: BusinessCalendar) -> None:
    due = items(
        {
            "item_id": 1,
            "number": "F1",
            "subscriber_number": "S1",
            "tries": 3,
            "last_reason": "AM04",
            "last_reason_on": pd.Timestamp(2026, 11, 1),
        },
        {
            "item_id": 2,
            "number": "F2",
            "subscriber_number": "S1",
            "tries": 2,
            "last_reason": "AM04",
            "last_reason_on": pd.Timestamp(2026, 11, 1),
        },
    )
    selection = select_due(
        due,
        mandates({"reference": "M1", "subscriber_number": "S1"}),
        DAY,
        calendar,
        RetryPolicy(after_business_days=1, max_tries=3),
    )
    assert selection.selected["item_id"].tolist() == [2]
    assert reasons(selection.excluded) == {1: "tries_exhausted"}
    assert selection.exhausted.tolist() == [1]


def test_selection_order_is_by_kind_then_number(calendar: BusinessCalendar) -> None:
    due = items(
        {"item_id": 1, "number": "F9", "subscriber_number": "S1"},
        {"item_id": 2, "number": "R1", "subscriber_number": "S1", "kind": "RA"},
        {"item_id": 3, "number": "F10", "subscriber_number": "S1"},
    )
    known = mandates({"reference": "M1", "subscriber_number": "S1"})
    forward = select_due(due, known, DAY, calendar, RetryPolicy()).selected["item_id"].tolist()
    backward = select_due(due.iloc[::-1], known, DAY, calendar, RetryPolicy()).selected["item_id"].tolist()
    assert forward == backward == [3, 1, 2]


def test_a_mandate_revoked_from_the_settlement_date_is_not_used(calendar: BusinessCalendar) -> None:
    """Algérie Poste checks the mandate on the day it executes: revoked by then, it would be MD01."""
    due = items({"item_id": 1, "number": "F1", "subscriber_number": "S1"})
    known = mandates(
        {"reference": "M1", "subscriber_number": "S1", "revoked_from": pd.Timestamp(2026, 11, 26)}
    )
    on_day_only = select_due(due, known, DAY, calendar, RetryPolicy())
    assert on_day_only.selected["item_id"].tolist() == [1]
    through_settlement = select_due(due, known, DAY, calendar, RetryPolicy(), settles=date(2026, 11, 26))
    assert reasons(through_settlement.excluded) == {1: "mandate_revoked"}


def test_tries_are_a_limit_whatever_the_last_reason(calendar: BusinessCalendar) -> None:
    due = items({"item_id": 1, "number": "F1", "subscriber_number": "S1", "tries": 3, "last_reason": None})
    selection = select_due(
        due, mandates({"reference": "M1", "subscriber_number": "S1"}), DAY, calendar, RetryPolicy(max_tries=3)
    )
    assert reasons(selection.excluded) == {1: "tries_exhausted"} and selection.exhausted.tolist() == [1]
