"""Each address field (From, To, Cc, Bcc) of a message in the form IMAP SEARCH FROM,
TO, CC and BCC look in: its addresses written as Dovecot writes them, one line per
occurrence of the field ("" when the message has none). Messages stored before
have NULL there and are searched through their cached ENVELOPE instead.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Compared octet by octet on MariaDB, so that LIKE is no looser than the search.
AddressText = sa.Text().with_variant(mysql.MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_bin"),
                                     "mysql", "mariadb")
COLUMNS = ("fromAddresses", "toAddresses", "ccAddresses", "bccAddresses")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("items", sa.Column(name, AddressText, nullable=True))


def downgrade() -> None:
    for name in COLUMNS:
        op.drop_column("items", name)
