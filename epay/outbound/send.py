"""Send the day's sendable PRLV files to Algérie Poste and record them sent.

The night of D sends the files it built, plus older files that were never sent and can still make
their cut-off (the audit trail says which night sent them and why). A file whose cut-off has passed by
the clock is never sent — AP would reject it DT01 —: it is expired and its instructions wait for the
next build (``epay.outbound.expiry``).

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

from epay.calendar import BusinessCalendar, load_calendar
from epay.faults import fault_point
from epay.ledger import audit
from epay.ledger.bulk import execute, now_utc
from epay.ledger.db import lock_ledger, transaction
from epay.ledger.models import ExchangeFile
from epay.outbound.build import FileIncidentError, sha256_of
from epay.outbound.cutoff import expired
from epay.outbound.expiry import ExpiredFile, expire_stale_files
from epay.outbound.rewrite import rewrite_file
from epay.settings import Settings
from epay.transport.agent import FileTransport
from epay.transport.errors import RemoteConflictError

ACTOR = "outbound.send"


@dataclass(frozen=True)
class Sent:
    name: str
    size: int
    already_there: bool
    built_on: str = ""  # the night that built it, when older than the night sending it


def sendable(engine: Engine, business_date: date) -> list[tuple[int, str, str, str, date, date | None]]:
    """(id, name, path, sha256, built on, settlement date) of the PRLV files built on or before
    ``business_date`` not yet sent."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                ExchangeFile.id,
                ExchangeFile.name,
                ExchangeFile.path,
                ExchangeFile.sha256,
                ExchangeFile.business_date,
                ExchangeFile.settlement_date,
            )
            .where(
                ExchangeFile.direction == "out",
                ExchangeFile.kind == "PRLV",
                ExchangeFile.state == "built",
                ExchangeFile.business_date <= business_date,
            )
            .order_by(ExchangeFile.name)
        ).all()
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], r[5]) for r in rows]


def expire_unsendable(
    engine: Engine, settings: Settings, calendar: BusinessCalendar, business_date: date
) -> list[ExpiredFile]:
    """Expire the built files whose cut-off has passed by the clock (never sent late)."""
    with transaction(engine) as connection:
        lock_ledger(connection)
        return expire_stale_files(connection, settings.now(), calendar, business_date, ACTOR)


def send_files(
    engine: Engine,
    settings: Settings,
    client: FileTransport,
    business_date: date,
    calendar: BusinessCalendar | None = None,
) -> list[Sent]:
    calendar = calendar or load_calendar(settings.holidays_file)
    sent: list[Sent] = []
    expire_unsendable(engine, settings, calendar, business_date)
    for file_id, name, relative, sha256, built_on, settles in sendable(engine, business_date):
        # its cut-off may have passed while earlier files were uploading
        if settles is not None and expired(settles, settings.now(), calendar):
            expire_unsendable(engine, settings, calendar, business_date)
            continue
        path = settings.home / relative
        if not path.exists():  # registered by a build that died before revealing it: from the ledger
            rewrite_file(engine, settings, name, path, sha256)
        if sha256_of(path) != sha256:
            raise FileIncidentError(f"{path} does not hold the bytes registered for {name}: not sent")
        exchanged, expected = path, sha256
        if settings.protection == "openpgp":  # contract §8: NAME.pgp goes, signed and encrypted, made once
            from epay.protection.operator import protect_outbound

            exchanged = protect_outbound(settings, path)
            expected = sha256_of(exchanged)
        try:
            result = client.upload(exchanged, "/inbound")
        except RemoteConflictError as conflict:  # our name at AP with other bytes: recorded, never lost
            _record_conflict(engine, name, business_date, str(conflict))
            raise
        fault_point("send.after_rename")
        if result.sha256 != expected:
            raise FileIncidentError(
                f"{exchanged.name} on the server hashes {result.sha256}, registered {expected}"
            )
        older = built_on if built_on != business_date else None
        _record_sent(engine, file_id, name, business_date, older)
        fault_point("send.after_record")
        sent.append(Sent(name, result.size, result.already_there, older.isoformat() if older else ""))
    return sent


def _record_sent(engine: Engine, file_id: int, name: str, business_date: date, older: date | None) -> None:
    now = now_utc()
    with transaction(engine) as connection:
        changed = connection.execute(
            update(ExchangeFile)
            .where(ExchangeFile.id == file_id, ExchangeFile.state == "built")
            .values(state="sent", updated_at=now)
        ).rowcount
        if not changed:  # another run recorded it meanwhile
            return
        reason = f"built by the night of {older}, never sent by it: sent by the night of {business_date}"
        audit.record(
            connection,
            "file",
            name,
            "sent",
            from_state="built",
            actor=ACTOR,
            reason=reason if older else None,
            business_date=business_date,
            file_id=file_id,
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


def _record_conflict(engine: Engine, name: str, business_date: date, message: str) -> None:
    """An incident in the file's audit trail (``epay audit --file NAME`` shows it; its expiry later does
    not hide it): AP's server holds this name with other bytes than we built."""
    with transaction(engine) as connection:
        audit.record(
            connection,
            "file",
            name,
            "incident",
            reason=("REMOTE_CONFLICT: " + message)[:200],
            actor="outbound.send",
            business_date=business_date,
        )
