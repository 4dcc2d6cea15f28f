"""Durable store: the Store interface, its records, and the SQL implementation."""

from mailfax.store.base import (
    MINIMAL_RECEIPT_PREFIX,
    AcceptedMessage,
    FaxEvent,
    GroupSummary,
    JobStats,
    JobSummary,
    MessageRecord,
    NewReceipt,
    PendingReceipt,
    ReceiptRecord,
    Store,
    StoreUnavailable,
    SummaryOutdated,
)
from mailfax.store.copy import StoreNotEmpty, copy_store
from mailfax.store.db import CHANNEL_FAX_EVENTS, CHANNEL_JOBS, CHANNEL_RECEIPTS, SQLITE_FILE
from mailfax.store.migrations import LATEST, SchemaMismatch, check_version
from mailfax.store.sql import SqlStore, open_store

__all__ = [
    "CHANNEL_FAX_EVENTS",
    "CHANNEL_JOBS",
    "CHANNEL_RECEIPTS",
    "LATEST",
    "MINIMAL_RECEIPT_PREFIX",
    "SQLITE_FILE",
    "AcceptedMessage",
    "FaxEvent",
    "GroupSummary",
    "JobStats",
    "JobSummary",
    "MessageRecord",
    "NewReceipt",
    "PendingReceipt",
    "ReceiptRecord",
    "SchemaMismatch",
    "SqlStore",
    "Store",
    "StoreNotEmpty",
    "StoreUnavailable",
    "SummaryOutdated",
    "check_version",
    "copy_store",
    "open_store",
]
