"""Alembic environment for the ledger. Run through ``epay db upgrade`` (or any ledger command, which
upgrades first); the URL comes from epay's settings unless the caller passes a connection."""

from __future__ import annotations

from alembic import context

from epay.ledger.models import LedgerBase

config = context.config
target_metadata = LedgerBase.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from epay.ledger.db import make_engine
        from epay.settings import get_settings

        engine = make_engine(config.get_main_option("sqlalchemy.url") or get_settings().ledger_url)
        with engine.connect() as fresh:
            _run(fresh)
        engine.dispose()
    else:
        _run(connection)


def _run(connection):  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `epay db upgrade`")
run_migrations_online()
