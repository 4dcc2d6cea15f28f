"""Dispatcher: claims queued jobs, uploads their documents and sends them through FAX.PLUS."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable

from mailfax.config import QueueSettings
from mailfax.fax_identity import comment_with_marker, job_tag, upload_name
from mailfax.faxplus import (
    LIST_PAGE,
    AmbiguousApiError,
    FaxApi,
    PermanentApiError,
    TransientApiError,
)
from mailfax.finish import JobFinisher
from mailfax.jobs import Job, JobState, retry_delay
from mailfax.logs import log_event
from mailfax.policy import format_for_humans
from mailfax.receipts.compose import FaxOutcome
from mailfax.store import MessageRecord, Store, StoreUnavailable
from mailfax.worker import Heartbeat, Wakeup, isolated

log = logging.getLogger("mailfax.dispatch")

Clock = Callable[[], float]

# Sends are I/O-bound waits on FAX.PLUS: enough in flight that a burst does not queue.
MAX_CONCURRENT_JOBS = 16
# FAX.PLUS lists sent faxes by whole seconds, a page of LIST_PAGE at a time: of a second with
# more, some cannot be listed, and a send whose answer was lost could then not be found (the
# reconciler would have to leave it undecided). Fewer sends a second keep every one findable.
SENDS_PER_SECOND = LIST_PAGE * 4 // 5


class SendPacer:
    """At most `rate` sends start within any one second (bursts included)."""

    def __init__(self, rate: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._starts: deque[float] = deque(maxlen=rate)

    def reserve(self) -> float:
        """Book the next start; returns how long to wait for it."""
        now = self._clock()
        start = now
        if len(self._starts) == self._rate:
            start = max(now, self._starts[0] + 1.0)  # a second after the rate-th last start
        self._starts.append(start)
        return start - now

    async def wait(self) -> None:
        await asyncio.sleep(self.reserve())


def cover_page_for(job: Job, message: MessageRecord) -> dict[str, str]:
    """FAX.PLUS's cover_page object: who from, to whom, the subject and the mail's text."""
    cover = {
        "name_from": message.sender_name or message.mail_from or "mailfax",
        "name_to": format_for_humans(job.number),
        "subject": message.subject or "Fax",
    }
    if message.comment:
        cover["message"] = message.comment
    return cover


class Lease:
    """A claimed job's lease, renewed every third of its length while the worker works on it.

    It is lost when a renewal finds the claim taken over, and runs out when renewals fail
    (the store unreachable): either way the worker must not start a send on it."""

    def __init__(
        self, store: Store, job_id: str, owner: str, since: float, length: float, clock: Clock
    ) -> None:
        self._store = store
        self._job_id = job_id
        self.owner = owner
        self._length = length
        self._clock = clock
        self._until = since + length
        self._lost = False

    def valid(self, now: float) -> bool:
        return not self._lost and now < self._until

    def renewed(self, now: float) -> float:
        """The end of a lease renewed at `now` (the caller writes it with its own change)."""
        self._until = now + self._length
        return self._until

    async def keep(self) -> None:
        """Renew until cancelled (the job's work is over) or the claim is lost."""
        while not self._lost:
            await asyncio.sleep(self._length / 3)
            now = self._clock()
            try:
                held = await self._store.renew_lease(self._job_id, self.owner, now + self._length)
            except StoreUnavailable as exc:
                log_event(
                    log,
                    "job.lease_renewal_failed",
                    logging.WARNING,
                    job=self._job_id,
                    error=str(exc),
                )
                continue
            if held:
                self._until = now + self._length
            else:
                self._lost = True
                log_event(log, "job.lease_lost", logging.WARNING, job=self._job_id)


class Dispatcher:
    """Turns queued jobs into FAX.PLUS sends; several may share one store."""

    def __init__(
        self,
        store: Store,
        api: FaxApi,
        finisher: JobFinisher,
        from_number: str,
        settings: QueueSettings,
        clock: Clock,
        webhook_wakeup: Wakeup,
        cover_page: bool = False,
    ) -> None:
        self._store = store
        self._api = api
        self._finisher = finisher
        self._from = from_number
        self._settings = settings
        self._clock = clock
        self._webhook_wakeup = webhook_wakeup
        self._cover_page = cover_page
        self._name = f"dispatch-{secrets.token_hex(4)}"
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_JOBS)
        self._running: set[asyncio.Task[None]] = set()
        self._rng = random.Random()
        self._pacer = SendPacer(SENDS_PER_SECOND)
        # Beats at each claim and each job's end: a step stays busy under steady load.
        self.heartbeat = Heartbeat()

    async def step(self) -> float | None:
        """Start every due job there is a slot for; return seconds until the next is due."""
        while True:
            await self._slots.acquire()
            free = 1
            while free < MAX_CONCURRENT_JOBS and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            now = self._clock()
            # A fresh token per claim: a worker that lost its lease cannot act on a job that was
            # taken over, even by another task of this same dispatcher. All free slots are
            # filled in one transaction: the store's writer, not FAX.PLUS, limits a burst.
            owners = [f"{self._name}:{secrets.token_hex(4)}" for _ in range(free)]
            claimed: list[Job] = []
            try:
                claimed = await self._store.claim_jobs(owners, now, now + self._settings.lease)
            finally:
                # Also when the claim fails: a slot held for no job is lost for good.
                for _ in range(free - len(claimed)):
                    self._slots.release()
            self.heartbeat.beat()
            for job, owner in zip(claimed, owners, strict=False):
                task = asyncio.create_task(self._run(job, owner, now))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if len(claimed) < free:
                break
        due = await self._store.next_job_due(self._clock())
        return None if due is None else max(0.0, due - self._clock())

    async def drain(self, timeout: float) -> None:
        """Let in-flight jobs finish for up to `timeout` seconds, then cancel them.

        A cancelled job keeps its lease until `release_uploads` (an upload) or until the lease
        expires and recovery takes it up (an interrupted send, reconciled)."""
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def release_uploads(self) -> None:
        """Once the loop has stopped and `drain` cancelled what was left: put this dispatcher's
        unfinished uploads back in the queue, so a restart need not wait out their lease.
        (An interrupted send stays leased: only reconciliation may decide it.)"""
        try:
            released = await self._store.release_uploads(self._name, self._clock())
        except StoreUnavailable as exc:
            # The leases then expire as after a crash; recovery takes the jobs up.
            log_event(log, "dispatch.release_failed", logging.WARNING, error=str(exc))
            return
        if released:
            log_event(log, "dispatch.released", jobs=released)

    async def _run(self, job: Job, owner: str, claimed_at: float) -> None:
        lease = Lease(self._store, job.id, owner, claimed_at, self._settings.lease, self._clock)
        keeper = asyncio.create_task(lease.keep())
        try:
            processed = functools.partial(self._process, job, lease)
            if not await isolated("dispatch", processed, "job.crashed", job=job.id):
                # Still uploading under this claim, nothing was sent: back in the queue now,
                # not when the lease runs out. (Sending or sent: the transition does not
                # apply, and recovery hands the job to reconciliation.)
                retry = functools.partial(
                    self._retry, job, owner, JobState.UPLOADING, "internal error", []
                )
                await isolated("dispatch", retry, job=job.id)
        finally:
            keeper.cancel()
            self._slots.release()
            self.heartbeat.beat()

    async def _process(self, job: Job, lease: Lease) -> None:
        owner = lease.owner
        log_event(log, "job.claimed", job=job.id, number=job.number, attempt=job.attempts)
        documents = await self._store.documents(job.message_id)
        reused = bool(job.uploaded)
        paths = list(job.uploaded)
        try:
            for index in range(len(paths), len(documents)):
                # Named after the job: a fax record's file_name may then prove whose it is.
                document = documents[index]
                name = upload_name(job.id, index, document.name)
                paths.append(await self._api.upload_file(name, document.data))
        except TransientApiError as exc:
            await self._retry(job, owner, JobState.UPLOADING, str(exc), paths, exc.retry_after)
            return
        except (PermanentApiError, AmbiguousApiError) as exc:
            await self._refused(job, owner, JobState.UPLOADING, str(exc))
            return
        await self._pacer.wait()
        attempt = self._clock()
        # Never a send on a lease that may have run out: recovery may have handed the job to
        # reconciliation, which could send it again. The send starts on a fresh lease, which
        # outlasts it ([faxplus] request_timeout < [queue] lease / 2, checked at start).
        if not lease.valid(attempt) or not await self._store.transition(
            job.id,
            JobState.UPLOADING,
            JobState.SUBMITTING,
            attempt,
            {"uploaded": paths, "submitted_at": attempt, "lease_until": lease.renewed(attempt)},
            owner=owner,
        ):
            log_event(log, "job.lease_lost", logging.WARNING, job=job.id)
            return
        await self._send(job, owner, paths, reused)

    async def _send(self, job: Job, owner: str, paths: list[str], reused: bool) -> None:
        message = await self._store.message(job.message_id)
        # The job's marker comes back in the fax record's comment: proof for reconciliation.
        comment = comment_with_marker(message.comment if message else "", job.id)
        cover = cover_page_for(job, message) if self._cover_page and message else None
        try:
            ids = await self._api.send_fax(
                self._from, [job.number], paths, comment, ["mailfax", job_tag(job.id)], cover
            )
        except TransientApiError as exc:
            await self._retry(job, owner, JobState.SUBMITTING, str(exc), paths, exc.retry_after)
            return
        except AmbiguousApiError as exc:
            await self._store.transition(
                job.id,
                JobState.SUBMITTING,
                JobState.UNKNOWN,
                self._clock(),
                {"error": str(exc)},
                detail=str(exc),
                owner=owner,
            )
            log_event(log, "job.unknown", logging.WARNING, job=job.id, error=str(exc))
            return
        except PermanentApiError as exc:
            if reused:
                # Uploaded files are transient at FAX.PLUS: upload them again, once.
                await self._retry(job, owner, JobState.SUBMITTING, str(exc), [], immediately=True)
            else:
                await self._refused(job, owner, JobState.SUBMITTING, str(exc))
            return
        fax_id = ids.get(job.number) or next(iter(ids.values()), None)
        now = self._clock()
        await self._store.transition(
            job.id,
            JobState.SUBMITTING,
            JobState.SUBMITTED,
            now,
            {"fax_id": fax_id, "error": None},
            detail=f"fax id {fax_id}",
            owner=owner,
        )
        log_event(log, "job.submitted", job=job.id, fax_id=fax_id or "")
        if fax_id:
            # A fax_sent webhook may already be parked, waiting for this id.
            await self._store.wake_fax_events(fax_id, now)
            self._webhook_wakeup.set()

    async def _retry(
        self,
        job: Job,
        owner: str,
        state: JobState,
        error: str,
        paths: list[str],
        retry_after: float | None = None,
        immediately: bool = False,
    ) -> None:
        now = self._clock()
        backoff = retry_delay(
            now - job.created_at, self._settings.min_backoff, self._settings.max_backoff, self._rng
        )
        delay = 0.0 if immediately else max(backoff, retry_after or 0.0)
        await self._store.transition(
            job.id,
            state,
            JobState.QUEUED,
            now,
            {"run_at": now + delay, "error": error, "uploaded": paths},
            detail=error,
            owner=owner,
        )
        log_event(log, "job.retry", logging.WARNING, job=job.id, error=error, delay=round(delay, 1))

    async def _refused(self, job: Job, owner: str, state: JobState, error: str) -> None:
        outcome = FaxOutcome(
            delivered=False, status="rejected", fax_id=None, pages_sent=0, detail=error
        )
        await self._finisher.finish(job, state, outcome, self._clock(), owner=owner)
