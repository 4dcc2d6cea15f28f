"""The Store interface every other stage talks to, and the records it exchanges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mailfax.jobs import Job, JobState
from mailfax.mail.model import Document, PartReport
from mailfax.quotas import QuotaCharge


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
    # How the sender got in: "user:<name>", "relay:<address>" or "open:<address>".
    admitted_by: str = ""
    # Quota counters charged in the same transaction; over a limit, nothing is written.
    quota_charges: tuple[QuotaCharge, ...] = ()
    # The "accepted, queued" receipt ([receipts] notify = "all"), queued with the mail.
    receipt: NewReceipt | None = None

    def as_record(self) -> MessageRecord:
        """The message as later stages (and receipts) will read it back."""
        return MessageRecord(
            id=self.id,
            received_at=self.received_at,
            mail_from=self.mail_from,
            header_message_id=self.header_message_id,
            subject=self.subject,
            auto_submitted=self.auto_submitted,
            comment=self.comment,
            report=self.report,
            raw=self.raw,
            sender_name=self.sender_name,
            admitted_by=self.admitted_by,
        )


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
    admitted_by: str = ""

    @property
    def sender_verified(self) -> bool:
        """The sender authenticated or came through a trusted relay: only they get receipts
        (an "open" sender's address is unverified, so a receipt could be backscatter)."""
        return not self.admitted_by.startswith("open:")


# The start of the id of a receipt that is the short plain one sent because the full receipt
# could not be composed (what `mailfax doctor` counts).
MINIMAL_RECEIPT_PREFIX = "minimal-"


@dataclass(frozen=True)
class NewReceipt:
    """A receipt to queue in the same transaction as the state change it reports."""

    id: str
    recipient: str
    content: bytes
    kind: str = "final"  # accepted | delayed | final | group


@dataclass(frozen=True)
class GroupSummary:
    """A grouped mail's summary, composed before the transaction that may queue it (composing
    inside it would hold the store's one writer), with the mail's other jobs as it shows them.

    The store queues `summary` when the move makes every job of the mail final and `others`
    are still as they were; when they have changed meanwhile, it raises SummaryOutdated."""

    others: tuple[Job, ...]
    summary: NewReceipt | None  # None: no summary wanted, or `others` were not all final


class SummaryOutdated(StoreUnavailable):
    """The mail's other jobs changed after its group summary was composed: nothing was
    written; compose the summary again from the jobs as they are now."""


@dataclass(frozen=True)
class PendingReceipt:
    id: str
    job_id: str | None  # None for receipts about the whole mail
    recipient: str
    content: bytes
    attempts: int
    created_at: float
    kind: str = "final"


@dataclass(frozen=True)
class FaxEvent:
    """A parked fax_sent webhook, waiting to be confirmed by fetching the fax."""

    id: int
    fax_id: str
    hook_id: str
    status: str
    received_at: float
    attempts: int


@dataclass(frozen=True)
class JobSummary:
    """A job with what an operator needs to recognise it in a list."""

    job: Job
    mail_from: str
    subject: str
    pages: int


@dataclass(frozen=True)
class JobStats:
    """How many jobs are in each state, when the oldest unfinished one was accepted, and
    since when the oldest unknown one is unknown."""

    counts: Mapping[JobState, int]
    oldest_unfinished: float | None
    # Since when the longest-unknown job has been unknown (a lost send the reconciler could
    # not settle stays so until the operator does).
    oldest_unknown: float | None = None


@dataclass(frozen=True)
class ReceiptRecord:
    """A job's receipt and how its delivery went."""

    id: str
    state: str  # pending | sent | dropped
    recipient: str
    attempts: int
    created_at: float
    sent_at: float | None
    error: str | None
    kind: str = "final"  # final, or group: the mail's summary that covers this job


class Store(Protocol):
    """Durable state of the gateway. Every method is one transaction."""

    async def accept(self, message: AcceptedMessage, jobs: Sequence[tuple[str, str]]) -> None:
        """Store the message, its documents and one queued job per (job id, number)."""

    async def claim_jobs(self, owners: Sequence[str], now: float, lease_until: float) -> list[Job]:
        """Move up to one due queued job per owner token, oldest first, to UPLOADING under a
        lease held by that token, in one transaction; fewer (or none) when fewer are due."""

    async def next_job_due(self, now: float) -> float | None:
        """Earliest future time at which a queued job becomes due (None: none waits)."""

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
        group: GroupSummary | None = None,
    ) -> bool:
        """Conditionally move a job (and queue its receipt); False if it was not in `expected`
        (or, with `owner`, no longer leased by that claim).

        With `group` the mail's receipts are grouped: when this move leaves every job of the
        mail final, `group.summary` is queued in this transaction (once per mail), or
        SummaryOutdated raised if the other jobs are no longer `group.others`; `receipt` is
        queued only if the summary was queued before (a job retried after it)."""

    async def note_job(
        self, job_id: str, state: JobState, now: float, detail: str, values: Mapping[str, Any]
    ) -> bool:
        """Record a finding in the history of a job still in `state` (a row from `state` to
        itself), setting `values` but not its `updated_at`; False if it has moved on."""

    async def renew_lease(self, job_id: str, owner: str, until: float) -> bool:
        """Extend a claim's lease; False if the claim was lost."""

    async def release_uploads(self, owner_prefix: str, now: float) -> int:
        """Put the jobs still uploading under claims `<owner_prefix>:...` back in the queue,
        due now (nothing of theirs was sent); returns how many."""

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

    async def next_receipt_due(self, now: float) -> float | None:
        """Earliest future time at which a pending receipt becomes due (None: none waits)."""

    async def faxplus_facts(self) -> dict[str, Any]:
        """What `doctor --live-test` learnt of the FAX.PLUS account ({} before it ran)."""

    async def learn_faxplus_facts(self, facts: Mapping[str, Any], now: float) -> None:
        """Record facts (JSON values) of the FAX.PLUS account, replacing older ones."""

    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be reached."""

    async def close(self) -> None: ...

    async def job_events(self, job_id: str) -> list[tuple[float, str | None, str, str]]:
        """The job's history as (at, from state, to state, detail), oldest first."""

    async def job_stats(self) -> JobStats: ...

    async def list_jobs(
        self, state: JobState | None, since: float | None, sender: str, limit: int
    ) -> list[JobSummary]:
        """Newest first; `sender` matches part of the envelope sender, ignoring case."""

    async def receipt_of(self, job_id: str) -> ReceiptRecord | None: ...

    async def minimal_receipts(self, since: float) -> int:
        """How many receipts queued since `since` were minimal ones (MINIMAL_RECEIPT_PREFIX)."""

    async def expedite_job(self, job_id: str, now: float, detail: str) -> bool:
        """Make a queued job due now; False if it is not queued."""

    async def requeue_as_new_job(
        self, job_id: str, new_job_id: str, now: float, detail: str
    ) -> Job | None:
        """A new queued job for a final job's message and number (None if it is not final);
        both jobs' histories record the link."""

    async def jobs_of_message(self, message_id: str) -> list[Job]:
        """Every job of one mail (one per recipient, and any retries), oldest first."""

    async def jobs_awaiting_delay_notice(self, created_before: float, limit: int) -> list[Job]:
        """Jobs not final yet, accepted before `created_before`, with no delay notice decided
        (queued or skipped), oldest first."""

    async def queue_receipt(
        self, message_id: str, job_id: str | None, receipt: NewReceipt, now: float
    ) -> bool:
        """Queue a receipt on its own (a delay notice); False when the job (or, with no job,
        the mail) already has a receipt of this kind."""

    async def skip_receipt(
        self, message_id: str, job_id: str | None, kind: str, reason: str, now: float
    ) -> bool:
        """Record that a receipt of this kind is not sent, and why; False if one was decided."""
