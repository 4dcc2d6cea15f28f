"""Receipt delivery to a real smarthost on 127.0.0.1: null sender, STARTTLS, smtps, AUTH."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailfax.config import ReceiptsSettings
from mailfax.receipts.deliver import DeliveryError, SmtpSender, receipt_sender

RECEIPT = b"From: mailfax@gw\r\nTo: alice@example.com\r\nSubject: receipt\r\n\r\nbody\r\n"


@dataclass
class Received:
    """What the smarthost saw of each delivery."""

    mails: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


class Smarthost:
    """aiosmtpd handler and authenticator: accepts alice@example.com, refuses the rest."""

    def __init__(self) -> None:
        self.received = Received()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address != "alice@example.com":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.original_content is not None and server.transport is not None
        self.received.mails.append(
            (str(envelope.mail_from), list(envelope.rcpt_tos), envelope.original_content)
        )
        self.received.tls.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 2.0.0 Ok"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"fax",
            b"s3cret/pw",
        )
        if ok:
            self.received.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@dataclass
class Running:
    port: int
    host: Smarthost


async def serve(
    tls: ssl.SSLContext | None = None, implicit_tls: bool = False
) -> tuple[asyncio.Server, Running]:
    loop = asyncio.get_running_loop()
    smarthost = Smarthost()
    server = await loop.create_server(
        lambda: SMTP(
            smarthost,
            tls_context=None if implicit_tls else tls,
            authenticator=smarthost.authenticate,
            # AUTH only over TLS, as a careful relay has it (smtps is TLS already).
            auth_require_tls=not implicit_tls,
            loop=loop,
        ),
        "127.0.0.1",
        0,
        ssl=tls if implicit_tls else None,
    )
    return server, Running(server.sockets[0].getsockname()[1], smarthost)


@pytest.fixture
async def starttls_server(ca: trustme.CA) -> AsyncIterator[Running]:
    server, running = await serve(server_context(ca))
    async with server:
        yield running


@pytest.fixture
async def plain_server() -> AsyncIterator[Running]:
    server, running = await serve()
    async with server:
        yield running


async def test_starttls_and_auth(starttls_server: Running, client_context: ssl.SSLContext) -> None:
    url = f"smtp://fax:s3cret%2Fpw@127.0.0.1:{starttls_server.port}"
    sender = SmtpSender(url, "auto", timeout=10, tls_context=client_context)
    await sender.send("r1", "alice@example.com", RECEIPT)
    received = starttls_server.host.received
    assert received.logins == ["fax"]
    assert received.tls == [True]
    [(mail_from, rcpts, content)] = received.mails
    assert mail_from == "<>" and rcpts == ["alice@example.com"]
    assert b"Subject: receipt" in content


async def test_smtps_is_tls_from_the_first_byte(
    ca: trustme.CA, client_context: ssl.SSLContext
) -> None:
    server, running = await serve(server_context(ca), implicit_tls=True)
    async with server:
        url = f"smtps://fax:s3cret%2Fpw@127.0.0.1:{running.port}"
        await SmtpSender(url, timeout=10, tls_context=client_context).send(
            "r1", "alice@example.com", RECEIPT
        )
    assert running.host.received.tls == [True] and running.host.received.logins == ["fax"]


async def test_a_wrong_password_is_retried_later(
    starttls_server: Running, client_context: ssl.SSLContext
) -> None:
    url = f"smtp://fax:wrong@127.0.0.1:{starttls_server.port}"
    sender = SmtpSender(url, timeout=10, tls_context=client_context)
    with pytest.raises(DeliveryError, match="refused the login") as caught:
        await sender.send("r1", "alice@example.com", RECEIPT)
    assert not caught.value.permanent
    assert starttls_server.host.received.mails == []


async def test_an_untrusted_certificate_is_not_accepted(starttls_server: Running) -> None:
    # "always" verifies; the system's CAs do not know the test CA: nothing is sent.
    sender = SmtpSender(f"smtp://127.0.0.1:{starttls_server.port}", "always", timeout=10)
    with pytest.raises(DeliveryError) as caught:
        await sender.send("r1", "alice@example.com", RECEIPT)
    assert not caught.value.permanent
    assert starttls_server.host.received.mails == []


async def test_without_a_password_starttls_is_opportunistic(starttls_server: Running) -> None:
    # An unverifiable certificate still encrypts a receipt that carries no password.
    await SmtpSender(f"smtp://127.0.0.1:{starttls_server.port}", timeout=10).send(
        "r1", "alice@example.com", RECEIPT
    )
    assert starttls_server.host.received.tls == [True]


async def test_a_password_goes_only_to_a_verified_server(starttls_server: Running) -> None:
    sender = SmtpSender(f"smtp://fax:s3cret%2Fpw@127.0.0.1:{starttls_server.port}", timeout=10)
    with pytest.raises(DeliveryError):
        await sender.send("r1", "alice@example.com", RECEIPT)
    assert starttls_server.host.received.logins == []


async def test_starttls_always_needs_a_server_that_offers_it(plain_server: Running) -> None:
    sender = SmtpSender(f"smtp://127.0.0.1:{plain_server.port}", "always", timeout=10)
    with pytest.raises(DeliveryError, match="offers no STARTTLS") as caught:
        await sender.send("r1", "alice@example.com", RECEIPT)
    assert not caught.value.permanent
    assert plain_server.host.received.mails == []


async def test_no_password_in_clear(plain_server: Running) -> None:
    sender = SmtpSender(f"smtp://fax:s3cret%2Fpw@127.0.0.1:{plain_server.port}", timeout=10)
    with pytest.raises(DeliveryError, match="not sent in clear"):
        await sender.send("r1", "alice@example.com", RECEIPT)
    assert plain_server.host.received.mails == [] and plain_server.host.received.logins == []


async def test_plain_delivery_and_refusals(plain_server: Running) -> None:
    sender = SmtpSender(f"smtp://127.0.0.1:{plain_server.port}", "never", timeout=10)
    await sender.send("r1", "alice@example.com", RECEIPT)
    assert plain_server.host.received.tls == [False]
    with pytest.raises(DeliveryError) as caught:
        await sender.send("r2", "bob@example.com", RECEIPT)
    assert caught.value.permanent  # 550: trying again cannot help


async def test_an_unreachable_smarthost_is_retried_later(tmp_path: Path) -> None:
    sender = receipt_sender(ReceiptsSettings(smarthost="smtp://127.0.0.1:9"), tmp_path)
    with pytest.raises(DeliveryError) as caught:
        await sender.send("r1", "alice@example.com", RECEIPT)
    assert not caught.value.permanent
