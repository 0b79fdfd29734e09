"""When a PRLV file can still reach Algérie Poste in time (spec §1), by the clock epay is given.

The rule (docs: "Time-correct builds"):

- A file settling on S must reach AP before 22:00 on the business day before S (the *cut-off* of S).
- The night of business date D builds files created on D that settle on the next business day after D,
  so their cut-off is D at 22:00. A build (or a re-filing) for D is allowed only from the start of D
  until ``margin`` minutes before that cut-off: the files must still be sent and arrive.
- Outside that window nothing is built for D: before D it has not begun; after its cut-off, what D would
  have carried (its due items, instructions waiting to be re-filed) goes into the next night that can
  still make it. A file never carries a creation or settlement date earlier than the moment it is built.
- A file built but not sent before its cut-off is *expired*: never sent (AP would reject it DT01); its
  instructions are re-filed by the next build, with the same references (spec §3).

Pure logic: no database, no clock of its own.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from epay.calendar import BusinessCalendar
from epay.clock import ALGIERS

CUT_OFF = time(22, 0)


def cut_off(settlement_date: date, calendar: BusinessCalendar) -> datetime:
    """The moment a file settling on ``settlement_date`` must have reached AP by."""
    return datetime.combine(calendar.previous_business_day(settlement_date), CUT_OFF, tzinfo=ALGIERS)


def night_cut_off(business_date: date) -> datetime:
    """The cut-off of the files the night of ``business_date`` builds (22:00 Algiers that day)."""
    return datetime.combine(business_date, CUT_OFF, tzinfo=ALGIERS)


def night_start(business_date: date) -> datetime:
    return datetime.combine(business_date, time(0, 0), tzinfo=ALGIERS)


def next_night(now: datetime, calendar: BusinessCalendar, margin: timedelta) -> date:
    """The first business date whose build window has not closed at ``now``."""
    day = now.astimezone(ALGIERS).date()
    if calendar.is_business_day(day) and now < night_cut_off(day) - margin:
        return day
    return calendar.next_business_day(day)


def build_window_problem(
    business_date: date, now: datetime, calendar: BusinessCalendar, margin: timedelta
) -> str | None:
    """Why nothing can be built for ``business_date`` at ``now`` (None when it can)."""
    start, closes = night_start(business_date), night_cut_off(business_date) - margin
    shown = f"{now.astimezone(ALGIERS):%Y-%m-%d %H:%M} Algiers"
    if now < start:
        return (
            f"the night of {business_date} has not begun (the clock reads {shown}): a build never makes a "
            "file dated in its future; run it on that date"
        )
    if now >= closes:
        successor = next_night(now, calendar, margin)
        return (
            f"the cut-off of {business_date} has passed (its files had to be built by "
            f"{closes.astimezone(ALGIERS):%Y-%m-%d %H:%M} Algiers to reach Algérie Poste before 22:00; the "
            f"clock reads {shown}): a file built now for {business_date} would be rejected DT01. Nothing is "
            f"built for {business_date}; what it would have carried goes into the next night that can still "
            f"make it, {successor} (its scheduled run, or `epay outbound build --date {successor}` that day)"
        )
    return None


def expired(settlement_date: date, now: datetime, calendar: BusinessCalendar) -> bool:
    """True when a file settling on ``settlement_date`` can no longer reach AP in time."""
    return now >= cut_off(settlement_date, calendar)
