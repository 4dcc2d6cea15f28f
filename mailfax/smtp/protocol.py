"""The hardened aiosmtpd server: enhanced codes, async AUTH, connection caps and deadlines."""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import functools
import logging
import re
import sys
from base64 import b64decode, b64encode
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, syntax

from mailfax.logs import log_event
from mailfax.metrics import count_smtp_reply
from mailfax.smtp.admission import Admission
from mailfax.smtp.auth import PasswordAuthenticator
from mailfax.smtp.paths import read_path

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
    # Bytes per second a large mail must keep arriving at once it holds a slot; 0 = any.
    large_mail_min_rate: int = 0


class UploadTooSlow(Exception):
    """A large mail stopped arriving at the minimum rate while holding a large-mail slot."""


# The window the minimum rate of a large mail is measured over: a mail that brings less than
# min_rate x RATE_WINDOW bytes in any such window gives its slot up (TCP stalls a second or two).
RATE_WINDOW = 5.0


class LargeMailSlots:
    """The large-mail slots: a few in total, `per_client` of them held or awaited by one client
    address (trusted relays exempt), and a mail that cannot have one within `wait` seconds is
    answered 451 4.3.2 instead of waiting into its DATA deadline."""

    def __init__(
        self, total: int, per_client: int, wait: float, exempt: Callable[[str], bool]
    ) -> None:
        self._slots = asyncio.Semaphore(total)
        self._per_client = per_client
        self._wait = wait
        self._exempt = exempt
        self._taken: dict[str, int] = {}

    async def take(self, client: str, holder: contextlib.AsyncExitStack) -> str | None:
        """Take a slot, released when `holder` closes; or the reply refusing the mail."""
        if self._taken.get(client, 0) >= self._per_client and not self._exempt(client):
            return (
                "451 4.3.2 Too many large mails from your address at once; "
                "send them one after another"
            )
        self._taken[client] = self._taken.get(client, 0) + 1
        try:
            async with asyncio.timeout(self._wait):
                await self._slots.acquire()
        except BaseException as exc:
            self._release_client(client)
            if isinstance(exc, TimeoutError):
                log_event(log, "smtp.large_mail_busy", logging.WARNING, peer=client)
                return "451 4.3.2 The gateway is busy with large mails; try again in a few minutes"
            raise
        holder.callback(self._release, client)
        return None

    def _release(self, client: str) -> None:
        self._slots.release()
        self._release_client(client)

    def _release_client(self, client: str) -> None:
        left = self._taken.get(client, 0) - 1
        if left > 0:
            self._taken[client] = left
        else:
            self._taken.pop(client, None)


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
        if self._open.get(client, 0) >= self._per_client and not self.is_exempt(client):
            return "421 4.7.0 Too many connections from your address, try again later"
        self._open[client] = self._open.get(client, 0) + 1
        return None

    def is_exempt(self, client: str) -> bool:
        """Whether the client is trusted (an MTA in front): no per-client connection cap, and no
        per-session command count."""
        return self._exempt(client)

    def release(self, client: str) -> None:
        left = self._open.get(client, 0) - 1
        if left > 0:
            self._open[client] = left
        else:
            self._open.pop(client, None)


class FaxEnvelope(Envelope):
    """aiosmtpd's envelope plus how its sender was admitted (set at MAIL FROM), and during DATA
    a way to take a large-mail slot (None, or the reply refusing the mail) for a mail whose
    decoded size is large though its own is not."""

    admission: Admission | None = None
    take_large_slot: Callable[[], Awaitable[str | None]] | None = None


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


# RFC 5321 4.1.1.4: the mail ends with a line holding one dot.
_DOT_LINE = b".\r\n"
# A mail past this size takes one of the server's large-mail slots before it is read on.
LARGE_MAIL_BYTES = 1_000_000


