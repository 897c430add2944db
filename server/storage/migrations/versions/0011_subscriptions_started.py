"""The store no longer fills a new store's subscription list: a gateway gives the
names a list starts with when it first reads or writes it, so the store holds no
protocol's naming rule. Each store remembers whether its list was started.

Every store that exists now has the list it was given at creation or by 0009, so
it counts as started; only stores created from here on start unstarted.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stores", sa.Column("subscriptions_started", sa.Boolean, nullable=False,
                                      server_default=sa.false()))
    op.execute(sa.text("UPDATE stores SET subscriptions_started = :started").bindparams(started=True))


def downgrade() -> None:
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("subscriptions_started")
