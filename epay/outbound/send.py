"""Send the day's sendable PRLV files to Algérie Poste and record them sent.

A file is uploaded only if it is registered ``built`` (held batches and rejected files are not), its
bytes on disk hash as registered (a registered file missing from disk, left by a build that died
between its commit and the reveal, is re-written from the ledger first and must hash the same), and
the upload was verified (size and sha256 read back) before the rename. A file already on the server
with the same bytes counts as sent; with other bytes it is an incident and the run fails. The ledger
records ``sent`` after the upload, in its own transaction: a crash in between only means the next run
finds the file there and records it then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, select, update

from epay.faults import fault_point
from epay.ledger import audit
from epay.ledger.bulk import execute, now_utc
from epay.ledger.db import transaction
from epay.ledger.models import ExchangeFile
from epay.outbound.build import FileIncidentError, sha256_of
from epay.outbound.rewrite import rewrite_file
from epay.settings import Settings
from epay.transport import SftpClient

ACTOR = "outbound.send"


@dataclass(frozen=True)
class Sent:
    name: str
    size: int
    already_there: bool


def sendable(engine: Engine, business_date: date) -> list[tuple[int, str, str, str]]:
    """(id, name, path, sha256) of the PRLV files built on or before ``business_date`` not yet sent."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(ExchangeFile.id, ExchangeFile.name, ExchangeFile.path, ExchangeFile.sha256)
            .where(
                ExchangeFile.direction == "out",
                ExchangeFile.kind == "PRLV",
                ExchangeFile.state == "built",
                ExchangeFile.business_date <= business_date,
            )
            .order_by(ExchangeFile.name)
        ).all()
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def send_files(engine: Engine, settings: Settings, client: SftpClient, business_date: date) -> list[Sent]:
    sent: list[Sent] = []
    for file_id, name, relative, sha256 in sendable(engine, business_date):
        path = settings.home / relative
        if not path.exists():  # registered by a build that died before revealing it: from the ledger
            rewrite_file(engine, settings, name, path, sha256)
        if sha256_of(path) != sha256:
            raise FileIncidentError(f"{path} does not hold the bytes registered for {name}: not sent")
        result = client.upload(path, "/inbound")
        fault_point("send.after_rename")
        if result.sha256 != sha256:
            raise FileIncidentError(f"{name} on the server hashes {result.sha256}, registered {sha256}")
        _record_sent(engine, file_id, name, business_date)
        fault_point("send.after_record")
        sent.append(Sent(name, result.size, result.already_there))
    return sent


def _record_sent(engine: Engine, file_id: int, name: str, business_date: date) -> None:
    now = now_utc()
    with transaction(engine) as connection:
        changed = connection.execute(
            update(ExchangeFile)
            .where(ExchangeFile.id == file_id, ExchangeFile.state == "built")
            .values(state="sent", updated_at=now)
        ).rowcount
        if not changed:  # another run recorded it meanwhile
            return
        audit.record(
            connection, "file", name, "sent", from_state="built", actor=ACTOR, business_date=business_date
        )
        where = "file_id = ? AND state = 'built'"
        audit.record_many(
            connection,
            "instruction",
            "reference",
            "instruction",
            where,
            (file_id,),
            "sent",
            actor=ACTOR,
            from_state="built",
            business_date=business_date,
            file_id=file_id,
        )
        execute(
            connection, f"UPDATE instruction SET state = 'sent', updated_at = ? WHERE {where}", (now, file_id)
        )
