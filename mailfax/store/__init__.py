"""Durable store: the Store interface, its records, and the SQL implementation."""

from mailfax.store.base import (
    AcceptedMessage,
    FaxEvent,
    MessageRecord,
    NewReceipt,
    PendingReceipt,
    Store,
    StoreUnavailable,
)
from mailfax.store.sql import SqlStore, open_store

__all__ = [
    "AcceptedMessage",
    "FaxEvent",
    "MessageRecord",
    "NewReceipt",
    "PendingReceipt",
    "SqlStore",
    "Store",
    "StoreUnavailable",
    "open_store",
]
