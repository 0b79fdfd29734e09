"""``make demo``: what epay can do today, end to end on this machine, said honestly.

Today that is the exchange-file codec (a day's files of every kind written, validated, read back,
``epay check`` over the committed samples) and the simulated Algérie Poste (the PRLV file uploaded by
SFTP, acknowledged within seconds, executed on its settlement day, RETR and RELV published). The
operator's ledger, its SFTP client and the Airflow DAGs come with the next issues; this grows with them.
"""

from __future__ import annotations

import threading
import time as _time
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from epay.calendar import load_calendar
from epay.formats import ack_name, build_file_name, read_file, validate_file, write_file
from epay.formats import synthetic as synth
from epay.settings import ALGIERS, REPO_ROOT, get_settings


def main() -> None:
    settings = get_settings()
    calendar = load_calendar(settings.holidays_file)
    created = date(2026, 11, 25)
    settles = calendar.next_business_day(created)
    folder = settings.home / "demo" / created.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"epay demo — data folder {settings.home}")
    print("What exists today: the exchange-file codec (write, read, validate), `epay check`, and the")
    print("simulated Algérie Poste (SFTP server, accounts, ACK/RETR/RELV/MNDT on a controlled clock).")
    print("Not yet: the operator's ledger, its SFTP client and the Airflow DAGs (issues #3, #5).\n")

    prlv = build_file_name("PRLV", settings.creditor_id, created, 1)
    details = synth.prlv_details(100_000, seed=7)
    started = _time.perf_counter()
    written = write_file(folder / prlv, "PRLV", synth.standard_header("PRLV", created, settles), details)
    elapsed = _time.perf_counter() - started
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
        started = _time.perf_counter()
        report = validate_file(path, calendar=calendar)
        print(
            f"  {path.name}: {'valid' if report.valid else 'INVALID'} "
            f"({report.detail_count:,} details, {_time.perf_counter() - started:.2f} s)"
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
    post_office_round_trip(settings.home / "demo-poste", folder / prlv, created, settles)
    print("\nDone. Try: .venv/bin/epay check sample_files/*.txt   (or --json)")


def post_office_round_trip(poste_dir: Path, prlv: Path, created: date, settles: date) -> None:
    """Upload the PRLV file by SFTP to the simulated post office, get its ACK, run the settlement day."""
    import shutil

    import paramiko

    from epay.formats import read_file
    from epay.poste.office import PostOffice
    from epay.poste.sftp_server import PosteSftpServer, add_account

    print(f"\nthe simulated Algérie Poste ({poste_dir}, rebuilt for the demo):")
    shutil.rmtree(poste_dir, ignore_errors=True)
    office = PostOffice(poste_dir)
    office.add_creditor(f"{synth.CREDITOR_ID:06d}", synth.CREDITOR_NAME, synth.CREDITOR_RIP)
    details = read_file(prlv).details
    assert details is not None
    rips = details.column("debtor_rip").to_pylist()
    rng = np.random.default_rng(1)
    office.add_accounts(
        pd.DataFrame(
            {
                "rip": rips,
                "holder": details.column("debtor_name").to_pylist(),
                "balance": rng.integers(0, 4_000_000, len(rips)),
                "status": "open",
                "deceased": False,
            }
        )
    )
    office.add_mandates(
        pd.DataFrame(
            {
                "reference": details.column("mandate_reference").to_pylist(),
                "creditor_id": f"{synth.CREDITOR_ID:06d}",
                "rip": rips,
                "debtor_name": details.column("debtor_name").to_pylist(),
                "subscriber_number": "DEMO",
                "ceiling": np.where(rng.random(len(rips)) < 0.2, 1_000_000, 0),
                "effective_date": date(2026, 1, 1),
            }
        ),
        day=created,
        report=False,
    )
    key = paramiko.ECDSAKey.generate()
    add_account(
        poste_dir, "at100237", f"{synth.CREDITOR_ID:06d}", f"{key.get_name()} {key.get_base64()} demo"
    )
    acked = threading.Event()

    def received(creditor: str, name: str, path: Path) -> None:
        office.acknowledge(creditor, path, datetime.combine(created, time(20, 0), tzinfo=ALGIERS))
        acked.set()

    with PosteSftpServer(poste_dir, port=0, on_file_received=received) as server:
        transport = paramiko.Transport(("127.0.0.1", server.port))
        transport.connect(hostkey=server.host_key, username="at100237", pkey=key)  # host key pinned
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        started = _time.perf_counter()
        sftp.put(str(prlv), f"/inbound/{prlv.name}.part", confirm=True)
        sftp.rename(f"/inbound/{prlv.name}.part", f"/inbound/{prlv.name}")
        acked.wait(timeout=60)
        print(
            f"  uploaded {prlv.name} by SFTP and got {sftp.listdir('/outbound')} "
            f"in {_time.perf_counter() - started:.1f} s"
        )
        transport.close()
    result = office.tick(settles)
    print(f"  tick {settles}: published {result.published}")
    outbound = office.home(f"{synth.CREDITOR_ID:06d}") / "outbound"
    for name in result.published:
        report = validate_file(outbound / name)
        print(f"  {name}: {'valid' if report.valid else 'INVALID'}, trailer {report.trailer}")


if __name__ == "__main__":
    main()
