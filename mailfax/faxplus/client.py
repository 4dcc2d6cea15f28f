"""The FAX.PLUS REST API v3 as typed async methods over httpx, with outcomes as typed errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from mailfax import __version__
from mailfax.metrics import API_ERRORS, API_LATENCY, api_endpoint

# Statuses after which FAX.PLUS will not change a fax record any more.
IN_PROGRESS_STATUSES = frozenset(
    {"", "in_progress", "submitted", "converting", "scheduled_for_sending", "sending"}
)


class ApiError(Exception):
    """Base of the outcomes that are not a success."""


class TransientApiError(ApiError):
    """The request was not processed (or is safe to repeat); try again after `retry_after`."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentApiError(ApiError):
    """FAX.PLUS refused the request; repeating it will not help. `message` is their text."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class AmbiguousApiError(ApiError):
    """The request may or may not have been processed (the answer was lost)."""


class NotFoundApiError(PermanentApiError):
    """The object does not exist (404)."""


@dataclass(frozen=True)
class FaxRecord:
    """The fields of a FAX.PLUS fax record (CDR) that mailfax uses."""

    id: str
    status: str
    to: str
    pages: int | None
    cost: float | None
    start_time: str
    submit_time: str
    duration: float | None
    comment: str
    file_name: str = ""
    max_retry: int | None = None  # FAX.PLUS's own redials of this fax (0-3)

    @property
    def is_final(self) -> bool:
        return self.status not in IN_PROGRESS_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaxRecord:
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status") or ""),
            to=str(data.get("to") or data.get("to_number") or ""),
            pages=_int_or_none(data.get("pages")),
            cost=_float_or_none(data.get("cost")),
            start_time=str(data.get("start_time") or ""),
            submit_time=str(data.get("submit_time") or ""),
            duration=_float_or_none(data.get("duration")),
            comment=_comment_text(data.get("comment")),
            file_name=str(data.get("file_name") or ""),
            max_retry=_int_or_none(data.get("max_retry")),
        )


@dataclass(frozen=True)
class SentListing:
    """The sent faxes of a time window, and the whole seconds of it FAX.PLUS may hold more
    faxes of than it could list."""

    faxes: list[FaxRecord]
    unlisted_seconds: frozenset[float] = frozenset()


@dataclass(frozen=True)
class OutboxRecord:
    """A fax FAX.PLUS has accepted but not yet sent."""

    id: str
    status: str
    to: tuple[str, ...]
    tags: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutboxRecord:
        comment = data.get("comment")
        tags = comment.get("tags") if isinstance(comment, dict) else None
        to = data.get("to")
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status") or ""),
            to=tuple(str(n) for n in to) if isinstance(to, list) else (),
            tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        )


_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The most faxes one listing page holds (the API's default, and the simulator's maximum).
LIST_PAGE = 50
# A listing of many pages through a flaky API: each request is tried up to this often.
_PAGE_TRIES = 3
_LISTING_PATIENCE = 2.0  # seconds of Retry-After a listing page waits out by itself
_MAX_PAGES = 40


def format_api_time(epoch: float) -> str:
    """FAX.PLUS's UTC time format, "YYYY-MM-DD HH:MM:SS"."""
    return datetime.fromtimestamp(epoch, UTC).strftime(_TIME_FORMAT)


def parse_api_time(text: str) -> float | None:
    """Epoch seconds of a FAX.PLUS time ("YYYY-MM-DD HH:MM:SS", optionally " +HHMM")."""
    try:
        if len(text) > 19:
            return datetime.strptime(text, _TIME_FORMAT + " %z").timestamp()
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _comment_text(value: Any) -> str:
    """A fax record's comment is a string; an outbox entry's is {text, tags}: read either."""
    if isinstance(value, dict):
        return " ".join(
            [str(value.get("text") or ""), *(str(tag) for tag in value.get("tags") or [])]
        ).strip()
    return str(value or "")


def _fax_records(body: Any) -> list[FaxRecord]:
    """The records of a GET /faxes answer ({"data": {"records": [...]}})."""
    data = body.get("data") if isinstance(body, dict) else None
    records = data.get("records") if isinstance(data, dict) else None
    return [FaxRecord.from_json(r) for r in records or [] if isinstance(r, dict)]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class FaxApi(Protocol):
    """What the gateway needs of FAX.PLUS; FaxPlusClient is the HTTP implementation."""

    async def upload_file(self, name: str, data: bytes, file_format: str = "pdf") -> str: ...

    async def send_fax(
        self,
        from_number: str,
        to: Sequence[str],
        files: Sequence[str],
        comment: str,
        tags: Sequence[str],
        cover_page: Mapping[str, str] | None = None,
    ) -> dict[str, str]: ...

    async def get_fax(self, fax_id: str) -> FaxRecord: ...

    async def list_outbox(self) -> list[OutboxRecord]: ...

    async def list_sent_faxes(self, after: float) -> SentListing: ...

    async def list_numbers(self) -> list[dict[str, Any]]: ...

    async def create_hook(self, target: str, event: str = "fax_sent") -> str: ...

    async def list_hooks(self, event: str = "fax_sent") -> list[dict[str, Any]]: ...

    async def delete_hook(self, hook_id: str) -> None: ...

    async def get_report(self, fax_id: str) -> bytes: ...


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, from either of its forms (delta or HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "description", "message", "reason") if body.get(k)]
        if parts:
            return f"HTTP {response.status_code}: " + ": ".join(parts)
    return f"HTTP {response.status_code}"


