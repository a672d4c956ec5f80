"""ticket slices for analytics: category levels, acceptance and callback outcome (derived from events)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("category_l1", sa.String(100), nullable=True))
        batch.add_column(sa.Column("category_l2", sa.String(200), nullable=True))
        batch.add_column(sa.Column("category_l3", sa.String(300), nullable=True))
        batch.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolved", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("satisfaction", sa.String(24), nullable=True))
        batch.create_index("ix_tickets_category_l1", ["category_l1"])
    backfill(op.get_bind())


def backfill(connection) -> None:
    """Fill the new columns of existing tickets from their category and their events."""
    tickets = connection.execute(sa.text("SELECT id, category, primary_unit_id FROM tickets")).fetchall()
    for ticket_id, category, primary in tickets:
        parts = category.split("/")
        levels = ["/".join(parts[:n]) if len(parts) >= n else None for n in (1, 2, 3)]
        accepted_at, resolved, satisfaction = None, None, None
        events = connection.execute(sa.text(
            "SELECT kind, unit_id, at, payload FROM events WHERE ticket_id = :t ORDER BY id"), {"t": ticket_id})
        import json

        for kind, unit_id, at, payload in events:
            payload = json.loads(payload) if isinstance(payload, str) else (payload or {})
            if kind in ("dispatched", "assigned", "reopened", "returned"):
                accepted_at = None
            elif kind == "accepted" and unit_id == primary and accepted_at is None:
                accepted_at = at
            elif kind == "evaluated":
                resolved, satisfaction = bool(payload.get("resolved")), payload.get("satisfaction")
        connection.execute(sa.text(
            "UPDATE tickets SET category_l1 = :l1, category_l2 = :l2, category_l3 = :l3, accepted_at = :a, "
            "resolved = :r, satisfaction = :s WHERE id = :t"),
            {"l1": levels[0], "l2": levels[1], "l3": levels[2], "a": accepted_at, "r": resolved, "s": satisfaction,
             "t": ticket_id})


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_category_l1")
        for column in ("satisfaction", "resolved", "accepted_at", "category_l3", "category_l2", "category_l1"):
            batch.drop_column(column)
