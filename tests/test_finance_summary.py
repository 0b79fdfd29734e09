"""Finance summary (issue #7): every figure ties out to the ledger (independent SQL) and to the RETR files
the ledger received, on a ledger made by the real jobs over several days (tests/finance_world.py)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from epay.finance.summary import month_to_date, reason_meanings, settlement_summary
from epay.formats import read_file
from tests.finance_world import AS_OF, World, frame_sql, world  # noqa: F401 - the shared fixture


def _dates(w: World) -> list[date]:
    rows = frame_sql(w.engine, "SELECT DISTINCT settlement_date AS d FROM instruction ORDER BY 1")
    return [date.fromisoformat(str(r["d"])[:10]) for r in rows]


def test_sections_tie_out_to_the_ledger(world: World) -> None:  # noqa: F811
    days = _dates(world)
    assert len(days) == 4
    for day in days:
        summary = settlement_summary(world.engine, day, world.calendar, as_of=AS_OF)
        rows = frame_sql(
            world.engine,
            "SELECT operation, state, coalesce(reason, '') AS reason, try_number, amount FROM instruction "
            "WHERE settlement_date = :d AND state IN ('sent', 'presented', 'settled', 'rejected')",
            d=day,
        )
        for section, states in (
            ("presented", {"sent", "presented", "settled", "rejected"}),
            ("settled", {"settled"}),
            ("pending", {"sent", "presented"}),
        ):
            frame = getattr(summary, section).set_index("operation")
            for operation in ("FA", "RA"):
                chosen = [r for r in rows if r["state"] in states and r["operation"] == operation]
                assert frame.at[operation, "count"] == len(chosen)
                assert frame.at[operation, "amount"] == sum(int(r["amount"]) for r in chosen)
            chosen = [r for r in rows if r["state"] in states]
            assert frame.at["total", "amount"] == sum(int(r["amount"]) for r in chosen)
        by_reason: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in rows:
            if r["state"] == "rejected":
                by_reason[str(r["reason"])][0] += 1
                by_reason[str(r["reason"])][1] += int(r["amount"])
        got = {
            c: [n, a] for c, n, a in summary.rejected_by_reason[["code", "count", "amount"]].itertuples(False)
        }
        assert got == dict(by_reason)
        assert set(summary.rejected_by_reason["meaning"]) <= set(reason_meanings().values())
        retries = summary.retries.set_index("try_number")
        assert int(retries["presented_amount"].sum()) == int(summary.presented["amount"].iloc[-1])
        for t in retries.index:
            of_try = [r for r in rows if r["try_number"] == t]
            assert retries.at[t, "settled_count"] == sum(r["state"] == "settled" for r in of_try)
            assert retries.at[t, "rejected_amount"] == sum(
                int(r["amount"]) for r in of_try if r["state"] == "rejected"
            )
        excluded = frame_sql(
            world.engine,
            "SELECT e.reason, count(*) AS n, sum(i.amount) AS a FROM exclusion e "
            "JOIN billing_item i ON i.id = e.item_id JOIN batch b ON b.business_date = e.business_date "
            "WHERE b.settlement_date = :d GROUP BY e.reason",
            d=day,
        )
        assert {r["reason"]: (int(r["n"]), int(r["a"])) for r in excluded} == {
            r: (n, a) for r, n, a in summary.exclusions.itertuples(False)
        }
        assert summary.status in ("complete", "pending")
    # retries happened: an AM04 of the first days was presented again
    all_tries = set()
    for day in days:
        all_tries |= set(
            settlement_summary(world.engine, day, world.calendar, as_of=AS_OF).retries["try_number"]
        )
    assert 2 in all_tries


def test_month_to_date_adds_up_the_days(world: World) -> None:  # noqa: F811
    days = _dates(world)
    for last in days:
        month = month_to_date(world.engine, last, world.calendar, as_of=AS_OF)
        of_month = [d for d in days if d.month == last.month and d <= last]
        parts = [settlement_summary(world.engine, d, world.calendar, as_of=AS_OF) for d in of_month]
        for section in ("presented", "settled", "pending"):
            assert int(getattr(month, section)["amount"].iloc[-1]) == sum(
                int(getattr(p, section)["amount"].iloc[-1]) for p in parts
            )
        assert int(month.exclusions["amount"].sum()) == sum(int(p.exclusions["amount"].sum()) for p in parts)
        assert month.first == last.replace(day=1)


def test_rejects_tie_out_to_the_retr_files(world: World) -> None:  # noqa: F811
    """Every RJCT in the RETR files received, by reason, is in the summaries (counted once per reference)."""
    final: dict[str, tuple[str, str, int]] = {}
    for r in frame_sql(world.engine, "SELECT path FROM exchange_file WHERE kind = 'RETR' ORDER BY name"):
        for line in read_file(world.settings.home / str(r["path"])).details.to_pylist():
            final[line["end_to_end_reference"]] = (line["status"], line["reason"], int(line["amount"]))
    by_reason: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    settled = 0
    for status, reason, amount in final.values():
        if status == "RJCT":
            by_reason[reason][0] += 1
            by_reason[reason][1] += amount
        else:
            settled += amount
    got: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    total_settled = 0
    for last in (date(2026, 11, 30), AS_OF):
        month = month_to_date(world.engine, last, world.calendar, as_of=AS_OF)
        total_settled += int(month.settled["amount"].iloc[-1])
        for code, count, amount in month.rejected_by_reason[["code", "count", "amount"]].itertuples(False):
            got[code][0] += count
            got[code][1] += amount
    assert dict(got) == dict(by_reason) and by_reason
    assert total_settled == settled


def test_overdue_after_the_returns_deadline(world: World) -> None:  # noqa: F811
    last = max(_dates(world))
    on_time = settlement_summary(world.engine, last, world.calendar, as_of=AS_OF)
    assert on_time.status == "pending" and on_time.overdue.empty
    late = settlement_summary(world.engine, last, world.calendar, as_of=date(2026, 12, 10))
    assert late.status == "overdue"
    assert int(late.overdue["amount"].sum()) == int(on_time.pending["amount"].iloc[-1]) > 0
    assert set(late.overdue["due_by"]) == {world.calendar.add_business_days(last, 2)}
