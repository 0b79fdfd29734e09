"""The post office's own database (separate from the operator's ledger): accounts, mandates, files
received and published, used references, instructions and the transactions it made."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    create_engine,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


class PosteBase(DeclarativeBase):
    pass


class Creditor(PosteBase):
    """A creditor with an SFTP account at the post office (Algérie Télécom)."""

    __tablename__ = "creditor"
    creditor_id: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    rip: Mapped[str] = mapped_column(String(20), unique=True)
    account: Mapped[int] = mapped_column(BigInteger, ForeignKey("account.number"))


class Account(PosteBase):
    """A CCP account. Amounts in centimes."""

    __tablename__ = "account"
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the 10-digit CCP account number
    rip: Mapped[str] = mapped_column(String(20), unique=True)
    holder: Mapped[str] = mapped_column(String(60))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | closed | blocked
    deceased: Mapped[bool] = mapped_column(Boolean, default=False)


class Mandate(PosteBase):
    """A mandate registered at a counter; the latest action wins (spec §6)."""

    __tablename__ = "mandate"
    reference: Mapped[str] = mapped_column(String(20), primary_key=True)
    creditor_id: Mapped[str] = mapped_column(String(6), index=True)
    rip: Mapped[str] = mapped_column(String(20))
    debtor_name: Mapped[str] = mapped_column(String(30))
    subscriber_number: Mapped[str] = mapped_column(String(14))
    ceiling: Mapped[int] = mapped_column(BigInteger, default=0)  # 0: none
    effective_date: Mapped[date] = mapped_column(Date)
    revoked_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class MandateEvent(PosteBase):
    """An action at a counter, to be reported in the next MNDT file."""

    __tablename__ = "mandate_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(20), index=True)
    creditor_id: Mapped[str] = mapped_column(String(6), index=True)
    action: Mapped[str] = mapped_column(String(1))  # N | M | R
    day: Mapped[date] = mapped_column(Date, index=True)
    # What the MNDT record says, as of this event (the mandate row only keeps the latest state).
    rip: Mapped[str] = mapped_column(String(20))
    debtor_name: Mapped[str] = mapped_column(String(30))
    subscriber_number: Mapped[str] = mapped_column(String(14))
    ceiling: Mapped[int] = mapped_column(BigInteger)
    effective_date: Mapped[date] = mapped_column(Date)
    published_in: Mapped[str | None] = mapped_column(String(40), nullable=True)


class ReceivedFile(PosteBase):
    """A PRLV file found in a creditor's inbound/ and acknowledged."""

    __tablename__ = "received_file"
    creditor_id: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(4))  # ACCP | RJCT
    reason: Mapped[str | None] = mapped_column(String(4), nullable=True)
    faulty_line: Mapped[int] = mapped_column(Integer, default=0)
    batch_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    settlement_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    ack_name: Mapped[str] = mapped_column(String(44))


class UsedReference(PosteBase):
    """An end-to-end reference carried by an accepted file (spec §3): used for ever."""

    __tablename__ = "used_reference"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - one B-tree, not two
    creditor_id: Mapped[str] = mapped_column(String(6), primary_key=True)
    reference: Mapped[str] = mapped_column(String(24), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(40))


class Instruction(PosteBase):
    """One instruction of an accepted file, waiting for or holding its final status."""

    __tablename__ = "instruction"
    # Registered once per file: the ReceivedFile row, inserted in the same transaction, guarantees it
    # (and a file's references are unique, spec §4), so no costly unique index on text columns here.
    __table_args__ = (
        Index("instruction_due", "creditor_id", "status", "execute_on"),
        # statuses not yet reported in a RETR: a small set, whatever the history
        Index(
            "instruction_unreported",
            "creditor_id",
            "status_date",
            sqlite_where=text("retr_name IS NULL AND status <> 'pending'"),
            postgresql_where=text("retr_name IS NULL AND status <> 'pending'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    creditor_id: Mapped[str] = mapped_column(String(6))
    file_name: Mapped[str] = mapped_column(String(40))
    line: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(24))
    rip: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    mandate_reference: Mapped[str] = mapped_column(String(20))
    settlement_date: Mapped[date] = mapped_column(Date)
    execute_on: Mapped[date] = mapped_column(Date)  # settlement date, or 1–2 business days later
    reference_reused: Mapped[bool] = mapped_column(Boolean, default=False)  # AM05, known at acceptance
    status: Mapped[str] = mapped_column(String(7), default="pending")  # pending | ACSC | RJCT
    reason: Mapped[str | None] = mapped_column(String(4), nullable=True)
    status_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(20), nullable=True, unique=True)
    retr_name: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Transfer(PosteBase):
    """Money moved: a debit of a CCP and the matching credit of the creditor, one row."""

    __tablename__ = "transfer"
    transaction_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    debit_account: Mapped[int] = mapped_column(BigInteger)
    credit_account: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    creditor_id: Mapped[str] = mapped_column(String(6), index=True)
    reference: Mapped[str] = mapped_column(String(24))


class PublishedFile(PosteBase):
    """A file the post office put in a creditor's outbound/."""

    __tablename__ = "published_file"
    creditor_id: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(44), primary_key=True)
    kind: Mapped[str] = mapped_column(String(4))
    day: Mapped[date] = mapped_column(Date, index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)


class DayClosed(PosteBase):
    """A business day whose execution and publications are done for a creditor (idempotent ticks)."""

    __tablename__ = "day_closed"
    creditor_id: Mapped[str] = mapped_column(String(6), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        engine = create_engine(url)
    else:
        # pysqlite defers BEGIN until the first write, so a step's reads would run outside its
        # transaction; SQLAlchemy's documented recipe: let SQLAlchemy emit BEGIN itself.
        engine = create_engine(url, connect_args={"isolation_level": None})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
            cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB of page cache for million-row days
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection) -> None:  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN")

    PosteBase.metadata.create_all(engine)
    return engine


def make_sessions(url: str) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(make_engine(url), expire_on_commit=False)
