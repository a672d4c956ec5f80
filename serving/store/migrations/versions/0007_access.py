"""Least privilege: who received a ticket (the intake key reads only its own), and API keys that expire,
carry a label and keep no piece of the secret (the prefix column goes; a key is named by its id)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("received_by", sa.String(64), nullable=True))
        batch.create_index("ix_tickets_received_by", ["received_by"])
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_prefix")
        batch.drop_column("prefix")
        batch.add_column(sa.Column("label", sa.String(100), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    # the receiving key of earlier tickets, from their ``received`` event
    op.execute("UPDATE tickets SET received_by = (SELECT actor FROM events WHERE events.ticket_id = tickets.id "
               "AND events.kind = 'received' ORDER BY events.id LIMIT 1)")


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
        batch.drop_column("label")
        batch.add_column(sa.Column("prefix", sa.String(16), nullable=False, server_default=""))
        batch.create_index("ix_api_keys_prefix", ["prefix"])
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_received_by")
        batch.drop_column("received_by")
