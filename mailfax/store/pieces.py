"""Large mails: written in pieces before their commit, read back whole, removed if left."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.sql.expression import Executable

from mailfax.logs import log_event
from mailfax.store.base import AcceptedMessage
from mailfax.store.db import Conn
from mailfax.store.schema import blob_chunks, blobs_in_progress

log = logging.getLogger("mailfax.store")

# A mail storing more than this (raw text and documents) is written in pieces of PIECE_BYTES
# before its own commit (GroupCommit.accept).
LARGE_MAIL_BYTES = 4 * 1024 * 1024
PIECE_BYTES = 1024 * 1024
# A large mail still unfinished after this was left by a crash: writing one takes seconds.
ABANDONED_AFTER = 3600.0

# Runs statements in one transaction of their own.
WriteStatements = Callable[..., Awaitable[None]]


def is_large(message: AcceptedMessage) -> bool:
    return len(message.raw) + sum(len(d.data) for d in message.documents) > LARGE_MAIL_BYTES


def _piece_rows(message: AcceptedMessage) -> Iterator[dict[str, Any]]:
    """blob_chunks rows of a large mail: part -1 is the raw mail, then each document."""
    blobs = [message.raw, *(doc.data for doc in message.documents)]
    for part, blob in enumerate(blobs, start=-1):
        for seq, start in enumerate(range(0, len(blob), PIECE_BYTES)):
            data = blob[start : start + PIECE_BYTES]
            yield {"message_id": message.id, "part": part, "seq": seq, "data": data}


async def write_pieces(write: WriteStatements, message: AcceptedMessage) -> None:
    """Write a large mail's pieces, a transaction each, the first marking it in progress."""
    started = {"message_id": message.id, "started_at": message.received_at}
    for number, piece in enumerate(_piece_rows(message)):
        first = (insert(blobs_in_progress).values(started),) if number == 0 else ()
        await write(*first, insert(blob_chunks).values(piece))


def forget_pieces(message_ids: Sequence[str]) -> tuple[Executable, ...]:
    return (
        blob_chunks.delete().where(blob_chunks.c.message_id.in_(message_ids)),
        blobs_in_progress.delete().where(blobs_in_progress.c.message_id.in_(message_ids)),
    )


async def joined_pieces(conn: Conn, message_id: str, raw: bool) -> dict[int, bytes]:
    """A large mail's raw text (part -1) or its documents, each joined from its pieces."""
    part = blob_chunks.c.part
    rows = await conn.execute(
        select(part, blob_chunks.c.data)
        .where(blob_chunks.c.message_id == message_id, part == -1 if raw else part >= 0)
        .order_by(part, blob_chunks.c.seq)
    )
    pieces: dict[int, list[bytes]] = {}
    for row in rows:
        pieces.setdefault(row.part, []).append(row.data)
    return {part: b"".join(data) for part, data in pieces.items()}


async def forget_abandoned(conn: Conn, now: float) -> None:
    """Remove the pieces of large mails a crash interrupted while they were written (never
    accepted)."""
    unfinished = blobs_in_progress.c.started_at < now - ABANDONED_AFTER
    abandoned_query = select(blobs_in_progress.c.message_id).where(unfinished)
    abandoned = (await conn.execute(abandoned_query)).scalars().all()
    if abandoned:
        for statement in forget_pieces(abandoned):
            await conn.execute(statement)
        log_event(log, "store.abandoned_pieces", logging.WARNING, mails=len(abandoned))
