"""Storage quotas: per-user quota levels, and per-store usage counters filled in from the
items already stored.

Revision ID: 0019
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_USER_LIMITS = ("quota_warn", "quota_soft", "quota_hard", "quota_messages")


def upgrade() -> None:
    for name in _USER_LIMITS:
        op.add_column("users", sa.Column(name, sa.BigInteger, nullable=True))
    op.add_column("stores", sa.Column("used_bytes", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("stores", sa.Column("used_items", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("stores", sa.Column("quota_warned", sa.Boolean, nullable=False, server_default=sa.false()))
    in_store = "FROM items JOIN folders ON folders.id = items.folder_id WHERE folders.store_id = stores.id"
    op.execute(f"UPDATE stores SET used_bytes = (SELECT COALESCE(SUM(items.size), 0) {in_store}), "
               f"used_items = (SELECT COUNT(*) {in_store})")


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would drop the users table, and with
    # it, through ON DELETE CASCADE, every store.
    for name in ("quota_warned", "used_items", "used_bytes"):
        op.execute(f"ALTER TABLE stores DROP COLUMN {name}")
    for name in reversed(_USER_LIMITS):
        op.execute(f"ALTER TABLE users DROP COLUMN {name}")
