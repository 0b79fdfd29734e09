"""RETR apply at scale: the ledger side of a night's returns, against a baseline measured in the same run.

    .venv/bin/python bench/retr_apply.py                       # 100,000 returns on SQLite
    .venv/bin/python bench/retr_apply.py --size 1000000        # the design load
    .venv/bin/python bench/retr_apply.py --database-url postgresql://postgres@127.0.0.1:5432/DB

Each figure comes from a fresh ledger holding ``size`` presented instructions (items in collection, one
mandate each). ``apply`` is ``epay.inbound.retr.apply_retr`` on a RETR of ``size`` records (90 % ACSC,
10 % RJCT with every reason kind), in one transaction; ``baseline`` is the least any apply must do on
the same ledger: one ``UPDATE … FROM`` of the instructions and one of the items, nothing else. With
``--old-up-to N``, sizes up to N also time the previous statement form (a correlated subquery per item
row), to show its growth. Medians of ``--repeat`` runs; prints the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from epay.calendar import load_calendar
from epay.inbound.retr import apply_retr
from epay.inbound.returns import ReturnContext
from epay.ledger.bulk import execute, insert_frame
from epay.ledger.db import open_ledger, transaction

DAY = date(2026, 11, 26)
REASONS = ("AM04", "MS03", "AC04", "AC01", "MD01", "AM02")


def world(engine: Engine, size: int) -> pd.DataFrame:
    """``size`` presented instructions, their items and mandates; returns the RETR records for them."""
    ids = np.arange(1, size + 1)
    now = pd.Timestamp(datetime(2026, 11, 25, 20, tzinfo=UTC))
    rips = pd.Series([f"0079999{i:011d}00" for i in ids])
    numbers = pd.Series([f"F{i:09d}" for i in ids])
    mandates = pd.Series([f"M{i:09d}" for i in ids])
    with transaction(engine) as connection:
        execute(
            connection,
            "INSERT INTO batch (id, business_date, number, settlement_date, state, instruction_count, "
            "amount, held_count, created_at) VALUES (1, ?, 1, ?, 'released', ?, 0, 0, ?)",
            (date(2026, 11, 25), DAY, size, now.to_pydatetime()),
        )
        execute(
            connection,
            "INSERT INTO exchange_file (id, direction, name, kind, business_date, sequence, settlement_date, "
            "path, sha256, size, detail_count, amount, state, batch_id, created_at, updated_at) VALUES (1, "
            "'out', 'PRLV_100237_20261125_01.txt', 'PRLV', ?, 1, ?, 'x', 'x', 0, ?, 0, 'accepted', 1, ?, ?)",
            (date(2026, 11, 25), DAY, size, now.to_pydatetime(), now.to_pydatetime()),
        )
        insert_frame(
            connection,
            "billing_item",
            pd.DataFrame(
                {
                    "id": ids,
                    "kind": "FA",
                    "number": numbers,
                    "subscriber_number": numbers.str.replace("F", "S"),
                    "amount": 10_000,
                    "issued_on": date(2026, 11, 1),
                    "due_date": date(2026, 11, 25),
                    "state": "in_collection",
                    "tries": 1,
                    "extract_id": "bench",
                    "updated_at": now,
                }
            ),
        )
        insert_frame(
            connection,
            "mandate",
            pd.DataFrame(
                {
                    "reference": mandates,
                    "subscriber_number": numbers.str.replace("F", "S"),
                    "rip": rips,
                    "debtor_name": "BENCH",
                    "ceiling": 0,
                    "effective_date": date(2026, 1, 4),
                    "status": "active",
                    "updated_at": now,
                }
            ),
        )
        insert_frame(
            connection,
            "instruction",
            pd.DataFrame(
                {
                    "id": ids,
                    "reference": [f"E20261125010{i:012d}" for i in ids],
                    "item_id": ids,
                    "try_number": 1,
                    "operation": "FA",
                    "amount": 10_000,
                    "mandate_reference": mandates,
                    "rip": rips,
                    "debtor_name": "BENCH",
                    "item_number": numbers,
                    "due_date": date(2026, 11, 25),
                    "business_date": date(2026, 11, 25),
                    "settlement_date": DAY,
                    "batch_id": 1,
                    "file_id": 1,
                    "line": ids,
                    "state": "presented",
                    "updated_at": now,
                }
            ),
        )
    rejected = ids % 10 == 0
    reasons = np.array(REASONS, dtype=object)[(ids // 10) % len(REASONS)]
    return pd.DataFrame(
        {
            "line": ids + 1,
            "reference": [f"E20261125010{i:012d}" for i in ids],
            "rip": rips,
            "amount": np.int64(10_000),
            "status": np.where(rejected, "RJCT", "ACSC"),
            "reason": [reason if r else None for r, reason in zip(rejected, reasons, strict=True)],
            "status_date": DAY,
            "transaction_id": [f"T{i:019d}" for i in ids],
            "prlv_file_name": "PRLV_100237_20261125_01.txt",
        }
    )


OLD_ITEM_UPDATE = (
    "UPDATE billing_item SET state = 'paid', paid_by = 'DEBIT', "
    "paid_on = (SELECT t.status_date FROM stage t WHERE t.item_id = billing_item.id), updated_at = ? "
    "WHERE id IN (SELECT t.item_id FROM stage t WHERE t.status = 'ACSC')"
)


def stage(engine: Engine, records: pd.DataFrame, *, indexed: bool) -> None:
    with transaction(engine) as connection:
        execute(
            connection,
            "CREATE TABLE stage (instruction_id BIGINT PRIMARY KEY, item_id BIGINT, status VARCHAR(4), "
            "reason VARCHAR(4), status_date DATE)",
        )
        ids = np.arange(1, len(records) + 1)
        insert_frame(
            connection,
            "stage",
            pd.DataFrame(
                {
                    "instruction_id": ids,
                    "item_id": ids,
                    "status": records["status"],
                    "reason": records["reason"],
                    "status_date": DAY,
                }
            ),
        )
        if indexed:
            execute(connection, "CREATE INDEX stage_item ON stage (item_id)")


def one_run(kind: str, size: int, url: str | None) -> float:
    """A fresh ledger, then the timed work; returns seconds."""
    with tempfile.TemporaryDirectory() as scratch:
        database = None
        if url:
            database = f"epay_bench_retr_{uuid.uuid4().hex[:10]}"
            with create_engine(url, isolation_level="AUTOCOMMIT").connect() as admin:
                admin.execute(text(f"CREATE DATABASE {database}"))
            ledger_url = url.rsplit("/", 1)[0] + "/" + database
        else:
            ledger_url = f"sqlite:///{Path(scratch) / 'ledger.sqlite3'}"
        engine = open_ledger(ledger_url)
        try:
            records = world(engine, size)
            now = datetime(2026, 11, 26, 23, tzinfo=UTC)
            if kind == "apply":
                started = time.perf_counter()
                with transaction(engine) as connection:
                    apply_retr(
                        connection,
                        records,
                        file_id=1,
                        business_date=DAY,
                        context=ReturnContext(DAY, load_calendar()),
                    )
            else:
                stage(engine, records, indexed=kind == "baseline")
                started = time.perf_counter()
                with transaction(engine) as connection:
                    if kind == "baseline":
                        execute(
                            connection,
                            "UPDATE instruction SET state = CASE WHEN t.status = 'ACSC' THEN 'settled' ELSE "
                            "'rejected' END, reason = t.reason, status_date = t.status_date, updated_at = ? "
                            "FROM stage t WHERE t.instruction_id = instruction.id",
                            (now,),
                        )
                        execute(
                            connection,
                            "UPDATE billing_item SET state = 'paid', paid_on = t.status_date, updated_at = ? "
                            "FROM stage t WHERE t.item_id = billing_item.id AND t.status = 'ACSC'",
                            (now,),
                        )
                    else:  # the previous form, one statement of it
                        execute(connection, OLD_ITEM_UPDATE, (now,))
            return time.perf_counter() - started
        finally:
            engine.dispose()
            if database:
                with create_engine(url, isolation_level="AUTOCOMMIT").connect() as admin:  # type: ignore[arg-type]
                    admin.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, action="append", help="returns in the file (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a database is made and dropped)")
    parser.add_argument("--old-up-to", type=int, default=20_000, help="time the old form up to this size")
    args = parser.parse_args()
    if args.repeat < 1 or any(s < 10 for s in (args.size or [])):
        parser.error("--repeat must be >= 1 and --size >= 10")
    sizes = args.size or [100_000]
    print(
        f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    for size in sizes:
        kinds = ["apply", "baseline"] + (["old item update"] if size <= args.old_up_to else [])
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeat):
            for kind in kinds:
                times[kind].append(one_run(kind, size, args.database_url))
        medians = {k: statistics.median(v) for k, v in times.items()}
        line = ", ".join(
            f"{k} {medians[k]:.2f} s (min {min(times[k]):.2f}, max {max(times[k]):.2f})" for k in kinds
        )
        print(f"{size:>9,} returns: {line}; apply/baseline {medians['apply'] / medians['baseline']:.1f}x")


if __name__ == "__main__":
    main()
