"""group appeals (群体性诉求) and repeats

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appeal_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("place_id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_appeal_groups_place_id", "appeal_groups", ["place_id"])
    op.create_index("ix_appeal_groups_last_at", "appeal_groups", ["last_at"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch.create_index("ix_tickets_group_id", ["group_id"])
        batch.create_index("ix_tickets_duplicate_of", ["duplicate_of"])
        batch.create_foreign_key("fk_tickets_group_id", "appeal_groups", ["group_id"], ["id"])
        batch.create_foreign_key("fk_tickets_duplicate_of", "tickets", ["duplicate_of"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_duplicate_of", type_="foreignkey")
        batch.drop_constraint("fk_tickets_group_id", type_="foreignkey")
        batch.drop_index("ix_tickets_duplicate_of")
        batch.drop_index("ix_tickets_group_id")
        batch.drop_column("duplicate_of")
        batch.drop_column("group_id")
    op.drop_index("ix_appeal_groups_last_at", "appeal_groups")
    op.drop_index("ix_appeal_groups_place_id", "appeal_groups")
    op.drop_table("appeal_groups")
