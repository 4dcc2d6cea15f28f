"""Ends a job: its final state and its receipt (or its mail's group summary), queued together
in one transaction, after fetching what the receipt attaches."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from mailfax.faxplus import ApiError, FaxApi
from mailfax.jobs import TERMINAL, Job, JobState
from mailfax.logs import log_event
from mailfax.mail.headers import GENERATED_POLICY, GENERATED_UTF8_POLICY
from mailfax.metrics import RECEIPTS_MINIMAL
from mailfax.receipts.compose import FaxOutcome, ReceiptComposer
from mailfax.receipts.fields import (
    NO_ATTACHMENTS,
    Attachments,
    ConfirmationReport,
    outcome_of,
    result_words,
)
from mailfax.receipts.policy import why_no_receipt
from mailfax.receipts.thumbnail import ThumbnailError, first_page_png
from mailfax.store import (
    MINIMAL_RECEIPT_PREFIX,
    GroupSummary,
    MessageRecord,
    NewReceipt,
    Store,
    SummaryOutdated,
)
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.jobs")

# A slow FAX.PLUS must not hold the result back: the receipt then goes without the report.
REPORT_TIMEOUT = 20.0
# Tries at a group summary outdated by other jobs finishing meanwhile; after that the
# SummaryOutdated (a StoreUnavailable) leaves the job to be finished on a later pass.
SUMMARY_ATTEMPTS = 5


def new_receipt(
    message: MessageRecord, receipt: EmailMessage, kind: str, id_prefix: str = ""
) -> NewReceipt:
    # An internationalised address (RFC 6531) cannot be written as RFC 2047 words: such a
    # receipt has UTF-8 headers (RFC 6532), and goes out with SMTPUTF8.
    policy = GENERATED_POLICY if message.mail_from.isascii() else GENERATED_UTF8_POLICY
    content = receipt.as_bytes(policy=policy)
    return NewReceipt(id_prefix + secrets.token_hex(10), message.mail_from, content, kind)


def receipt_or_minimal(
    composer: ReceiptComposer,
    kind: str,
    message: MessageRecord,
    compose: Callable[[], EmailMessage],
    results: Sequence[tuple[str, str, str]],
    now: float,
) -> NewReceipt | None:
    """The receipt `compose` makes, or when composing (or writing) it fails, the composer's
    minimal one about `results` (job id, number, result), with an alert for the operator:
    a receipt.compose_failed log line, the mailfax_receipts_minimal metric, and its id (which
    `mailfax doctor` counts) starting with MINIMAL_RECEIPT_PREFIX. None only if even the
    minimal one fails."""
    try:
        return new_receipt(message, compose(), kind)
    except Exception as exc:
        log.exception(
            "receipt.compose_failed",
            extra={"queue_id": message.id, "kind": kind, "jobs": ",".join(r[0] for r in results)},
        )
        RECEIPTS_MINIMAL.inc()
        problem = exc
    try:
        minimal = composer.compose_minimal(kind, message, results, now)
        return new_receipt(message, minimal, kind, MINIMAL_RECEIPT_PREFIX)
    except Exception:
        log.exception("receipt.none", extra={"queue_id": message.id, "first": repr(problem)})
        return None


def _recorded(outcome: FaxOutcome) -> dict[str, Any]:
    """What a final job records of its outcome (the receipts are composed from it)."""
    fields: dict[str, Any] = {
        "fax_status": outcome.status,
        "pages_sent": outcome.pages_sent,
        "fax_start_time": outcome.start_time or None,
        "fax_duration": outcome.duration,
        "fax_cost": outcome.cost,
    }
    if outcome.detail:
        fields["error"] = outcome.detail
    return fields


@dataclass(frozen=True)
class _Ending:
    """A job about to become final: what the move sets, for the receipts that tell of it."""

    job: Job
    outcome: FaxOutcome
    state: JobState
    fields: Mapping[str, Any]
    now: float

    def final(self, row: Job) -> Job:
        """The job's row (as read before the move) as the move leaves it."""
        return dataclasses.replace(
            row, state=self.state, updated_at=self.now, lease_owner=None, **self.fields
        )


