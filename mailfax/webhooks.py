"""Webhook intake: parks fax_sent hints, confirms each by fetching the fax, then ends the job."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import random
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailfax.config import QueueSettings
from mailfax.fax_identity import own_faxes, proven_jobs
from mailfax.faxplus import ApiError, FaxApi, FaxRecord, NotFoundApiError
from mailfax.finish import JobFinisher
from mailfax.jobs import Job, JobState, account_problem, retry_delay, should_redial
from mailfax.logs import log_event
from mailfax.metrics import ACCOUNT_PROBLEMS, WEBHOOK_EVENTS
from mailfax.receipts.compose import FaxOutcome
from mailfax.reconcile import CLOCK_SKEW, attempt_window, submitted_time
from mailfax.store import FaxEvent, Store
from mailfax.webhook_guard import WebhookGuard, content_type_refusal, read_body
from mailfax.worker import Wakeup, isolated

log = logging.getLogger("mailfax.webhooks")

Clock = Callable[[], float]

MAX_WEBHOOK_BYTES = 64 * 1024
# A hint whose fax id matches no job may precede the send's answer by a moment;
# after a day it is taken as forged or foreign and dropped.
PARK_LIMIT = 24 * 3600.0
MAX_EVENT_BACKOFF = 600.0
# Webhook confirmations in flight at once (each a GET /faxes/{id}, then the receipt).
CONCURRENT_CONFIRMATIONS = 16
# Seconds between listings that look for the ids of faxes webhooks named and no job has.
RELIST_INTERVAL = 5.0


def fax_ids_of(payload: Any) -> tuple[list[str], str]:
    """The fax ids a fax_sent payload names (data.id, then hook.id) and its claimed status."""
    if not isinstance(payload, dict):
        return [], ""
    data, hook = (payload.get(key) for key in ("data", "hook"))
    data = data if isinstance(data, dict) else {}
    hook = hook if isinstance(hook, dict) else {}
    ids: list[str] = []
    for candidate in (data.get("id"), hook.get("id")):
        if isinstance(candidate, str | int) and str(candidate) and str(candidate) not in ids:
            ids.append(str(candidate))
    return ids, str(data.get("status") or "")


def _is_text(value: str) -> bool:
    """Whether `value` is Unicode text a database can hold: JSON's \\ud800 escapes give a
    lone surrogate, which no UTF-8 encoder takes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def webhook_app(
    secret: str, store: Store, wakeup: Wakeup, clock: Clock, guard: WebhookGuard | None = None
) -> Starlette:
    """The HTTP app serving POST /webhooks/faxplus/<secret>; every other path is 404."""

    async def receive(request: Request) -> Response:
        response = await intake(request)
        if response.status_code >= 400:
            WEBHOOK_EVENTS.labels("refused").inc()
        return response

    async def intake(request: Request) -> Response:
        refusal = guard.refusal(request) if guard is not None else None
        if refusal is not None:
            return refusal
        # Constant-time comparison: the secret path is the webhook's only credential.
        if not hmac.compare_digest(request.path_params["secret"].encode(), secret.encode()):
            return JSONResponse({"error": "not found"}, status_code=404)
        refusal = content_type_refusal(request)
        if refusal is not None:
            return refusal
        body = await read_body(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to read
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        ids, status = fax_ids_of(payload)
        if not all(_is_text(value) for value in (*ids, status)):
            return JSONResponse({"error": "fax id or status is not text"}, status_code=400)
        if not ids:
            return JSONResponse({"error": "no fax id in payload"}, status_code=400)
        hook_id = ids[-1]
        now = clock()
        fresh = [
            fax_id for fax_id in ids if await store.park_fax_event(fax_id, hook_id, status, now)
        ]
        log_event(log, "webhook.received", fax_id=ids[0], status=status, duplicate=not fresh)
        WEBHOOK_EVENTS.labels("parked" if fresh else "duplicate").inc()
        wakeup.set()
        return JSONResponse({"ok": True})

    async def not_found(request: Request) -> Response:
        return JSONResponse({"error": "not found"}, status_code=404)

    return Starlette(
        routes=[
            Route("/webhooks/faxplus/{secret}", receive, methods=["POST"]),
            Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )


def outcome_from_record(record: FaxRecord) -> FaxOutcome:
    return FaxOutcome(
        delivered=record.status == "success",
        status=record.status,
        fax_id=record.id,
        pages_sent=record.pages if record.status in ("success", "partially_sent") else 0,
        start_time=record.start_time,
        duration=record.duration,
        cost=record.cost,
    )


class FaxStatusConfirmer:
    """Processes parked webhook hints: trusts only what GET /faxes/{id} says."""

    def __init__(
        self,
        store: Store,
        api: FaxApi,
        finisher: JobFinisher,
        clock: Clock,
        queue: QueueSettings,
        retries: int,
        ids_agree: bool = False,
    ) -> None:
        self._store = store
        self._api = api
        self._finisher = finisher
        self._clock = clock
        self._queue = queue
        self._retries = retries
        self._rng = random.Random()
        self._next_relisting = 0.0
        # doctor --live-test saw the send's, the record's and the webhook's ids agree: a
        # webhook under an id no job has is early or foreign, and no listing can teach more.
        self._ids_agree = ids_agree

    async def step(self) -> float | None:
        # Each confirmation waits on FAX.PLUS (the fax, then its report for the receipt): one
        # at a time, a burst of results would queue for seconds. Events of one fax stay in
        # order, so a duplicate sees the job its first copy finished.
        by_fax: dict[str, list[FaxEvent]] = {}
        for event in await self._store.due_fax_events(self._clock(), limit=50):
            by_fax.setdefault(event.fax_id, []).append(event)
        slots = asyncio.Semaphore(CONCURRENT_CONFIRMATIONS)

        async def confirm(events: list[FaxEvent]) -> None:
            async with slots:
                for event in events:
                    # One event's failure (its receipt, the store) leaves the others alone;
                    # the event itself is tried again later, not at once.
                    handled = functools.partial(self._handle, event)
                    if not await isolated("webhooks", handled, fax_id=event.fax_id):
                        later = functools.partial(self._later, event, "its handling failed")
                        await isolated("webhooks", later, fax_id=event.fax_id)

        async with asyncio.TaskGroup() as group:
            for events in by_fax.values():
                group.create_task(confirm(events))
        due = await self._store.next_fax_event()
        return None if due is None else max(0.0, due - self._clock())

    async def _later(self, event: FaxEvent, why: str) -> None:
        now = self._clock()
        if now - event.received_at > PARK_LIMIT:
            log_event(log, "webhook.dropped", logging.WARNING, fax_id=event.fax_id, reason=why)
            WEBHOOK_EVENTS.labels("dropped").inc()
            await self._store.fax_event_done(event.id)
            return
        delay = min(2.0**event.attempts, MAX_EVENT_BACKOFF)
        await self._store.fax_event_later(event.id, now + delay)

    async def _handle(self, event: FaxEvent) -> None:
        job = await self._store.job_by_fax_id(event.fax_id)
        if job is None:
            if event.attempts == 0 and not self._ids_agree:
                await self._learn_listed_ids(event.received_at)
            await self._later(event, "no job has this fax id")
            return
        if job.state is not JobState.SUBMITTED:
            # Already final (a duplicate) or not ours to move.
            await self._store.fax_event_done(event.id)
            return
        try:
            record = await self._api.get_fax(event.fax_id)
        except NotFoundApiError:
            found = await self._listed_record(job)
            if found is None:
                await self._later(event, "FAX.PLUS does not know this fax id")
                return
            record = found
        except ApiError as exc:
            log_event(log, "webhook.confirm_failed", logging.WARNING, job=job.id, error=str(exc))
            await self._later(event, str(exc))
            return
        if not record.is_final:
            await self._later(event, f"fax still {record.status or 'in progress'}")
            return
        contradicted = bool(event.status) and event.status != record.status
        if contradicted:
            log_event(
                log,
                "webhook.contradicted",
                logging.WARNING,
                job=job.id,
                claimed=event.status,
                actual=record.status,
            )
        WEBHOOK_EVENTS.labels("contradicted" if contradicted else "confirmed").inc()
        problem = account_problem(record.status)
        if problem:
            ACCOUNT_PROBLEMS.labels(problem).inc()
            log_event(
                log, "faxplus.account_problem", logging.WARNING, job=job.id, status=record.status
            )
        if record.status == "insufficient_credit":
            # Every queued fax would fail the same way: none is failed for it; each waits.
            await self._redial(job, record, credit=True)
        elif should_redial(record.status, job.redials, self._retries):
            await self._redial(job, record)
        else:
            await self._finisher.finish(
                job, JobState.SUBMITTED, outcome_from_record(record), self._clock()
            )
        await self._store.fax_event_done(event.id)

    async def _listed_record(self, job: Job) -> FaxRecord | None:
        """The job's fax as FAX.PLUS lists it, found by proof: the docs do not promise that
        the id a send answers is one GET /faxes/{id} knows. Its listed id is learnt."""
        try:
            listing = await self._api.list_sent_faxes(attempt_window(job))
        except ApiError:
            return None
        submitted = {fax.id: submitted_time(fax) for fax in listing.faxes}
        for fax in own_faxes(job.id, listing.faxes, submitted):
            if await self._learn_id(job, fax.id):
                return fax
        return None

    async def _learn_listed_ids(self, since: float) -> None:
        """A webhook names a fax no job has: FAX.PLUS may know a fax by other ids than its
        send's answer (the SDK says the webhook's may differ from the listing's). The faxes
        listed since then that prove whose they are teach their jobs the listed ids, and are
        confirmed under them. At most once every RELIST_INTERVAL."""
        now = self._clock()
        if now < self._next_relisting:
            return
        self._next_relisting = now + RELIST_INTERVAL
        try:
            listing = await self._api.list_sent_faxes(since - CLOCK_SKEW)
        except ApiError as exc:
            log_event(log, "webhook.relisting_failed", logging.WARNING, error=str(exc))
            return
        known = await self._store.fax_ids_in_use([fax.id for fax in listing.faxes])
        for fax in listing.faxes:
            if fax.id in known:
                continue
            for job_id in proven_jobs(fax):
                job = await self._store.get_job(job_id)
                if job is not None and await self._learn_id(job, fax.id):
                    await self._store.park_fax_event(fax.id, "listing", "", now)

    async def _learn_id(self, job: Job, fax_id: str) -> bool:
        """The job's fax is `fax_id` at FAX.PLUS (unless another job holds that id)."""
        if job.fax_id == fax_id:
            return True
        if job.state is not JobState.SUBMITTED:
            return False
        holder = await self._store.job_by_fax_id(fax_id)
        if holder is not None and holder.id != job.id:
            return False
        detail = f"FAX.PLUS lists its fax as {fax_id} (its send answered {job.fax_id})"
        if not await self._store.note_job(
            job.id, JobState.SUBMITTED, self._clock(), detail, {"fax_id": fax_id}
        ):
            return False
        log_event(log, "job.fax_id_learnt", job=job.id, fax_id=fax_id, sent_as=job.fax_id or "")
        return True

    async def _redial(self, job: Job, record: FaxRecord, credit: bool = False) -> None:
        """Back to the queue: a redial (busy, no answer, transient), or (`credit`) a wait for
        the account to have credit again, which uses up no redial; the job expires with
        [queue] max_lifetime if it never has."""
        now = self._clock()
        delay = retry_delay(
            now - job.created_at, self._queue.min_backoff, self._queue.max_backoff, self._rng
        )
        what = "waiting for the FAX.PLUS account to have credit" if credit else "dialling again"
        if await self._store.transition(
            job.id,
            JobState.SUBMITTED,
            JobState.QUEUED,
            now,
            {
                "run_at": now + delay,
                "redials": job.redials if credit else job.redials + 1,
                "fax_id": None,
                "fax_status": record.status,
                "error": f"{record.status}: {what}",
            },
            detail=f"{record.status} on fax {record.id}: {what}",
        ):
            event = "job.waits_for_credit" if credit else "job.redial"
            level = logging.WARNING if credit else logging.INFO
            log_event(log, event, level, job=job.id, status=record.status, delay=round(delay, 1))
