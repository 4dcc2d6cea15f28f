"""Checks in front of the webhook endpoint: client networks, rate, content type, body size."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mailfax.networks import Networks

# Content types a JSON webhook may declare. An undeclared type is let through: FAX.PLUS does
# not document the header, and the fetch that confirms every webhook is the real check.
_JSON_TYPES = ("application/json", "text/json")
MAX_TRACKED_CLIENTS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client address: `rate` requests a second, bursts of twice that."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(1.0, 2 * rate)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, client: str) -> bool:
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_CLIENTS:
                # Full buckets carry no state worth keeping: forget them first.
                self._buckets = {
                    k: b for k, b in self._buckets.items() if self._level(b, now) < self._burst
                }
            bucket = self._buckets[client] = _Bucket(self._burst, now)
        bucket.tokens = self._level(bucket, now)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)


class WebhookGuard:
    """[http] webhook_allowed_networks and webhook_rate_limit, and the content type."""

    def __init__(self, allowed_networks: Networks, rate_limit: float) -> None:
        self._allowed = allowed_networks
        self._limiter = RateLimiter(rate_limit) if rate_limit > 0 else None

    def refusal(self, request: Request) -> Response | None:
        """Checked before the secret path: a refused client learns nothing about it."""
        client = request.client.host if request.client else ""
        if self._allowed and self._allowed.match(client) is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        if self._limiter is not None and not self._limiter.allow(client):
            return JSONResponse(
                {"error": "too many requests"}, status_code=429, headers={"Retry-After": "1"}
            )
        return None


def content_type_refusal(request: Request) -> Response | None:
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if declared and declared not in _JSON_TYPES and not declared.endswith("+json"):
        return JSONResponse({"error": "content type must be application/json"}, status_code=415)
    return None


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds `limit` bytes (never buffered beyond that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
