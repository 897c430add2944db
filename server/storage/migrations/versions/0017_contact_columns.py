"""Contacts (vCards) keep their formatted name, e-mail addresses and telephone numbers
in columns of their own, for address book queries; the UID goes where a calendar
object's does (icalUid). NULL for every item stored before, none of which is a contact.

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

COLUMNS = ("fn", "email", "tel")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("items", sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    for name in COLUMNS:
        op.drop_column("items", name)
