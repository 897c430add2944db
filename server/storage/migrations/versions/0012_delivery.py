"""Mail delivery: Sieve scripts, vacation reply records, delivered Message-IDs, and the
`sieve` feature switch (on for every user, as the other protocols start).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("users", sa.Column("feature_sieve", sa.Boolean, nullable=False, server_default=sa.true()))
    op.create_table(
        "sieve_scripts",
        sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(128).with_variant(
            mysql.VARCHAR(128, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"),
            primary_key=True),
        sa.Column("script", sa.Text().with_variant(
            mysql.MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        **_TABLE,
    )
    for name, column in (("vacation_replies", "sent_at"), ("delivered_message_ids", "delivered_at")):
        op.create_table(
            name,
            sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("digest", sa.String(64), primary_key=True),
            sa.Column(column, sa.BigInteger, nullable=False),
            **_TABLE,
        )


def downgrade() -> None:
    op.drop_table("delivered_message_ids")
    op.drop_table("vacation_replies")
    op.drop_table("sieve_scripts")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("feature_sieve")
