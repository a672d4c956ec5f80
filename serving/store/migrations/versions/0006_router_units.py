"""The router's units: the department and company a ticket's classification names, and a reviewer's
correction of them (training data for the department and company heads); the problem ledger's history;
the unit registry's history (renames, merges) and version

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("department_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("company_id", sa.String(64), nullable=True))
    with op.batch_alter_table("corrections") as batch:
        batch.add_column(sa.Column("department", sa.String(64), nullable=True))
        batch.add_column(sa.Column("company", sa.String(64), nullable=True))
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("history", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("merged_into", sa.String(64), nullable=True))
        batch.add_column(sa.Column("history", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table("registry_state", sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("version", sa.Integer(), nullable=False), sa.PrimaryKeyConstraint("id"))


def downgrade() -> None:
    op.drop_table("registry_state")
    with op.batch_alter_table("units") as batch:
        batch.drop_column("history")
        batch.drop_column("merged_into")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("history")
    with op.batch_alter_table("corrections") as batch:
        batch.drop_column("company")
        batch.drop_column("department")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("company_id")
        batch.drop_column("department_id")
