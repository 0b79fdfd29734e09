"""Two runs of the same day at once — the scheduled one and a data engineer's manual re-run, in two
processes — build, send and receive side by side: one does the work, the other waits on it and then finds
nothing left to do. No duplicate file, instruction, upload or applied return, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import date, datetime, time
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select

from epay.calendar import load_calendar
from epay.ledger.models import AuditEvent, Batch, ExchangeFile, Instruction
from epay.poste.office import PostOffice
from epay.poste.sftp_server import PosteSftpServer
from epay.poste.state import ReceivedFile, UsedReference
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings

DAY = date(2026, 11, 25)

RUN = """
import sys, time
from datetime import date
from pathlib import Path
from epay import jobs
from epay.settings import Settings

go, me = Path(sys.argv[1]), sys.argv[3]


def together(step):  # both runs start each step at the same moment: the worst case
    (go / f"{step}-{me}").touch()
    deadline = time.monotonic() + 30  # unless the other run has died
    while len(list(go.glob(f"{step}-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)


settings, day = Settings(), date.fromisoformat(sys.argv[2])
together("build")
built = jobs.build(settings, day)
together("send")
sent = jobs.send(settings, day)
together("receive")
received = jobs.receive(settings, day)
print("RESULT", len(sent), sum(1 for s in sent if s["already_there"]), len(received))
"""


def test_two_runs_of_the_same_day_at_once_do_the_work_once(
    ledger_engine: Engine, ledger_settings: Settings, tmp_path: Path
) -> None:
    calendar = load_calendar()
    install_sample(ledger_settings, 150, 9, DAY, calendar)
    settings = ledger_settings.model_copy(update={"max_details_per_file": 40})  # several files to race on
    office = PostOffice(settings.poste_dir, settings.poste_url, calendar=calendar)
    lock = threading.Lock()

    def received(creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            with lock:
                office.acknowledge(creditor, path, datetime.combine(DAY, time(20, 5), tzinfo=ALGIERS))

    go = tmp_path / "start-lines"
    go.mkdir()
    with PosteSftpServer(settings.poste_dir, port=0, on_file_received=received) as server:
        env = {
            **os.environ,
            "EPAY_HOME": str(settings.home),
            "EPAY_DATABASE_URL": settings.ledger_url,
            "EPAY_MAX_DETAILS_PER_FILE": "40",
            "EPAY_SFTP_PORT": str(server.port),
            "EPAY_SFTP_HOST_KEY": server.host_key_line,
            "EPAY_SFTP_PRIVATE_KEY_FILE": str(settings.home / "keys" / "at_sftp_ecdsa"),
        }
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", RUN, str(go), DAY.isoformat(), str(number)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for number in range(2)
        ]
        outputs = [run.communicate(timeout=180) for run in runs]

    for run, (_out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err[-3000:]
    results = [
        line.split()[1:] for out, _ in outputs for line in out.splitlines() if line.startswith("RESULT")
    ]
    assert len(results) == 2

    with ledger_engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(Batch).where(Batch.business_date == DAY)) == 1
        files = c.execute(
            select(ExchangeFile.name, ExchangeFile.state, ExchangeFile.detail_count).where(
                ExchangeFile.kind == "PRLV"
            )
        ).all()
        instructions = c.scalar(select(func.count()).select_from(Instruction))
        sent_events = c.execute(
            select(AuditEvent.entity_key, func.count())
            .where(AuditEvent.entity == "file", AuditEvent.to_state == "sent")
            .group_by(AuditEvent.entity_key)
        ).all()
        acks_applied = c.scalar(
            select(func.count()).select_from(ExchangeFile).where(ExchangeFile.kind == "ACK")
        )
    assert len(files) >= 2 and {state for _, state, _ in files} == {"accepted"}
    assert sum(n for _, _, n in files) == instructions
    assert sorted(sent_events) == sorted((name, 1) for name, _, _ in files)  # recorded sent once each
    assert acks_applied == len(files)  # each ACK applied once

    # Algérie Poste's side: each file received once and accepted, each reference presented once.
    poste = create_engine(settings.poste_url)
    try:
        with poste.connect() as c:
            received_files = c.execute(select(ReceivedFile.name, ReceivedFile.status)).all()
            references = c.scalar(select(func.count()).select_from(UsedReference))
    finally:
        poste.dispose()
    assert sorted(received_files) == sorted((name, "ACCP") for name, _, _ in files)
    assert references == instructions
    # one run uploaded every file, the other found nothing left to send (or the same bytes already there)
    uploads = sorted(int(sent) - int(already) for sent, already, _ in results)
    assert uploads == [0, len(files)]
