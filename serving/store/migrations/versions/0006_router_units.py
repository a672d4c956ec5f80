"""The router's units: the department and company a ticket's classification names, and a reviewer's
correction of them (training data for the department and company heads)

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


def downgrade() -> None:
    with op.batch_alter_table("corrections") as batch:
        batch.drop_column("company")
        batch.drop_column("department")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("company_id")
        batch.drop_column("department_id")
