"""Named locks held across a whole step that talks to the network (send, receive), so two runs of the
same day at once (the scheduled one and a manual re-run, or the outbound DAG's ACK sensor and the inbound
DAG) never upload the same file or apply the same return side by side: the second waits, then finds the
work done and does nothing.

A transaction cannot be held open over an SFTP transfer, so these are not the ledger's writer lock
(``db.lock_ledger``). PostgreSQL: a session-level advisory lock on a connection of its own, released when
that connection ends, even if the process dies. SQLite: the ledger is a local file, so an ``flock`` on a
file beside it (also released by the kernel when the process dies).
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

log = logging.getLogger(__name__)

STEP_LOCKS = {"send": 2, "receive": 3}  # second key of the advisory lock; the first is db.LEDGER_LOCK's


class StepBusyError(RuntimeError):
    """Another run held the step's lock for longer than we agreed to wait."""


@contextmanager
def step_lock(engine: Engine, step: str, *, wait_seconds: float = 1800.0) -> Iterator[None]:
    """Hold ``step``'s lock for the block; wait up to ``wait_seconds`` for another run to finish it."""
    from epay.ledger.db import LEDGER_LOCK

    key = STEP_LOCKS[step]
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql(  # for this wait's transaction only: the pooled session stays as is
                "SELECT set_config('lock_timeout', %s, true)", (f"{int(wait_seconds * 1000)}ms",)
            )
            started = time.monotonic()
            try:
                connection.exec_driver_sql("SELECT pg_advisory_lock(%s, %s)", (LEDGER_LOCK[0], key))
            except Exception as exc:  # lock_timeout: the other run is stuck, say so
                raise StepBusyError(f"another run has held the {step} lock for {wait_seconds:.0f} s") from exc
            connection.commit()  # the session lock outlives this transaction; none stays open meanwhile
            _note_wait(step, started)
            try:
                yield
            finally:
                connection.exec_driver_sql("SELECT pg_advisory_unlock(%s, %s)", (LEDGER_LOCK[0], key))
                connection.commit()
        return
    database = engine.url.database
    folder = Path(database).resolve().parent if database and database != ":memory:" else None
    if folder is None:  # an in-memory ledger lives in one process: nothing to share
        yield
        return
    path = folder / f".epay-{step}.lock"
    with path.open("a+b") as handle:
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > wait_seconds:
                    raise StepBusyError(
                        f"another run has held the {step} lock for {wait_seconds:.0f} s"
                    ) from None
                time.sleep(0.2)
        _note_wait(step, started)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _note_wait(step: str, started: float) -> None:
    waited = time.monotonic() - started
    if waited > 0.5:
        log.info("waited %.1f s for another run to finish its %s step", waited, step)
