"""Fault injection for the simulator: refused, slow, hung and broken API calls; unruly webhooks."""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailfax.sandbox.payloads import ApiError
from mailfax.sandbox.records import JsonObject

if TYPE_CHECKING:
    from mailfax.sandbox.app import SimulatorSettings

# Each group's faults exclude one another (one roll picks at most one), so each group's rates
# must add up to at most 1.
_REQUEST_RATES = ("error_rate", "rate_limit_rate", "timeout_rate", "drop_rate")
_WEBHOOK_RATES = (
    "webhook_drop_rate",
    "webhook_wrong_path_rate",
    "webhook_duplicate_rate",
    "webhook_reorder_rate",
)
_RATES = (*_REQUEST_RATES, *_WEBHOOK_RATES, "webhook_early_rate")
_SUM_SLACK = 1e-9  # 0.1 + 0.2 + 0.7 is a hair over 1 in floating point
_API_PREFIX = "/v3"  # the sandbox's own /sandbox/ledger is never faulted
_MAX_REORDER_DELAY = 0.5  # seconds the true webhook may trail its stale copy
_MAX_DUPLICATES = 3
_RETRY_AFTER = "1"

F = TypeVar("F", bound=enum.Enum)


class RequestFault(enum.Enum):
    UNAVAILABLE = "503 before the request is processed"
    INTERNAL_ERROR = "500 before the request is processed"
    RATE_LIMITED = "429 with Retry-After before the request is processed"
    TIMEOUT = "processed, then the answer is withheld for `hang` seconds"
    DROP = "processed, then the connection breaks off mid-answer"


class WebhookFault(enum.Enum):
    DROP = "never sent"
    WRONG_PATH = "sent to the target with its last path segment altered"
    DUPLICATE = "sent two or more times"
    REORDER = "preceded by a stale copy with a contradicting status, then delayed"


@dataclass(frozen=True)
class RequestDecision:
    latency: float  # seconds to wait before anything else
    fault: RequestFault | None


@dataclass(frozen=True)
class Delivery:
    """One POST of a webhook payload, made `delay` seconds after the previous one."""

    url: str
    payload: JsonObject
    delay: float = 0.0


def check_fault_settings(settings: object) -> None:
    """Raise ValueError unless the fault fields of `settings` (simulator or config) make sense."""
    for name in _RATES:
        rate = getattr(settings, name)
        if not 0 <= rate <= 1:
            raise ValueError(f"{name} must be within 0..1, got {rate}")
    for group in (_REQUEST_RATES, _WEBHOOK_RATES):
        if sum(getattr(settings, name) for name in group) > 1 + _SUM_SLACK:
            raise ValueError(
                f"{' + '.join(group)} must be at most 1: those faults exclude each other"
            )
    for name in ("latency", "hang"):
        if getattr(settings, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(settings, name)}")


class Faults:
    """Every fault decision of one simulator, drawn from one random.Random(seed) so runs repeat."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self._settings = settings
        self._random = random.Random(settings.seed)

    @property
    def hang(self) -> float:
        return self._settings.hang

    def request_decision(self) -> RequestDecision:
        """How one API request is treated: its extra latency and the fault it suffers, if any."""
        s = self._settings
        latency = self._random.uniform(0, s.latency)
        fault = _pick(
            self._random.random(),
            [
                (s.error_rate / 2, RequestFault.UNAVAILABLE),
                (s.error_rate / 2, RequestFault.INTERNAL_ERROR),
                (s.rate_limit_rate, RequestFault.RATE_LIMITED),
                (s.timeout_rate, RequestFault.TIMEOUT),
                (s.drop_rate, RequestFault.DROP),
            ],
        )
        return RequestDecision(latency, fault)

    def webhook_early(self) -> bool:
        """Whether a send's webhooks are delivered before the send is answered."""
        return self._random.random() < self._settings.webhook_early_rate

    def webhook_deliveries(self, target: str, payload: JsonObject) -> list[Delivery]:
        """The POSTs that carry one fax_sent webhook; normally just one, to its target."""
        s = self._settings
        fault = _pick(
            self._random.random(),
            [
                (s.webhook_drop_rate, WebhookFault.DROP),
                (s.webhook_wrong_path_rate, WebhookFault.WRONG_PATH),
                (s.webhook_duplicate_rate, WebhookFault.DUPLICATE),
                (s.webhook_reorder_rate, WebhookFault.REORDER),
            ],
        )
        match fault:
            case WebhookFault.DROP:
                return []
            case WebhookFault.WRONG_PATH:
                return [Delivery(_misrouted(target), payload)]
            case WebhookFault.DUPLICATE:
                return [Delivery(target, payload)] * self._random.randint(2, _MAX_DUPLICATES)
            case WebhookFault.REORDER:
                # The delay lets webhooks of faxes that completed later overtake this one.
                delay = self._random.uniform(0, _MAX_REORDER_DELAY)
                return [Delivery(target, _stale_copy(payload)), Delivery(target, payload, delay)]
            case None:
                return [Delivery(target, payload)]


