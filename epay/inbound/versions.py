"""What epay remembers of each version of a file in AP's ``outbound/`` folder (table ``inbound_version``).

A name is read once; afterwards its listed size and time are compared every night, and its bytes now and
then (``Settings.inbound_recheck_files`` a night, the longest unchecked first). A version is its sha256:
the same bytes again are a re-delivery, other bytes an incident or (for a name never applied) a file to
judge afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, insert, select, update

from epay.ledger.bulk import now_utc
from epay.ledger.db import transaction
from epay.ledger.models import ExchangeFile, InboundVersion

APPLIED, REPEAT, QUARANTINED, INCIDENT = "applied", "repeat", "quarantined", "incident"
EARLY = "early"  # quarantined for a date after today by epay's clock: judged again once the clock reaches it


@dataclass(frozen=True)
class Version:
    name: str
    sha256: str
    size: int
    mtime: datetime | None
    outcome: str
    checked_at: datetime


@dataclass(frozen=True)
class Memory:
    """Everything known about the names of ``outbound/``, read once per fetch."""

    latest: dict[str, Version]  # the version last seen under each name
    outcomes: dict[tuple[str, str], str]  # (name, sha256) -> outcome, every version ever seen
    applied: dict[str, str]  # name -> sha256 of the version applied (exchange_file)


def remember(engine: Engine) -> Memory:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                InboundVersion.name,
                InboundVersion.sha256,
                InboundVersion.size,
                InboundVersion.mtime,
                InboundVersion.outcome,
                InboundVersion.checked_at,
            ).order_by(InboundVersion.checked_at, InboundVersion.id)
        ).all()
        applied = dict(
            connection.execute(
                select(ExchangeFile.name, ExchangeFile.sha256).where(ExchangeFile.direction == "in")
            ).all()
        )
    latest: dict[str, Version] = {}
    outcomes: dict[tuple[str, str], str] = {}
    for row in rows:  # in check order: the last one per name is the version seen last
        version = Version(*row)
        latest[version.name] = version
        outcomes[(version.name, version.sha256)] = version.outcome
    return Memory(latest, outcomes, applied)


def record(
    engine: Engine,
    *,
    name: str,
    sha256: str,
    size: int,
    mtime: datetime | None,
    outcome: str,
    business_date: date,
) -> None:
    """Remember this version (or that it was checked again now)."""
    now = now_utc()
    with transaction(engine) as connection:
        known = connection.execute(
            select(InboundVersion.id).where(InboundVersion.name == name, InboundVersion.sha256 == sha256)
        ).scalar_one_or_none()
        if known is None:
            connection.execute(
                insert(InboundVersion).values(
                    name=name,
                    sha256=sha256,
                    size=size,
                    mtime=mtime,
                    outcome=outcome,
                    business_date=business_date,
                    first_seen_at=now,
                    checked_at=now,
                )
            )
        else:
            connection.execute(
                update(InboundVersion)
                .where(InboundVersion.id == known)
                .values(size=size, mtime=mtime, checked_at=now)
            )
