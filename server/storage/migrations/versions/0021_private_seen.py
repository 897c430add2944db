"""Per-user \\Seen on folders of other stores (shared and public folders).

Revision ID: 0021
Revises: 0020
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "private_seen",
        sa.Column("user_id", id_type, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("folder_id", id_type, sa.ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("uids", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    op.create_index("ix_private_seen_folder", "private_seen", ["folder_id"])


def downgrade() -> None:
    op.drop_index("ix_private_seen_folder", table_name="private_seen")
    op.drop_table("private_seen")
