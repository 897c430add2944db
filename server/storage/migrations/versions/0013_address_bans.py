"""Bans of the store's brute-force guard, so that they hold across restarts and for
every store instance.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "address_bans",
        sa.Column("address", sa.String(255), primary_key=True),
        sa.Column("banned_until", sa.BigInteger, nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("address_bans")
