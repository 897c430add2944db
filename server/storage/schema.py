"""Table definitions (SQLAlchemy Core). Migrations in migrations/ create the same shape."""
from __future__ import annotations

from sqlalchemy import (BigInteger, false, Boolean, Column, ForeignKey, ForeignKeyConstraint, Index, Integer,
                        LargeBinary,
                        MetaData, String, Table, Text)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid.
Id = BigInteger().with_variant(Integer(), "sqlite")
# LONGBLOB so a 1 MB chunk fits on MySQL (plain BLOB stops at 64 KB).
Chunk = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

# Compared octet by octet on MariaDB, so that LIKE is no looser than the search.
AddressText = Text().with_variant(mysql.MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_bin"),
                                  "mysql", "mariadb")
# Sort keys (server/mime/sort_keys.py) hold the i;unicode-casemap form already: compared
# octet by octet on every engine, and short enough to index.
SortKey = String(255).with_variant(mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"),
                                   "mysql", "mariadb")
_mysql = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "sqlite_autoincrement": True}

meta = Table(
    "meta", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

users = Table(
    "users", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False, default=""),
    Column("fullname", String(255), nullable=False, default=""),
    Column("email", String(255), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("feature_imap", Boolean, nullable=False, default=True),
    Column("feature_pop3", Boolean, nullable=False, default=True),
    Column("feature_caldav", Boolean, nullable=False, default=True),
    Column("feature_sieve", Boolean, nullable=False, default=True),
    Column("external_id", String(255), nullable=True),
    # Gone from the directory (LDAP, unix): logins refused, store kept for an admin to delete.
    Column("orphaned", Boolean, nullable=False, default=False),
    # Storage quota levels in bytes, and the item count limit, for this user (server/storage/quota.py):
    # NULL takes the server's quota_* option, 0 is no limit. Set by `groupware quota set` or
    # from the directory's attributes (ldap_quota_*_attribute).
    Column("quota_warn", BigInteger, nullable=True),
    Column("quota_soft", BigInteger, nullable=True),
    Column("quota_hard", BigInteger, nullable=True),
    Column("quota_messages", BigInteger, nullable=True),
    Index("ux_users_external_id", "external_id", unique=True),
    **_mysql,
)

stores = Table(
    "stores", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # NULL owner = the public store.
    Column("owner_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, unique=True),
    Column("kind", String(16), nullable=False),
    # False until a gateway first reads or writes the subscription list with the
    # names it starts with (migration 0011 marks the stores before it as started).
    Column("subscriptions_started", Boolean, nullable=False, default=False),
    # What the store's items take (the sum of their sizes) and how many there are: counters
    # every write changes in its own transaction, so that quota checks never sum rows.
    Column("used_bytes", BigInteger, nullable=False, default=0, server_default="0"),
    Column("used_items", BigInteger, nullable=False, default=0, server_default="0"),
    # A quota warning went to the owner since usage last rose above quota_warn.
    Column("quota_warned", Boolean, nullable=False, default=False, server_default=false()),
    **_mysql,
)

folders = Table(
    "folders", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("store_id", Id, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", Id, ForeignKey("folders.id", ondelete="CASCADE"), nullable=True),
    Column("name", String(255), nullable=False),
    Column("container_class", String(16), nullable=False),
    Column("role", String(16), nullable=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False),
    Column("highestmodseq", BigInteger, nullable=False),
    # Changes at or below this modseq may have lost their tombstones.
    Column("tombstone_floor", BigInteger, nullable=False, default=0),
    Column("display_name", String(255), nullable=True),
    Column("color", String(32), nullable=True),
    Column("description", Text, nullable=True),
    # Secret of a calendar published read-only at /ical/published/<token> (NULL: not published).
    Column("publish_token", String(64), nullable=True),
    Index("ix_folders_store_parent", "store_id", "parent_id"),
    Index("ux_folders_publish_token", "publish_token", unique=True),
    **_mysql,
)

# Properties clients keep on a folder that the store does not interpret (WebDAV dead
# properties of a calendar, e.g. Apple's calendar-order), by qualified name.
folder_properties = Table(
    "folder_properties", metadata,
    Column("folder_id", Id, ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

# Subscriptions (IMAP's, RFC 3501 §6.3.6): names as a gateway gives them, not folders,
# so a name stays subscribed when its folder is deleted or renamed. Names compare exactly on every
# engine; 700 characters keep the key within InnoDB's 3072 bytes.
SubscriptionName = String(700).with_variant(mysql.VARCHAR(700, charset="utf8mb4", collation="utf8mb4_bin"),
                                            "mysql", "mariadb")
# \Seen of a reader who does not own the folder's store, as a uid set ("1:40,42"),
# one row per reader and folder (server/storage/private_seen.py).
private_seen = Table(
    "private_seen", metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("folder_id", Id, ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
    Column("uids", Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False),
    Index("ix_private_seen_folder", "folder_id"),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("store_id", Id, ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True),
    Column("name", SubscriptionName, primary_key=True),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

# Keyed by (folder_id, uid): InnoDB clusters rows by it, so a folder listing
# in uid order is one range scan with no sort and no per-row lookups.
items = Table(
    "items", metadata,
    Column("folder_id", Id, ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
    Column("uid", BigInteger, primary_key=True, autoincrement=False),
    Column("modseq", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("flags", Integer, nullable=False, default=0),
    Column("keywords", Text, nullable=False, default=""),
    Column("internalDate", BigInteger, nullable=False),
    Column("dtstart", BigInteger, nullable=True),
    Column("dtend", BigInteger, nullable=True),
    Column("recurring", Integer, nullable=False, default=0),
    Column("itemClass", String(32), nullable=False),
    Column("subject", Text, nullable=True),
    Column("from", Text, nullable=True),
    Column("to", Text, nullable=True),
    Column("cc", Text, nullable=True),
    Column("messageId", Text, nullable=True),
    Column("inReplyTo", Text, nullable=True),
    Column("date", Text, nullable=True),
    Column("envelope", Text, nullable=True),
    Column("bodystructure", Text, nullable=True),
    # IMAP SEARCH FROM/TO/CC/BCC text: server/mime/address_search.py (NULL: stored
    # before it was kept; such messages are searched through "envelope").
    Column("fromAddresses", AddressText, nullable=True),
    Column("toAddresses", AddressText, nullable=True),
    Column("ccAddresses", AddressText, nullable=True),
    Column("bccAddresses", AddressText, nullable=True),
    # IMAP SORT and THREAD (server/mime/sort_keys.py); filled in by migration 0016 for
    # messages stored before, whose threadParents then come from In-Reply-To alone.
    Column("sortSubject", SortKey, nullable=True),
    Column("subjectReply", Integer, nullable=True),
    Column("sortFrom", SortKey, nullable=True),
    Column("sortTo", SortKey, nullable=True),
    Column("sortCc", SortKey, nullable=True),
    Column("displayFrom", SortKey, nullable=True),
    Column("displayTo", SortKey, nullable=True),
    # The Date field in UTC epoch seconds, or the internal date when it has none (RFC 5256 §2.2).
    Column("sentDate", BigInteger, nullable=True),
    Column("threadMessageId", String(255), nullable=True),
    Column("threadParents", Text, nullable=True),
    Column("icalUid", String(512), nullable=True),
    Column("name", String(512), nullable=True),
    Column("etag", String(128), nullable=True),
    Column("summary", Text, nullable=True),
    # Contacts (vCards): the formatted name, and the e-mail addresses and telephone
    # numbers one per line, for address book queries (server/vcardcolumns.py).
    Column("fn", Text, nullable=True),
    Column("email", Text, nullable=True),
    Column("tel", Text, nullable=True),
    # Recurring calendar objects: the occurrence index lists every occurrence starting
    # before this epoch second (NULL: not indexed, expand the object instead).
    Column("occurrencesUntil", BigInteger, nullable=True),
    Column("blob_key", String(128), nullable=False),
    # IMAP SAVEDATE (RFC 8514): when the item was stored into this folder (a copy or move
    # is a new save); the internal date for items stored before it was kept.
    Column("savedDate", BigInteger, nullable=True),
    # IMAP EMAILID (RFC 8474): made once when a message is stored, kept by copies and
    # moves (so it survives MOVE); "L<folder>-<uid>" for items stored before it was kept.
    Column("emailId", String(32), nullable=True),
    # IMAP PREVIEW (RFC 8970): server/mime/preview.py, made when a message is stored
    # (NULL for messages stored before it was kept).
    Column("preview", Text, nullable=True),
    Index("ix_items_folder_modseq", "folder_id", "modseq"),
    # Covers the per-folder listing of uid, modseq and flags (IMAP SELECT, POP3 login):
    # read from the index alone, not row by row from the wide table.
    Index("ix_items_folder_listing", "folder_id", "uid", "modseq", "flags"),
    Index("ix_items_folder_name", "folder_id", "name"),
    # The common SORT keys, each with the uid that breaks its ties: read in order, no sort.
    Index("ix_items_folder_sent", "folder_id", "sentDate", "uid"),
    Index("ix_items_folder_arrival", "folder_id", "internalDate", "uid"),
    Index("ix_items_folder_subject", "folder_id", "sortSubject", "uid"),
    Index("ix_items_folder_from", "folder_id", "sortFrom", "uid"),
    Index("ix_items_folder_icaluid", "folder_id", "icalUid"),
    Index("ix_items_blob_key", "blob_key"),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

# One row per occurrence of a recurring calendar object (see server/occurrences.py), so
# time-range queries need not expand open-ended series.
occurrences = Table(
    "occurrences", metadata,
    Column("folder_id", Id, primary_key=True),
    Column("uid", BigInteger, primary_key=True, autoincrement=False),
    Column("start", BigInteger, primary_key=True, autoincrement=False),
    Column("end", BigInteger, nullable=False),
    ForeignKeyConstraint(["folder_id", "uid"], ["items.folder_id", "items.uid"], ondelete="CASCADE"),
    Index("ix_occurrences_folder_start", "folder_id", "start"),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

tombstones = Table(
    "tombstones", metadata,
    Column("folder_id", Id, ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True),
    Column("uid", BigInteger, primary_key=True, autoincrement=False),
    Column("modseq", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=False),
    # The item's resource name (calendar objects), so CalDAV sync can report it gone.
    Column("name", String(512), nullable=True),
    Index("ix_tombstones_folder_modseq", "folder_id", "modseq"),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

# Folder ACLs (RFC 4314 rights letters, shared/rights.py). One entry names a user
# (user_id), a group (group_name, lower case) or, with both NULL, anyone authenticated.
# An entry with empty rights is kept: it overrides what the folder would inherit.
folder_acl = Table(
    "folder_acl", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("folder_id", Id, ForeignKey("folders.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("group_name", String(255), nullable=True),
    Column("rights", String(16), nullable=False),
    Index("ix_folder_acl_folder", "folder_id"),
    Index("ix_folder_acl_user", "user_id"),
    Index("ix_folder_acl_group", "group_name"),
    **_mysql,
)

# Groups of the db user backend (directories keep their own; see server/groups.py).
groups = Table(
    "groups", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    **_mysql,
)

group_members = Table(
    "group_members", metadata,
    Column("group_id", Id, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_group_members_user", "user_id"),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

# Blobs of the "database" attachment store, split into 1 MB chunks so that
# neither writing nor reading ever needs a whole blob in memory.
blobs = Table(
    "blobs", metadata,
    Column("key", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", Chunk, nullable=False),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)

# A user's Sieve scripts (RFC 5228), kept as text: the store does not parse them. At most
# one per user is active. Names compare exactly (ManageSieve, RFC 5804 section 1.6).
SieveName = String(128).with_variant(mysql.VARCHAR(128, charset="utf8mb4", collation="utf8mb4_bin"),
                                     "mysql", "mariadb")
SieveText = Text().with_variant(mysql.MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")
sieve_scripts = Table(
    "sieve_scripts", metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("name", SieveName, primary_key=True),
    Column("script", SieveText, nullable=False),
    Column("active", Boolean, nullable=False, default=False),
    Column("updated_at", BigInteger, nullable=False),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)


def _per_user_digests(name: str, time_column: str) -> Table:
    """A table of per-user records keyed by a digest (SHA-256, hex) of texts of any length,
    with the time each was last written."""
    return Table(
        name, metadata,
        Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        Column("digest", String(64), primary_key=True),
        Column(time_column, BigInteger, nullable=False),
        mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )


# When a vacation reply (RFC 5230) last went to a sender for one vacation action (its handle).
vacation_replies = _per_user_digests("vacation_replies", "sent_at")
# Message-IDs delivered to a user recently, for duplicate suppression (an MTA retrying
# after a lost answer).
delivered_message_ids = _per_user_digests("delivered_message_ids", "delivered_at")


# Addresses refused at logon after too many failed logons (the brute-force guard's bans),
# kept here so that they hold across restarts and for every store instance.
address_bans = Table(
    "address_bans", metadata,
    Column("address", String(255), primary_key=True),
    Column("banned_until", BigInteger, nullable=False),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)


# One-time names that have been used (a gateway's single-use links), until they expire:
# the primary key makes the first use win in every store process and instance.
used_once = Table(
    "used_once", metadata,
    Column("name", String(64), primary_key=True),
    # Which call recorded it: a transaction retried after its commit went through still wins.
    Column("claim", String(32), nullable=False),
    Column("expires", BigInteger, nullable=False, index=True),
    mysql_engine="InnoDB", mysql_charset="ascii",
)

# Whole-calendar imports larger than one call, staged until the call that stores them all:
# one row per import (whose user, into which folder, which session last staged to it,
# when) and one per staged object, its blob written already. Kept here, not in a
# process's memory, so that each call of an import may reach any store process or
# instance on the database. No foreign keys: rows of a user or folder that went are
# dropped with their blobs by the sweep of stale imports.
ImportText = Text().with_variant(mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")
calendar_imports = Table(
    "calendar_imports", metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("folder_id", Id, nullable=False),
    Column("session", String(64), nullable=False),
    Column("objects", Integer, nullable=False),
    Column("touched", BigInteger, nullable=False),
    Index("ix_calendar_imports_user", "user_id"),
    Index("ix_calendar_imports_session", "session"),
    Index("ix_calendar_imports_touched", "touched"),
    mysql_engine="InnoDB", mysql_charset="utf8mb4",
)
calendar_import_objects = Table(
    "calendar_import_objects", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("import_id", String(32), nullable=False),
    Column("name", ImportText, nullable=False),
    # NULL: the object named is deleted by the import; else the blob of the object saved.
    Column("blob_key", String(128), nullable=True),
    Column("size", BigInteger, nullable=False, default=0),
    Column("columns", ImportText, nullable=True),  # the parsed query columns, JSON
    Column("if_match", ImportText, nullable=True),  # a deletion's condition
    Index("ix_calendar_import_objects_import", "import_id"),
    Index("ix_calendar_import_objects_blob", "blob_key"),
    **_mysql,
)
