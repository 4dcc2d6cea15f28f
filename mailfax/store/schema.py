"""The database schema: accepted messages (large ones in pieces), jobs, events and receipts."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# Times are epoch seconds (UTC) as doubles: identical in SQLite and PostgreSQL.

messages = Table(
    "messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("received_at", Double, nullable=False),
    Column("mail_from", Text, nullable=False),
    Column("peer", Text, nullable=False),
    Column("header_message_id", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("sender_name", Text, nullable=False, default=""),  # From display name (cover page)
    Column("auto_submitted", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("report", Text, nullable=False),  # JSON list of PartReport
    Column("raw", LargeBinary, nullable=False),
    # How the sender was admitted: "user:<name>", "relay:<address>" or "open:<address>".
    Column("admitted_by", Text, nullable=False, default=""),
)

documents = Table(
    "documents",
    metadata,
    Column("message_id", String(32), ForeignKey("messages.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("pages", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# A large mail's raw text and documents, in pieces written by transactions of their own
# (SqlStore.accept): its messages.raw / documents.data hold b"" and readers join the pieces.
# `part` is -1 for the raw mail, else the document's position.
blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("message_id", String(32), primary_key=True),  # no foreign key: written first
    Column("part", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# Large mails whose pieces are written but whose own commit has not happened yet; what a
# crash leaves here for long is removed with its pieces (SqlStore.recover_expired).
blobs_in_progress = Table(
    "blobs_in_progress",
    metadata,
    Column("message_id", String(32), primary_key=True),
    Column("started_at", Double, nullable=False),
)

# What `mailfax doctor --live-test` learnt of the FAX.PLUS account (its ids, listing order,
# what its records keep): one JSON value per key, shared by every instance.
faxplus_facts = Table(
    "faxplus_facts",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("learnt_at", Double, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("message_id", String(32), ForeignKey("messages.id"), nullable=False),
    Column("number", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("recoveries", Integer, nullable=False, default=0),  # leases that expired
    Column("redials", Integer, nullable=False, default=0),  # resends after busy / no answer
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("run_at", Double, nullable=False),
    Column("lease_owner", Text),
    Column("lease_until", Double),
    Column("uploaded", Text, nullable=False, default="[]"),  # JSON list of FAX.PLUS file paths
    Column("fax_id", Text),
    Column("fax_status", Text),
    Column("pages_sent", Integer),
    Column("error", Text),
    Column("submitted_at", Double),  # when the last send was attempted
    # From the final fax record, for receipts: FAX.PLUS's start time, seconds, cost.
    Column("fax_start_time", Text),
    Column("fax_duration", Double),
    Column("fax_cost", Double),
    Index("jobs_due", "state", "run_at"),
    Index("jobs_fax_id", "fax_id"),
    Index("jobs_message", "message_id"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.id"), nullable=False),
    Column("at", Double, nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Index("job_events_job", "job_id"),
)

# fax_sent webhooks are hints: parked here until a fetch of the fax confirms them.
fax_events = Table(
    "fax_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fax_id", Text, nullable=False),
    Column("hook_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("received_at", Double, nullable=False),
    Column("next_at", Double, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    UniqueConstraint("fax_id", "hook_id", "status", name="fax_events_dedupe"),
    Index("fax_events_due", "next_at"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("message_id", String(32), ForeignKey("messages.id"), nullable=False),
    # The job the receipt is about; NULL for receipts about the whole mail (accepted, group).
    Column("job_id", String(32), ForeignKey("jobs.id")),
    Column("kind", String(16), nullable=False),  # accepted | delayed | final | group
    # pending | sent | dropped; skipped = decided not to send (the reason is in `error`).
    Column("state", String(16), nullable=False),
    Column("recipient", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Double, nullable=False),
    Column("run_at", Double, nullable=False),
    Column("lease_until", Double),
    Column("sent_at", Double),
    Column("error", Text),
    Index("receipts_due", "state", "run_at"),
    # Each kind of receipt at most once per job, or per mail for the mail-wide kinds.
    Index(
        "receipts_once_per_job",
        "job_id",
        "kind",
        unique=True,
        sqlite_where=text("job_id IS NOT NULL"),
        postgresql_where=text("job_id IS NOT NULL"),
    ),
    Index(
        "receipts_once_per_message",
        "message_id",
        "kind",
        unique=True,
        sqlite_where=text("job_id IS NULL"),
        postgresql_where=text("job_id IS NULL"),
    ),
)

# Quota counters (mailfax/quotas.py): one row per counter, key and fixed window, so every
# instance sharing the store counts together and the counts survive restarts.
quota_counters = Table(
    "quota_counters",
    metadata,
    Column("counter", String(16), primary_key=True),  # faxes-per-hour | pages-per-day
    Column("key", Text, primary_key=True),  # user:<name> | sender:<address> | *
    Column("window_start", Double, primary_key=True),
    Column("used", Integer, nullable=False),
)
