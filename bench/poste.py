"""Benchmark of the simulated post office: one PRLV file of 999,999 instructions (the spec's maximum per
file), acknowledged, then executed and reported (RETR, RELV) by one tick. Prints wall time per step and
the peak RSS. Goal (issue #4): the processing of such a file in ≤ 60 s.

    .venv/bin/python bench/poste.py [--rows N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from epay.formats import synthetic, write_file  # noqa: E402
from epay.poste.office import PostOffice  # noqa: E402

CREATED, SETTLES = date(2026, 11, 25), date(2026, 11, 26)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=999_999)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="epay-poste-bench-"))
    try:
        started = time.perf_counter()
        office = PostOffice(folder / "poste", args.database_url)
        office.add_creditor("100237", synthetic.CREDITOR_NAME, synthetic.CREDITOR_RIP)
        details = synthetic.prlv_details(args.rows, seed=11)
        rips = details.column("debtor_rip").to_numpy(zero_copy_only=False)
        rng = np.random.default_rng(11)
        n = args.rows
        office.add_accounts(
            pd.DataFrame(
                {
                    "rip": rips,
                    "holder": "HOLDER",
                    "balance": rng.integers(0, 5_000_000, n),
                    "status": np.where(rng.random(n) < 0.01, "closed", "open"),
                    "deceased": rng.random(n) < 0.002,
                }
            )
        )
        office.add_mandates(
            pd.DataFrame(
                {
                    "reference": details.column("mandate_reference").to_numpy(zero_copy_only=False),
                    "creditor_id": "100237",
                    "rip": rips,
                    "debtor_name": "HOLDER",
                    "subscriber_number": [f"{i:010d}" for i in range(n)],
                    "ceiling": np.where(rng.random(n) < 0.3, 1_500_000, 0),
                    "effective_date": date(2026, 1, 1),
                }
            ),
            day=date(2026, 1, 1),
            report=False,
        )
        path = folder / "poste" / "sftp" / "100237" / "inbound" / "PRLV_100237_20261125_01.txt"
        write_file(path, "PRLV", synthetic.standard_header("PRLV", CREATED, SETTLES), details)
        setup = time.perf_counter() - started
        print(f"setup (world of {n:,} accounts and mandates, PRLV file written): {setup:.1f} s")

        started = time.perf_counter()
        first = office.tick(CREATED)
        ack = time.perf_counter() - started
        print(f"tick {CREATED}: acknowledged {first.acknowledged} in {ack:.1f} s")
        started = time.perf_counter()
        second = office.tick(SETTLES)
        execute = time.perf_counter() - started
        print(f"tick {SETTLES}: executed and published {second.published} in {execute:.1f} s")
        total = ack + execute
        print(
            f"processing of one PRLV file of {n:,} instructions: {total:.1f} s "
            f"({n / total:,.0f} instructions/s), peak RSS {peak_rss_mb():,.0f} MB; goal ≤ 60 s: "
            f"{'MET' if total <= 60 else 'NOT MET'}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
