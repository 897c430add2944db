"""IMAP subscriptions become a per-store list of mailbox names (RFC 3501 §6.3.6):
a name stays subscribed when its folder is deleted or renamed, as the RFC requires.

Every folder subscribed so far is carried over under the name the IMAP gateway
shows for it: the folder path joined with "/", the mail folder with the inbox role
as INBOX. The per-folder flag is then dropped, so there is one source of truth.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Mailbox names compare exactly ("Foo" and "foo" are two mailboxes), whatever the
# server's default collation; 700 characters keep the key within InnoDB's 3072 bytes.
Name = sa.String(700).with_variant(mysql.VARCHAR(700, charset="utf8mb4", collation="utf8mb4_bin"),
                                   "mysql", "mariadb")
MAX_NAME = 700


def _imap_names(rows: list) -> dict[int, set[str]]:
    """store id -> names of its subscribed mail folders, as the IMAP gateway named them.

    Frozen history: a private copy of the gateway's naming rule as it stood when this
    migration was written, so that the migration means the same whatever the
    gateway's rule becomes. Do not replace it by an import of live code."""
    by_id = {r.id: r for r in rows}
    names: dict[int, str | None] = {}

    def name_of(row, depth: int = 0) -> str | None:
        if row.id in names:
            return names[row.id]
        names[row.id] = None  # a cycle ends here
        if row.container_class == "mail" and row.role == "inbox":
            name: str | None = "INBOX"
        elif depth > 64:
            name = None
        else:
            parent = by_id.get(row.parent_id) if row.parent_id is not None else None
            prefix = name_of(parent, depth + 1) if parent is not None else ""
            name = None if prefix is None or not row.name else (f"{prefix}/{row.name}" if prefix else row.name)
        names[row.id] = name
        return name

    out: dict[int, set[str]] = {}
    for row in rows:
        if row.container_class != "mail" or not row.subscribed:
            continue
        name = name_of(row)
        if name and len(name) <= MAX_NAME:
            if name[:5].upper() == "INBOX" and (len(name) == 5 or name[5] == "/"):
                name = "INBOX" + name[5:]
            out.setdefault(row.store_id, set()).add(name)
    return out


def upgrade() -> None:
    subscriptions = op.create_table(
        "subscriptions",
        sa.Column("store_id", Id, sa.ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", Name, primary_key=True),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, store_id, parent_id, name, container_class, role, subscribed "
                                "FROM folders")).all()
    values = [{"store_id": sid, "name": name}
              for sid, names in sorted(_imap_names(rows).items()) for name in sorted(names)]
    for i in range(0, len(values), 500):
        op.bulk_insert(subscriptions, values[i:i + 500])
    op.drop_column("folders", "subscribed")


def downgrade() -> None:
    op.add_column("folders", sa.Column("subscribed", sa.Boolean, nullable=False, server_default=sa.true()))
    op.drop_table("subscriptions")
