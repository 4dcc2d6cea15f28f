"""The Simulator: FAX.PLUS REST API v3 over HTTP, with background transmission and webhooks."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mailfax.sandbox import DEFAULT_TOKEN, documents
from mailfax.sandbox.faults import Delivery, FaultInjection, Faults, check_fault_settings
from mailfax.sandbox.ledger_file import load_ledger, save_ledger
from mailfax.sandbox.listing import MAX_LIMIT, ListingQuery, QueryError, listed, parse_listing_query
from mailfax.sandbox.payloads import (
    HOOK_EVENTS,
    MAX_SEND_BYTES,
    ApiError,
    bad_request,
    optional_field,
    parse_fax_file,
    parse_hook,
    parse_json_object,
    parse_send_request,
    required_field,
    too_large,
)
from mailfax.sandbox.records import (
    FaxRecord,
    Hook,
    JsonObject,
    OutboxEntry,
    Session,
    format_time,
    utc_now,
)
from mailfax.sandbox.state import AccountState
from mailfax.sandbox.variants import parse_variants

log = logging.getLogger(__name__)

_WEBHOOK_TIMEOUT = 5.0
_WEBHOOK_ATTEMPTS = 3
_WEBHOOK_BACKOFF = 0.1
_UPLOAD_FORMATS = frozenset({"pdf", "tiff"})
_FAX_CATEGORIES = frozenset({"inbox", "sent", "spam"})
# slow-outbox: seconds an outbox entry spends converting, and then sending.
_SLOW_OUTBOX_PHASE = 0.5
_ERROR_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}


@dataclass(frozen=True)
class SimulatorSettings:
    """How the simulated account behaves, and which faults it injects (none by default)."""

    token: str = DEFAULT_TOKEN  # clients authenticate with "Authorization: Bearer <token>"
    delay: float = 2.0  # seconds from send to completion and the fax_sent webhook; 0 allowed
    # The account's active numbers, comma-separated (a send may name several in `from`).
    from_number: str = "+16465550001"
    # Faults (see faults.py); rates are fractions 0..1, all drawn from one Random(seed).
    seed: int = 0
    error_rate: float = 0.0  # /v3 requests answered 503 or 500 before being processed
    rate_limit_rate: float = 0.0  # /v3 requests answered 429, Retry-After: 1, unprocessed
    latency: float = 0.0  # seconds: each /v3 request first waits uniform(0, latency)
    timeout_rate: float = 0.0  # /v3 requests processed, then answered only after `hang`
    hang: float = 60.0  # seconds
    drop_rate: float = 0.0  # /v3 requests processed, then the connection breaks mid-answer
    webhook_duplicate_rate: float = 0.0  # fax_sent webhooks delivered two or three times
    webhook_reorder_rate: float = 0.0  # ... preceded by a stale contradicting copy, delayed
    webhook_early_rate: float = 0.0  # sends whose webhooks arrive before their 201 answer
    webhook_drop_rate: float = 0.0  # fax_sent webhooks never sent
    webhook_wrong_path_rate: float = 0.0  # ... sent to the target, last segment altered
    # The ledger is kept in this JSON file across restarts; "" or None: in memory only.
    state_file: str | os.PathLike[str] | None = None
    # Readings of FAX.PLUS other than the default one (see variants.py); () = the default.
    variants: tuple[str, ...] = ()
    # Pages the account can send before its sends end insufficient_credit (variant "credit").
    credit_pages: int = 100

    @property
    def numbers(self) -> tuple[str, ...]:
        return tuple(number.strip() for number in self.from_number.split(","))

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("the sandbox token must not be empty")
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0, got {self.delay}")
        # The SDK's Number model rejects anything else.
        for number in self.numbers:
            if not re.fullmatch(r"\+[0-9]{8,}", number):
                raise ValueError(f"from_number must look like +16465550001, got {number!r}")
        if self.credit_pages < 0:
            raise ValueError(f"credit_pages must be >= 0, got {self.credit_pages}")
        check_fault_settings(self)
        parse_variants(self.variants)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SimulatorSettings:
        """Settings from the entries of `options` (config keys, CLI flags) named like fields."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in options.items() if name in names})


