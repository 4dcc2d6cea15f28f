"""The SMTP role: the submission listener and the implicit-TLS one, sharing limits and a cert."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from mailfax._http import bind_listener, parse_hostport
from mailfax.config import Settings
from mailfax.logs import log_event
from mailfax.mail.model import ExtractionOptions
from mailfax.smtp.auth import PasswordAuthenticator
from mailfax.smtp.extraction import ExtractionPool, extraction_workers
from mailfax.smtp.intake import FaxIntakeHandler
from mailfax.smtp.protocol import ConnectionGate, FaxSMTP, LargeMailSlots, SessionLimits
from mailfax.smtp.tls import TlsCertificate
from mailfax.store import Store
from mailfax.users import UserDirectory
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.smtp")

Clock = Callable[[], float]
Address = tuple[str, int]


def large_mail_slots() -> int:
    """Large mails read and extracted at once: one fewer than the extraction workers, so that
    small mails keep a worker while large ones arrive (at least one; at most four, as each
    holds a few copies of a mail of up to [smtp] max_message_size in memory)."""
    return max(1, min(4, extraction_workers() - 1))


class SmtpServer:
    """One handler, one connection gate and one certificate behind both listeners."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        wakeup: Wakeup,
        clock: Clock,
        extraction: ExtractionOptions | None = None,
    ) -> None:
        self._settings = settings
        self._extraction = ExtractionPool(extraction or ExtractionOptions(), extraction_workers())
        self.handler = FaxIntakeHandler(store, settings, wakeup, clock, self._extraction)
        smtp = settings.smtp
        self.certificate = TlsCertificate(smtp.tls_cert, smtp.tls_key) if smtp.tls_enabled else None
        self._passwords = PasswordAuthenticator(UserDirectory(settings.users_path), clock)
        limits = settings.limits
        self._gate = ConnectionGate(
            limits.max_connections,
            limits.max_connections_per_client,
            self.handler.admission.is_trusted,
        )
        self._limits = SessionLimits(
            limits.session_deadline,
            limits.data_deadline,
            limits.command_call_limit,
            limits.large_mail_min_rate,
        )
        self._large_mails = LargeMailSlots(
            large_mail_slots(),
            limits.large_mails_per_client,
            limits.large_mail_wait,
            self.handler.admission.is_trusted,
        )
        self._servers: list[asyncio.Server] = []
        self._warm_up: asyncio.Task[None] | None = None

    async def start(self) -> tuple[Address, Address | None]:
        """Listen; returns the actual addresses of the submission and implicit-TLS listeners."""
        smtp = self._settings.smtp
        plain = await self._listen(smtp.listen, implicit_tls=False)
        implicit = None
        if smtp.tls_listen:
            implicit = await self._listen(smtp.tls_listen, implicit_tls=True)
        # In the background: listening does not wait, and the first mails do not pay for it.
        self._warm_up = asyncio.create_task(self._extraction.warm_up())
        if smtp.auth_required and self.certificate is None:
            log_event(
                log,
                "smtp.no_tls",
                logging.WARNING,
                detail="AUTH is offered only over TLS: set [smtp] tls_cert and tls_key",
            )
        return plain, implicit

    async def _listen(self, listen: str, implicit_tls: bool) -> Address:
        loop = asyncio.get_running_loop()
        sock = bind_listener(*parse_hostport(listen))
        context = self.certificate.context if self.certificate else None
        server = await loop.create_server(
            lambda: FaxSMTP(
                self.handler,
                gate=self._gate,
                limits=self._limits,
                large_mails=self._large_mails,
                authenticator=self._passwords,
                data_size_limit=self._settings.smtp.max_message_bytes,
                enable_SMTPUTF8=True,
                ident="mailfax ESMTP",
                hostname=socket.getfqdn(),
                timeout=300,
                # STARTTLS on the submission listener; the implicit one is TLS already,
                # so there AUTH needs no STARTTLS first.
                tls_context=None if implicit_tls else context,
                auth_require_tls=not implicit_tls,
                loop=loop,
            ),
            sock=sock,
            ssl=context if implicit_tls else None,
        )
        self._servers.append(server)
        return str(sock.getsockname()[0]), int(sock.getsockname()[1])

    def is_serving(self) -> bool:
        return bool(self._servers) and all(server.is_serving() for server in self._servers)

    def reload_tls(self) -> bool:
        """SIGHUP: load the certificate files again (False if there are none or they fail)."""
        return self.certificate.reload() if self.certificate else False

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers = []
        if self._warm_up is not None:
            self._warm_up.cancel()
            await asyncio.gather(self._warm_up, return_exceptions=True)
        await self._extraction.close()
