"""audit_event (file_id): the finance views find the instructions of a file AP never processed (rejected at
ACK, expired, held) without reading the whole audit trail

Revision ID: 0006
Revises: 0007
Create Date: 2026-12-08 00:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0007"  # the head when this was written (0007 was committed before it)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_file", ["file_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_file")
