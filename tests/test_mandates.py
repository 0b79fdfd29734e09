"""Mandates as Algérie Poste reports them (MNDT actions), on SQLite and PostgreSQL: creation, last action
wins, revocation from its effective date, reactivation, AT's block or suspension lifted by a new action."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, select, text

from epay.formats.rip import rip_from_account
from epay.ledger.audit import history
from epay.ledger.db import transaction
from epay.ledger.mandates import (
    ACTION_COLUMNS,
    MandateChanges,
    actions_from_snapshot,
    apply_mandate_actions,
)
from epay.ledger.models import Mandate

DAY = date(2026, 11, 25)
RIP_A, RIP_B, RIP_C = rip_from_account(1001), rip_from_account(1002), rip_from_account(1003)


def action(
    reference: str,
    kind: str,
    *,
    subscriber: str = "0000000001",
    rip: str = RIP_A,
    name: str = "BENALI MOHAMED",
    effective: date = date(2026, 1, 4),
    ceiling: int = 0,
) -> dict[str, Any]:
    return {
        "mandate_reference": reference,
        "debtor_rip": rip,
        "debtor_name": name,
        "subscriber_number": subscriber,
        "action": kind,
        "effective_date": effective,
        "ceiling": ceiling,
    }


def apply(engine: Engine, *actions: dict[str, Any], day: date | None = DAY) -> MandateChanges:
    frame = pd.DataFrame(list(actions), columns=list(ACTION_COLUMNS))
    with transaction(engine) as connection:
        return apply_mandate_actions(connection, frame, actor="test.mndt", business_date=day)


def mandates(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as c:
        return {r["reference"]: dict(r) for r in c.execute(select(Mandate.__table__)).mappings()}


def trail(engine: Engine, reference: str) -> list[tuple[str, str, date | None]]:
    with engine.connect() as c:
        return [(e["to_state"], e["actor"], e["business_date"]) for e in history(c, "mandate", reference)]


def test_n_actions_create_active_mandates(ledger_engine: Engine) -> None:
    changes = apply(
        ledger_engine,
        action("M1", "N", ceiling=500_000, name="BENALI MOHAMED   "),
        action("M2", "N", subscriber="0000000002", rip=RIP_B, effective=date(2026, 12, 1)),
        action("M3", "N", subscriber=" 0000000003", rip=RIP_C),
    )
    assert changes == MandateChanges(created_or_modified=3, revoked=0)
    got = mandates(ledger_engine)
    assert set(got) == {"M1", "M2", "M3"}
    m1 = got["M1"]
    assert (m1["subscriber_number"], m1["rip"], m1["debtor_name"], m1["ceiling"]) == (
        "0000000001",
        RIP_A,
        "BENALI MOHAMED",  # the file's padding is not the name
        500_000,
    )
    assert (m1["effective_date"], m1["revoked_from"], m1["status"], m1["status_reason"]) == (
        date(2026, 1, 4),
        None,
        "active",
        None,
    )
    assert got["M2"]["effective_date"] == date(2026, 12, 1) and got["M2"]["rip"] == RIP_B
    assert got["M3"]["subscriber_number"] == "0000000003"
    for reference in ("M1", "M2", "M3"):
        assert trail(ledger_engine, reference) == [("active", "test.mndt", DAY)]


def test_a_later_m_in_the_same_batch_replaces_the_earlier_state(ledger_engine: Engine) -> None:
    changes = apply(
        ledger_engine,
        action("M1", "N", ceiling=100_000, rip=RIP_A, name="BENALI MOHAMED"),
        action("M2", "N", subscriber="0000000002", rip=RIP_B),
        action("M1", "M", ceiling=200_000, rip=RIP_C, name="BENALI MOHAMED AMINE"),
    )
    assert changes.created_or_modified == 2
    got = mandates(ledger_engine)
    assert (got["M1"]["ceiling"], got["M1"]["rip"], got["M1"]["debtor_name"]) == (
        200_000,
        RIP_C,
        "BENALI MOHAMED AMINE",
    )
    assert got["M2"]["rip"] == RIP_B  # the other mandate keeps its own data
    # and in a later batch: the same again, the last action wins
    apply(ledger_engine, action("M1", "M", ceiling=0, rip=RIP_B, name="BENALI M", effective=date(2026, 2, 1)))
    m1 = mandates(ledger_engine)["M1"]
    # an M changes the data, not the date the mandate has been in force since (AP reports the
    # modification's own date there): the mandate must stay usable in between
    assert (m1["ceiling"], m1["rip"], m1["debtor_name"], m1["effective_date"]) == (
        0,
        RIP_B,
        "BENALI M",
        date(2026, 1, 4),
    )
    assert len(mandates(ledger_engine)) == 2


def test_r_revokes_from_its_effective_date(ledger_engine: Engine) -> None:
    apply(ledger_engine, action("M1", "N", ceiling=300_000), action("M2", "N", rip=RIP_B))
    changes = apply(ledger_engine, action("M1", "R", effective=date(2026, 12, 1)), day=date(2026, 11, 26))
    assert changes == MandateChanges(created_or_modified=0, revoked=1)
    got = mandates(ledger_engine)
    assert got["M1"]["revoked_from"] == date(2026, 12, 1)
    assert got["M1"]["effective_date"] == date(2026, 1, 4)  # still effective until then
    assert got["M1"]["ceiling"] == 300_000
    assert got["M2"]["revoked_from"] is None
    assert trail(ledger_engine, "M1") == [
        ("active", "test.mndt", DAY),
        ("revoked", "test.mndt", date(2026, 11, 26)),
    ]
    assert trail(ledger_engine, "M2") == [("active", "test.mndt", DAY)]


def test_n_then_r_in_the_same_batch_is_revoked(ledger_engine: Engine) -> None:
    changes = apply(
        ledger_engine, action("M1", "N", ceiling=10_000), action("M1", "R", effective=date(2026, 11, 30))
    )
    assert changes.revoked == 1
    m1 = mandates(ledger_engine)["M1"]
    assert (m1["effective_date"], m1["revoked_from"], m1["ceiling"]) == (
        date(2026, 1, 4),
        date(2026, 11, 30),
        10_000,
    )
    assert [e[0] for e in trail(ledger_engine, "M1")] == ["revoked"]


def test_r_then_n_in_the_same_batch_is_active_again(ledger_engine: Engine) -> None:
    apply(ledger_engine, action("M1", "N"))
    changes = apply(
        ledger_engine,
        action("M1", "R", effective=date(2026, 11, 20)),
        action("M1", "N", effective=date(2026, 11, 27), ceiling=50_000),
    )
    assert changes == MandateChanges(created_or_modified=1, revoked=0)
    m1 = mandates(ledger_engine)["M1"]
    assert (m1["revoked_from"], m1["effective_date"], m1["ceiling"]) == (None, date(2026, 11, 27), 50_000)
    assert [e[0] for e in trail(ledger_engine, "M1")] == ["active", "active"]


def test_a_revoked_mandate_comes_back_with_a_new_n(ledger_engine: Engine) -> None:
    apply(ledger_engine, action("M1", "N"), action("M1", "R", effective=date(2026, 6, 1)))
    assert mandates(ledger_engine)["M1"]["revoked_from"] == date(2026, 6, 1)
    apply(ledger_engine, action("M1", "N", effective=date(2026, 11, 1)))
    assert mandates(ledger_engine)["M1"]["revoked_from"] is None


def test_an_r_for_an_unknown_reference_records_a_revoked_mandate(ledger_engine: Engine) -> None:
    changes = apply(
        ledger_engine,
        action(
            "M9", "R", subscriber="0000000009", rip=RIP_C, name="KACI LYNDA  ", effective=date(2026, 11, 2)
        ),
    )
    assert changes == MandateChanges(created_or_modified=0, revoked=1)
    m9 = mandates(ledger_engine)["M9"]
    assert (m9["subscriber_number"], m9["rip"], m9["debtor_name"], m9["revoked_from"]) == (
        "0000000009",
        RIP_C,
        "KACI LYNDA",
        date(2026, 11, 2),
    )
    assert trail(ledger_engine, "M9") == [("revoked", "test.mndt", DAY)]


@pytest.mark.parametrize(("status", "reason", "kind"), [("blocked", "AC01", "M"), ("suspended", "AC04", "N")])
def test_a_new_n_or_m_lifts_ats_block_or_suspension(
    ledger_engine: Engine, status: str, reason: str, kind: str
) -> None:
    apply(ledger_engine, action("M1", "N"), action("M2", "N", rip=RIP_B))
    with ledger_engine.begin() as c:  # what the returns step decides on an AC01 / AC04 reject
        c.execute(
            text("UPDATE mandate SET status = :s, status_reason = :r WHERE reference IN ('M1', 'M2')"),
            {"s": status, "r": reason},
        )
    apply(ledger_engine, action("M1", kind, rip=RIP_C))
    got = mandates(ledger_engine)
    assert (got["M1"]["status"], got["M1"]["status_reason"], got["M1"]["rip"]) == ("active", None, RIP_C)
    assert (got["M2"]["status"], got["M2"]["status_reason"]) == (status, reason)  # no new action: unchanged


def test_an_r_does_not_lift_a_block(ledger_engine: Engine) -> None:
    apply(ledger_engine, action("M1", "N"))
    with ledger_engine.begin() as c:
        c.execute(
            text("UPDATE mandate SET status = 'blocked', status_reason = 'MD01' WHERE reference = 'M1'")
        )
    apply(ledger_engine, action("M1", "R", effective=date(2026, 12, 1)))
    m1 = mandates(ledger_engine)["M1"]
    assert (m1["status"], m1["status_reason"], m1["revoked_from"]) == ("blocked", "MD01", date(2026, 12, 1))


def test_no_action_changes_nothing(ledger_engine: Engine) -> None:
    assert apply(ledger_engine) == MandateChanges(0, 0)
    assert mandates(ledger_engine) == {}


def test_actions_from_snapshot_gives_n_rows_then_r_rows() -> None:
    snapshot = pd.DataFrame(
        {
            "reference": ["M1", "M2", "M3"],
            "rip": [RIP_A, RIP_B, RIP_C],
            "debtor_name": ["A", "B", "C"],
            "subscriber_number": ["0000000001", "0000000002", "0000000003"],
            "ceiling": [0, 100_000, 5],
            "effective_date": [date(2026, 1, 4), date(2026, 2, 1), date(2026, 3, 1)],
            "revoked_from": [None, date(2026, 11, 1), None],
        }
    )
    actions = actions_from_snapshot(snapshot)
    assert list(actions.columns) == list(ACTION_COLUMNS)
    assert actions[["mandate_reference", "action"]].values.tolist() == [
        ["M1", "N"],
        ["M2", "N"],
        ["M3", "N"],
        ["M2", "R"],
    ]
    assert actions["effective_date"].tolist() == [
        date(2026, 1, 4),
        date(2026, 2, 1),
        date(2026, 3, 1),
        date(2026, 11, 1),
    ]
    assert actions["ceiling"].dtype == "int64" and actions["ceiling"].tolist() == [0, 100_000, 5, 100_000]
    assert actions.iloc[3]["debtor_rip"] == RIP_B


def test_a_snapshot_applied_gives_the_snapshot(ledger_engine: Engine) -> None:
    snapshot = pd.DataFrame(
        {
            "reference": ["M1", "M2"],
            "rip": [RIP_A, RIP_B],
            "debtor_name": ["BENALI MOHAMED", "KACI LYNDA"],
            "subscriber_number": ["0000000001", "0000000002"],
            "ceiling": [0, 100_000],
            "effective_date": [date(2026, 1, 4), date(2026, 2, 1)],
            "revoked_from": [None, date(2026, 11, 1)],
        }
    )
    with transaction(ledger_engine) as connection:
        changes = apply_mandate_actions(connection, actions_from_snapshot(snapshot), actor="sample")
    assert changes == MandateChanges(created_or_modified=2, revoked=1)
    got = mandates(ledger_engine)
    assert {r: (m["effective_date"], m["revoked_from"], m["ceiling"]) for r, m in got.items()} == {
        "M1": (date(2026, 1, 4), None, 0),
        "M2": (date(2026, 2, 1), date(2026, 11, 1), 100_000),
    }
