"""The ledger's schema comes from the migrations, and the models describe exactly that schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from epay.ledger.db import current_revision, upgrade
from epay.ledger.models import LedgerBase


def test_migrations_produce_exactly_the_models(ledger_engine: Engine) -> None:
    with ledger_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, LedgerBase.metadata)
    assert differences == []


def test_upgrade_again_is_a_no_op(ledger_engine: Engine) -> None:
    before = current_revision(ledger_engine)
    tables = set(inspect(ledger_engine).get_table_names())
    upgrade(ledger_engine)
    assert current_revision(ledger_engine) == before is not None
    assert set(inspect(ledger_engine).get_table_names()) == tables
    assert {"instruction", "exchange_file", "audit_event", "billing_item", "mandate"} <= tables


def test_a_dead_worker_cannot_hold_the_ledger_locks_for_long(ledger_engine: Engine) -> None:
    """On PostgreSQL each ledger session asks the server to probe its client (TCP keepalives) and to end
    a transaction left idle, so the advisory locks of a machine that died are released."""
    if ledger_engine.dialect.name != "postgresql":
        assert ledger_engine.dialect.name == "sqlite"  # a local file: the kernel releases its locks
        return
    with ledger_engine.connect() as c:
        shown = {
            name: c.exec_driver_sql(f"SHOW {name}").scalar()
            for name in ("idle_in_transaction_session_timeout", "tcp_keepalives_idle", "tcp_keepalives_count")
        }
    assert shown == {
        "idle_in_transaction_session_timeout": "10min",
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_count": "3",
    }
