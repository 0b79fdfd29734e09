"""The one clock epay reads: every "now" in epay (cut-offs, deadlines, record times) comes from here.

``EPAY_CLOCK`` chooses it:

- ``system`` (the default, production): the machine's clock;
- an ISO date-time with its offset, e.g. ``2026-11-25T20:00:00+01:00``: a clock stopped at that moment
  (tests);
- ``file`` (or ``file:PATH``): a clock that a data engineer or a test sets with ``epay clock set``,
  kept in ``$EPAY_HOME/clock.json`` (or PATH) on the storage every worker and the simulated post office
  share, so that they all read the same time. It runs from the moment it was set, at ``speed`` times
  real time (0 stops it).

Pure apart from reading the real time and the clock file; nothing here decides anything.
"""

from __future__ import annotations

import json
import math
import os
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from epay.calendar import MAX_YEAR, MIN_YEAR

ALGIERS = ZoneInfo("Africa/Algiers")
CLOCK_FILE_NAME = "clock.json"


class ClockError(ValueError):
    """The clock setting or the clock file cannot be used (the message says which and why)."""


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware (UTC)."""
        ...


@dataclass(frozen=True)
class SystemClock:
    """The machine's clock: production."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class FixedClock:
    """A clock stopped at ``at``."""

    at: datetime

    def now(self) -> datetime:
        return self.at.astimezone(UTC)


@dataclass(frozen=True)
class ClockSetting:
    """What ``epay clock set`` wrote: the clock read ``at`` when the real clock read ``since``."""

    at: datetime
    since: datetime
    speed: float

    def reading(self, real_now: datetime) -> datetime:
        return (self.at + (real_now - self.since) * self.speed).astimezone(UTC)

    def to_json(self) -> str:
        return json.dumps(
            {"at": self.at.isoformat(), "since": self.since.isoformat(), "speed": self.speed}, sort_keys=True
        )


@dataclass(frozen=True)
class FileClock:
    """A settable clock shared through a file; a missing or damaged file is an error, never "now"."""

    path: Path
    real: Clock = field(default_factory=SystemClock)

    def setting(self) -> ClockSetting:
        try:
            mode = self.path.stat().st_mode
            if not stat.S_ISREG(mode):  # a FIFO would wait for a writer forever, a device never end
                raise ClockError(f"the clock file {self.path} is not a regular file")
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            setting = ClockSetting(
                aware(datetime.fromisoformat(raw["at"])),
                aware(datetime.fromisoformat(raw["since"])),
                float(raw["speed"]),
            )
            if not math.isfinite(setting.speed) or setting.speed < 0:
                raise ValueError(f"speed {raw['speed']!r}: a clock runs forward at a finite speed >= 0")
        except FileNotFoundError:
            raise ClockError(
                f"EPAY_CLOCK=file but the clock file {self.path} does not exist: set it with "
                "`epay clock set --at YYYY-MM-DDTHH:MM+01:00`"
            ) from None
        except ClockError:
            raise
        except (ValueError, KeyError, TypeError, OSError) as error:
            raise ClockError(f"the clock file {self.path} is not usable: {error}") from None
        return setting

    def now(self) -> datetime:
        return self.setting().reading(self.real.now())

    def set(self, at: datetime, speed: float = 1.0) -> ClockSetting:
        """Set the clock to ``at`` from now on (written whole, then renamed: readers never see half)."""
        if speed < 0:
            raise ClockError(f"a clock runs forward: speed must be >= 0, got {speed}")
        setting = ClockSetting(aware(at), self.real.now(), speed)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a part of its own: two setters at once (threads, processes) never rename each other's file
        part = self.path.with_name(f"{self.path.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
        part.write_text(setting.to_json() + "\n", encoding="utf-8")
        os.replace(part, self.path)
        return setting


def aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ClockError(f"{moment.isoformat()} has no UTC offset: write it like 2026-11-25T20:00:00+01:00")
    return moment


def clock_from(spec: str, home: Path) -> Clock:
    """The clock an ``EPAY_CLOCK`` value names (see the module's docstring)."""
    spec = spec.strip()
    if spec == "system":
        return SystemClock()
    if not spec:
        raise ClockError("EPAY_CLOCK is empty: say 'system' for the machine's clock (never assumed)")
    if spec == "file":
        return FileClock(home / CLOCK_FILE_NAME)
    if spec.startswith("file:"):
        return FileClock(Path(spec.removeprefix("file:")))
    try:
        at = datetime.fromisoformat(spec)
    except ValueError:
        raise ClockError(
            f"EPAY_CLOCK={spec!r}: expected 'system', 'file', 'file:PATH' or a date-time with its offset "
            "such as 2026-11-25T20:00:00+01:00"
        ) from None
    if not MIN_YEAR < at.year < MAX_YEAR:
        raise ClockError(
            f"EPAY_CLOCK={spec!r}: year {at.year} is outside the years epay's calendar covers "
            f"({MIN_YEAR}-{MAX_YEAR})"
        )
    return FixedClock(aware(at))


def process_clock() -> Clock:
    """The clock of this process, from the environment (``EPAY_CLOCK``, ``EPAY_HOME``)."""
    home = Path(os.environ.get("EPAY_HOME", Path(__file__).resolve().parents[1] / "var"))
    return clock_from(os.environ.get("EPAY_CLOCK", "system"), home)


def business_day_of(moment: datetime) -> date:
    """The calendar date in Africa/Algiers of ``moment``."""
    return moment.astimezone(ALGIERS).date()


def algiers(day: date, hour: int, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` in Africa/Algiers, as an aware date-time."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ALGIERS)


__all__ = [
    "ALGIERS",
    "Clock",
    "ClockError",
    "ClockSetting",
    "FileClock",
    "FixedClock",
    "SystemClock",
    "algiers",
    "business_day_of",
    "clock_from",
    "process_clock",
]
