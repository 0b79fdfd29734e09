"""status_export: each status export to billing with the range of audit events it reported

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_export",
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("after_event_id", sa.BigInteger(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("business_date", name=op.f("pk_status_export")),
    )


def downgrade() -> None:
    op.drop_table("status_export")
