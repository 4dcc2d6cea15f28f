"""SMTP AUTH against the users file: argon2 off the event loop, failed logins throttled."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from aiosmtpd.smtp import AuthResult

from mailfax.logs import log_event
from mailfax.users import UserDirectory, UsersFileError

log = logging.getLogger("mailfax.smtp")

Clock = Callable[[], float]

INVALID_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"
# After n failures in a row a client address (or a user name) waits 2**(n-1) seconds before
# its next attempt is even checked, up to MAX_LOGIN_DELAY; FORGET_AFTER quiet seconds reset it.
MAX_LOGIN_DELAY = 600.0
FORGET_AFTER = 3600.0
MAX_TRACKED = 10_000


@dataclass
class _Failures:
    count: int
    last: float

    @property
    def next_allowed(self) -> float:
        return self.last + min(2.0 ** (self.count - 1), MAX_LOGIN_DELAY)


class LoginThrottle:
    """Failed logins per client address and per user name, in memory."""

    def __init__(self) -> None:
        self._failures: dict[str, _Failures] = {}

    def wait(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds before another attempt for any of `keys` is allowed (0 = now)."""
        waits = [f.next_allowed - now for k in keys if (f := self._failures.get(k)) is not None]
        return max([0.0, *waits])

    def failed(self, keys: tuple[str, ...], now: float) -> int:
        """Record a failure; returns the highest count of consecutive failures."""
        if len(self._failures) >= MAX_TRACKED:
            self._forget(now)
        counts = []
        for key in keys:
            failures = self._failures.get(key)
            if failures is None or now - failures.last > FORGET_AFTER:
                failures = self._failures[key] = _Failures(0, now)
            failures.count += 1
            failures.last = now
            counts.append(failures.count)
        return max(counts)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _forget(self, now: float) -> None:
        for key, failures in list(self._failures.items()):
            if now - failures.last > FORGET_AFTER:
                del self._failures[key]
        while len(self._failures) >= MAX_TRACKED:
            # Under a flood of distinct keys, the oldest go first.
            del self._failures[min(self._failures, key=lambda k: self._failures[k].last)]


class PasswordAuthenticator:
    """Checks a login and password; the User it returns becomes the session's auth_data."""

    def __init__(self, directory: UserDirectory, clock: Clock) -> None:
        self._directory = directory
        self._clock = clock
        self._throttle = LoginThrottle()

    async def authenticate(self, client: str, login: bytes, password: bytes) -> AuthResult:
        name = login.decode("utf-8", errors="replace")
        keys = (f"client:{client}", f"user:{name}")
        wait = self._throttle.wait(keys, self._clock())
        if wait > 0:
            # Not even checked: a guess made now cannot succeed, so it teaches nothing.
            log_event(log, "smtp.auth_throttled", logging.WARNING, peer=client, user=name)
            return AuthResult(
                success=False,
                handled=False,
                message=f"454 4.7.0 Too many failed logins; try again in {math.ceil(wait)} s",
            )
        try:
            user = await asyncio.to_thread(
                self._directory.authenticate, name, password.decode("utf-8", errors="replace")
            )
        except UsersFileError as exc:
            log_event(log, "smtp.users_file_invalid", logging.ERROR, error=str(exc))
            return AuthResult(
                success=False, handled=False, message="454 4.7.0 Temporary authentication failure"
            )
        if user is None:
            failures = self._throttle.failed(keys, self._clock())
            log_event(
                log, "smtp.auth_failed", logging.WARNING, peer=client, user=name, failures=failures
            )
            return AuthResult(success=False, handled=False, message=INVALID_CREDENTIALS)
        self._throttle.succeeded(f"user:{name}")
        log_event(log, "smtp.auth_ok", peer=client, user=name)
        return AuthResult(success=True, auth_data=user)