async def read_data(
    reader: asyncio.StreamReader,
    limit: int | None,
    large: int = 0,
    before_large: Callable[[], Awaitable[object]] | None = None,
    min_rate: int = 0,
) -> bytes | None:
    """The mail after DATA's 354, up to the line "." (RFC 5321 4.5.2 dot-stuffing undone), or
    None when it is longer than `limit` bytes as sent (then read to its end and discarded).
    Once a mail that fits has passed `large` bytes, `before_large` is awaited before more is
    read (the client waits on TCP meanwhile); when it returns False the mail is read to its end
    and discarded too. From then on, fewer than `min_rate` bytes a second over a RATE_WINDOW
    raise UploadTooSlow.

    aiosmtpd reads DATA one line at a time; this takes whatever the stream holds at once. It
    accepts what aiosmtpd accepts (only CRLF "." CRLF ends the mail, a bare LF is data), except
    that it does not refuse lines longer than 1000 octets."""
    pieces: list[bytes] = []
    size = 0
    discarded = False
    # The last two bytes before the current piece; the CRLF that ended the DATA command counts,
    # so a first line "." ends an empty mail.
    before = b"\r\n"
    pace: _Pace | None = None
    while True:
        try:
            # Never reads past the dot line: what follows is the client's next command.
            async with asyncio.timeout_at(pace.deadline if pace is not None else None):
                piece = await reader.readuntil(_DOT_LINE)
        except asyncio.LimitOverrunError as exc:
            # No dot line within the stream's (line-sized) limit: take all that cannot be
            # part of one, however much that is.
            piece = await reader.read(exc.consumed)
        except TimeoutError:
            raise UploadTooSlow from None
        if pace is not None:
            pace.arrived(len(piece))
        ended = piece.endswith(_DOT_LINE) and _preceding(before, piece, len(piece) - 3) == b"\r\n"
        size += len(piece) - (len(_DOT_LINE) if ended else 0)
        if limit and size > limit:
            # Read on to the end of the mail, but keep none of it.
            discarded = True
            pieces.clear()
        elif not discarded:
            if before_large is not None and size > large:
                if await before_large() is False:
                    discarded = True
                    pieces.clear()
                elif min_rate:
                    pace = _Pace(min_rate)
                before_large = None
            if not discarded:
                pieces.append(piece)
        if ended:
            return None if discarded else _unstuffed(pieces)
        before = _preceding(before, piece, len(piece))


class _Pace:
    """Whether a large mail keeps arriving at `min_rate` bytes a second, window by window."""

    def __init__(self, min_rate: int) -> None:
        self._due = min_rate * RATE_WINDOW
        self._loop = asyncio.get_running_loop()
        self.deadline = self._loop.time() + RATE_WINDOW
        self._received = 0

    def arrived(self, size: int) -> None:
        self._received += size
        if self._received >= self._due:
            self.deadline = self._loop.time() + RATE_WINDOW
            self._received = 0


def _preceding(before: bytes, piece: bytes, end: int) -> bytes:
    """The two bytes of the stream before piece[end:], `before` being the two before `piece`."""
    return piece[end - 2 : end] if end >= 2 else (before + piece[:end])[-2:]


def _unstuffed(pieces: list[bytes]) -> bytes:
    """The pieces of a mail (the last ending in the dot line) joined, without the dot line and
    with the first character of every line that starts with "." removed (as aiosmtpd does)."""
    views = [memoryview(piece) for piece in pieces]
    views[-1] = views[-1][: -len(_DOT_LINE)]
    if pieces[0].startswith(b"."):
        views[0] = views[0][1:]
    # The join is the one copy of the mail; replace copies it again only if a line starts with
    # a dot (base64 and quoted-printable bodies never do).
    return b"".join(views).replace(b"\r\n.", b"\r\n")


# A host name with a control character (a bare CR) is no domain (RFC 5321 4.1.1.1); written
# into a Received: header it could start a header line of its own.
_BAD_HELLO = "501 5.5.4 Invalid host name: it holds a control character; send your domain name"


