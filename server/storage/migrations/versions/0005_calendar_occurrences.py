"""Occurrence index of recurring calendar objects: one row per occurrence, and how far
each object is indexed.

Objects stored before this revision keep occurrencesUntil NULL and are expanded when
queried, as before.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("items", sa.Column("occurrencesUntil", sa.BigInteger, nullable=True))
    op.create_table(
        "occurrences",
        sa.Column("folder_id", Id, primary_key=True),
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("end", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(["folder_id", "uid"], ["items.folder_id", "items.uid"], ondelete="CASCADE"),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    op.create_index("ix_occurrences_folder_start", "occurrences", ["folder_id", "start"])


def downgrade() -> None:
    op.drop_index("ix_occurrences_folder_start", "occurrences")
    op.drop_table("occurrences")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("occurrencesUntil")
