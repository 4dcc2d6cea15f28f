"""The hardened aiosmtpd server: enhanced codes, async AUTH, connection caps and deadlines."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword

from mailfax.logs import log_event
from mailfax.metrics import count_smtp_reply
from mailfax.smtp.admission import Admission
from mailfax.smtp.auth import PasswordAuthenticator

log = logging.getLogger("mailfax.smtp")

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}\b")
# A connection that cannot log in within this many AUTH commands is closed (421).
AUTH_ATTEMPTS_PER_CONNECTION = 3


@dataclass(frozen=True)
class SessionLimits:
    """[limits] as one connection sees them."""

    session_deadline: float
    data_deadline: float
    command_call_limit: int


class ConnectionGate:
    """Counts open SMTP connections, in total and per client address (aiosmtpd has no cap)."""

    def __init__(self, total: int, per_client: int, exempt: Callable[[str], bool]) -> None:
        self._total = total
        self._per_client = per_client
        self._exempt = exempt
        self._open: dict[str, int] = {}

    def admit(self, client: str) -> str | None:
        """Count the connection in, or return the 421 reply refusing it."""
        if sum(self._open.values()) >= self._total:
            return "421 4.7.0 Too many connections, try again later"
        if self._open.get(client, 0) >= self._per_client and not self._exempt(client):
            return "421 4.7.0 Too many connections from your address, try again later"
        self._open[client] = self._open.get(client, 0) + 1
        return None

    def release(self, client: str) -> None:
        left = self._open.get(client, 0) - 1
        if left > 0:
            self._open[client] = left
        else:
            self._open.pop(client, None)


class FaxEnvelope(Envelope):
    """aiosmtpd's envelope plus how its sender was admitted (set at MAIL FROM)."""

    admission: Admission | None = None


def peer_address(peer: Any) -> str:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "unknown")


def _collect_credentials(
    server: SMTP, session: Any, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    # aiosmtpd calls its authenticator synchronously, so a password hash checked here would
    # stall every connection. It only hands the decoded credentials back; FaxSMTP verifies
    # them asynchronously in auth_PLAIN / auth_LOGIN.
    return AuthResult(success=False, handled=False, auth_data=auth_data)


class FaxSMTP(SMTP):
    """aiosmtpd's SMTP with an enhanced status code on every reply a sender acts on, AUTH
    verified off the event loop, a connection gate, session and DATA deadlines that answer
    421 and close, and no VRFY/EXPN."""

    def __init__(
        self,
        handler: Any,
        *,
        gate: ConnectionGate,
        limits: SessionLimits,
        authenticator: PasswordAuthenticator | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            authenticator=_collect_credentials,
            command_call_limit={
                "*": limits.command_call_limit,
                "AUTH": AUTH_ATTEMPTS_PER_CONNECTION,
            },
            **kwargs,
        )
        self._gate = gate
        self._limits = limits
        self._passwords = authenticator
        self._client: str | None = None
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None
        self._in_data_handler = False
        self._deadline_passed = False
        limit = kwargs.get("data_size_limit") or 0
        # aiosmtpd's own replies carry no enhanced codes (RFC 3463); rewrite them here,
        # the one place every reply passes through.
        self._rewrites = {
            "552 Error: message size exceeds fixed maximum message size": (
                f"552 5.3.4 Message too big: this gateway accepts at most {limit} bytes"
            ),
            "552 Error: Too much mail data": (
                f"552 5.3.4 Message too big: this gateway accepts at most {limit} bytes"
            ),
            "503 Error: need MAIL command": "503 5.5.1 Send MAIL FROM first",
            "503 Error: need RCPT command": "503 5.5.1 Send RCPT TO first",
            "503 Error: nested MAIL command": "503 5.5.1 MAIL FROM already given",
            "503 Already authenticated": "503 5.5.1 Already authenticated",
        }

    def _create_envelope(self) -> FaxEnvelope:
        return FaxEnvelope()

    # --- connections: the gate and the session deadline --------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._client is not None:
            # Called again by STARTTLS with the TLS transport: the same connection.
            super().connection_made(transport)
            return
        self._client = peer_address(transport.get_extra_info("peername"))
        refusal = self._gate.admit(self._client)
        if refusal is not None:
            self._refused = True
            log_event(log, "smtp.connection_refused", logging.WARNING, peer=self._client)
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal.encode() + b"\r\n")
            transport.close()
            return
        super().connection_made(transport)
        self._deadline = self.loop.call_later(
            self._limits.session_deadline, self._session_deadline_passed
        )

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            assert self._client is not None
            self._gate.release(self._client)
        super().connection_lost(error)

    def _session_deadline_passed(self) -> None:
        if self._in_data_handler:
            # The mail is being committed: cutting in now could lose the 250 for a mail
            # that is accepted, and the client would send it twice. Close after the reply.
            self._deadline_passed = True
            return
        self._close_with("421 4.4.2 Session time limit exceeded, closing connection")

    def _timeout_cb(self) -> None:
        # The idle timeout, and the DATA deadline (armed in smtp_DATA): say so, then close.
        self._close_with("421 4.4.2 Timeout, closing connection")

    def _close_with(self, reply: str) -> None:
        log_event(log, "smtp.session_closed", peer=self._client or "unknown", reply=reply)
        if self.transport is not None:
            assert isinstance(self.transport, asyncio.WriteTransport)
            if not self.transport.is_closing():
                self.transport.write(reply.encode() + b"\r\n")
            self.transport.close()

    # --- replies -------------------------------------------------------------------------

    async def push(self, status: AnyStr) -> None:
        if not isinstance(status, str):
            await super().push(status)
            return
        reply = self._with_enhanced_code(status)
        count_smtp_reply(reply)
        await super().push(reply)
        if reply.startswith("421") and self.transport is not None:
            # aiosmtpd keeps the session open after a 421 a hook returns; RFC 5321 closes it.
            self.transport.close()

    def _with_enhanced_code(self, status: str) -> str:
        if status in self._rewrites:
            return self._rewrites[status]
        code, _, text = status.partition(" ")
        if not (code.isdigit() and code[0] in "45") or _ENHANCED.match(text):
            return status
        generic = {"4": "4.0.0", "5": "5.5.0"}[code[0]]
        return f"{code} {generic} {text.removeprefix('Error: ')}"

    # --- commands --------------------------------------------------------------------------

    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd's idle timer is not re-armed while the body arrives: armed with the
        # DATA deadline here, it bounds the upload.
        self._reset_timeout(self._limits.data_deadline)
        await super().smtp_DATA(arg)
        if self._deadline_passed:
            self._close_with("421 4.4.2 Session time limit exceeded, closing connection")

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        if command != "DATA":
            return await super()._call_handler_hook(command, *args)
        # The body is in: committing it gets a fresh command timeout, not the rest of the
        # DATA deadline.
        self._reset_timeout()
        self._in_data_handler = True
        try:
            return await super()._call_handler_hook(command, *args)
        finally:
            self._in_data_handler = False

    async def smtp_VRFY(self, arg: str) -> None:
        await self.push("502 5.5.1 VRFY is not supported")

    async def smtp_EXPN(self, arg: str) -> None:
        await self.push("502 5.5.1 EXPN is not supported")

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_LOGIN(_, args))

    async def _verify(self, collected: AuthResult) -> AuthResult:
        credentials = collected.auth_data
        if not isinstance(credentials, LoginPassword):
            return collected  # aborted or malformed: aiosmtpd has answered already
        if self._passwords is None:
            return AuthResult(success=False, handled=False)
        assert self._client is not None
        return await self._passwords.authenticate(
            self._client, credentials.login, credentials.password
        )
