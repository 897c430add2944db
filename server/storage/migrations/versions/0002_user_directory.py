"""Users from a directory (LDAP, unix): orphaned stores, one row per directory identity.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A user who left the directory keeps their row and store, marked, until an admin deletes it.
    op.add_column("users", sa.Column("orphaned", sa.Boolean, nullable=False, server_default=sa.false()))
    # external_id holds "<plugin>:<unique attribute>"; one row per directory identity.
    op.create_index("ux_users_external_id", "users", ["external_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_users_external_id", "users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("orphaned")
