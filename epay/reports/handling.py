"""Closing what the exceptions list and the refunds list show: an exception marked handled by a data
engineer, a refund owed marked refunded by finance — who, why, when — kept in the ledger
(``exception_handling``, one row per reference, never changed) with an audit event in the same
transaction. The lists then show what is still open apart from what was handled.

A reference is recorded once: handling it again is refused (the first handling stands), as are an
unknown reference and an empty name or note (``HandlingError``: the command's exit status 2)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from epay.ledger import audit
from epay.ledger.bulk import now_utc, stored_utc
from epay.ledger.db import transaction
from epay.ledger.models import ExceptionHandling

ACTIONS = ("handled", "refunded")
MAX_BY, MAX_NOTE, MAX_TRANSFER = 64, 500, 40


class HandlingError(ValueError):
    """A handling refused: unknown reference, already handled, or an empty name or note."""


@dataclass(frozen=True)
class Handling:
    reference: str
    category: str
    action: str  # handled | refunded
    business_date: date
    handled_by: str
    note: str
    transfer_reference: str | None
    handled_at: datetime  # UTC

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "by": self.handled_by,
            "note": self.note,
            "at": self.handled_at.isoformat(),
            "business_date": self.business_date.isoformat(),
            "transfer_reference": self.transfer_reference,
        }

    def summary(self) -> str:
        transfer = f", transfer {self.transfer_reference}" if self.transfer_reference else ""
        return (
            f"{self.action} by {self.handled_by} on {self.handled_at.astimezone(_algiers()):%Y-%m-%d %H:%M} "
            f"(list of {self.business_date}){transfer}: {self.note}"
        )


def _algiers() -> Any:
    from epay.clock import ALGIERS

    return ALGIERS


def handlings(engine: Engine, references: Iterable[str] | None = None) -> dict[str, Handling]:
    """The handlings recorded, by reference (only those of ``references`` when given)."""
    query = select(ExceptionHandling.__table__)
    if references is not None:
        wanted = sorted(set(references))
        if not wanted:
            return {}
        query = query.where(ExceptionHandling.reference.in_(wanted))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return {
        row.reference: Handling(
            row.reference,
            row.category,
            row.action,
            row.business_date,
            row.handled_by,
            row.note,
            row.transfer_reference,
            stored_utc(row.handled_at),
        )
        for row in rows
    }


def check_text(what: str, value: str, longest: int) -> str:
    """``value`` as given, refused when empty, blank, with a control character or too long."""
    if not value or not value.strip():
        raise HandlingError(f"{what} is empty: say {'who' if what == '--by' else 'why'}")
    if value != value.strip():
        raise HandlingError(f"{what} {value!r} has leading or trailing whitespace")
    if any(not ch.isprintable() for ch in value):
        raise HandlingError(f"{what} {value!r} holds a control character")
    if len(value) > longest:
        raise HandlingError(f"{what} is {len(value)} characters long, at most {longest}")
    return value


def record(
    engine: Engine,
    categories: dict[str, str],
    *,
    action: str,
    business_date: date,
    by: str,
    note: str,
    transfer_reference: str | None = None,
) -> list[Handling]:
    """Record the handling of each reference of ``categories`` (reference → its category), all or none,
    with one audit event each (entity ``exception`` or ``refund``); refused when one was already
    handled."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    check_text("--by", by, MAX_BY)
    check_text("--note", note, MAX_NOTE)
    if transfer_reference is not None:
        check_text("--transfer-reference", transfer_reference, MAX_TRANSFER)
    _refuse_handled(engine, categories)
    at = now_utc()
    done = [
        Handling(reference, category, action, business_date, by, note, transfer_reference, at)
        for reference, category in sorted(categories.items())
    ]
    try:
        with transaction(engine) as connection:
            for handling in done:
                connection.execute(
                    insert(ExceptionHandling).values(
                        reference=handling.reference,
                        category=handling.category,
                        action=handling.action,
                        business_date=handling.business_date,
                        handled_by=handling.handled_by,
                        note=handling.note,
                        transfer_reference=handling.transfer_reference,
                        handled_at=handling.handled_at,
                    )
                )
                audit.record(
                    connection,
                    "refund" if action == "refunded" else "exception",
                    handling.reference,
                    action,
                    from_state="owed" if action == "refunded" else "open",
                    actor=f"epay {'refunds mark' if action == 'refunded' else 'exceptions handle'}",
                    reason=f"{handling.category} {action} by {by}: {note}"[:200],
                    business_date=business_date,
                )
    except IntegrityError:  # handled by someone else meanwhile: the first handling stands
        _refuse_handled(engine, categories)
        raise
    return done


def _refuse_handled(engine: Engine, categories: dict[str, str]) -> None:
    already = handlings(engine, categories)
    if already:
        reference, handling = sorted(already.items())[0]
        raise HandlingError(f"{reference} was already {handling.summary()}")