class JobFinisher:
    """Moves a job to DELIVERED or FAILED and queues the sender's receipt atomically.

    `api` is where confirmation reports come from; without one none is attached."""

    def __init__(
        self,
        store: Store,
        composer: ReceiptComposer,
        receipts_wakeup: Wakeup,
        api: FaxApi | None = None,
    ) -> None:
        self._store = store
        self._composer = composer
        self._receipts_wakeup = receipts_wakeup
        self._api = api

    async def finish(
        self,
        job: Job,
        expected: JobState,
        outcome: FaxOutcome,
        now: float,
        owner: str | None = None,
        final: JobState | None = None,
    ) -> bool:
        """False when the job was no longer in `expected` (someone else finished it).

        `final` defaults to DELIVERED or FAILED by the outcome (CANCELLED: an operator's)."""
        message = await self._store.message(job.message_id)
        new = final or (JobState.DELIVERED if outcome.delivered else JobState.FAILED)
        fields = _recorded(outcome)
        ending = _Ending(job, outcome, new, fields, now)
        for attempt in range(1, SUMMARY_ATTEMPTS + 1):
            receipt: NewReceipt | None = None
            group: GroupSummary | None = None
            if message is not None and not why_no_receipt(message):
                receipt, group = await self._receipts(ending, message)
            try:
                done = await self._store.transition(
                    job.id,
                    expected,
                    new,
                    now,
                    fields,
                    receipt,
                    detail=outcome.detail or outcome.status,
                    owner=owner,
                    group=group,
                )
            except SummaryOutdated:
                # Another job of the mail finished meanwhile: the summary is composed again.
                if attempt == SUMMARY_ATTEMPTS:
                    raise
                continue
            break
        if done:
            log_event(
                log,
                "job.final",
                job=job.id,
                state=new.value,
                status=outcome.status,
                fax_id=outcome.fax_id or "",
                receipt="group" if group else receipt.id if receipt else "none",
            )
            self._receipts_wakeup.set()
        return done

    async def _receipts(
        self, ending: _Ending, message: MessageRecord
    ) -> tuple[NewReceipt | None, GroupSummary | None]:
        """The job's own receipt, and with [receipts] group the mail's summary if this job is
        the last to become final (composed here, before the transaction that queues it)."""
        policy = self._composer.policy
        job, outcome, now = ending.job, ending.outcome, ending.now
        everyone: list[Job] = []
        if policy.group:
            everyone = await self._store.jobs_of_message(message.id)
        others = tuple(j for j in everyone if j.id != job.id)
        last = all(other.state in TERMINAL for other in others)
        # Not the last recipient: no summary now, so nothing to fetch for one.
        faxes = [(outcome.fax_id, outcome.delivered)] if last else []
        faxes += [(other.fax_id, other.state is JobState.DELIVERED) for other in others]
        wanted = policy.wants_final(message, outcome.delivered)
        attachments = await self.attachments(message, faxes) if faxes else NO_ATTACHMENTS
        receipt = None
        if wanted:
            receipt = receipt_or_minimal(
                self._composer,
                "final",
                message,
                lambda: self._composer.compose(job, message, outcome, now, attachments),
                [(job.id, job.number, result_words(job, outcome))],
                now,
            )
        if not policy.group:
            return receipt, None
        if not last:
            return receipt, GroupSummary(others, None)
        # The mail's jobs as the store will hold them once this one is final.
        jobs = [ending.final(j) if j.id == job.id else j for j in everyone]
        return receipt, GroupSummary(others, self._summary(message, jobs, now, attachments))

    def _summary(
        self, message: MessageRecord, jobs: Sequence[Job], now: float, attachments: Attachments
    ) -> NewReceipt | None:
        """The group summary of a mail whose jobs are all final, if one is wanted."""
        if not self._composer.policy.wants_group_summary(message, jobs):
            return None
        return receipt_or_minimal(
            self._composer,
            "group",
            message,
            lambda: self._composer.compose_group(jobs, message, now, attachments),
            [(j.id, j.number, result_words(j, outcome_of(j))) for j in jobs],
            now,
        )

    async def preview(
        self, job: Job, message: MessageRecord, kind: str, now: float
    ) -> EmailMessage:
        """The receipt of `kind` the job would get now, made as `finish` makes it (reports
        fetched, thumbnail rendered); nothing is queued. Raises ValueError when the job (or,
        for a group summary, its mail) is not final yet."""
        if kind == "accepted":
            jobs = await self._store.jobs_of_message(message.id)
            return self._composer.compose_accepted(message, [(j.id, j.number) for j in jobs], now)
        if kind == "delayed":
            return self._composer.compose_delayed(job, message, now)
        jobs = await self._store.jobs_of_message(message.id) if kind == "group" else [job]
        unfinished = [j.id for j in jobs if j.state not in TERMINAL]
        if unfinished:
            raise ValueError(f"job {', '.join(unfinished)} is not final yet: no {kind} receipt")
        faxes = [(j.fax_id, j.state is JobState.DELIVERED) for j in jobs]
        attachments = await self.attachments(message, faxes)
        if kind == "group":
            return self._composer.compose_group(jobs, message, now, attachments)
        return self._composer.compose(job, message, outcome_of(job), now, attachments)

    async def attachments(
        self, message: MessageRecord, faxes: Sequence[tuple[str | None, bool]]
    ) -> Attachments:
        """The confirmation reports of the delivered faxes among (fax id, delivered), and the
        first page's thumbnail, as the settings ask; what cannot be had is left out."""
        policy = self._composer.policy
        reports: dict[str, ConfirmationReport] = {}
        if policy.attach_report and self._api is not None:
            for fax_id, delivered in faxes:
                if fax_id and delivered:
                    reports[fax_id] = await self._report(fax_id)
        thumbnail = None
        if policy.attach_thumbnail:
            thumbnail = await self._thumbnail(message)
        return Attachments(reports, thumbnail)

    async def _report(self, fax_id: str) -> ConfirmationReport:
        assert self._api is not None
        try:
            async with asyncio.timeout(REPORT_TIMEOUT):
                return ConfirmationReport(fax_id, await self._api.get_report(fax_id))
        except (ApiError, TimeoutError) as exc:
            problem = str(exc) or "no answer in time"
            log_event(log, "receipt.no_report", logging.WARNING, fax_id=fax_id, error=problem)
            return ConfirmationReport(fax_id, None, f"FAX.PLUS did not provide it ({problem})")

    async def _thumbnail(self, message: MessageRecord) -> bytes | None:
        documents = await self._store.documents(message.id)
        if not documents:
            return None
        try:
            return await asyncio.to_thread(first_page_png, documents[0].data)
        except ThumbnailError as exc:
            log_event(
                log, "receipt.no_thumbnail", logging.WARNING, queue_id=message.id, error=str(exc)
            )
            return None
