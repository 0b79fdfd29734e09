"""The nightly cycle against the simulated post office on loopback, shared by the end-to-end tests: the
post office's SFTP server acknowledges every PRLV file as it arrives (at the test's clock), and each day
is the real jobs — build, send, receive the ACKs; then the post office's end of day and the returns."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import pytest

from epay import jobs
from epay.calendar import BusinessCalendar
from epay.clock import FileClock
from epay.poste.office import PostOffice
from epay.poste.scenario import load_scenario
from epay.poste.sftp_server import PosteSftpServer
from epay.settings import ALGIERS, Settings
from tests.conftest import FIRST_NIGHT, set_clock

DECREE_HOLIDAY = date(2026, 11, 30)  # a Monday made a day off by decree (in a holidays file both sides read)


def decree_holiday_file(folder: Path) -> Path:
    path = folder / "holidays.toml"
    path.write_text(
        f'format_version = 1\n\n[[add]]\ndate = {DECREE_HOLIDAY}\nname = "Day off by decree (test)"\n',
        encoding="utf-8",
    )
    return path


@dataclass
class OnlinePostOffice:
    office: PostOffice
    settings: Settings  # pointed at the running server
    lock: threading.Lock = field(default_factory=threading.Lock)
    now: datetime = datetime(2026, 1, 1, tzinfo=ALGIERS)

    def business_day(self, day: date) -> None:
        """AT's evening run: build, send (the files are acknowledged as they arrive), apply the ACKs."""
        self.now = datetime.combine(day, time(20, 5), tzinfo=ALGIERS)
        set_clock(self.now)
        jobs.build(self.settings, day)
        jobs.send(self.settings, day)
        jobs.receive(self.settings, day)

    def end_of_day(self, day: date, before_receive: Callable[[], None] | None = None) -> None:
        """The post office's end of day (executions, RETR, RELV, MNDT), then AT applies what it published."""
        set_clock(datetime.combine(day, time(23, 30), tzinfo=ALGIERS))
        with self.lock:
            self.office.tick(day)
        if before_receive is not None:
            before_receive()
        jobs.receive(self.settings, day)


@contextmanager
def post_office_online(settings: Settings, calendar: BusinessCalendar) -> Iterator[OnlinePostOffice]:
    """The post office of ``settings`` (its scenario file) with its SFTP server on a free port."""
    office = PostOffice(
        settings.poste_dir,
        settings.poste_url,
        calendar=calendar,
        scenario=load_scenario(settings.poste_scenario_file),
    )
    online = OnlinePostOffice(office, settings)
    with _settable_clock(settings.home.parent), _serving(online, settings) as served:
        yield served


@contextmanager
def _settable_clock(folder: Path) -> Iterator[None]:
    """The test's own clock; or, for a world a module or session fixture builds (set up before any test's
    clock exists), a settable clock of its own under ``folder`` for as long as the post office is online."""
    if os.environ.get("EPAY_CLOCK", "").startswith("file:"):
        yield
        return
    clock = FileClock(folder / "clock.json")
    clock.set(FIRST_NIGHT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EPAY_CLOCK", f"file:{clock.path}")
        yield


@contextmanager
def _serving(online: OnlinePostOffice, settings: Settings) -> Iterator[OnlinePostOffice]:
    office = online.office

    def received(creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            with online.lock:
                office.acknowledge(creditor, path, online.now)

    with PosteSftpServer(settings.poste_dir, port=0, on_file_received=received) as server:
        online.settings = settings.model_copy(
            update={
                "sftp_port": server.port,
                "sftp_host_key": server.host_key_line,
                "sftp_private_key_file": settings.home / "keys" / "at_sftp_ecdsa",
                "clock": os.environ["EPAY_CLOCK"],  # the clock business_day and end_of_day move
            }
        )
        yield online