class FaxPlusClient:
    """FAX.PLUS API v3 over one pooled httpx.AsyncClient. The token never appears in errors."""

    def __init__(
        self,
        base_url: str,
        token: str,
        user_id: str = "self",
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._user = user_id
        # httpx's timeout bounds each phase (connect, write, read); a request as a whole is
        # bounded too, so that a send always ends within its worker's lease.
        self._deadline = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"mailfax/{__version__}"},
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, *, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        endpoint = api_endpoint(method, path)
        try:
            with API_LATENCY.labels(endpoint).time():
                async with asyncio.timeout(self._deadline):
                    response = await self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            API_ERRORS.labels(endpoint, exc.__class__.__name__).inc()
            # Nothing reached FAX.PLUS.
            raise TransientApiError(
                f"cannot connect to FAX.PLUS: {exc.__class__.__name__}"
            ) from exc
        except (httpx.TransportError, TimeoutError) as exc:
            API_ERRORS.labels(endpoint, exc.__class__.__name__).inc()
            message = f"{method} {path}: connection failed mid-request ({exc.__class__.__name__})"
            if idempotent:
                raise TransientApiError(message) from exc
            raise AmbiguousApiError(message) from exc
        status = response.status_code
        if status < 400:
            return response
        API_ERRORS.labels(endpoint, str(status)).inc()
        if status == 429:
            raise TransientApiError(_error_text(response), _retry_after(response))
        if status >= 500:
            if idempotent or status == 503:
                raise TransientApiError(_error_text(response), _retry_after(response))
            # A 500/502/504 on a send may have happened after the fax was queued.
            raise AmbiguousApiError(_error_text(response))
        if status == 404:
            raise NotFoundApiError(_error_text(response), status)
        if status in (401, 403):
            raise PermanentApiError(f"{_error_text(response)} (check [faxplus] token)", status)
        raise PermanentApiError(_error_text(response), status)

    async def _json(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Any:
        response = await self._request(method, path, idempotent=idempotent, **kwargs)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise TransientApiError(
                f"{method} {path}: FAX.PLUS sent a body that is not JSON"
            ) from exc

    async def upload_file(self, name: str, data: bytes, file_format: str = "pdf") -> str:
        mime = "application/pdf" if file_format == "pdf" else "image/tiff"
        # An upload only creates a transient file: repeating it is harmless.
        body = await self._json(
            "POST",
            f"/accounts/{self._user}/files",
            params={"format": file_format},
            files={"fax_file": (name, data, mime)},
        )
        path = body.get("path") if isinstance(body, dict) else None
        if not isinstance(path, str) or not path:
            raise TransientApiError("upload answer has no file path")
        return path

    async def send_fax(
        self,
        from_number: str,
        to: Sequence[str],
        files: Sequence[str],
        comment: str,
        tags: Sequence[str],
        cover_page: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        payload: dict[str, Any] = {
            "from": from_number,
            "to": list(to),
            "files": list(files),
            "comment": {"text": comment, "tags": list(tags)},
            # Exactly one layer redials: mailfax ([faxplus] retries, after busy or no answer),
            # so that every dial is a job attempt with its own record; FAX.PLUS is told not
            # to, whatever the account's own retry setting says.
            "options": {"retry": {"count": 0, "delay": 0}},
            "return_ids": True,
        }
        if cover_page is not None:
            payload["cover_page"] = dict(cover_page)
        body = await self._json(
            "POST", f"/accounts/{self._user}/outbox", idempotent=False, json=payload
        )
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, dict):
            # The send happened, but we cannot tell which fax is ours.
            raise AmbiguousApiError("send answer has no fax ids")
        return {str(k): str(v) for k, v in ids.items()}

    async def get_fax(self, fax_id: str) -> FaxRecord:
        body = await self._json("GET", f"/accounts/{self._user}/faxes/{fax_id}")
        if not isinstance(body, dict):
            raise TransientApiError("fax record is not an object")
        return FaxRecord.from_json(body)

    async def list_outbox(self) -> list[OutboxRecord]:
        body = await self._listing(f"/accounts/{self._user}/outbox")
        records = body.get("records") if isinstance(body, dict) else None
        return [OutboxRecord.from_json(r) for r in records or [] if isinstance(r, dict)]

    async def delete_outbox(self, outbox_id: str) -> None:
        """Take a fax out of the outbox before it is sent (404 once it has left)."""
        await self._json("DELETE", f"/accounts/{self._user}/outbox/{outbox_id}")

    async def list_sent_faxes(self, after: float) -> SentListing:
        """Every sent fax submitted since `after`, in the order asked for (newest first:
        `sort_by=date&order=desc`; the default order is not documented).

        Pages by `offset` (SDK 3.0.5). Should FAX.PLUS ignore the offset (a full page that
        brings nothing new), the listing steps on by time window instead (`before` the oldest
        submit time seen; boundaries are inclusive). Times are whole seconds, so of a second
        with more than LIST_PAGE faxes only a page can then be listed: such seconds are
        reported as `unlisted_seconds` (the reconciler allows for them)."""
        found: dict[str, FaxRecord] = {}
        unlisted: set[float] = set()
        params: dict[str, str | int] = {
            "category": "sent",
            "after": format_api_time(after),
            "sort_by": "date",
            "order": "desc",
            "limit": LIST_PAGE,
        }
        offset = 0
        for _ in range(_MAX_PAGES):
            paged = {**params, "offset": offset} if offset else params
            page = _fax_records(await self._listing(f"/accounts/{self._user}/faxes", paged))
            fresh = [r for r in page if r.id not in found]
            found.update((r.id, r) for r in fresh)
            oldest = min((r.submit_time for r in page if r.submit_time), default="")
            if len(page) < LIST_PAGE or not oldest:
                break
            if fresh and "before" not in params:
                offset += LIST_PAGE
                continue
            offset = 0
            if fresh:
                params["before"] = oldest[:19]
            else:
                # A page full of one second: the rest of it cannot be listed.
                second = float(int(parse_api_time(oldest) or 0.0))
                unlisted.add(second)
                params["before"] = format_api_time(second - 1)
        return SentListing(list(found.values()), frozenset(unlisted))

    async def list_sent_faxes_unsorted(self, limit: int) -> list[FaxRecord]:
        """One page of sent faxes in the order FAX.PLUS lists them when not told (for doctor
        --live-test: the docs do not say which)."""
        params: dict[str, str | int] = {"category": "sent", "limit": limit}
        return _fax_records(await self._listing(f"/accounts/{self._user}/faxes", params))

    async def _listing(self, path: str, params: dict[str, str | int] | None = None) -> Any:
        """A listing (or one page of it) for reconciliation. A read, so a transient failure is
        tried again at once: otherwise one failed page of twenty fails the whole listing, and
        with it every reconciliation pass while FAX.PLUS is flaky."""
        tries = 1
        while True:
            try:
                return await self._json("GET", path, params=params)
            except TransientApiError as exc:
                # A 429's Retry-After is honoured: a short one waited for here, a longer one
                # handed to the caller, which leaves FAX.PLUS alone until then.
                wait = exc.retry_after or 0.0
                if tries == _PAGE_TRIES or wait > _LISTING_PATIENCE:
                    raise
                tries += 1
                await asyncio.sleep(wait)

    async def get_account(self) -> dict[str, Any]:
        body = await self._json("GET", f"/accounts/{self._user}")
        return body if isinstance(body, dict) else {}

    async def list_numbers(self) -> list[dict[str, Any]]:
        body = await self._json("GET", f"/accounts/{self._user}/numbers")
        numbers = body.get("numbers") if isinstance(body, dict) else None
        return [n for n in numbers or [] if isinstance(n, dict)]

    async def create_hook(self, target: str, event: str = "fax_sent") -> str:
        body = await self._json(
            "POST", "/hooks", idempotent=False, json={"target": target, "event": event}
        )
        return str(body.get("id", "")) if isinstance(body, dict) else ""

    async def list_hooks(self, event: str = "fax_sent") -> list[dict[str, Any]]:
        body = await self._json("GET", "/hooks", params={"event": event})
        hooks = body.get("data") if isinstance(body, dict) else None
        return [h for h in hooks or [] if isinstance(h, dict)]

    async def delete_hook(self, hook_id: str) -> None:
        await self._json("DELETE", f"/hooks/{hook_id}")

    async def get_report(self, fax_id: str) -> bytes:
        """FAX.PLUS's confirmation report of a sent fax (PDF)."""
        response = await self._request(
            "GET",
            f"/accounts/{self._user}/report/{fax_id}",
            idempotent=True,
            headers={"Accept": "application/pdf"},
        )
        if not response.content.startswith(b"%PDF-"):
            raise TransientApiError("the confirmation report is not a PDF")
        return response.content


def sending_numbers(configured: str) -> list[str]:
    """The numbers of a `from` value: one, or several comma-separated (FAX.PLUS load-balances
    a send over them)."""
    return [number.strip() for number in configured.split(",") if number.strip()]


async def choose_from_number(api: FaxApi, configured: str) -> str:
    """The configured sending number(s), as a send's `from`, or the account's first active
    number."""
    if configured:
        return ",".join(sending_numbers(configured))
    for number in await api.list_numbers():
        if number.get("status") == "active" and not number.get("is_canceled"):
            return str(number["number"])
    raise PermanentApiError(
        "the FAX.PLUS account has no active number; set [faxplus] from_number", 0
    )