def _pick(roll: float, bands: Sequence[tuple[float, F]]) -> F | None:
    """The fault whose band the roll in [0, 1) falls in; the bands lie end to end from 0."""
    for rate, fault in bands:
        if roll < rate:
            return fault
        roll -= rate
    return None


def _misrouted(target: str) -> str:
    parts = urlsplit(target)
    head, _, last = parts.path.rpartition("/")
    return urlunsplit(parts._replace(path=f"{head}/{last}-misrouted"))


def _stale_copy(payload: JsonObject) -> JsonObject:
    """The payload of an earlier report that the final one contradicts."""
    data = payload["data"]
    assert isinstance(data, dict)
    status = "failed_user_busy" if data["status"] == "success" else "success"
    return {**payload, "data": {**data, "status": status}}


class FaultInjection:
    """ASGI middleware that delays, refuses, withholds or breaks off /v3 answers."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self._app = app
        self._faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_API_PREFIX):
            await self._app(scope, receive, send)
            return
        decision = self._faults.request_decision()
        await asyncio.sleep(decision.latency)
        match decision.fault:
            case None:
                await self._app(scope, receive, send)
            case RequestFault.UNAVAILABLE | RequestFault.INTERNAL_ERROR | RequestFault.RATE_LIMITED:
                await _refusal(decision.fault)(scope, receive, send)
            case RequestFault.TIMEOUT:
                answer = await _processed(self._app, scope, receive)
                if await _client_left_within(receive, self._faults.hang):
                    return
                for message in answer:
                    await send(message)
            case RequestFault.DROP:
                await _break_off(await _processed(self._app, scope, receive), send)


def _refusal(fault: RequestFault) -> Response:
    description = f"injected by the sandbox: {fault.value}"
    if fault is RequestFault.UNAVAILABLE:
        return ApiError(503, "service_unavailable", description).response()
    if fault is RequestFault.INTERNAL_ERROR:
        return ApiError(500, "internal_error", description).response()
    response = ApiError(429, "too_many_requests", description).response()
    response.headers["Retry-After"] = _RETRY_AFTER
    return response


async def _processed(app: ASGIApp, scope: Scope, receive: Receive) -> list[Message]:
    """Run the request through `app` to the end, keeping its answer instead of sending it."""
    answer: list[Message] = []

    async def keep(message: Message) -> None:
        answer.append(message)

    await app(scope, receive, keep)
    return answer


async def _client_left_within(receive: Receive, seconds: float) -> bool:
    """Wait up to `seconds` for the client to hang up; True if it did."""
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


async def _break_off(answer: list[Message], send: Send) -> None:
    """Send the status line, the headers and half the body, then stop."""
    start, *chunks = answer
    body = b"".join(chunk.get("body", b"") for chunk in chunks)
    await send(start)
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    # Returning from an unfinished response makes uvicorn close the connection, so the client
    # reads fewer bytes than the Content-Length promised (httpx raises RemoteProtocolError).
