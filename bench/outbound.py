"""Benchmark of the nightly build on a busy day: with a sampled world of ~1.1M subscribers, the build for
a business date on which ≥ 1,000,000 instructions are due — selection, quality gate, PRLV files, ledger
update in one transaction — on SQLite and on PostgreSQL. Each step runs in a fresh process; wall time and
that process's peak RSS are printed. Goal (issue #3): build ≤ 60 s and ≤ 1.5 GB on this 2-core machine.

Baseline, same run, same database: pandas ``DataFrame.to_sql`` (chunks of 10,000 rows, executemany) of
the very instruction rows the build registered — only the registration part of the work, the usual way.

    .venv/bin/python bench/outbound.py [--subscribers N] [--databases sqlite,postgresql] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
AS_OF = date(2026, 11, 25)
GOAL_SECONDS, GOAL_MB = 60.0, 1536.0


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a child process; return (wall seconds, its own peak RSS in MB, its stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # reaped here: the rusage is this child's alone
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode:
            sys.exit(f"{' '.join(argv)} failed ({child.returncode}):\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def epay(*args: str) -> list[str]:
    return [PYTHON, "-m", "epay.cli", *args]


def pg_database(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    base = url.rpartition("/")[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def baseline_child(database_url: str) -> None:
    """to_sql of the registered instructions into an empty copy of the table (timed inside)."""
    import pandas as pd
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as connection:
        frame = pd.read_sql(text("SELECT * FROM instruction"), connection)
    frame = frame.drop(columns=["id"])
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS instruction_baseline"))
        frame.to_sql("instruction_baseline", connection, index=False, chunksize=10_000)
    print(json.dumps({"rows": len(frame), "seconds": time.perf_counter() - started}))


def bench(database: str, subscribers: int, pg_url: str, keep: bool) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"epay-bench-{database}-"))
    from epay.calendar import load_calendar

    day = load_calendar().next_business_day(AS_OF + timedelta(days=10))  # every current bill is due
    # epay's clock stopped at that night's evening run: a build for a day is allowed only on its night
    clock = f"{day.isoformat()}T20:00:00+01:00"
    env = {**os.environ, "EPAY_HOME": str(home), "PYTHONPATH": str(REPO), "EPAY_CLOCK": clock}
    if database == "postgresql":
        env["EPAY_DATABASE_URL"] = pg_database(pg_url, "epay_bench_outbound")
    else:
        env.pop("EPAY_DATABASE_URL", None)
    try:
        sample_s, sample_mb, _ = run(
            epay("sample", "--subscribers", str(subscribers), "--seed", "1", "--as-of", AS_OF.isoformat()),
            env,
        )
        build_s, build_mb, out = run(epay("outbound", "build", "--date", day.isoformat(), "--json"), env)
        result = json.loads(out)
        again_s, _, again_out = run(epay("outbound", "build", "--date", day.isoformat(), "--json"), env)
        same = json.loads(again_out)["files"] == result["files"]
        url = env.get("EPAY_DATABASE_URL") or f"sqlite:///{home / 'epay.sqlite3'}"
        _, _, base_out = run([PYTHON, __file__, "--baseline-child", url], env)
        baseline = json.loads(base_out)
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    return {
        "database": database,
        "subscribers": subscribers,
        "business_date": day.isoformat(),
        "instructions": result["instruction_count"],
        "files": len(result["files"]),
        "file_mb": sum(f["size"] for f in result["files"]) / 1e6,
        "sample_s": sample_s,
        "sample_peak_mb": sample_mb,
        "build_s": build_s,
        "build_peak_mb": build_mb,
        "rerun_s": again_s,
        "rerun_same_files": same,
        "baseline_to_sql_s": baseline["seconds"],
        "baseline_rows": baseline["rows"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_100_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        baseline_child(args.baseline_child)
        return
    for database in args.databases.split(","):
        r = bench(database, args.subscribers, args.pg_url, args.keep)
        rate = r["instructions"] / r["build_s"]
        verdict = "MET" if r["build_s"] <= GOAL_SECONDS and r["build_peak_mb"] <= GOAL_MB else "NOT MET"
        busy = "" if r["instructions"] >= 1_000_000 else "  (fewer than 1,000,000: raise --subscribers)"
        print(f"\n== {database}: {r['subscribers']:,} subscribers, build for {r['business_date']}")
        print(
            f"  sample (generate + import + post office): {r['sample_s']:.1f} s, "
            f"peak {r['sample_peak_mb']:.0f} MB"
        )
        print(
            f"  build: {r['instructions']:,} instructions in {r['files']} files ({r['file_mb']:.0f} MB){busy}"
        )
        print(
            f"         {r['build_s']:.1f} s wall ({rate:,.0f} instructions/s), "
            f"peak RSS {r['build_peak_mb']:.0f} MB"
            f"  goal ≤ {GOAL_SECONDS:.0f} s and ≤ {GOAL_MB:.0f} MB: {verdict}"
        )
        print(f"  re-run of the same day: {r['rerun_s']:.1f} s, same files: {r['rerun_same_files']}")
        print(
            f"  baseline pandas.to_sql of the same {r['baseline_rows']:,} instruction rows alone: "
            f"{r['baseline_to_sql_s']:.1f} s"
        )
        print(json.dumps(r))


if __name__ == "__main__":
    main()
