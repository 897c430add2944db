"""The columns IMAP SORT and THREAD order and group by (server/mime/sort_keys.py),
with indexes for the common keys, filled in for the messages already stored.

The backfill reads each message's cached ENVELOPE, which holds every field the keys
come from except References: messages stored before thread by In-Reply-To alone.
It uses the live key rules on purpose: a sort compares old and new messages, so
both must have their keys made the same way.

Revision ID: 0016
Revises: 0015
"""
import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from server.mime.sort_keys import sort_columns

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SortKey = sa.String(255).with_variant(mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"),
                                      "mysql", "mariadb")
COLUMNS = {
    "sortSubject": SortKey, "subjectReply": sa.Integer(), "sortFrom": SortKey, "sortTo": SortKey,
    "sortCc": SortKey, "displayFrom": SortKey, "displayTo": SortKey, "sentDate": sa.BigInteger(),
    "threadMessageId": sa.String(255), "threadParents": sa.Text(),
}
INDEXES = {
    "ix_items_folder_sent": ["folder_id", "sentDate", "uid"],
    "ix_items_folder_arrival": ["folder_id", "internalDate", "uid"],
    "ix_items_folder_subject": ["folder_id", "sortSubject", "uid"],
    "ix_items_folder_from": ["folder_id", "sortFrom", "uid"],
}
BATCH = 1000


def _backfill() -> None:
    conn = op.get_bind()
    items = sa.table("items", sa.column("folder_id"), sa.column("uid"), sa.column("internalDate"),
                     sa.column("envelope"), *(sa.column(name) for name in COLUMNS))
    update = (sa.update(items)
              .where(items.c.folder_id == sa.bindparam("f"), items.c.uid == sa.bindparam("u"))
              .values({name: sa.bindparam("v_" + name) for name in COLUMNS}))
    after = (-1, -1)
    while True:
        rows = conn.execute(
            sa.select(items.c.folder_id, items.c.uid, items.c.internalDate, items.c.envelope)
            .where(items.c.envelope.is_not(None),
                   sa.tuple_(items.c.folder_id, items.c.uid) > sa.tuple_(*after))
            .order_by(items.c.folder_id, items.c.uid).limit(BATCH)).all()
        if not rows:
            return
        values = []
        for folder_id, uid, internal_date, envelope in rows:
            try:
                env = json.loads(envelope)
            except ValueError:
                env = {}
            keys = sort_columns(env if isinstance(env, dict) else {}, None)
            if keys["sentDate"] is None:
                keys["sentDate"] = internal_date
            values.append({"f": folder_id, "u": uid, **{"v_" + k: v for k, v in keys.items()}})
        conn.execute(update, values)
        after = (rows[-1][0], rows[-1][1])


def upgrade() -> None:
    for name, kind in COLUMNS.items():
        op.add_column("items", sa.Column(name, kind, nullable=True))
    for name, columns in INDEXES.items():
        op.create_index(name, "items", columns)
    _backfill()


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "items")
    for name in COLUMNS:
        op.drop_column("items", name)
