"""Staged whole-calendar imports in the database, so that every call of one may reach a
different store process or instance.

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ImportText = sa.Text().with_variant(mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "calendar_imports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("folder_id", Id, nullable=False),
        sa.Column("session", sa.String(64), nullable=False),
        sa.Column("objects", sa.Integer, nullable=False),
        sa.Column("touched", sa.BigInteger, nullable=False),
        **_TABLE,
    )
    op.create_index("ix_calendar_imports_user", "calendar_imports", ["user_id"])
    op.create_index("ix_calendar_imports_session", "calendar_imports", ["session"])
    op.create_index("ix_calendar_imports_touched", "calendar_imports", ["touched"])
    op.create_table(
        "calendar_import_objects",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("import_id", sa.String(32), nullable=False),
        sa.Column("name", ImportText, nullable=False),
        sa.Column("blob_key", sa.String(128), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("columns", ImportText, nullable=True),
        sa.Column("if_match", ImportText, nullable=True),
        sqlite_autoincrement=True,
        **_TABLE,
    )
    op.create_index("ix_calendar_import_objects_import", "calendar_import_objects", ["import_id"])
    op.create_index("ix_calendar_import_objects_blob", "calendar_import_objects", ["blob_key"])


def downgrade() -> None:
    op.drop_table("calendar_import_objects")
    op.drop_table("calendar_imports")
