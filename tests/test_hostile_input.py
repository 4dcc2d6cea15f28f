"""Issue 15: no single mail, upload or login attempt stops the gateway for everyone. Each hostile
input goes through the real SMTP listener, and an ordinary sender is answered meanwhile."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import aiosmtplib
import pytest
import trustme
from argon2 import PasswordHasher

from mailfax.app import Gateway
from mailfax.smtp.auth import MAX_LOGIN_DELAY, USER_FREE_FAILURES
from mailfax.users import User, save_users
from tests.conftest import eventually
from tests.gateway import SmtpOutcome, smtp_transaction, transaction
from tests.pdfs import fax_mail, pdf_with_pages
from tests.test_access_policy import PREMIUM_BY_PREFIX
from tests.test_smtp_data import running_gateway
from tests.test_smtp_security import PASSWORD, FakeClock, close, connect, secure_gateway

FAX = "+15551234567@fax.local"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def send(gateway: Gateway, message: object, sender: str = "bob@example.com") -> SmtpOutcome:
    assert gateway.endpoints is not None
    assert isinstance(message, bytes) or hasattr(message, "as_bytes")
    return await smtp_transaction(gateway.endpoints, message, [FAX], sender)  # type: ignore[arg-type]


async def ordinary_mail_answered(gateway: Gateway, within: float = 1.0) -> float:
    """An ordinary one-page mail from another sender: accepted with 250 within `within` s."""
    started = time.monotonic()
    outcome = await send(
        gateway, fax_mail(attachments=[("a.pdf", pdf_with_pages(1), "application/pdf")])
    )
    took = time.monotonic() - started
    assert outcome.data is not None and outcome.data[0] == 250, outcome
    assert took < within, f"the ordinary mail took {took:.2f}s to be answered"
    return took


async def faxes_sent(gateway: Gateway, count: int) -> bool:
    assert gateway.simulator is not None
    return len(gateway.simulator.ledger()) >= count


# --- 3: premium-rate numbers with a digit more or less -------------------------------------


async def test_premium_numbers_a_digit_off_are_refused_at_rcpt(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gateway:
        assert gateway.endpoints is not None
        outcome = await smtp_transaction(
            gateway.endpoints,
            fax_mail(),
            [f"{number}@fax.local" for number in PREMIUM_BY_PREFIX] + [FAX],
        )
        for number, reply in zip(PREMIUM_BY_PREFIX, outcome.rcpts, strict=False):
            assert reply == (
                550,
                f"5.7.1 Fax to {number} refused: it is not a valid number and starts like a "
                "premium-rate number ([policy] refused_types)",
            )
        assert outcome.rcpts[-1][0] == 250
        assert outcome.data is not None and outcome.data[0] == 250
        await eventually(lambda: faxes_sent(gateway, 1), what="the ordinary fax")
        assert gateway.simulator is not None
        assert [fax["to"] for fax in gateway.simulator.ledger()] == ["+15551234567"]


# --- 8: nesting and an over-long AUTH line ---------------------------------------------------


def nested_mail(levels: int, kind: str) -> bytes:
    head = b"From: eve@example.com\r\nTo: x@fax.local\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    if kind == "multipart":
        opening = b"".join(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
            for i in range(levels)
        )
        closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
        return head + opening + b"Content-Type: text/plain\r\n\r\nhi" + closing
    return head + b"Content-Type: message/rfc822\r\n\r\n" * levels + b"\r\nhi\r\n"


@pytest.mark.parametrize("kind", ["multipart", "rfc822"])
async def test_thousand_levels_of_nesting_are_refused_for_good(tmp_path: Path, kind: str) -> None:
    async with running_gateway(tmp_path) as gateway:
        outcome = await send(gateway, nested_mail(1000, kind), sender="eve@example.com")
        assert outcome.data is not None
        assert outcome.data[0] == 554 and outcome.data[1].startswith("5.6.0 The message's parts"), (
            outcome
        )
        await ordinary_mail_answered(gateway)


async def test_a_five_megabyte_auth_line_is_answered_500(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca)
        try:
            challenge = await client.execute_command(b"AUTH", b"PLAIN")
            assert challenge.code == 334
            reply = await client.execute_command(b"A" * 5_000_000)
            assert (reply.code, reply.message) == (
                500,
                "5.5.6 Authentication exchange line is too long",
            )
            # The session goes on: the next line is a command again, and a login works.
            assert (await client.noop()).code == 250
            await client.auth_plain("alice", PASSWORD)
        finally:
            await close(client)


# --- 14: containers stay containers ---------------------------------------------------------


def tnef_blob(files: list[tuple[str, bytes]]) -> bytes:
    """A winmail.dat holding `files` (the TNEF attributes Outlook writes for each)."""

    def attribute(level: int, attr: int, data: bytes) -> bytes:
        checksum = sum(data) & 0xFFFF
        return struct.pack("<BII", level, attr, len(data)) + data + struct.pack("<H", checksum)

    blob = b'x\x9f>"' + struct.pack("<H", 1)
    blob += attribute(1, 0x00089006, struct.pack("<I", 0x00010000))  # attTnefVersion
    for name, data in files:
        blob += attribute(2, 0x00069002, b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 8)  # RendData
        blob += attribute(2, 0x00018010, name.encode() + b"\x00")  # attAttachTitle
        blob += attribute(2, 0x0006800F, data)  # attAttachData
    return blob


async def test_a_winmail_dat_of_many_pdfs_is_tnef(tmp_path: Path) -> None:
    one_page = pdf_with_pages(1)
    blob = tnef_blob([(f"doc{n}.pdf", one_page) for n in range(300)])
    assert b"%PDF-" in blob[:1024]
    mail = fax_mail(attachments=[("winmail.dat", blob, "application/ms-tnef")])
    async with running_gateway(tmp_path, smtp_max_pages="5") as gateway:
        started = time.monotonic()
        outcome = await send(gateway, mail, sender="eve@example.com")
        assert outcome.data is not None and outcome.data[0] == 552, outcome
        assert "Too many pages: the documents have 6 pages" in outcome.data[1]
        # Reading stopped at the page limit, not after 300 PDFs.
        assert time.monotonic() - started < 2
        await ordinary_mail_answered(gateway)


@pytest.mark.parametrize(
    ("name", "mime"),
    [("winmail.dat", "application/ms-tnef"), ("bundle.zip", "application/zip"),
     ("fwd.eml", "message/rfc822"), ("bundle.gz", "application/gzip")],
)  # fmt: skip
def test_a_pdf_inside_a_container_does_not_make_it_a_pdf(name: str, mime: str) -> None:
    from mailfax.mail.identify import identify

    inside = b"x" * 200 + pdf_with_pages(1)
    assert identify(mime, name, inside) != "pdf"
    assert identify("application/octet-stream", "scan.pdf", inside) == "pdf"
    assert identify("application/octet-stream", None, b"junk\r\n" + pdf_with_pages(1)) == "pdf"


# --- 6: failed logins elsewhere never lock a user out ---------------------------------------


async def test_guessing_alices_password_elsewhere_does_not_lock_her_out(
    tmp_path: Path, ca: trustme.CA
) -> None:
    clock = FakeClock()
    async with secure_gateway(tmp_path, ca, clock=clock) as gateway:
        assert gateway.endpoints is not None
        endpoints = gateway.endpoints
        # A cheap hash (its parameters travel with it): thirty checks of the default one cost
        # seconds on a busy machine.
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
        save_users(tmp_path / "users.toml", {"alice": User("alice", ("alice@example.com",), cheap)})

        async def login(source: str, password: str = PASSWORD) -> tuple[int, str]:
            client = await connect(endpoints, ca, source=source)
            try:
                await client.auth_plain("alice", password)
                return 235, "ok"
            except aiosmtplib.SMTPAuthenticationError as exc:
                return exc.code, exc.message
            finally:
                await close(client)

        async def guesses(count: int) -> None:
            for _ in range(count):
                clock.offset += MAX_LOGIN_DELAY + 1  # past the attacker's own address's delay
                assert (await login("127.0.0.2", "guess"))[0] == 535

        assert await login("127.0.0.3") == (235, "ok")
        # The case: nine wrong passwords from one address; alice elsewhere logs in.
        await guesses(9)
        assert (await login("127.0.0.2"))[0] == 454  # the guessing address is throttled
        assert await login("127.0.0.4") == (235, "ok")
        # Past USER_FREE_FAILURES from anywhere, only addresses alice never used must wait.
        await guesses(USER_FREE_FAILURES + 1)
        refused = await login("127.0.0.5")
        assert refused[0] == 454 and refused[1].startswith("4.7.0 Too many failed logins")
        assert await login("127.0.0.3") == (235, "ok")
        assert await login("127.0.0.4") == (235, "ok")
        client = await connect(endpoints, ca, source="127.0.0.3", login=("alice", PASSWORD))
        try:
            outcome = await transaction(client, fax_mail(), [FAX])
        finally:
            await close(client)
        assert outcome.data is not None and outcome.data[0] == 250
