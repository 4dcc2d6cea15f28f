"""Operator actions on jobs (list, show, retry, cancel) over the store and the FAX.PLUS API."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mailfax.fax_identity import digits, job_tag, proven_jobs
from mailfax.faxplus import ApiError, FaxRecord, NotFoundApiError, OutboxRecord
from mailfax.finish import JobFinisher
from mailfax.jobs import TERMINAL, Job, JobState, new_id
from mailfax.logs import log_event
from mailfax.receipts.compose import FaxOutcome
from mailfax.receipts.fields import plural
from mailfax.receipts.reasons import operator_cancellation
from mailfax.reconcile import Reconciler
from mailfax.store import JobSummary, MessageRecord, ReceiptRecord, Store

log = logging.getLogger("mailfax.operations")

Clock = Callable[[], float]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class OperationRefused(Exception):
    """The action does not fit the job as it is now; the message says why and what to do."""


class OutboxApi(Protocol):
    """What cancelling and settling a lost send need of FAX.PLUS."""

    async def list_outbox(self) -> list[OutboxRecord]: ...

    async def delete_outbox(self, outbox_id: str) -> None: ...

    async def get_fax(self, fax_id: str) -> FaxRecord: ...


@dataclass(frozen=True)
class JobDetail:
    """Everything known about one job: for `mailfax jobs show` and the status page."""

    job: Job
    message: MessageRecord | None
    history: list[tuple[float, str | None, str, str]]
    receipt: ReceiptRecord | None

    @property
    def pages(self) -> int:
        report = self.message.report if self.message else ()
        return sum(part.pages or 0 for part in report if part.is_faxed)


async def job_detail(store: Store, job_id: str) -> JobDetail | None:
    job = await store.get_job(job_id)
    if job is None:
        return None
    return JobDetail(
        job,
        await store.message(job.message_id),
        await store.job_events(job_id),
        await store.receipt_of(job_id),
    )


def parse_since(text: str, now: float) -> float:
    """Epoch seconds of `--since`: a duration ago ("90s", "30m", "2h", "7d"), or an ISO 8601
    date or date and time (UTC unless it carries an offset)."""
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _SECONDS[match.group(2).lower()]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 2h, 7d) nor a date (2024-05-01T08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso_time(epoch: float | None) -> str:
    """UTC, to the second: "2024-05-01T08:00:00Z" ("" for no time)."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(seconds: float) -> str:
    """A short human age: "45s", "12m", "3h 5m", "2d 4h"."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def summary_json(summary: JobSummary, now: float) -> dict[str, Any]:
    """One `mailfax jobs list --json` entry."""
    job = summary.job
    return {
        "id": job.id,
        "state": job.state.value,
        "number": job.number,
        "sender": summary.mail_from,
        "subject": summary.subject,
        "pages": summary.pages,
        "created_at": iso_time(job.created_at),
        "age_seconds": round(now - job.created_at, 1),
        "attempts": job.attempts,
        "fax_id": job.fax_id,
        "fax_status": job.fax_status,
        "error": job.error,
    }


def detail_json(detail: JobDetail) -> dict[str, Any]:
    """The `mailfax jobs show --json` object."""
    job, message, receipt = detail.job, detail.message, detail.receipt
    return {
        "id": job.id,
        "state": job.state.value,
        "number": job.number,
        "created_at": iso_time(job.created_at),
        "updated_at": iso_time(job.updated_at),
        "next_attempt_at": iso_time(job.run_at) if job.state is JobState.QUEUED else "",
        "attempts": job.attempts,
        "redials": job.redials,
        "recoveries": job.recoveries,
        "pages": detail.pages,
        "pages_sent": job.pages_sent,
        "error": job.error,
        "faxplus": {
            "fax_id": job.fax_id,
            "fax_status": job.fax_status,
            "tag": job_tag(job.id),
            "uploaded_files": list(job.uploaded),
            "last_send_at": iso_time(job.submitted_at),
        },
        "message": None
        if message is None
        else {
            "queue_id": message.id,
            "received_at": iso_time(message.received_at),
            "sender": message.mail_from,
            "sender_name": message.sender_name,
            "subject": message.subject,
            "message_id": message.header_message_id,
            "comment": message.comment,
            "parts": [asdict(part) for part in message.report],
        },
        "history": [
            {"at": iso_time(at), "from": old, "to": new, "detail": text}
            for at, old, new, text in detail.history
        ],
        "receipt": None
        if receipt is None
        else {
            "id": receipt.id,
            "state": receipt.state,
            "recipient": receipt.recipient,
            "attempts": receipt.attempts,
            "created_at": iso_time(receipt.created_at),
            "sent_at": iso_time(receipt.sent_at),
            "error": receipt.error,
        },
    }


class JobOperator:
    """`jobs retry` and `jobs cancel`: each a conditional change, safe beside running workers."""

    def __init__(
        self,
        store: Store,
        api: OutboxApi,
        finisher: JobFinisher,
        reconciler: Reconciler,
        clock: Clock,
    ) -> None:
        self._store = store
        self._api = api
        self._finisher = finisher
        self._reconciler = reconciler
        self._clock = clock

    async def _job(self, job_id: str) -> Job:
        job = await self._store.get_job(job_id)
        if job is None:
            raise OperationRefused(f"no job {job_id}. Fix: `mailfax jobs list` shows the job ids")
        return job

    async def retry(self, job_id: str, resend_delivered: bool = False) -> str:
        """Move the job on now, by state; returns what was done, in a sentence.

        queued: due now; submitted: ask FAX.PLUS for the result now; unknown: reconcile now
        (adopt the fax FAX.PLUS has, resend only if it has none); failed or cancelled (or
        delivered, with `resend_delivered`): a new job faxes the same mail to the same number.
        """
        job = await self._job(job_id)
        now = self._clock()
        if job.state is JobState.QUEUED:
            if not await self._store.expedite_job(job.id, now, "operator: run now"):
                raise OperationRefused(f"job {job.id} has just moved on; look again")
            log_event(log, "job.expedited", job=job.id)
            return f"job {job.id} is due now (it was waiting until {iso_time(job.run_at)})"
        if job.state is JobState.SUBMITTED and job.fax_id:
            await self._store.park_fax_event(job.fax_id, "operator", "", now)
            log_event(log, "job.polled", job=job.id, fax_id=job.fax_id)
            return f"job {job.id}: FAX.PLUS is asked for the result of fax {job.fax_id} now"
        if job.state is JobState.UNKNOWN:
            return await self._settle(job)
        if job.state in TERMINAL:
            return await self._requeue(job, resend_delivered)
        raise OperationRefused(
            f"job {job.id} is being sent right now ({job.state.value}); there is nothing to retry"
        )

    async def decide_lost_send(self, job_id: str, adopt: str | None, resend: bool) -> str:
        """The operator settles a lost send the reconciler could not: it was sent as FAX.PLUS
        fax `adopt`, or (`resend`) it was not sent. Recorded in the job's history; the sender
        hears the outcome once the fax has one."""
        job = await self._job(job_id)
        if job.state is not JobState.UNKNOWN:
            raise OperationRefused(
                f"job {job.id} is {job.state.value}: --adopt and --resend settle only a lost "
                f"send (unknown). Fix: run `mailfax jobs retry {job.id}` without them"
            )
        if adopt:
            fax = await self._checked_fax(job, adopt)
            if not await self._reconciler.adopt(job, fax.id, f"operator: sent as fax {fax.id}"):
                raise OperationRefused(f"job {job.id} has just moved on; look again")
            return (
                f"job {job.id}: adopted FAX.PLUS fax {fax.id}; its result finishes the job and "
                "the sender gets the receipt"
            )
        if not resend:
            raise OperationRefused("say which: --adopt FAX_ID or --resend")
        if not await self._reconciler.resend(job, "operator: not sent; sending again"):
            raise OperationRefused(f"job {job.id} has just moved on; look again")
        return f"job {job.id} is queued to be sent again"

    async def _checked_fax(self, job: Job, fax_id: str) -> FaxRecord:
        """FAX.PLUS's record of `fax_id`, if it can be this job's send."""
        try:
            fax = await self._api.get_fax(fax_id)
        except NotFoundApiError as exc:
            raise OperationRefused(
                f"FAX.PLUS has no fax {fax_id}. Fix: copy the id from the account's sent faxes"
            ) from exc
        except ApiError as exc:
            raise OperationRefused(
                f"cannot ask FAX.PLUS about fax {fax_id}: {exc}. Fix: check the API with "
                "`mailfax doctor`, then try again"
            ) from exc
        if digits(fax.to) != digits(job.number):
            raise OperationRefused(
                f"fax {fax_id} went to {fax.to}, not to job {job.id}'s number {job.number}"
            )
        others = proven_jobs(fax) - {job.id}
        holder = await self._store.job_by_fax_id(fax.id)
        if holder is not None and holder.id != job.id:
            others.add(holder.id)
        if others:
            raise OperationRefused(
                f"fax {fax_id} is the send of job {', '.join(sorted(others))}, not of job {job.id}"
            )
        return fax

    async def _settle(self, job: Job) -> str:
        try:
            await self._reconciler.settle_unknown([job])
        except ApiError as exc:
            raise OperationRefused(
                f"cannot ask FAX.PLUS about job {job.id}: {exc}. Fix: check the API with "
                "`mailfax doctor`; the gateway keeps trying on its own"
            ) from exc
        after = await self._job(job.id)
        log_event(log, "job.reconciled", job=job.id, state=after.state.value)
        if after.state is JobState.SUBMITTED:
            return f"job {job.id}: found at FAX.PLUS as fax {after.fax_id}; waiting for its result"
        if after.state is JobState.QUEUED:
            return f"job {job.id}: FAX.PLUS does not have this fax; it is queued to be sent again"
        if after.state is JobState.UNKNOWN and after.error and after.error.startswith("undecided"):
            return (
                f"job {job.id}: {after.error}. Fix: find its fax in FAX.PLUS's sent faxes, then "
                f"`mailfax jobs retry {job.id} --adopt FAX_ID`, or `--resend` if it was not sent"
            )
        if after.state is JobState.UNKNOWN:
            return f"job {job.id}: FAX.PLUS still holds the fax in its outbox; it will settle"
        return f"job {job.id} is now {after.state.value}"

    async def _requeue(self, job: Job, resend_delivered: bool) -> str:
        if job.state is JobState.DELIVERED and not resend_delivered:
            raise OperationRefused(
                f"job {job.id} was delivered; retrying would fax it again. "
                "Fix: add --resend-delivered if the recipient needs it again"
            )
        now = self._clock()
        new = await self._store.requeue_as_new_job(job.id, new_id(now), now, "by the operator")
        if new is None:
            raise OperationRefused(f"job {job.id} has just changed; look again")
        log_event(log, "job.retried", job=new.id, original=job.id, number=new.number)
        return (
            f"job {job.id} stays {job.state.value}; new job {new.id} faxes the same mail to "
            f"{new.number} (with its own receipt)"
        )

    async def cancel(self, job_id: str, reason: str = "") -> str:
        """Cancel a job not yet sent, taking it out of the FAX.PLUS outbox if it is there;
        the sender gets a receipt saying so."""
        job = await self._job(job_id)
        if job.state in TERMINAL:
            raise OperationRefused(f"job {job.id} is already {job.state.value}")
        if job.state in (JobState.SUBMITTING, JobState.UNKNOWN):
            raise OperationRefused(
                f"job {job.id} is {job.state.value}: FAX.PLUS may or may not have it yet. "
                f"Fix: run `mailfax jobs retry {job.id}` to settle it, then cancel"
            )
        removed = ""
        if job.state is JobState.SUBMITTED:
            removed = await self._take_out_of_outbox(job)
        detail = operator_cancellation(reason)
        outcome = FaxOutcome(False, "cancelled", job.fax_id, 0, detail=detail)
        if not await self._finisher.finish(
            job, job.state, outcome, self._clock(), final=JobState.CANCELLED
        ):
            after = await self._job(job.id)
            raise OperationRefused(
                f"job {job.id} moved on to {after.state.value} meanwhile; look again"
            )
        log_event(log, "job.cancelled", job=job.id, reason=reason, outbox=removed or "-")
        where = f" and deleted from the FAX.PLUS outbox ({removed})" if removed else ""
        return f"job {job.id} cancelled{where}; the sender gets a receipt saying so"

    async def _take_out_of_outbox(self, job: Job) -> str:
        tag = job_tag(job.id)
        try:
            entries = [e for e in await self._api.list_outbox() if tag in e.tags]
            for entry in entries:
                await self._api.delete_outbox(entry.id)
        except NotFoundApiError:
            entries = []
        except ApiError as exc:
            raise OperationRefused(
                f"cannot reach the FAX.PLUS outbox: {exc}. Fix: check the API with "
                "`mailfax doctor`, then try again"
            ) from exc
        if not entries:
            raise OperationRefused(
                f"fax {job.fax_id} of job {job.id} has left the FAX.PLUS outbox: it is being "
                "sent or has been, and can no longer be cancelled"
            )
        return ", ".join(entry.id for entry in entries)


def job_lines(summaries: Sequence[JobSummary], now: float) -> list[str]:
    """`mailfax jobs list` as aligned text, newest first."""
    header = f"{'JOB':<21}  {'STATE':<10}  {'NUMBER':<16}  {'PAGES':>5}  {'AGE':>7}  SENDER"
    lines = [header]
    for summary in summaries:
        job = summary.job
        lines.append(
            f"{job.id:<21}  {job.state.value:<10}  {job.number:<16}  {summary.pages:>5}  "
            f"{age(now - job.created_at):>7}  {summary.mail_from or '<>'}"
        )
    return lines


def detail_lines(detail: JobDetail) -> list[str]:
    """`mailfax jobs show` as text."""
    job, message, receipt = detail.job, detail.message, detail.receipt
    lines = [
        f"Job:       {job.id}",
        f"State:     {job.state.value}",
        f"Number:    {job.number}",
        f"Created:   {iso_time(job.created_at)}",
        f"Attempts:  {job.attempts} (redials {job.redials}, recoveries {job.recoveries})",
    ]
    if job.state is JobState.QUEUED:
        lines.append(f"Next try:  {iso_time(job.run_at)}")
    if job.error:
        lines.append(f"Error:     {job.error}")
    lines += [
        "FAX.PLUS:",
        f"  fax id     {job.fax_id or '-'}",
        f"  status     {job.fax_status or '-'}",
        f"  tag        {job_tag(job.id)}",
        f"  files      {', '.join(job.uploaded) or '-'}",
    ]
    if message is not None:
        lines += [
            "Mail:",
            f"  queue id   {message.id}",
            f"  received   {iso_time(message.received_at)}",
            f"  from       {message.mail_from or '<>'}",
            f"  subject    {message.subject or '-'}",
            "Extraction:",
        ]
        for part in message.report:
            pages = f"{part.pages} p." if part.pages is not None else "-"
            lines.append(f"  {part.action:<10} {part.name}  ({part.content_type}, {pages})")
            lines.append(f"  {'':<10} {part.reason}")
    lines.append("History:")
    for at, old, new, text in detail.history:
        move = f"{old} -> {new}" if old else new
        lines.append(f"  {iso_time(at)}  {move:<24} {text}".rstrip())
    if receipt is None:
        lines.append("Receipt:   none (not final yet, or the sender gets none)")
    else:
        sent = f", sent {iso_time(receipt.sent_at)}" if receipt.sent_at else ""
        error = f", last error: {receipt.error}" if receipt.error else ""
        lines.append(
            f"Receipt:   {receipt.state} to {receipt.recipient} "
            f"({plural(receipt.attempts, 'attempt')}{sent}{error})"
        )
    return lines
