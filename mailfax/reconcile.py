"""Reconciler: settles jobs whose fate is unclear (dead workers, lost send answers, silent
webhooks, expiry), always by what FAX.PLUS demonstrably has."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mailfax.config import FaxplusSettings, QueueSettings
from mailfax.fax_identity import LostSend, Verdict, settle_lost_send
from mailfax.faxplus import (
    ApiError,
    FaxApi,
    FaxRecord,
    TransientApiError,
    parse_api_time,
)
from mailfax.finish import JobFinisher
from mailfax.jobs import Job, JobState
from mailfax.logs import log_event
from mailfax.receipts.compose import FaxOutcome
from mailfax.receipts.notices import DelayNotices
from mailfax.store import Store
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.reconcile")

Clock = Callable[[], float]

INTERVAL = 1.0
# Our clock against FAX.PLUS's: how far apart a send and its fax record's submit time may be.
CLOCK_SKEW = 120.0
BATCH = 50


def submitted_time(fax: FaxRecord) -> float:
    """When FAX.PLUS says the fax was submitted (epoch seconds; 0 when it does not say)."""
    return parse_api_time(fax.submit_time or fax.start_time) or 0.0


def attempt_window(job: Job) -> float:
    """The earliest submit time a fax record of the job's last send attempt can carry."""
    return (job.submitted_at or job.created_at) - CLOCK_SKEW


