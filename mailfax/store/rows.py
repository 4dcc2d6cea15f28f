"""Pure row mapping: the records as table rows and back, and the selections the queues share."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import Row, ScalarSelect, Select, Table, func, select

from mailfax.jobs import Job, JobState
from mailfax.mail.model import PartReport
from mailfax.store.base import (
    AcceptedMessage,
    FaxEvent,
    MessageRecord,
    NewReceipt,
    PendingReceipt,
    ReceiptRecord,
)
from mailfax.store.schema import jobs


def job(row: Row[Any]) -> Job:
    return Job(
        id=row.id,
        message_id=row.message_id,
        number=row.number,
        state=JobState(row.state),
        attempts=row.attempts,
        created_at=row.created_at,
        run_at=row.run_at,
        uploaded=tuple(json.loads(row.uploaded)),
        fax_id=row.fax_id,
        fax_status=row.fax_status,
        pages_sent=row.pages_sent,
        error=row.error,
        submitted_at=row.submitted_at,
        recoveries=row.recoveries,
        redials=row.redials,
        updated_at=row.updated_at,
        lease_owner=row.lease_owner,
        fax_start_time=row.fax_start_time,
        fax_duration=row.fax_duration,
        fax_cost=row.fax_cost,
    )


def new_job_row(job_id: str, message_id: str, number: str, now: float) -> dict[str, Any]:
    """A job queued now, with nothing tried yet."""
    return {
        "id": job_id,
        "message_id": message_id,
        "number": number,
        "state": JobState.QUEUED.value,
        "attempts": 0,
        "recoveries": 0,
        "redials": 0,
        "created_at": now,
        "updated_at": now,
        "run_at": now,
        "uploaded": "[]",
    }


def event_row(
    job_id: str, old: JobState | None, new: JobState, now: float, detail: str
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "at": now,
        "from_state": old.value if old else None,
        "to_state": new.value,
        "detail": detail[:2000],
    }


def message_row(message: AcceptedMessage, large: bool) -> dict[str, Any]:
    """The messages row of an accepted mail; a large mail's raw text is in its pieces."""
    return {
        "id": message.id,
        "received_at": message.received_at,
        "mail_from": message.mail_from,
        "peer": message.peer,
        "header_message_id": message.header_message_id,
        "subject": message.subject,
        "sender_name": message.sender_name,
        "auto_submitted": message.auto_submitted,
        "comment": message.comment,
        "report": json.dumps([dataclasses.asdict(part) for part in message.report]),
        "raw": b"" if large else message.raw,
        "admitted_by": message.admitted_by,
    }


def document_rows(message: AcceptedMessage, large: bool) -> list[dict[str, Any]]:
    """The documents rows of an accepted mail; a large mail's data is in its pieces."""
    return [
        {
            "message_id": message.id,
            "position": position,
            "name": doc.name,
            "pages": doc.pages,
            "data": b"" if large else doc.data,
        }
        for position, doc in enumerate(message.documents)
    ]


def message_record(row: Row[Any], raw: bytes) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        received_at=row.received_at,
        mail_from=row.mail_from,
        header_message_id=row.header_message_id,
        subject=row.subject,
        auto_submitted=row.auto_submitted,
        comment=row.comment,
        report=tuple(PartReport(**item) for item in json.loads(row.report)),
        raw=raw,
        sender_name=row.sender_name,
        admitted_by=row.admitted_by,
    )


def receipt_row(
    message_id: str, job_id: str | None, receipt: NewReceipt, now: float
) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "message_id": message_id,
        "job_id": job_id,
        "kind": receipt.kind,
        "state": "pending",
        "recipient": receipt.recipient,
        "content": receipt.content,
        "attempts": 0,
        "created_at": now,
        "run_at": now,
    }


def pending_receipt(row: Row[Any]) -> PendingReceipt:
    return PendingReceipt(
        row.id, row.job_id, row.recipient, row.content, row.attempts, row.created_at, row.kind
    )


def receipt_record(row: Row[Any]) -> ReceiptRecord:
    return ReceiptRecord(
        row.id,
        row.state,
        row.recipient,
        row.attempts,
        row.created_at,
        row.sent_at,
        row.error,
        row.kind,
    )


def fax_event(row: Row[Any]) -> FaxEvent:
    return FaxEvent(row.id, row.fax_id, row.hook_id, row.status, row.received_at, row.attempts)


def oldest_due(table: Table, state: str, now: float) -> ScalarSelect[Any]:
    """The id of the oldest due row in `state`; concurrent claimers skip it (PostgreSQL)."""
    return (
        select(table.c.id)
        .where(table.c.state == state, table.c.run_at <= now)
        .order_by(table.c.run_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


def next_run_at(table: Table, state: str, now: float) -> Select[tuple[Any]]:
    """The earliest future run_at of the rows in `state` (None when none is waiting)."""
    return select(func.min(table.c.run_at)).where(table.c.state == state, table.c.run_at > now)


def message_of(job_id: str) -> ScalarSelect[Any]:
    return select(jobs.c.message_id).where(jobs.c.id == job_id).scalar_subquery()
