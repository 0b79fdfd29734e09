"""Re-write a registered PRLV file from the ledger alone: the same bytes, or an incident."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from sqlalchemy import Engine, select

from epay.ledger.models import ExchangeFile
from epay.settings import Settings


def rewrite_file(engine: Engine, settings: Settings, name: str, final: Path, sha256: str) -> None:
    from epay.formats import write_file
    from epay.outbound.build import (
        FileIncidentError,
        _header,
        _prlv_table,
        instruction_rows,
        reveal,
        sha256_of,
    )

    with engine.connect() as connection:
        file = (
            connection.execute(
                select(ExchangeFile.__table__).where(
                    ExchangeFile.direction == "out", ExchangeFile.name == name
                )
            )
            .mappings()
            .one()
        )
        rows = instruction_rows(connection, "file_id = ? ORDER BY line", (file["id"],))
    staging = final.parent / ".staging" / f"rewrite-{os.getpid()}-{uuid.uuid4().hex[:8]}" / name
    staging.parent.mkdir(parents=True, exist_ok=True)
    header = _header(settings, file["business_date"], file["settlement_date"], file["sequence"])
    # no re-validation against today's holiday list (it may have been corrected since): the bytes
    # must simply be those registered, which were validated when the file was built
    write_file(staging, "PRLV", header, _prlv_table(rows), validate=False, name=name)
    if sha256_of(staging) != sha256:
        staging.unlink()
        raise FileIncidentError(f"{name} re-written from the ledger does not hash as registered ({sha256})")
    reveal(staging, final)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()
        staging.parent.parent.rmdir()
