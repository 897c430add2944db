"""Folder rights as RFC 4314 ACLs granted to users, groups or anyone; groups of the db
user backend.

The old per-user grants become ACL entries: read -> "lrs", write -> "lrswipkxte",
owner -> "lrswipkxtea". The old permissions table goes.

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
AUTO = {**TABLE, "sqlite_autoincrement": True}
LETTERS = {"read": "lrs", "write": "lrswipkxte", "owner": "lrswipkxtea"}


def upgrade() -> None:
    op.create_table(
        "folder_acl",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("folder_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
        sa.Column("group_name", sa.String(255), nullable=True),
        sa.Column("rights", sa.String(16), nullable=False),
        **AUTO,
    )
    op.create_index("ix_folder_acl_folder", "folder_acl", ["folder_id"])
    op.create_index("ix_folder_acl_user", "folder_acl", ["user_id"])
    op.create_index("ix_folder_acl_group", "folder_acl", ["group_name"])
    op.create_table(
        "groups",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        **AUTO,
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", Id, sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        **TABLE,
    )
    op.create_index("ix_group_members_user", "group_members", ["user_id"])
    for old, letters in LETTERS.items():
        op.execute(sa.text("INSERT INTO folder_acl (folder_id, user_id, group_name, rights) "
                           "SELECT folder_id, user_id, NULL, :letters FROM permissions WHERE rights = :old"
                           ).bindparams(letters=letters, old=old))
    op.drop_table("permissions")


def downgrade() -> None:
    op.create_table(
        "permissions",
        sa.Column("folder_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rights", sa.String(8), nullable=False),
        **TABLE,
    )
    op.create_index("ix_permissions_user", "permissions", ["user_id"])
    # Only user entries have an old form: the widest level their letters still cover.
    for old, letters in (("owner", "%a%"), ("write", "%i%"), ("read", "%r%")):
        op.execute(sa.text("INSERT INTO permissions (folder_id, user_id, rights) "
                           "SELECT folder_id, user_id, :old FROM folder_acl WHERE user_id IS NOT NULL "
                           "AND rights LIKE :letters AND NOT EXISTS (SELECT 1 FROM permissions p "
                           "WHERE p.folder_id = folder_acl.folder_id AND p.user_id = folder_acl.user_id)"
                           ).bindparams(old=old, letters=letters))
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_table("folder_acl")
