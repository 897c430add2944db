"""Tombstones keep the resource name of a deleted calendar object, for CalDAV sync.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tombstones", sa.Column("name", sa.String(512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tombstones") as batch:
        batch.drop_column("name")
