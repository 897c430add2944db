"""Items: savedDate (IMAP SAVEDATE, RFC 8514), emailId (IMAP EMAILID, RFC 8474) and
preview (IMAP PREVIEW, RFC 8970).

Items stored before carry their internal date as save date and an EMAILID made of
their folder and uid ("L<folder>-<uid>"), which copies and moves keep from now on.

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("savedDate", sa.BigInteger, nullable=True))
    op.add_column("items", sa.Column("emailId", sa.String(32), nullable=True))
    op.add_column("items", sa.Column("preview", sa.Text, nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE items SET savedDate = internalDate, emailId = 'L' || folder_id || '-' || uid")
    else:
        op.execute("UPDATE items SET savedDate = internalDate, emailId = CONCAT('L', folder_id, '-', uid)")


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("preview")
        batch.drop_column("emailId")
        batch.drop_column("savedDate")
