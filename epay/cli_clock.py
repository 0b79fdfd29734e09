"""``epay clock``: read and set the clock epay is given (``EPAY_CLOCK``; see ``epay.clock``)."""

from __future__ import annotations

from datetime import datetime

import click

from epay.cli_params import FiniteFloat, Moment
from epay.clock import ALGIERS, ClockError, FileClock, clock_from


def _file_clock() -> FileClock:
    from epay.settings import get_settings

    settings = get_settings()
    clock = clock_from(settings.clock, settings.home)
    if not isinstance(clock, FileClock):
        raise click.UsageError(
            f"EPAY_CLOCK is {settings.clock!r}: only a settable clock can be set. Set EPAY_CLOCK=file for "
            "every epay process (workers, post office) first; production keeps the system clock"
        )
    return clock


def _moment(_ctx: click.Context, _param: click.Parameter, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date-time like 2026-11-25T20:00:00+01:00") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset: write it like 2026-11-25T20:00:00+01:00")
    return moment


@click.group()
def clock() -> None:
    """The clock every epay step reads (cut-offs, deadlines): show it, or set a settable one."""


@clock.command("show")
def clock_show() -> None:
    """Print what the clock reads now, in Africa/Algiers and UTC."""
    from epay.settings import get_settings

    settings = get_settings()
    try:
        now = settings.now()
    except ClockError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"{now.astimezone(ALGIERS).isoformat()} (Algiers)  {now.isoformat()} (UTC)  clock={settings.clock}"
    )


@clock.command("set")
@click.option(
    "--at",
    "at",
    type=Moment(require_offset=True, as_text=True),
    required=True,
    callback=_moment,
    help="the moment, e.g. 2026-11-25T20:00:00+01:00",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=FiniteFloat(min=0, max=1_000_000),
    help="how fast it runs from then on, times real time (0 stops it)",
)
def clock_set(at: datetime, speed: float) -> None:
    """Set the shared clock file (EPAY_CLOCK=file) that workers and the simulated post office read."""
    target = _file_clock()
    setting = target.set(at, speed)
    click.echo(f"clock set to {setting.at.astimezone(ALGIERS).isoformat()} (Algiers), speed {speed:g}")
