"""The ACK deadline: a PRLV file sent and not acknowledged within EPAY_ACK_DEADLINE_MINUTES fails the run
loudly, counted from when the ledger recorded it sent (so clearing the sensor does not restart the clock),
and nothing is re-sent on a guess."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select, update

from epay import jobs
from epay.calendar import load_calendar
from epay.ledger.models import ExchangeFile
from epay.poste.office import PostOffice
from epay.poste.sftp_server import PosteSftpServer
from epay.sample.install import install_sample
from epay.settings import Settings

DAY = date(2026, 11, 25)


def sent_files(engine: Engine) -> dict[str, tuple[str, datetime]]:
    with engine.connect() as c:
        rows = c.execute(
            select(ExchangeFile.name, ExchangeFile.state, ExchangeFile.updated_at).where(
                ExchangeFile.kind == "PRLV"
            )
        ).all()
    return {name: (state, at if at.tzinfo else at.replace(tzinfo=UTC)) for name, state, at in rows}


def test_an_ack_past_its_deadline_fails_the_wait_and_nothing_is_resent(
    ledger_engine: Engine, ledger_settings: Settings
) -> None:
    calendar = load_calendar()
    install_sample(ledger_settings, 60, 5, DAY, calendar)
    with PosteSftpServer(ledger_settings.poste_dir, port=0) as server:  # AP receives, but answers nothing
        settings = ledger_settings.model_copy(
            update={
                "sftp_port": server.port,
                "sftp_host_key": server.host_key_line,
                "sftp_private_key_file": ledger_settings.home / "keys" / "at_sftp_ecdsa",
                "ack_deadline_minutes": 90,
            }
        )
        jobs.build(settings, DAY)
        jobs.send(settings, DAY)
        files = sent_files(ledger_engine)
        assert files and {state for state, _ in files.values()} == {"sent"}
        name, (_, sent_at) = sorted(files.items())[0]

        assert jobs.overdue_acks(settings, DAY, sent_at + timedelta(minutes=89)) == []
        late = sent_at + timedelta(minutes=91)
        assert jobs.overdue_acks(settings, DAY, late) == [(name, sent_at)]
        assert jobs.overdue_acks(settings, DAY - timedelta(days=1), late) == []  # another day's run
        message = jobs.ack_overdue_message(settings, jobs.overdue_acks(settings, DAY, late))
        assert name in message and "90 min" in message and "Nothing is re-sent" in message

        # The Airflow sensor's callable, in its own process (Airflow rewires logging on import), with the
        # file sent three hours ago: it fails without retry and says why; nothing was sent again.
        with ledger_engine.begin() as c:
            c.execute(update(ExchangeFile).values(updated_at=sent_at - timedelta(hours=3)))
        env = {
            **os.environ,
            "EPAY_HOME": str(settings.home),
            "EPAY_DATABASE_URL": settings.ledger_url,
            "EPAY_SFTP_PORT": str(server.port),
            "EPAY_SFTP_HOST_KEY": server.host_key_line,
            "EPAY_SFTP_PRIVATE_KEY_FILE": str(settings.sftp_private_key_file),
            "EPAY_ACK_DEADLINE_MINUTES": "90",
        }
        probe = (
            "from airflow.sdk.exceptions import AirflowFailException\n"
            "from epay.airflow_support import acknowledged\n"
            "try:\n"
            f"    acknowledged('{DAY}')\n"
            "except AirflowFailException as exc:\n"
            "    print('FAILED:', exc)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        verdict = [line for line in done.stdout.splitlines() if line.startswith("FAILED: ")]
        assert verdict and verdict[0].startswith(
            "FAILED: no ACK from Algérie Poste within 90 min for " + name
        )
        uploaded = sorted(p.name for p in Path(settings.poste_dir).rglob("PRLV_*") if p.is_file())
        assert uploaded == sorted(files)  # each file once on AP's side, nothing re-sent

        # Once AP answers, the same wait succeeds: the deadline is about missing ACKs, not old files.
        office = PostOffice(settings.poste_dir, settings.poste_url, calendar=calendar)
        office.acknowledge_pending(not_after=settings.now())  # AP on the test's clock, as `poste serve` is
        jobs.receive(settings, DAY)
        assert jobs.unacknowledged(settings, DAY) == []
        assert jobs.overdue_acks(settings, DAY, late + timedelta(days=1)) == []
