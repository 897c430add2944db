"""An index covering the per-folder listing of uid, modseq and flags.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_folder_listing", "items", ["folder_id", "uid", "modseq", "flags"])


def downgrade() -> None:
    op.drop_index("ix_items_folder_listing", "items")
