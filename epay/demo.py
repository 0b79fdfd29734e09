"""``make demo``: what epay can do today, end to end on this machine, said honestly.

Today (foundation issue) that is the exchange-file codec: it writes a day's worth of files of every
kind with the real writer, checks them with the validator, reads them back, and runs ``epay check``
over the committed sample files, valid and invalid. The ledger, the simulated post office, SFTP and
the Airflow DAGs come with the next issues; this script grows with them.
"""

from __future__ import annotations

import time
from datetime import date

from epay.calendar import load_calendar
from epay.formats import ack_name, build_file_name, read_file, validate_file, write_file
from epay.formats import synthetic as synth
from epay.settings import REPO_ROOT, get_settings


def main() -> None:
    settings = get_settings()
    calendar = load_calendar(settings.holidays_file)
    created = date(2026, 11, 25)
    settles = calendar.next_business_day(created)
    folder = settings.home / "demo" / created.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"epay demo — data folder {settings.home}")
    print("What exists today: the exchange-file codec (write, read, validate) and `epay check`.")
    print("Not yet: ledger, simulated Algérie Poste, SFTP, Airflow DAGs (later issues).\n")

    prlv = build_file_name("PRLV", settings.creditor_id, created, 1)
    details = synth.prlv_details(100_000, seed=7)
    started = time.perf_counter()
    written = write_file(folder / prlv, "PRLV", synth.standard_header("PRLV", created, settles), details)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {prlv}: {written.detail_count:,} details, {written.size / 1e6:.1f} MB in {elapsed:.2f} s; "
        f"trailer {written.trailer}"
    )
    others = [
        (
            ack_name(prlv),
            "ACK",
            synth.ack_header(created),
            synth.ack_detail(prlv, count=written.detail_count, amount=written.trailer["total_amount"]),
        ),
        (
            build_file_name("RETR", settings.creditor_id, settles, 1),
            "RETR",
            synth.standard_header("RETR", settles, settles),
            synth.retr_details(1_000, seed=7, day=settles),
        ),
        (
            build_file_name("MNDT", settings.creditor_id, created, 1),
            "MNDT",
            synth.standard_header("MNDT", created, created),
            synth.mndt_details(50, seed=7, day=created),
        ),
        (
            build_file_name("RELV", settings.creditor_id, settles, 1),
            "RELV",
            synth.standard_header("RELV", settles, settles),
            synth.relv_details([settles], [900], [123_456_789]),
        ),
    ]
    for name, kind, header, table in others:
        result = write_file(folder / name, kind, header, table)
        print(f"wrote {name}: {result.detail_count} detail(s), trailer {result.trailer}")

    print("\nchecking what was written:")
    for path in sorted(folder.glob("*.txt")):
        started = time.perf_counter()
        report = validate_file(path, calendar=calendar)
        print(
            f"  {path.name}: {'valid' if report.valid else 'INVALID'} "
            f"({report.detail_count:,} details, {time.perf_counter() - started:.2f} s)"
        )
        if not report.valid:
            raise SystemExit(f"the writer produced an invalid file: {report.problems[:3]}")
    table = read_file(folder / prlv, calendar=calendar).details
    assert table is not None
    print(f"  read back {prlv}: {table.num_rows:,} rows, columns {table.column_names}")

    samples = REPO_ROOT / "sample_files"
    print(f"\nepay check over the committed samples ({samples}):")
    for path in sorted(samples.glob("*.txt")) + sorted(samples.glob("invalid/*/*.txt")):
        report = validate_file(path, calendar=calendar)
        rejection = report.first_rejection()
        verdict = (
            "valid" if report.valid else f"rejected {rejection[0]} line {rejection[1]}" if rejection else "?"
        )
        extra = f"; {len(report.warnings)} warning(s): {report.warnings[0].code}" if report.warnings else ""
        print(f"  {path.relative_to(samples)}: {verdict}{extra}")
    print("\nDone. Try: .venv/bin/epay check sample_files/*.txt   (or --json)")


if __name__ == "__main__":
    main()
