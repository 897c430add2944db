"""Initial schema: users, stores, folders, items, tombstones, permissions, blobs.

Revision ID: 0001
Revises:
"""
import time

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Chunk = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
AUTO = {**TABLE, "sqlite_autoincrement": True}


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        **TABLE,
    )
    op.create_table(
        "users",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("fullname", sa.String(255), nullable=False),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("feature_imap", sa.Boolean, nullable=False),
        sa.Column("feature_pop3", sa.Boolean, nullable=False),
        sa.Column("feature_caldav", sa.Boolean, nullable=False),
        sa.Column("external_id", sa.String(255), nullable=True),
        **AUTO,
    )
    stores = op.create_table(
        "stores",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("owner_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=True, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        **AUTO,
    )
    op.create_table(
        "folders",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("store_id", Id, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("parent_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE"), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("container_class", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uidnext", sa.BigInteger, nullable=False),
        sa.Column("highestmodseq", sa.BigInteger, nullable=False),
        sa.Column("tombstone_floor", sa.BigInteger, nullable=False),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("color", sa.String(32), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        **AUTO,
    )
    op.create_index("ix_folders_store_parent", "folders", ["store_id", "parent_id"])
    op.create_table(
        "items",
        sa.Column("folder_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("modseq", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("keywords", sa.Text, nullable=False),
        sa.Column("internalDate", sa.BigInteger, nullable=False),
        sa.Column("dtstart", sa.BigInteger, nullable=True),
        sa.Column("dtend", sa.BigInteger, nullable=True),
        sa.Column("recurring", sa.Integer, nullable=False),
        sa.Column("itemClass", sa.String(32), nullable=False),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("from", sa.Text, nullable=True),
        sa.Column("to", sa.Text, nullable=True),
        sa.Column("cc", sa.Text, nullable=True),
        sa.Column("messageId", sa.Text, nullable=True),
        sa.Column("inReplyTo", sa.Text, nullable=True),
        sa.Column("date", sa.Text, nullable=True),
        sa.Column("envelope", sa.Text, nullable=True),
        sa.Column("bodystructure", sa.Text, nullable=True),
        sa.Column("icalUid", sa.String(512), nullable=True),
        sa.Column("name", sa.String(512), nullable=True),
        sa.Column("etag", sa.String(128), nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("blob_key", sa.String(128), nullable=False),
        **TABLE,
    )
    op.create_index("ix_items_folder_modseq", "items", ["folder_id", "modseq"])
    op.create_index("ix_items_folder_name", "items", ["folder_id", "name"])
    op.create_index("ix_items_folder_icaluid", "items", ["folder_id", "icalUid"])
    op.create_index("ix_items_blob_key", "items", ["blob_key"])
    op.create_table(
        "tombstones",
        sa.Column("folder_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("modseq", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=False),
        **TABLE,
    )
    op.create_index("ix_tombstones_folder_modseq", "tombstones", ["folder_id", "modseq"])
    op.create_table(
        "permissions",
        sa.Column("folder_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rights", sa.String(8), nullable=False),
        **TABLE,
    )
    op.create_index("ix_permissions_user", "permissions", ["user_id"])
    op.create_table(
        "blobs",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("data", Chunk, nullable=False),
        **TABLE,
    )
    # UIDVALIDITY source: starts at the clock so a rebuilt store never repeats
    # values an IMAP client may have cached.
    op.bulk_insert(meta, [{"name": "uidvalidity", "value": int(time.time())}])
    op.bulk_insert(stores, [{"owner_id": None, "kind": "public"}])


def downgrade() -> None:
    for table in ("blobs", "permissions", "tombstones", "items", "folders", "stores", "users", "meta"):
        op.drop_table(table)
