"""Named crash points: ``EPAY_CRASH_AT=NAME`` (or ``NAME:N``, the N-th time the point is reached in this
process) makes the process kill itself with SIGKILL right there — no cleanup, no ``finally``, no commit:
a real crash, for the tests that prove every step boundary survives one. Unset, a point costs one
dictionary lookup and one environment read."""

from __future__ import annotations

import os
import signal

ENV = "EPAY_CRASH_AT"

FAULT_POINTS: dict[str, str] = {
    "build.after_write": "PRLV files written in staging and rows inserted, transaction not committed",
    "build.after_register": "batch, files and instructions committed, no file revealed under its name",
    "build.after_reveal": "a file revealed under its final name, the next ones not, staging not cleaned",
    "send.mid_part_write": "NAME.part partly written, its handle still open on the server",
    "send.after_part_upload": "NAME.part uploaded and verified on the server, not renamed",
    "send.after_rename": "file renamed on the server (the post office has it), not recorded sent",
    "send.after_record": "file recorded sent in the ledger, the next file not uploaded",
    "inbound.after_download": "an inbound file downloaded, nothing of it applied or registered",
    "ack.mid_apply": "ACK: the PRLV file's new state written, its instructions not (transaction open)",
    "ack.before_commit": "ACK applied and registered inside the transaction, not committed",
    "ack.after_commit": "ACK committed, the next inbound file not downloaded",
    "mndt.before_commit": "MNDT actions applied and registered inside the transaction, not committed",
    "mndt.after_commit": "MNDT committed, the next inbound file not downloaded",
    "retr.mid_apply": "RETR: instructions settled/rejected inside the transaction, items not yet paid",
    "retr.before_commit": "RETR applied and registered inside the transaction, not committed",
    "retr.after_commit": "RETR committed, the next inbound file not downloaded",
    "relv.before_commit": "RELV registered inside the transaction, not committed",
    "relv.after_commit": "RELV committed, the next inbound file not downloaded",
    "export.after_part": "status export written as .part, not registered (transaction open)",
    "export.after_commit": "status export registered with its range of changes, .part not renamed",
}

_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die here, at once, if ``EPAY_CRASH_AT`` names this point (and this is the N-th hit, for ``:N``)."""
    if name not in FAULT_POINTS:
        raise KeyError(f"unregistered fault point {name!r}: add it to epay.faults.FAULT_POINTS")
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
