"""The operator's ledger: what AT knows, decided and exchanged. Amounts in centimes, dates are business
dates (Africa/Algiers), timestamps are UTC.

The schema is owned by the Alembic migrations in ``migrations/``; these models must stay equal to the
migrations' result (a test compares them).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class LedgerBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Subscriber(LedgerBase):
    """An AT customer account, as the billing system knows it."""

    __tablename__ = "subscriber"
    number: Mapped[str] = mapped_column(String(14), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))  # UTF-8 as in billing; normalised only when written
    extract_id: Mapped[str] = mapped_column(String(40))  # the last extract that set it


class Mandate(LedgerBase):
    """A debit authorisation, as Algérie Poste reported it (MNDT), plus AT's own stop decisions."""

    __tablename__ = "mandate"
    reference: Mapped[str] = mapped_column(String(20), primary_key=True)
    subscriber_number: Mapped[str] = mapped_column(String(14), index=True)
    rip: Mapped[str] = mapped_column(String(20))
    debtor_name: Mapped[str] = mapped_column(String(30))
    ceiling: Mapped[int] = mapped_column(BigInteger, default=0)  # per debit, 0: none
    effective_date: Mapped[date] = mapped_column(Date)
    revoked_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    # active | suspended (AC04/AC06/MD07) | blocked (AC01/MD01, until a new MNDT action)
    status: Mapped[str] = mapped_column(String(10), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(4), nullable=True)
    # business date of the last MNDT action applied: a return dated before it cannot undo it
    last_action_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BillingItem(LedgerBase):
    """Something a subscriber owes: a phone invoice (FA) or an ADSL recharge order (RA).

    ``state``: pending (order not confirmed) | due | in_collection | paid | stopped | cancelled.
    ``tries`` counts presentations; ``last_reason``/``last_reason_on`` the latest reject, which the
    selection reads to decide when (and whether) an AM04/MS03 reject comes back.
    """

    __tablename__ = "billing_item"
    # No index on state: the nightly selection reads most rows anyway (a scan beats an index there), and
    # on PostgreSQL an unindexed state plus half-empty pages lets the nightly million-row state change
    # be HOT updates, without touching any index (measured: 5 s instead of 26 s for 1M rows).
    __table_args__ = (UniqueConstraint("kind", "number"), {"postgresql_with": {"fillfactor": 50}})
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(2))  # FA | RA, the PRLV operation code
    number: Mapped[str] = mapped_column(String(20))
    subscriber_number: Mapped[str] = mapped_column(String(14), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    issued_on: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(14))
    paid_by: Mapped[str | None] = mapped_column(String(8), nullable=True)  # DEBIT | COUNTER | CARD
    paid_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    last_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_reason_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    extract_id: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Batch(LedgerBase):
    """What one build decided to debit for a business date. ``state``: held (above the day's ceilings,
    waiting for a data engineer) | released."""

    __tablename__ = "batch"
    __table_args__ = (UniqueConstraint("business_date", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    business_date: Mapped[date] = mapped_column(Date)
    number: Mapped[int] = mapped_column(Integer)
    settlement_date: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(10))
    instruction_count: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    held_count: Mapped[int] = mapped_column(Integer, default=0)  # rows held back by rules or the gate
    hold_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ExchangeFile(LedgerBase):
    """A file exchanged with Algérie Poste, identified by name and sha256.

    outbound: held | built | sent | accepted | rejected; inbound: received | applied | quarantined.
    """

    __tablename__ = "exchange_file"
    __table_args__ = (UniqueConstraint("direction", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    direction: Mapped[str] = mapped_column(String(3))  # out | in
    name: Mapped[str] = mapped_column(String(44))
    kind: Mapped[str] = mapped_column(String(4))
    business_date: Mapped[date] = mapped_column(Date, index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    settlement_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    path: Mapped[str] = mapped_column(String(400))  # relative to the data folder
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    detail_count: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(4), nullable=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batch.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Instruction(LedgerBase):
    """One presentation of one billing item: one end-to-end reference.

    ``state``: built | sent | presented | settled | rejected, or held (its file was rejected FF01, AG01,
    AM10 or DU01: waiting for a data engineer) and cancelled (its held batch was cancelled). A file-level
    rejection sends it back (file_id cleared, same reference, DT01 at once, the others after release); a
    retry after AM04/MS03 is a new instruction (try + 1).
    """

    __tablename__ = "instruction"
    __table_args__ = (
        Index("ix_instruction_item_state", "item_id", "state"),
        # at most one live presentation per item, whatever any code path does
        Index(
            "uq_instruction_live_item",
            "item_id",
            unique=True,
            sqlite_where=text("state IN ('built', 'held', 'sent', 'presented')"),
            postgresql_where=text("state IN ('built', 'held', 'sent', 'presented')"),
        ),
        Index(
            "ix_instruction_unfiled",
            "business_date",
            sqlite_where=text("file_id IS NULL"),
            postgresql_where=text("file_id IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("billing_item.id"))
    try_number: Mapped[int] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(String(2))
    amount: Mapped[int] = mapped_column(BigInteger)
    mandate_reference: Mapped[str] = mapped_column(String(20))
    rip: Mapped[str] = mapped_column(String(20))
    debtor_name: Mapped[str] = mapped_column(String(30))  # normalised, as written in the file
    item_number: Mapped[str] = mapped_column(String(20))
    due_date: Mapped[date] = mapped_column(Date)
    business_date: Mapped[date] = mapped_column(Date)
    settlement_date: Mapped[date] = mapped_column(Date)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_file.id"), nullable=True, index=True)
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)  # record number in its file
    state: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(4), nullable=True)
    status_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(  # AP's, with the status
        String(20), nullable=True, index=True
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReturnException(LedgerBase):
    """A returned record that does not match what was sent, kept for investigation; never applied."""

    __tablename__ = "return_exception"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("exchange_file.id"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(24), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str] = mapped_column(String(200))
    business_date: Mapped[date] = mapped_column(Date, index=True)


class InboundVersion(LedgerBase):
    """One version (name, bytes) of a file seen in AP's ``outbound/`` folder, and what became of it.

    ``outcome``: applied (registered in exchange_file) | repeat (the same bytes again) | quarantined (never
    applied) | incident (the name was already applied with other bytes). Size and mtime are the listing's:
    an unchanged pair is not downloaded again, except for the nightly sample of hash re-checks."""

    __tablename__ = "inbound_version"
    __table_args__ = (UniqueConstraint("name", "sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(44), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(String(12))
    business_date: Mapped[date] = mapped_column(Date)  # the night that first read it
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Exclusion(LedgerBase):
    """Something due on a business date that the build did not send, and why (for finance and for
    correcting data): no_mandate, mandate_revoked, mandate_not_yet_effective, mandate_suspended,
    mandate_blocked, above_ceiling, name_to_correct, rip_invalid, tries_exhausted, retry_later."""

    __tablename__ = "exclusion"
    __table_args__ = (UniqueConstraint("business_date", "item_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("billing_item.id"))
    reason: Mapped[str] = mapped_column(String(28))
    detail: Mapped[str | None] = mapped_column(String(120), nullable=True)


class BillingExtract(LedgerBase):
    """A billing extract loaded into the ledger: loaded once per id, refused with other bytes."""

    __tablename__ = "billing_extract"
    extract_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    extract_date: Mapped[date] = mapped_column(Date)
    sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    rejected_count: Mapped[int] = mapped_column(Integer)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StatusExport(LedgerBase):
    """One status export to billing: the items changed by the audit events after ``after_event_id`` up
    to ``last_event_id``, so each change is reported once, whenever in the day it was applied."""

    __tablename__ = "status_export"
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    after_event_id: Mapped[int] = mapped_column(BigInteger)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExceptionHandling(LedgerBase):
    """An exception of the daily list that a person marked handled (``action`` handled), or a refund owed
    that finance marked refunded (``action`` refunded): who, why, when, and the list's business date.
    One row per exception reference, never changed: handling is recorded once."""

    __tablename__ = "exception_handling"
    reference: Mapped[str] = mapped_column(String(40), primary_key=True)  # QF-…, RX-…, RF-…
    category: Mapped[str] = mapped_column(String(24))  # the list's category (refunds_owed for a refund)
    action: Mapped[str] = mapped_column(String(10))  # handled | refunded
    business_date: Mapped[date] = mapped_column(Date)
    handled_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    transfer_reference: Mapped[str | None] = mapped_column(String(40), nullable=True)  # a refund's transfer
    handled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExtractRejection(LedgerBase):
    """A billing extract row refused, with its reason (a row can have several)."""

    __tablename__ = "extract_rejection"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    extract_id: Mapped[str] = mapped_column(ForeignKey("billing_extract.extract_id"), index=True)
    row: Mapped[int] = mapped_column(Integer)
    record: Mapped[str | None] = mapped_column(String(12), nullable=True)
    field: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(String(200))


class ExternalPayment(LedgerBase):
    """A payment made elsewhere (counter, card), as the billing extract reported it."""

    __tablename__ = "external_payment"
    __table_args__ = (UniqueConstraint("item_id", "paid_on", "channel"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("billing_item.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    paid_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(8))
    extract_id: Mapped[str] = mapped_column(String(40))
    # while a debit was in flight: the item may end up paid twice (a refund owed, issue #5)
    during_collection: Mapped[bool] = mapped_column(default=False)


class AuditEvent(LedgerBase):
    """Append-only trail of every state change: instruction, file, item, batch, mandate."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_entity", "entity", "entity_key"),
        Index("ix_audit_event_file", "file_id"),  # the finance views: a failed file's instructions
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    entity: Mapped[str] = mapped_column(String(12))  # instruction | file | item | batch | mandate
    entity_key: Mapped[str] = mapped_column(String(44))  # reference, file name, kind:number, ...
    from_state: Mapped[str | None] = mapped_column(String(14), nullable=True)
    to_state: Mapped[str] = mapped_column(String(14))
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    actor: Mapped[str] = mapped_column(String(40))  # the step that made the change
    business_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    # the exchange file the change came from (the PRLV built or sent, the PRLV an ACK answered, the RETR);
    # its id, not its name: a million events per night stay small
    file_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
