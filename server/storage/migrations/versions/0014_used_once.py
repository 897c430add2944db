"""One-time names used (single-use links of the gateways), so that a link works once for
every gateway process and host.

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_once",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("claim", sa.String(32), nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False, index=True),
        mysql_engine="InnoDB", mysql_charset="ascii",
    )


def downgrade() -> None:
    op.drop_table("used_once")
