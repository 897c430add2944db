"""Calendars published read-only at a secret URL.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("folders", sa.Column("publish_token", sa.String(64), nullable=True))
    op.create_index("ux_folders_publish_token", "folders", ["publish_token"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_folders_publish_token", "folders")
    with op.batch_alter_table("folders") as batch:
        batch.drop_column("publish_token")
