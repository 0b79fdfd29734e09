"""The ledger's database: engine per URL (SQLite under the data folder by default, PostgreSQL in
production) and schema migrations to the latest revision before use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


# A worker machine that dies (not only its process) leaves its connection open on the server, with the
# ledger's advisory locks: TCP keepalives let PostgreSQL notice within about a minute and release them,
# so a re-run is not blocked behind a ghost; a transaction left idle is ended after ten minutes.
POSTGRES_CONNECT_ARGS = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "options": "-c idle_in_transaction_session_timeout=600000 -c tcp_keepalives_idle=30 "
    "-c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",  # the server's side of the keepalives
}


def make_engine(url: str) -> Engine:
    """An engine whose transactions really are transactions on SQLite too."""
    if url.startswith("postgresql") and "+" not in url.split(":", 1)[0]:
        url = url.replace("postgresql", "postgresql+psycopg", 1)  # psycopg 3, the one driver we ship
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, connect_args=POSTGRES_CONNECT_ARGS)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # pysqlite defers BEGIN until the first write, so a step's reads would run outside its
    # transaction; SQLAlchemy's documented recipe: let SQLAlchemy emit BEGIN itself.
    engine = create_engine(url, connect_args={"isolation_level": None})

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache: memory goes to the frames
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # one writer at a time, decided up front

    return engine


def alembic_config(connection: Connection | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the latest migration (no-op when it is there)."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_ledger(url: str, *, migrate: bool = True) -> Engine:
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return engine


LEDGER_LOCK = (0x45504159, 1)  # "EPAY", 1: the writers of billing items and instructions


def lock_ledger(connection: Connection) -> None:
    """Serialise the ledger's bulk writers (build, billing load, mandates, release) for the rest of the
    transaction, so none of them decides on rows another is changing. SQLite's BEGIN IMMEDIATE already
    admits one writer at a time; PostgreSQL takes a transaction-scoped advisory lock."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s, %s)", LEDGER_LOCK)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction: everything inside commits together or not at all."""
    with engine.begin() as connection:
        yield connection
