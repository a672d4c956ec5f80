"""城市问题台账 (problem ledger)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("place", sa.String(200), nullable=True),
        sa.Column("owner_unit_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("ticket_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ledger_entries_owner_unit_id", "ledger_entries", ["owner_unit_id"])
    op.create_index("ix_ledger_entries_status", "ledger_entries", ["status"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_status", "ledger_entries")
    op.drop_index("ix_ledger_entries_owner_unit_id", "ledger_entries")
    op.drop_table("ledger_entries")