class Reconciler:
    """Periodic work; each pass is idempotent, so running it on several workers is safe."""

    def __init__(
        self,
        store: Store,
        api: FaxApi,
        finisher: JobFinisher,
        queue: QueueSettings,
        faxplus: FaxplusSettings,
        clock: Clock,
        jobs_wakeup: Wakeup,
        webhook_wakeup: Wakeup,
        delay_notices: DelayNotices | None = None,
    ) -> None:
        self._delay_notices = delay_notices
        self._store = store
        self._api = api
        self._finisher = finisher
        self._queue = queue
        self._faxplus = faxplus
        self._clock = clock
        self._jobs_wakeup = jobs_wakeup
        self._webhook_wakeup = webhook_wakeup
        self._quiet_until = 0.0

    async def step(self) -> float | None:
        await self._recover()
        await self._expire()
        await self._reconcile_unknown()
        await self._poll_silent()
        if self._delay_notices is not None:
            await self._delay_notices.step(self._clock())
        return INTERVAL

    async def _recover(self) -> None:
        """Jobs of dead workers: uploads go back to the queue, sends to reconciliation."""
        for job, old in await self._store.recover_expired(self._clock()):
            log_event(
                log,
                "job.recovered",
                logging.WARNING,
                job=job.id,
                old=old.value,
                new=job.state.value,
                recoveries=job.recoveries,
            )
            if job.state is JobState.QUEUED and job.recoveries >= self._queue.max_recoveries:
                await self._quarantine(job)
            self._jobs_wakeup.set()

    async def _quarantine(self, job: Job) -> None:
        detail = (
            f"mailfax stopped while handling this fax {job.recoveries} times; "
            "it was put aside so it cannot stop the gateway again"
        )
        outcome = FaxOutcome(False, "quarantined", job.fax_id, 0, detail=detail)
        await self._finisher.finish(job, job.state, outcome, self._clock())

    async def _expire(self) -> None:
        cutoff = self._clock() - self._queue.max_lifetime
        # Not UNKNOWN: its fax may have gone out, so "not sent" could be false; an undecided
        # send waits for the operator (doctor and the undecided gauge say so).
        states = (JobState.QUEUED, JobState.SUBMITTED)
        for job in await self._store.jobs_created_before(states, cutoff, BATCH):
            days = self._queue.max_lifetime / 86400
            detail = f"the fax was not sent within {days:g} days ({job.error or 'no result'})"
            outcome = FaxOutcome(False, "expired", job.fax_id, None, detail=detail)
            await self._finisher.finish(job, job.state, outcome, self._clock())

    async def _reconcile_unknown(self) -> None:
        now = self._clock()
        if now < self._quiet_until:
            return  # FAX.PLUS asked for a pause (429 Retry-After)
        unknown = await self._store.jobs_in_state(
            JobState.UNKNOWN, now - self._queue.reconcile_after, BATCH
        )
        try:
            await self.settle_unknown(unknown)
        except ApiError as exc:
            retry_after = exc.retry_after if isinstance(exc, TransientApiError) else None
            self._quiet_until = now + (retry_after or 0.0)
            log_event(
                log,
                "reconcile.api_error",
                logging.WARNING,
                error=str(exc),
                retry_after=retry_after or 0,
            )

    async def settle_unknown(self, unknown: list[Job]) -> None:
        """A send whose answer was lost: adopt the fax that proves to be its own, resend only
        when FAX.PLUS has none that could be, and otherwise leave it for the operator.

        Raises ApiError, having changed nothing, when FAX.PLUS cannot be asked."""
        if not unknown:
            return
        # The outbox first: a fax leaving it between the two calls is then in the list of
        # sent faxes; the other order could miss it in both.
        outbox = await self._api.list_outbox()
        since = min(attempt_window(job) for job in unknown)
        listing = await self._api.list_sent_faxes(since)
        sent, crowded = listing.faxes, listing.unlisted_seconds
        if crowded:
            sent += await self._faxes_of_parked_webhooks({fax.id for fax in sent})
        outbox_tags = {tag for record in outbox for tag in record.tags}
        taken = await self._store.fax_ids_in_use([fax.id for fax in sent])
        submitted = {fax.id: submitted_time(fax) for fax in sent}
        for job in unknown:
            lost = LostSend(job.id, job.number, attempt_window(job))
            settlement = settle_lost_send(lost, sent, submitted, outbox_tags, taken, crowded)
            if settlement.verdict is Verdict.ADOPT and settlement.fax_id:
                taken.add(settlement.fax_id)
                await self.adopt(job, settlement.fax_id, settlement.reason)
            elif settlement.verdict is Verdict.UNDECIDED:
                await self._leave_undecided(job, settlement.reason)
            elif settlement.verdict is Verdict.RESEND:
                if job.recoveries >= self._queue.max_recoveries:
                    await self._quarantine(job)
                else:
                    await self.resend(job, settlement.reason)

    async def _leave_undecided(self, job: Job, reason: str) -> None:
        """Neither adopted nor resent: noted once in the job's history, counted by the
        `mailfax_jobs_undecided_oldest_age_seconds` gauge and `doctor`, settled by the operator
        or by proof that comes later (a pass runs every second)."""
        detail = f"undecided: {reason}"
        if job.error != detail and await self._store.note_job(
            job.id, JobState.UNKNOWN, self._clock(), detail, {"error": detail}
        ):
            log_event(log, "reconcile.undecided", logging.WARNING, job=job.id, reason=reason)

    async def resend(self, job: Job, detail: str) -> bool:
        """Queue an unknown job to be sent again (FAX.PLUS has no fax of it, or the operator
        says so)."""
        if await self._store.transition(
            job.id,
            JobState.UNKNOWN,
            JobState.QUEUED,
            self._clock(),
            {"run_at": self._clock(), "error": None},
            detail=detail,
        ):
            log_event(log, "job.resend", job=job.id)
            self._jobs_wakeup.set()
            return True
        return False

    async def _faxes_of_parked_webhooks(self, listed: set[str]) -> list[FaxRecord]:
        """Faxes whose webhook came but which no job has: sends whose answer was lost, found
        even where the listing could not show them (only needed when it may not have)."""
        events = await self._store.due_fax_events(float("inf"), BATCH)
        unlisted = {event.fax_id for event in events} - listed
        records = []
        for fax_id in unlisted - await self._store.fax_ids_in_use(list(unlisted)):
            try:
                records.append(await self._api.get_fax(fax_id))
            except ApiError:
                # Forged or mistaken (404), or FAX.PLUS failing this time: a job this fax would
                # have settled lies in a crowded window, so it stays undecided until a later pass.
                continue
        return records

    async def adopt(self, job: Job, fax_id: str, detail: str) -> bool:
        """An unknown job takes FAX.PLUS fax `fax_id` as its own send (proven, or the
        operator's word); the fax's result then finishes it as if its send had answered."""
        now = self._clock()
        if not await self._store.transition(
            job.id, JobState.UNKNOWN, JobState.SUBMITTED, now, {"fax_id": fax_id}, detail=detail
        ):
            return False
        log_event(log, "job.adopted", job=job.id, fax_id=fax_id)
        await self._store.wake_fax_events(fax_id, now)
        await self._store.park_fax_event(fax_id, "reconcile", "", now)
        self._webhook_wakeup.set()
        return True

    async def _poll_silent(self) -> None:
        """Webhooks may never come: ask FAX.PLUS about faxes silent for webhook_grace."""
        now = self._clock()
        silent = await self._store.jobs_in_state(
            JobState.SUBMITTED, now - self._faxplus.webhook_grace, BATCH
        )
        for job in silent:
            # Deduplicated: while this poll is pending (with its own backoff), no second one.
            if job.fax_id and await self._store.park_fax_event(job.fax_id, "backstop", "", now):
                log_event(log, "job.polled", job=job.id, fax_id=job.fax_id)
                self._webhook_wakeup.set()
