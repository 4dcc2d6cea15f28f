"""SMTP AUTH against the users file: argon2 off the event loop, failed logins throttled."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from aiosmtpd.smtp import AuthResult

from mailfax.logs import log_event, masked
from mailfax.users import UserDirectory, UsersFileError

log = logging.getLogger("mailfax.smtp")

Clock = Callable[[], float]

INVALID_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"
# After n failures in a row a key waits 2**(n - free) seconds before its next attempt is even
# checked (free: the failures it may make before any wait), up to MAX_LOGIN_DELAY;
# FORGET_AFTER quiet seconds reset it. The keys: the client address, the (address, user) pair,
# and the user name alone. The last has a much higher allowance and is never consulted for an
# address that has logged in successfully before: an attacker elsewhere guessing alice's
# password slows down only the addresses alice never used, and only after USER_FREE_FAILURES.
MAX_LOGIN_DELAY = 600.0
FORGET_AFTER = 3600.0
MAX_TRACKED = 10_000
CLIENT_FREE_FAILURES = 1
USER_FREE_FAILURES = 20
# Addresses remembered as having logged in (in memory, the most recent first to stay).
MAX_KNOWN_CLIENTS = 10_000


@dataclass
class _Failures:
    count: int
    last: float
    free: int

    @property
    def next_allowed(self) -> float:
        if self.count < self.free:
            return self.last
        return self.last + min(2.0 ** (self.count - self.free), MAX_LOGIN_DELAY)


class LoginThrottle:
    """Failed logins per key (client address, address and user, user name), in memory."""

    def __init__(self) -> None:
        self._failures: dict[str, _Failures] = {}

    def wait(self, keys: dict[str, int], now: float) -> float:
        """Seconds before another attempt for any of `keys` is allowed (0 = now)."""
        waits = [f.next_allowed - now for k in keys if (f := self._failures.get(k)) is not None]
        return max([0.0, *waits])

    def failed(self, keys: dict[str, int], now: float) -> int:
        """Record a failure for each key (the value: its free failures); returns the highest
        count of consecutive failures."""
        if len(self._failures) >= MAX_TRACKED:
            self._forget(now)
        counts = []
        for key, free in keys.items():
            failures = self._failures.get(key)
            if failures is None or now - failures.last > FORGET_AFTER:
                failures = self._failures[key] = _Failures(0, now, free)
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
        # Client addresses that have logged in successfully, oldest first (insertion order).
        self._known_clients: dict[str, None] = {}

    def _keys(self, client: str, name: str) -> dict[str, int]:
        keys = {
            f"client:{client}": CLIENT_FREE_FAILURES,
            f"pair:{client} {name}": CLIENT_FREE_FAILURES,
        }
        if client not in self._known_clients:
            keys[f"user:{name}"] = USER_FREE_FAILURES
        return keys

    def _known(self, client: str) -> None:
        self._known_clients.pop(client, None)
        self._known_clients[client] = None
        if len(self._known_clients) > MAX_KNOWN_CLIENTS:
            del self._known_clients[next(iter(self._known_clients))]

    async def authenticate(self, client: str, login: bytes, password: bytes) -> AuthResult:
        name = login.decode("utf-8", errors="replace")
        keys = self._keys(client, name)
        wait = self._throttle.wait(keys, self._clock())
        if wait > 0:
            # Not even checked: a guess made now cannot succeed, so it teaches nothing.
            shown = await self._shown(name)
            log_event(log, "smtp.auth_throttled", logging.WARNING, peer=client, user=shown)
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
                log,
                "smtp.auth_failed",
                logging.WARNING,
                peer=client,
                user=await self._shown(name),
                failures=failures,
            )
            return AuthResult(success=False, handled=False, message=INVALID_CREDENTIALS)
        # The client address's own count stays: a valid account must not reset the throttle
        # on guesses at other users' passwords from the same address.
        self._throttle.succeeded(f"pair:{client} {name}")
        self._throttle.succeeded(f"user:{name}")
        self._known(client)
        log_event(log, "smtp.auth_ok", peer=client, user=name)
        return AuthResult(success=True, auth_data=user)

    async def _shown(self, name: str) -> str:
        """A login name as logged: a user's name as it is, any other only masked."""
        known = await asyncio.to_thread(self._directory.knows, name)
        return name if known else masked(name)
