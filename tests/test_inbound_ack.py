"""ACKs applied to the ledger, on SQLite and PostgreSQL: accepted, rejected and re-sent, held, incidents."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from epay.calendar import BusinessCalendar
from epay.formats import read_file
from epay.inbound.ack import apply_ack
from epay.inbound.files import InboundIncident
from epay.ledger.db import transaction
from epay.outbound.build import BuildPolicy, BuildResult, build_outbound
from epay.outbound.release import release_rejected_file
from epay.settings import ALGIERS, Settings
from tests.conftest import at_night
from tests.ledger_helpers import TinyWorld

DAY = date(2026, 11, 25)
NEXT = date(2026, 11, 26)


@pytest.fixture
def built(ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar) -> BuildResult:
    w = TinyWorld()
    w.subscriber("0000000001", "Mohamed Benali").mandate("M1", "0000000001", 1001)
    w.invoice("F1", "0000000001", 10_000, DAY).invoice("F2", "0000000001", 20_000, DAY)
    w.subscriber("0000000002", "Amina Kaci").mandate("M2", "0000000002", 1002)
    w.recharge("R1", "0000000002", 160_000, DAY)
    w.load(ledger_engine, ledger_settings.billing_incoming_dir, DAY)
    return build_outbound(ledger_engine, ledger_settings, DAY, calendar, BuildPolicy())


def ack(engine: Engine, built: BuildResult, status: str, reason: str | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    f = built.files[0]
    with transaction(engine) as connection:
        return apply_ack(
            connection,
            prlv_name=f.name,
            status=status,
            reason=reason,
            detail_count=kw.get("count", f.detail_count),
            amount=kw.get("amount", f.amount),
            business_date=DAY,
            acknowledged_on=kw.get("acknowledged_on", DAY),
        )


def states(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql)).all()]


def test_accepted_file_presents_its_instructions_once(ledger_engine: Engine, built: BuildResult) -> None:
    first = ack(ledger_engine, built, "ACCP")
    assert (first.instructions, first.repeat) == (3, False)
    assert states(ledger_engine, "SELECT DISTINCT state FROM instruction") == [("presented",)]
    assert states(ledger_engine, "SELECT state FROM exchange_file") == [("accepted",)]
    assert ack(ledger_engine, built, "ACCP").repeat  # delivered twice: nothing more
    with pytest.raises(InboundIncident, match="already accepted"):
        ack(ledger_engine, built, "RJCT", "AM10")  # a second, different ACK is never applied


def test_an_accept_that_read_other_totals_is_an_incident(ledger_engine: Engine, built: BuildResult) -> None:
    with pytest.raises(InboundIncident, match="as read"):
        ack(ledger_engine, built, "ACCP", amount=built.files[0].amount + 1)
    assert states(ledger_engine, "SELECT DISTINCT state FROM instruction") == [("built",)]


def test_an_ack_for_a_file_never_built_is_an_incident(ledger_engine: Engine, built: BuildResult) -> None:
    with pytest.raises(InboundIncident, match="never built"), transaction(ledger_engine) as connection:
        apply_ack(
            connection,
            prlv_name="PRLV_100237_20261125_07.txt",
            status="ACCP",
            reason=None,
            detail_count=1,
            amount=1,
            business_date=DAY,
            acknowledged_on=DAY,
        )


def test_dt01_sends_the_same_references_again_in_a_new_file(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, built: BuildResult
) -> None:
    refs = read_file(built.files[0].path).details.to_pydict()["end_to_end_reference"]
    assert ack(ledger_engine, built, "RJCT", "DT01").instructions == 3
    at_night(NEXT)
    again = build_outbound(ledger_engine, ledger_settings, NEXT, calendar, BuildPolicy())
    resent = [f for f in again.files if read_file(f.path).details.to_pydict()["end_to_end_reference"] == refs]
    assert len(resent) == 1 and resent[0].name == "PRLV_100237_20261126_01.txt"
    header = read_file(resent[0].path).header
    assert header is not None and header["settlement_date"] == calendar.next_business_day(NEXT)
    assert states(ledger_engine, "SELECT DISTINCT state FROM instruction") == [("built",)]
    assert states(ledger_engine, "SELECT name, state, reason FROM exchange_file ORDER BY id") == [
        (built.files[0].name, "rejected", "DT01"),
        (resent[0].name, "built", None),
    ]
    # the items were never selected twice: still one instruction each
    assert states(ledger_engine, "SELECT count(*), count(DISTINCT item_id) FROM instruction") == [(3, 3)]


@pytest.mark.parametrize("reason", ["FF01", "AG01", "AM10", "DU01"])
def test_our_file_was_wrong_so_nothing_is_resent_until_released(
    ledger_engine: Engine,
    ledger_settings: Settings,
    calendar: BusinessCalendar,
    built: BuildResult,
    reason: str,
) -> None:
    ack(ledger_engine, built, "RJCT", reason)
    assert states(ledger_engine, "SELECT DISTINCT state FROM instruction") == [("held",)]
    at_night(NEXT)
    nxt = build_outbound(ledger_engine, ledger_settings, NEXT, calendar, BuildPolicy())
    assert nxt.files == ()  # nothing loops, and the held items are not selected again either
    assert release_rejected_file(ledger_engine, built.files[0].name, "amina.dataeng") == 3
    at_night(date(2026, 11, 29))
    later = build_outbound(ledger_engine, ledger_settings, date(2026, 11, 29), calendar, BuildPolicy())
    assert [f.detail_count for f in later.files] == [3]
    history = pd.DataFrame(
        states(
            ledger_engine, "SELECT to_state, reason FROM audit_event WHERE entity = 'instruction' ORDER BY id"
        ),
        columns=["to", "reason"],
    )
    assert list(history["to"].unique()) == ["built", "held"]
    assert history["reason"].str.contains("released by amina.dataeng").sum() == 3


def test_an_ack_dated_before_its_file_was_created_is_an_incident(
    ledger_engine: Engine, built: BuildResult
) -> None:
    """AP cannot acknowledge a file before it existed: such an ACK is never applied."""
    with pytest.raises(InboundIncident, match="before it existed"):
        ack(ledger_engine, built, "ACCP", acknowledged_on=date(2026, 11, 24))
    assert states(ledger_engine, "SELECT DISTINCT state FROM instruction") == [("built",)]
    assert states(ledger_engine, "SELECT state FROM exchange_file") == [("built",)]


def test_an_ack_timed_before_its_file_was_built_or_accepting_after_the_cut_off_is_an_incident(
    ledger_engine: Engine, built: BuildResult, calendar: BusinessCalendar
) -> None:
    """AP acknowledges within minutes of a file's arrival, and rejects DT01 what arrives after the cut-off
    (22:00 Algiers the business day before the settlement date): an ACK timed before the file was built, or
    an acceptance timed after the cut-off, is never applied."""
    f = built.files[0]

    def at(moment: datetime, status: str = "ACCP", reason: str | None = None) -> Any:
        with transaction(ledger_engine) as connection:
            return apply_ack(
                connection,
                prlv_name=f.name,
                status=status,
                reason=reason,
                detail_count=f.detail_count,
                amount=f.amount,
                business_date=DAY,
                acknowledged_on=moment.date(),
                acknowledged_at=moment,
                calendar=calendar,
            )

    with pytest.raises(InboundIncident, match="before it existed"):
        at(datetime.combine(DAY, time(0, 1), ALGIERS))  # the file was built at 20:00 by the test's clock
    with pytest.raises(InboundIncident, match="after its cut-off"):
        at(datetime.combine(DAY, time(22, 30), ALGIERS))
    assert states(ledger_engine, "SELECT state FROM exchange_file") == [("built",)]
    late = at(datetime.combine(DAY, time(22, 30), ALGIERS), "RJCT", "DT01")  # a rejection may come late
    assert (late.status, late.repeat) == ("RJCT", False)
