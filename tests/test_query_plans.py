"""A guard on the class of statements whose cost grows faster than their rows: every statement the nightly
path sends (load, build, send, ACK, RETR, MNDT, RELV, status export, exceptions, finance report) is
explained by the database itself while a small night runs, and none may scan a table inside a correlated
subquery (once per outer row: a 1M-record RETR joined that way never finished). Plans, not timings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from epay import jobs
from epay.calendar import load_calendar
from epay.ledger import bulk
from epay.ledger.db import open_ledger
from epay.reports.exceptions import daily_exceptions
from epay.sample.install import install_sample
from epay.settings import Settings
from tests.cycle_helpers import post_office_online

START = date(2026, 11, 25)
_EXPLAINED = re.compile(r"^\s*(SELECT|UPDATE|INSERT|DELETE|WITH)\b", re.IGNORECASE)


@dataclass
class Plans:
    seen: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)


def sqlite_violations(rows: list[tuple[Any, ...]]) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN rows (id, parent, _, detail): a SCAN under a CORRELATED subquery."""
    parent = {int(r[0]): int(r[1]) for r in rows}
    detail = {int(r[0]): str(r[3]) for r in rows}

    def correlated_above(node: int) -> bool:
        while node in parent and parent[node] != 0:
            node = parent[node]
            if detail.get(node, "").startswith("CORRELATED"):
                return True
        return False

    return [
        d
        for n, d in detail.items()
        if d.startswith("SCAN ") and "CONSTANT ROW" not in d and correlated_above(n)
    ]


def postgres_violations(lines: list[str]) -> list[str]:
    """PostgreSQL's EXPLAIN text: a Seq Scan inside a SubPlan (run once per outer row)."""
    found, subplan_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if subplan_indent is not None and indent <= subplan_indent:
            subplan_indent = None
        if line.strip().startswith("SubPlan"):
            subplan_indent = indent
        elif subplan_indent is not None and "Seq Scan" in line:
            found.append(line.strip())
    return found


def _violations(dialect: str, statement: str, parameters: Any, raw: Any) -> list[str]:
    if dialect == "sqlite":
        return sqlite_violations(raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall())
    with raw.cursor() as explain_cursor:
        explain_cursor.execute(f"EXPLAIN {statement}", parameters)
        return postgres_violations([r[0] for r in explain_cursor.fetchall()])


@contextmanager
def explained() -> Iterator[Plans]:
    """Explain each statement just before it runs, on its own connection (so its temporary tables
    exist): the ORM's through SQLAlchemy's event, the bulk layer's through its observers."""
    plans = Plans()

    def observe(dialect: str, statement: str, parameters: Any, raw: Any) -> None:
        if not _EXPLAINED.match(statement):
            return
        plans.seen += 1
        plans.bad.extend((statement, v) for v in _violations(dialect, statement, parameters, raw))

    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many:
            observe(conn.dialect.name, statement, parameters, cursor.connection)

    event.listen(Engine, "before_cursor_execute", on_execute)
    bulk.OBSERVERS.append(observe)
    try:
        yield plans
    finally:
        bulk.OBSERVERS.remove(observe)
        event.remove(Engine, "before_cursor_execute", on_execute)


def test_the_guard_catches_a_scan_per_row() -> None:
    """The rule itself: the old RETR item update (a scratch table looked up per item without an index)."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, state TEXT)")
    db.execute("CREATE TABLE stage (instruction_id INTEGER PRIMARY KEY, item_id INTEGER, reason TEXT)")
    quadratic = (
        "UPDATE item SET state = (SELECT t.reason FROM stage t WHERE t.item_id = item.id) "
        "WHERE id IN (SELECT item_id FROM stage)"
    )
    assert sqlite_violations(db.execute(f"EXPLAIN QUERY PLAN {quadratic}").fetchall())
    joined = "UPDATE item SET state = t.reason FROM stage t WHERE t.item_id = item.id"
    assert not sqlite_violations(db.execute(f"EXPLAIN QUERY PLAN {joined}").fetchall())
    assert postgres_violations(
        ["Update on item", "  ->  Seq Scan on item", "        SubPlan 1", "          ->  Seq Scan on stage t"]
    ) == ["->  Seq Scan on stage t"]


def test_no_nightly_statement_scans_inside_a_correlated_subquery(ledger_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=ledger_url)
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 300, 5, START, calendar)
    engine = open_ledger(settings.ledger_url)
    try:
        with explained() as plans, post_office_online(settings, calendar) as poste:
            day = START
            for _ in range(2):
                poste.business_day(day)
                poste.end_of_day(day)
                jobs.export_statuses(poste.settings, day)
                daily_exceptions(engine, poste.settings, day, calendar)
                jobs.finance_summary(poste.settings, calendar.next_business_day(day))
                day = calendar.next_business_day(day)
    finally:
        engine.dispose()
    assert plans.seen > 50  # the night's statements were really explained
    assert not plans.bad, "\n".join(f"{v}\n  in: {s[:300]}" for s, v in plans.bad)


def test_the_retr_apply_bench_runs_at_a_tiny_size() -> None:
    """The bench script itself cannot rot (its figures are printed, never asserted)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "bench" / "retr_apply.py"
    done = subprocess.run(
        [sys.executable, str(script), "--size", "200", "--repeat", "1", "--old-up-to", "200"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "200 returns: apply" in done.stdout and "old item update" in done.stdout
