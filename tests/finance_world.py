"""A ledger made by the real nightly jobs against the simulated post office over several business days
(the approach of ``test_cycle``), shared by the finance tests: built once per database per test session.

Business days Wed 25, Thu 26, Sun 29 November and Tue 1 December 2026 are built and sent (Fri 27 and Sat 28
are the weekend, Mon 30 a holiday in the test's holiday file). Thursday's and Sunday's files reach AP after
their cut-off (AP's arrival time 22:30): both are rejected DT01, and their instructions go out again, the
second time with Sunday's own, in Tuesday's file (settling Wed 2 December). So Sun 29 November and Tue 1
December are settlement dates with nothing presented, and debit dates with only late debits (statuses of
Thursday 26's instructions AP reported late). AP's clock then runs to Thu 3 December and stops there: Thu 3
is a debit date with only late debits, and Wed 2 a settlement date with late returns still outstanding.

Two statements are changed on AP's SFTP server before AT downloads them: the RELV of Sun 29 November is
removed (a missing statement), and the RELV of Tue 1 December is hand-edited (its credits 7 centimes too
high, the trailer fixed to match, so the file is valid): both go through the real receive path and must
show as breaks.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sqlalchemy import Engine, text

from epay import jobs
from epay.calendar import BusinessCalendar, load_calendar
from epay.formats import read_file, write_file
from epay.ledger.db import open_ledger
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings
from tests.conftest import set_clock
from tests.cycle_helpers import DECREE_HOLIDAY, OnlinePostOffice, decree_holiday_file, post_office_online
from tests.ledger_helpers import TinyWorld

START = date(2026, 11, 25)  # Wednesday
HOLIDAY = DECREE_HOLIDAY
BUILD_DAYS = 4
LAST_TICK = date(2026, 12, 3)  # AP's clock stops here: the last settlement date is still open
AS_OF = LAST_TICK
BROKEN_DAY = date(2026, 12, 1)  # its RELV is hand-edited: credit + BROKEN_BY centimes
BROKEN_BY = 7
MISSING_RELV_DAY = date(2026, 11, 29)  # its RELV never reaches AT
DT01_DAYS = (date(2026, 11, 26), date(2026, 11, 29))  # these nights' files reach AP after the cut-off
ONLY_LATE_DAYS = (date(2026, 11, 29), date(2026, 12, 1), date(2026, 12, 3))  # debit dates, late debits only
PENDING_DAY = date(2026, 12, 2)  # a settlement date with returns outstanding at AS_OF
RECONCILED_DAY = date(2026, 11, 26)
SCENARIO = """seed = 7
ms03_rate = 0.01
delayed_share = 0.10
revoke_rate = 0.01
ceiling_change_rate = 0.05
new_ceiling = 100000
"""


@dataclass(frozen=True)
class World:
    settings: Settings
    engine: Engine
    calendar: BusinessCalendar
    build_days: tuple[date, ...]


def tamper_relv(path: Path, calendar: BusinessCalendar, by: int) -> None:
    """Rewrite a RELV in place with every credit ``by`` centimes higher (a valid file: trailer fixed)."""
    report = read_file(path)
    details = report.details
    assert details is not None and details.num_rows > 0
    amounts = pc.add(details.column("amount"), pa.scalar(by, pa.int64()))
    details = details.set_column(details.column_names.index("amount"), "amount", amounts)
    header = dict(report.header or {})
    write_file(path, "RELV", header, details, calendar=calendar, name=path.name)


def paid_at_the_counter_too(settings: Settings, on: date) -> None:
    """Billing reports a few invoices paid at a counter while their debit is in flight: those the post
    office then settles are paid twice, a refund owed on the debit date."""
    engine = open_ledger(settings.ledger_url)
    try:
        with engine.connect() as c:
            in_flight = c.execute(
                text(
                    "SELECT b.number, b.kind, b.subscriber_number, b.amount FROM instruction i "
                    "JOIN billing_item b ON b.id = i.item_id WHERE i.state = 'presented' AND b.kind = 'FA' "
                    "ORDER BY i.reference LIMIT 6"
                )
            ).all()
        payments = TinyWorld()
        for number, kind, subscriber, amount in in_flight:
            payments.payment(str(number), str(kind), str(subscriber), int(amount), on)
        loaded = payments.load(engine, settings.billing_incoming_dir, on)
        assert loaded.paid_during_collection == len(in_flight) == 6
    finally:
        engine.dispose()


def after_cut_off(poste: OnlinePostOffice, day: date) -> None:
    """AT's evening run on time by its clock, but its file reaches AP at 22:30, after the cut-off: the
    ACK is RJCT DT01 and the instructions go out again with the next night's build."""
    poste.now = datetime.combine(day, time(20, 5), tzinfo=ALGIERS)
    set_clock(poste.now)
    jobs.build(poste.settings, day)
    poste.now = datetime.combine(day, time(22, 30), tzinfo=ALGIERS)  # AP's arrival time
    jobs.send(poste.settings, day)
    jobs.receive(poste.settings, day)


def build_world(settings: Settings, tmp: Path) -> World:
    scenario_file = tmp / "finance.toml"
    scenario_file.write_text(SCENARIO, encoding="utf-8")
    settings = settings.model_copy(
        update={"holidays_file": decree_holiday_file(tmp), "poste_scenario_file": scenario_file}
    )
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 300, 11, START, calendar)
    days_run: list[date] = []
    with post_office_online(settings, calendar) as poste:
        settings = poste.settings
        office = poste.office

        def tamper(day: date) -> None:
            outbound = office.home(settings.creditor_id) / "outbound"
            if day == BROKEN_DAY:
                (relv,) = sorted(outbound.glob(f"RELV_*_{day:%Y%m%d}_*.txt"))
                tamper_relv(relv, calendar, BROKEN_BY)
            if day == MISSING_RELV_DAY:
                (relv,) = sorted(outbound.glob(f"RELV_*_{day:%Y%m%d}_*.txt"))
                relv.unlink()

        day = START
        while day <= LAST_TICK:
            if calendar.is_business_day(day) and len(days_run) < BUILD_DAYS:
                if day in DT01_DAYS:
                    after_cut_off(poste, day)
                else:
                    poste.business_day(day)
                days_run.append(day)
                if day == START:
                    paid_at_the_counter_too(settings, calendar.next_business_day(day))
            poste.end_of_day(day, before_receive=partial(tamper, day))
            day = date.fromordinal(day.toordinal() + 1)
    return World(settings, open_ledger(settings.ledger_url), calendar, tuple(days_run))


_WORLDS: dict[str, World] = {}


def world_for(request: pytest.FixtureRequest, kind: str) -> World:
    """The shared world on ``kind`` (sqlite | postgresql), built on first use in this session."""
    if kind in _WORLDS:
        return _WORLDS[kind]
    tmp = request.getfixturevalue("tmp_path_factory").mktemp(f"finance-{kind}")
    if kind == "sqlite":
        path = tmp / "ledger.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        from tests.conftest import _pg_admin, _pg_url

        template = request.getfixturevalue("pg_template")
        name = f"epay_fin_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        url = _pg_url(name)

        def drop() -> None:
            world = _WORLDS.pop(kind, None)
            if world is not None:
                world.engine.dispose()
            with _pg_admin() as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

        request.session.config.add_cleanup(drop)
    world = build_world(Settings(home=tmp / "home", database_url=url), tmp)
    _WORLDS[kind] = world
    return world


def frame_sql(engine: Engine, sql: str, **params: object) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(text(sql), params).mappings().all()]


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    yield world_for(request, request.param)
