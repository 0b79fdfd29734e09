"""inbound_version: every version of a file read from AP's outbound folder; an index on the AP transaction
id (a RETR's transaction ids are checked against those already recorded)

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-08 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_version",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=44), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_version")),
        sa.UniqueConstraint("name", "sha256", name=op.f("uq_inbound_version_name_sha256")),
    )
    op.create_index(op.f("ix_inbound_version_name"), "inbound_version", ["name"], unique=False)
    op.create_index(op.f("ix_instruction_transaction_id"), "instruction", ["transaction_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_instruction_transaction_id"), table_name="instruction")
    op.drop_index(op.f("ix_inbound_version_name"), table_name="inbound_version")
    op.drop_table("inbound_version")