class _RequireBearer:
    """Answers 401 unless the request carries `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            presented = Headers(scope=scope).get("authorization", "").encode()
            if not secrets.compare_digest(presented, self._expected):
                refusal = ApiError(401, "unauthorized", "missing or invalid access token")
                await refusal.response()(scope, receive, send)
                return
        await self._app(scope, receive, send)


class Simulator:
    """One simulated FAX.PLUS account behind its HTTP API (under /v3) and a test ledger."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self._settings = settings
        self._faults = Faults(settings)
        self._state_file = Path(settings.state_file) if settings.state_file else None
        # Entries of earlier runs are final: their faxes died with the process that held them.
        self._earlier_ledger = [] if self._state_file is None else load_ledger(self._state_file)
        self._state = AccountState(
            settings.numbers,
            self._save_ledger,
            parse_variants(settings.variants),
            settings.credit_pages,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._transmissions: dict[str, asyncio.Task[None]] = {}
        self._http: httpx.AsyncClient | None = None
        self._app = Starlette(
            routes=[
                Mount(
                    "/v3",
                    routes=self._api_routes(),
                    middleware=[Middleware(_RequireBearer, token=settings.token)],
                ),
                Route("/sandbox/ledger", self._ledger_endpoint, methods=["GET"]),
            ],
            middleware=[Middleware(FaultInjection, faults=self._faults)],
            exception_handlers={
                ApiError: _api_error,
                HTTPException: _http_error,
                Exception: _internal_error,
            },
        )

    @property
    def app(self) -> ASGIApp:
        return self._app

    def ledger(self) -> list[JsonObject]:
        """Every destination of every accepted send, in submission order (earlier runs first)."""
        return [*self._earlier_ledger, *self._state.ledger()]

    def _save_ledger(self) -> None:
        # Synchronous, so the file already holds a send when the client reads its 201.
        if self._state_file is not None:
            save_ledger(self._state_file, self.ledger())

    async def aclose(self) -> None:
        """Cancel pending transmissions and webhook deliveries; close the webhook client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._transmissions.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _api_routes(self) -> list[Route]:
        account = "/accounts/{user_id}"
        return [
            Route(account, self._get_account, methods=["GET"]),
            Route(f"{account}/numbers", self._list_numbers, methods=["GET"]),
            Route(f"{account}/numbers/{{number}}", self._get_number, methods=["GET"]),
            Route(f"{account}/files", self._upload_file, methods=["POST"]),
            Route(f"{account}/files/{{fax_id}}", self._get_file, methods=["GET"]),
            Route(f"{account}/report/{{fax_id}}", self._get_report, methods=["GET"]),
            Route(f"{account}/outbox", self._send_fax, methods=["POST"]),
            Route(f"{account}/outbox", self._list_outbox, methods=["GET"]),
            Route(f"{account}/outbox/{{outbox_id}}", self._get_outbox, methods=["GET"]),
            Route(f"{account}/outbox/{{outbox_id}}", self._update_outbox, methods=["PUT"]),
            Route(f"{account}/outbox/{{outbox_id}}", self._delete_outbox, methods=["DELETE"]),
            Route(f"{account}/faxes", self._list_faxes, methods=["GET"]),
            Route(f"{account}/faxes/{{fax_id}}", self._get_fax, methods=["GET"]),
            Route(f"{account}/faxes/{{fax_id}}", self._update_fax, methods=["PUT"]),
            Route(f"{account}/faxes/{{fax_id}}", self._delete_fax, methods=["DELETE"]),
            Route("/hooks", self._create_hook, methods=["POST"]),
            Route("/hooks", self._list_hooks, methods=["GET"]),
            Route("/hooks/{hook_id}", self._delete_hook, methods=["DELETE"]),
        ]

    # --- lookups -------------------------------------------------------------------------

    def _require_account(self, request: Request) -> None:
        user_id = request.path_params["user_id"]
        if user_id not in ("self", self._state.uid):
            raise ApiError(404, "not_found", f"user {user_id!r} not found")

    def _outbox_entry(self, request: Request) -> OutboxEntry:
        self._require_account(request)
        outbox_id = request.path_params["outbox_id"]
        entry = self._state.outbox.get(outbox_id)
        if entry is None:
            raise ApiError(404, "not_found", f"outbox fax {outbox_id!r} not found")
        return entry

    def _fax_record(self, request: Request) -> FaxRecord:
        """The record of GET/PUT/DELETE /faxes/{fax_id}."""
        return self._fax(request, self._state.find_fax)

    def _fax_document(self, request: Request) -> FaxRecord:
        """The fax whose file /files/{fax_id} and /report/{fax_id} serve."""
        return self._fax(request, self._state.find_document)

    def _fax(self, request: Request, find: Callable[[str], FaxRecord | None]) -> FaxRecord:
        self._require_account(request)
        fax_id = request.path_params["fax_id"]
        record = find(fax_id)
        if record is None:
            raise ApiError(404, "not_found", f"fax {fax_id!r} not found")
        return record

    # --- account and numbers -------------------------------------------------------------

    async def _get_account(self, request: Request) -> Response:
        self._require_account(request)
        return JSONResponse(self._state.account_json())

    async def _list_numbers(self, request: Request) -> Response:
        self._require_account(request)
        numbers = [self._state.number_json(number) for number in self._state.numbers]
        return JSONResponse({"numbers": numbers})

    async def _get_number(self, request: Request) -> Response:
        self._require_account(request)
        number = request.path_params["number"]
        # Clients that forget to percent-encode '+' send it as a space or drop it.
        known = {known.lstrip("+"): known for known in self._state.numbers}
        if number.strip().lstrip("+") not in known:
            raise ApiError(404, "not_found", f"number {number!r} not found")
        return JSONResponse(self._state.number_json(known[number.strip().lstrip("+")]))

    # --- files ---------------------------------------------------------------------------

    async def _upload_file(self, request: Request) -> Response:
        self._require_account(request)
        upload_format = request.query_params.get("format", "pdf")
        if upload_format not in _UPLOAD_FORMATS:
            raise bad_request(f"'format' {upload_format!r} is not one of ['pdf', 'tiff']")
        # Refused on its announced size, before a byte of the body is read.
        announced = request.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > MAX_SEND_BYTES:
            raise too_large(int(announced))
        part = await asyncio.to_thread(
            parse_fax_file, request.headers.get("content-type", ""), await request.body()
        )
        pages = await asyncio.to_thread(documents.count_pages, part.content)
        upload = self._state.add_upload(part.file_name, part.media_type, part.content, pages)
        return JSONResponse({"path": upload.path})

    async def _get_file(self, request: Request) -> Response:
        record = self._fax_document(request)
        file_format = request.query_params.get("format", "pdf")
        if file_format != "pdf":
            raise bad_request("the sandbox renders fax documents as 'pdf' only")
        contents = [upload.content for upload in record.session.request.files]
        document = await asyncio.to_thread(documents.fax_document, contents)
        media_type = documents.media_type(document)
        extension = media_type.rpartition("/")[2]
        return _download(document, media_type, f"{record.id}.{extension}")

    async def _get_report(self, request: Request) -> Response:
        record = self._fax_document(request)
        lines = [
            f"Fax ID: {record.id}",
            f"From: {record.source}",
            f"To: {record.destination}",
            f"Status: {record.outcome.status} ({record.outcome.description})",
            f"Pages: {record.outcome.pages_sent} of {record.session.request.page_count}",
            f"Time (UTC): {format_time(record.started_at)}",
        ]
        report = await asyncio.to_thread(
            documents.confirmation_report, "FAX.PLUS sandbox - confirmation report", lines
        )
        return _download(report, "application/pdf", f"report-{record.id}.pdf")

    # --- outbox --------------------------------------------------------------------------

    async def _send_fax(self, request: Request) -> Response:
        self._require_account(request)
        body = parse_json_object(await request.body())
        send_request = parse_send_request(body, self._state.numbers, self._state.uploads)
        entry = self._state.submit(send_request, request.client.host if request.client else "")
        transmission = self._spawn(self._transmit_when_due(entry))
        self._transmissions[entry.id] = transmission
        # Only a fax due now can complete early: the answer to a scheduled one would hang for hours.
        due_now = self._seconds_until_due(entry) <= self._settings.delay
        if due_now and self._faults.webhook_early():
            # The fax completes and its webhooks are delivered before the client gets this answer.
            await asyncio.wait([transmission])
        answer = {"ids": entry.fax_ids} if send_request.return_ids else {}
        return JSONResponse(answer, status_code=201)

    async def _list_outbox(self, request: Request) -> Response:
        self._require_account(request)
        # The SDK gives this listing no parameters; those of GET /faxes are honoured alike.
        entries = listed(
            list(self._state.outbox.values()),
            _listing_query(request, default_limit=None),
            submitted_at=lambda entry: entry.submitted_at,
            sort_keys={
                "date": lambda entry: entry.submitted_at,
                "from": lambda entry: entry.request.source,
                "to": lambda entry: entry.request.destinations,
                "comment": lambda entry: entry.comment,
                "pages": lambda entry: entry.request.page_count,
            },
            default_order="asc",
        )
        uid = self._state.uid
        return JSONResponse({"records": [entry.to_json(uid) for entry in entries]})

    async def _get_outbox(self, request: Request) -> Response:
        return JSONResponse(self._outbox_entry(request).to_json(self._state.uid))

    async def _update_outbox(self, request: Request) -> Response:
        entry = self._outbox_entry(request)
        body = parse_json_object(await request.body())
        # Unlike PayloadOutbox, PayloadOutboxModification carries the comment as plain text.
        self._state.update_outbox_comment(entry, required_field(body, "comment", str))
        return JSONResponse({})

    async def _delete_outbox(self, request: Request) -> Response:
        entry = self._outbox_entry(request)
        transmission = self._transmissions.pop(entry.id, None)
        if transmission is not None:
            transmission.cancel()
        self._state.cancel(entry)
        return JSONResponse({})

    # --- fax records ---------------------------------------------------------------------

    async def _list_faxes(self, request: Request) -> Response:
        self._require_account(request)
        category = request.query_params.get("category")
        if category is not None and category not in _FAX_CATEGORIES:
            raise bad_request(f"'category' {category!r} is not one of {sorted(_FAX_CATEGORIES)}")
        query = _listing_query(request, default_limit=MAX_LIMIT)
        # Every record here is outgoing, so the inbox and spam folders are always empty.
        faxes = list(self._state.faxes.values()) if category in (None, "sent") else []
        page = listed(
            faxes,
            query,
            submitted_at=lambda record: record.session.submitted_at,
            sort_keys={
                "date": lambda record: record.started_at,
                "from": lambda record: record.source,
                "to": lambda record: record.destination,
                "comment": lambda record: record.comment,
                "pages": lambda record: record.outcome.pages_sent,
            },
            # Newest first like the web app, unless the account lists oldest first.
            default_order="asc" if self._state.has("oldest-first") else "desc",
        )
        records = [self._state.record_json(record) for record in page]
        return JSONResponse({"data": {"records": records}})

    async def _get_fax(self, request: Request) -> Response:
        return JSONResponse(self._state.record_json(self._fax_record(request)))

    async def _update_fax(self, request: Request) -> Response:
        record = self._fax_record(request)
        body = parse_json_object(await request.body())
        comment = optional_field(body, "comment", str)
        is_read = optional_field(body, "is_read", bool)
        if comment is not None:
            record.comment = comment
        if is_read is not None:
            record.is_read = is_read
        return JSONResponse({})

    async def _delete_fax(self, request: Request) -> Response:
        del self._state.faxes[self._fax_record(request).id]
        return JSONResponse({})

    # --- webhooks ------------------------------------------------------------------------

    async def _create_hook(self, request: Request) -> Response:
        target, event = parse_hook(parse_json_object(await request.body()))
        return JSONResponse({"id": self._state.add_hook(target, event).id})

    async def _list_hooks(self, request: Request) -> Response:
        event = request.query_params.get("event")
        if event is None or event not in HOOK_EVENTS:
            raise bad_request(f"'event' must be one of {sorted(HOOK_EVENTS)}")
        return JSONResponse({"data": [hook.to_json() for hook in self._state.hooks_for(event)]})

    async def _delete_hook(self, request: Request) -> Response:
        hook_id = request.path_params["hook_id"]
        if self._state.hooks.pop(hook_id, None) is None:
            raise ApiError(404, "not_found", f"hook {hook_id!r} not found")
        return JSONResponse({})

    # --- sandbox extras ------------------------------------------------------------------

    async def _ledger_endpoint(self, request: Request) -> Response:
        return JSONResponse({"faxes": self.ledger()})

    # --- background work -----------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox background task failed", exc_info=task.exception())

    async def _transmit_when_due(self, entry: OutboxEntry) -> None:
        slow = self._state.has("slow-outbox")
        if slow:
            await self._outbox_phase(entry, "converting")
        # Otherwise conversion is instant; the fax then waits for its slot (delay or send_time).
        entry.change_status("scheduled_for_sending", utc_now())
        await asyncio.sleep(self._seconds_until_due(entry))
        if slow:
            await self._outbox_phase(entry, "sending")
        del self._transmissions[entry.id]
        sessions = self._state.leave_outbox(entry)
        # Awaited here, so an early-webhook send can hold its answer until they are done.
        async with asyncio.TaskGroup() as attempts:
            for session in sessions:
                attempts.create_task(self._attempt(session))

    async def _outbox_phase(self, entry: OutboxEntry, status: str) -> None:
        entry.change_status(status, utc_now())
        await asyncio.sleep(_SLOW_OUTBOX_PHASE)

    async def _attempt(self, session: Session) -> None:
        """Dial once and report it; FAX.PLUS's own redials follow in the background."""
        record = self._state.dial(session)
        async with asyncio.TaskGroup() as deliveries:
            for hook in self._state.hooks_for("fax_sent"):
                deliveries.create_task(self._deliver_webhook(hook, record))
        if self._state.redials(session):
            self._spawn(self._redial(session))

    async def _redial(self, session: Session) -> None:
        # The retry delay is in minutes; the simulator compresses each to its own send delay.
        await asyncio.sleep(self._settings.delay)
        await self._attempt(session)

    def _seconds_until_due(self, entry: OutboxEntry) -> float:
        send_time = entry.request.send_time
        if send_time is None:
            return self._settings.delay
        return max(self._settings.delay, (send_time - datetime.now(UTC)).total_seconds())

    async def _deliver_webhook(self, hook: Hook, record: FaxRecord) -> None:
        payload = self._state.webhook_payload(record, hook, utc_now())
        for delivery in self._faults.webhook_deliveries(hook.target, payload):
            await asyncio.sleep(delivery.delay)
            await self._post_webhook(delivery, record.id)

    async def _post_webhook(self, delivery: Delivery, fax_id: str) -> None:
        for attempt in range(1, _WEBHOOK_ATTEMPTS + 1):
            try:
                response = await self._webhook_client().post(delivery.url, json=delivery.payload)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                # A 4xx is the receiver's final word; only its outages are worth retrying.
                if response.status_code < 500:
                    return
                failure = f"HTTP {response.status_code}"
            if attempt < _WEBHOOK_ATTEMPTS:
                await asyncio.sleep(_WEBHOOK_BACKOFF * 2 ** (attempt - 1))
        log.warning(
            "fax_sent webhook for fax %s to %s failed after %d attempts: %s",
            fax_id,
            delivery.url,
            _WEBHOOK_ATTEMPTS,
            failure,
        )

    def _webhook_client(self) -> httpx.AsyncClient:
        if self._http is None:
            # The real service does not route through our proxies, so ignore proxy env vars.
            self._http = httpx.AsyncClient(timeout=_WEBHOOK_TIMEOUT, trust_env=False)
        return self._http


def _download(content: bytes, media_type: str, file_name: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{file_name}"'},
    )


def _listing_query(request: Request, *, default_limit: int | None) -> ListingQuery:
    try:
        return parse_listing_query(request.query_params, default_limit=default_limit)
    except QueryError as exc:
        raise bad_request(str(exc)) from None


def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = _ERROR_CODES.get(exc.status_code, "http_error")
    response = ApiError(exc.status_code, error, exc.detail).response()
    response.headers.update(exc.headers or {})
    return response


def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette still re-raises the exception afterwards, so the server logs the traceback.
    return ApiError(500, "internal_error", f"{type(exc).__name__}: {exc}").response()
