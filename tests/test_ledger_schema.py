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