def _has_controls(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


# Senders and fax numbers repeat from mail to mail (cached here, not by decorating read_path,
# whose body mutation testing could then not reach).
_read_path = functools.lru_cache(maxsize=4096)(read_path)


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
        large_mails: LargeMailSlots,
        authenticator: PasswordAuthenticator | None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("decode_data"):
            raise ValueError("FaxSMTP hands the handler bytes: decode_data is not supported")
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
        self._large_mails = large_mails
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
        if self._gate.is_exempt(self._client):
            # An MTA in front sends mail after mail on one connection (Postfix reuses one for
            # up to 300 s): counting its MAIL commands would answer it 421 every hundred mails.
            # AUTH, listed by name, keeps its limit.
            self._call_limit_default = sys.maxsize
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
        # A reply may quote what the client sent; 8-bit that is not UTF-8 becomes "?" rather
        # than fail the reply.
        reply = self._with_enhanced_code(status).encode("utf-8", "replace").decode("utf-8")
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

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd's own reads the path as an RFC 5322 address, where "(212)" in
        # "<(212)555-0199@fax.local>" is a comment it drops; RFC 5321 paths have no comments.
        # (It also declared a typing.Protocol class on every call, a tenth of the event loop's
        # time per accepted mail.)
        if not arg:
            return "", ""
        parsed = _read_path(arg)
        if parsed is None:
            return None, None
        address, rest = parsed
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    # --- commands --------------------------------------------------------------------------

    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd's own smtp_DATA, with the body read by read_data instead of line by line.
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        # aiosmtpd's idle timer is not re-armed while the body arrives: armed with the
        # DATA deadline here, it bounds the upload.
        self._reset_timeout(self._limits.data_deadline)
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # A large mail waits for a slot once it is past LARGE_MAIL_BYTES and keeps it until it
        # is answered: the large mails held in memory and extracted at once are bounded, and
        # small ones, which take no slot, never queue behind them.
        async with contextlib.AsyncExitStack() as slot:
            # The outcome of taking a slot, once taken or refused: None = held.
            taken: list[str | None] = []

            async def take_large_slot() -> str | None:
                if not taken:
                    assert self._client is not None
                    taken.append(await self._large_mails.take(self._client, slot))
                return taken[0]

            async def before_large() -> bool:
                return await take_large_slot() is None

            assert isinstance(self.envelope, FaxEnvelope)
            self.envelope.take_large_slot = take_large_slot
            try:
                content = await read_data(
                    self._reader,
                    self.data_size_limit,
                    LARGE_MAIL_BYTES,
                    before_large,
                    self._limits.large_mail_min_rate,
                )
            except UploadTooSlow:
                log_event(log, "smtp.upload_too_slow", logging.WARNING, peer=self._client)
                self._close_with(
                    f"421 4.4.2 Large mail arriving too slowly (under "
                    f"{self._limits.large_mail_min_rate} bytes/s); closing connection"
                )
                return
            status: Any = (taken and taken[0]) or "552 Error: Too much mail data"
            if content is not None:
                # decode_data=False (refused in __init__): content and original_content are
                # the bytes.
                self.envelope.content = self.envelope.original_content = content
                del content  # the handler may drop the envelope's references (a large mail)
                # The body is in: committing it gets a fresh command timeout, not the rest of
                # the DATA deadline.
                self._reset_timeout()
                self._in_data_handler = True
                try:
                    status = await self._call_handler_hook("DATA")
                finally:
                    self._in_data_handler = False
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # (unannotated)
            await self.push("250 OK" if status is MISSING else status)
        if self._deadline_passed:
            self._close_with("421 4.4.2 Session time limit exceeded, closing connection")

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        await self._hello(hostname, super().smtp_HELO)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        await self._hello(hostname, super().smtp_EHLO)

    async def _hello(self, hostname: str, answer: Callable[[str], Awaitable[None]]) -> None:
        if _has_controls(hostname):
            await self.push(_BAD_HELLO)
            return
        await answer(hostname)

    async def smtp_VRFY(self, arg: str) -> None:
        await self.push("502 5.5.1 VRFY is not supported")

    async def smtp_EXPN(self, arg: str) -> None:
        await self.push("502 5.5.1 EXPN is not supported")

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> Any:
        # aiosmtpd's, except that an answer longer than a line (a 5 MB "password") is read to
        # its end and answered 500 5.5.6 (RFC 4954), where aiosmtpd's readline raised into a
        # 451. The answer is never logged.
        data = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (b64encode(data) if encode_to_b64 else data))
        line = await self._read_auth_line()
        if line is None:
            await self.push("500 5.5.6 Authentication exchange line is too long")
            return MISSING
        blob = line.strip()
        if blob == b"*":
            await self.push("501 5.7.0 Auth aborted")
            return MISSING
        try:
            return b64decode(blob, validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Can't decode base64")
            return MISSING

    async def _read_auth_line(self) -> bytes | None:
        """One line from the client, or None when it is longer than the reader's limit (then
        read to its end and dropped)."""
        too_long = False
        while True:
            try:
                line = await self._reader.readuntil()
            except asyncio.LimitOverrunError as exc:
                await self._reader.read(exc.consumed)
                too_long = True
                continue
            except asyncio.IncompleteReadError as exc:  # the client left mid-line
                line = exc.partial
            return None if too_long else line

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
