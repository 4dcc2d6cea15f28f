"""The Store interface every other stage talks to, and the records it exchanges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mailfax.jobs import Job, JobState
from mailfax.mail.extract import Document, PartReport


class StoreUnavailable(Exception):
    """The store could not complete an operation; nothing was written."""


@dataclass(frozen=True)
class AcceptedMessage:
    """A mail taken at end of DATA: stored with its jobs in one durable transaction."""

    id: str
    received_at: float
    mail_from: str
    peer: str
    header_message_id: str
    subject: str
    auto_submitted: str
    comment: str
    report: tuple[PartReport, ...]
    documents: tuple[Document, ...]
    raw: bytes
    sender_name: str = ""


@dataclass(frozen=True)
class MessageRecord:
    """What later stages need of an accepted mail (not its documents)."""

    id: str
    received_at: float
    mail_from: str
    header_message_id: str
    subject: str
    auto_submitted: str
    comment: str
    report: tuple[PartReport, ...]
    raw: bytes
    sender_name: str = ""


@dataclass(frozen=True)
class NewReceipt:
    """A receipt to queue in the same transaction as a job's final state."""

    id: str
    recipient: str
    content: bytes


@dataclass(frozen=True)
class PendingReceipt:
    id: str
    job_id: str
    recipient: str
    content: bytes
    attempts: int
    created_at: float


@dataclass(frozen=True)
class FaxEvent:
    """A parked fax_sent webhook, waiting to be confirmed by fetching the fax."""

    id: int
    fax_id: str
    hook_id: str
    status: str
    received_at: float
    attempts: int


class Store(Protocol):
    """Durable state of the gateway. Every method is one transaction."""

    async def accept(self, message: AcceptedMessage, jobs: Sequence[tuple[str, str]]) -> None:
        """Store the message, its documents and one queued job per (job id, number)."""

    async def claim_job(self, owner: str, now: float, lease_until: float) -> Job | None:
        """Move the oldest due queued job to UPLOADING under a lease, or return None."""

    async def recover_expired(self, now: float) -> list[tuple[Job, JobState]]:
        """Take back jobs whose worker's lease ran out; returns (job as now, old state)."""

    async def transition(
        self,
        job_id: str,
        expected: JobState,
        new: JobState,
        now: float,
        values: Mapping[str, Any] | None = None,
        receipt: NewReceipt | None = None,
        detail: str = "",
        owner: str | None = None,
    ) -> bool:
        """Conditionally move a job (and queue its receipt); False if it was not in `expected`
        (or, with `owner`, no longer leased by that claim)."""

    async def renew_lease(self, job_id: str, owner: str, until: float) -> bool:
        """Extend a claim's lease; False if the claim was lost."""

    async def get_job(self, job_id: str) -> Job | None: ...

    async def job_by_fax_id(self, fax_id: str) -> Job | None: ...

    async def jobs_in_state(self, state: JobState, before: float, limit: int) -> list[Job]:
        """Jobs in `state` last updated before `before`, oldest first."""

    async def jobs_created_before(
        self, states: Sequence[JobState], before: float, limit: int
    ) -> list[Job]:
        """Jobs in any of `states` accepted before `before`, oldest first."""

    async def fax_ids_in_use(self, fax_ids: Sequence[str]) -> set[str]:
        """Which of these FAX.PLUS fax ids already belong to a job."""

    async def documents(self, message_id: str) -> list[Document]: ...

    async def message(self, message_id: str) -> MessageRecord | None: ...

    async def park_fax_event(self, fax_id: str, hook_id: str, status: str, now: float) -> bool:
        """Record a webhook hint; False when the same (fax, hook, status) was seen before."""

    async def due_fax_events(self, now: float, limit: int) -> list[FaxEvent]: ...

    async def fax_event_done(self, event_id: int) -> None: ...

    async def fax_event_later(self, event_id: int, next_at: float) -> None: ...

    async def wake_fax_events(self, fax_id: str, now: float) -> None:
        """Make hints parked for `fax_id` due now (its job just learned the id)."""

    async def next_fax_event(self) -> float | None:
        """When the earliest parked hint comes due."""

    async def claim_receipt(self, now: float, lease_until: float) -> PendingReceipt | None: ...

    async def receipt_sent(self, receipt_id: str, now: float) -> None: ...

    async def receipt_later(self, receipt_id: str, run_at: float, error: str) -> None: ...

    async def receipt_dropped(self, receipt_id: str, error: str) -> None: ...

    async def next_due(self, now: float) -> float | None:
        """Earliest future time at which a queued job or pending receipt becomes due."""

    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be reached."""

    async def close(self) -> None: ...
