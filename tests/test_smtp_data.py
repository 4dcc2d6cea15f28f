"""The DATA phase read in chunks: dot-stuffing, terminators split across writes, the size
limit, each against the real gateway on loopback (and the reader against aiosmtpd's rules)."""

from __future__ import annotations

import asyncio
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailfax.app import Gateway
from mailfax.smtp.protocol import LARGE_MAIL_BYTES, read_data
from tests.conftest import eventually
from tests.gateway import gateway_env, smtp_transaction, start_gateway
from tests.pdfs import fax_mail, large_pdf

RCPT = "17185554567@fax.local"


class RawClient:
    """SMTP by hand over a socket, so a test decides exactly which bytes go in which write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def reply(self) -> str:
        """One (possibly multi-line) reply: its last line."""
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 15)).decode()
            if line[3:4] != "-":
                return line.rstrip("\r\n")

    async def send(self, *writes: bytes) -> None:
        for data in writes:
            self.writer.write(data)
            await self.writer.drain()

    async def command(self, line: str) -> str:
        await self.send(line.encode() + b"\r\n")
        return await self.reply()

    async def envelope(self) -> None:
        assert (await self.command("MAIL FROM:<alice@example.com>")).startswith("250 ")
        assert (await self.command(f"RCPT TO:<{RCPT}>")).startswith("250 ")
        assert (await self.command("DATA")).startswith("354 ")


@asynccontextmanager
async def raw_client(gateway: Gateway) -> AsyncIterator[RawClient]:
    assert gateway.endpoints is not None and gateway.endpoints.smtp is not None
    reader, writer = await asyncio.open_connection(*gateway.endpoints.smtp)
    client = RawClient(reader, writer)
    try:
        assert (await client.reply()).startswith("220 ")
        assert (await client.command("EHLO client.example")).startswith("250 ")
        yield client
    finally:
        writer.close()


@asynccontextmanager
async def running_gateway(tmp_path: Path, **env: str) -> AsyncIterator[Gateway]:
    gateway = await start_gateway(tmp_path, gateway_env(tmp_path, **env))
    try:
        yield gateway
    finally:
        await gateway.stop()


def crlf_mail(body: str, pdf: bytes | None = None) -> bytes:
    """A fax mail as it goes over SMTP (CRLF line ends), before dot-stuffing."""
    attachments = None if pdf is None else [("scan.pdf", pdf, "application/pdf")]
    return fax_mail(body=body, attachments=attachments).as_bytes(policy=email.policy.SMTP)


def stuffed(mail: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency, as a client sends it (without the final dot line)."""
    return b"\r\n".join(
        b"." + line if line.startswith(b".") else line for line in mail.split(b"\r\n")
    )


async def stored_raw(gateway: Gateway, reply: str) -> bytes:
    assert gateway.store is not None
    record = await gateway.store.message(reply.rsplit(" ", 1)[-1])
    assert record is not None
    return record.raw


async def test_dot_stuffed_lines_arrive_as_written(tmp_path: Path) -> None:
    body = "Lines with dots:\n.hidden\n..\n.\n...three\nend."
    async with running_gateway(tmp_path) as gateway:
        assert gateway.endpoints is not None
        mail = crlf_mail(body)
        outcome = await smtp_transaction(gateway.endpoints, mail, [RCPT])
        assert outcome.final[0] == 250, outcome
        raw = await stored_raw(gateway, outcome.final[1])
        # The stored mail is the mail as written (after the gateway's Received header).
        assert raw.endswith(mail)
        assert b"\r\n.hidden\r\n..\r\n.\r\n...three\r\nend.\r\n" in raw


async def test_terminator_split_across_writes_and_a_pipelined_command(tmp_path: Path) -> None:
    # Only CRLF "." CRLF ends the mail: a dot after a bare LF is data (SMTP smuggling).
    mail = crlf_mail("first\nBARE\nlast").replace(b"BARE", b"smuggled?\n.\r\nnot \n.\n the end")
    async with running_gateway(tmp_path) as gateway, raw_client(gateway) as client:
        await client.envelope()
        data = stuffed(mail)
        await client.send(data[:-1], data[-1:] + b".", b"\r", b"\n")
        reply = await client.reply()
        assert reply.startswith("250 2.0.0 Ok: queued as "), reply
        assert (await stored_raw(gateway, reply)).endswith(mail)

        # The reader stops at the dot line: a command in the same write is still answered.
        await client.envelope()
        await client.send(data + b".\r\nRSET\r\n")
        assert (await client.reply()).startswith("250 2.0.0 Ok: queued as ")
        assert (await client.reply()).startswith("250 ")
        assert (await client.command("QUIT")).startswith("221 ")


async def test_size_limit_while_reading(tmp_path: Path) -> None:
    mail = crlf_mail("Please fax.\n" + ".padding line\n" * 700)
    limit = len(stuffed(mail))  # counted as sent, dots included (as aiosmtpd does)
    async with (
        running_gateway(tmp_path, smtp_max_message_size=str(limit)) as gateway,
        raw_client(gateway) as client,
    ):
        await client.envelope()
        await client.send(stuffed(mail) + b".\r\n")
        assert (await client.reply()).startswith("250 2.0.0 Ok: queued as ")

        await client.envelope()
        over = stuffed(mail.replace(b"Please fax.", b"Please fax!!"))
        await client.send(over + b".\r\n")
        assert await client.reply() == (
            f"552 5.3.4 Message too big: this gateway accepts at most {limit} bytes"
        )

        # Far over the limit, in many writes: refused at the end, and the session goes on.
        await client.envelope()
        await client.send(*[(b"x" * 70 + b"\r\n") * 100] * 200, b".\r\n")
        assert (await client.reply()).startswith("552 5.3.4 ")
        await client.envelope()
        await client.send(stuffed(mail) + b".\r\n")
        reply = await client.reply()
        assert reply.startswith("250 2.0.0 Ok: queued as ")
        assert (await stored_raw(gateway, reply)).endswith(mail)


async def test_small_mail_is_accepted_while_a_large_one_is_in_data(tmp_path: Path) -> None:
    large = stuffed(crlf_mail("A large scan.", large_pdf(3 * LARGE_MAIL_BYTES)))
    async with (
        running_gateway(tmp_path) as gateway,
        raw_client(gateway) as big,
        raw_client(gateway) as small,
    ):
        # Past the large-mail size, not finished: this session holds a large-mail slot.
        await big.envelope()
        await big.send(large[: 2 * LARGE_MAIL_BYTES])
        await small.envelope()
        await small.send(stuffed(crlf_mail("A small one.")) + b".\r\n")
        assert (await small.reply()).startswith("250 2.0.0 Ok: queued as ")
        await big.send(large[2 * LARGE_MAIL_BYTES :] + b".\r\n")
        assert (await big.reply()).startswith("250 2.0.0 Ok: queued as ")


async def test_reading_waits_for_before_large_once_past_the_large_size() -> None:
    mail = b"x" * 78 + b"\r\n"
    go_on = asyncio.Event()
    calls: list[int] = []

    async def before_large() -> None:
        calls.append(1)
        await go_on.wait()

    async def read(stream: bytes, limit: int) -> bytes | None:
        reader = asyncio.StreamReader(limit=1001)
        reader.feed_data(stream)
        return await read_data(reader, limit, 1000, before_large)

    # Small, or already past the limit: read without waiting.
    assert await read(mail * 10 + b".\r\n", 5000) == mail * 10
    assert await read(mail * 100 + b".\r\n", 500) is None
    assert calls == []

    async def hook_called() -> bool:
        return bool(calls)

    reading = asyncio.create_task(read(mail * 100 + b".\r\n", 50_000))
    await eventually(hook_called, what="the large-mail hook")
    assert not reading.done()  # all of it is there, but the hook has not returned
    go_on.set()
    assert await reading == mail * 100
    assert calls == [1]


def line_by_line(stream: bytes) -> tuple[bytes, bytes] | None:
    """aiosmtpd's DATA rules: CRLF lines up to the line ".", a leading dot removed from each;
    returns the mail and what follows it, or None if the stream holds no end."""
    lines: list[bytes] = []
    start = 0
    while (end := stream.find(b"\r\n", start)) >= 0:
        line, start = stream[start : end + 2], end + 2
        if line == b".\r\n":
            return b"".join(lines), stream[start:]
        lines.append(line[1:] if line.startswith(b".") else line)
    return None


async def read_in_writes(
    stream: bytes, cuts: list[int], limit: int | None
) -> tuple[bytes | None, bytes]:
    # A stream limit as small as this makes nearly every read overrun it, as large mails do.
    reader = asyncio.StreamReader(limit=7)
    reading = asyncio.ensure_future(read_data(reader, limit))
    previous = 0
    for cut in [*sorted(cuts), len(stream)]:
        reader.feed_data(stream[previous:cut])
        previous = cut
        await asyncio.sleep(0)  # let the reader consume this write before the next arrives
    reader.feed_eof()
    mail = await reading
    return mail, await reader.read()


@given(
    st.binary(min_size=0, max_size=60).map(
        lambda b: bytes(b".\r\na"[x % 4] for x in b) + b"\r\n.\r\nNEXT"
    ),
    st.lists(st.integers(min_value=0, max_value=70), max_size=5),
)
def test_reader_agrees_with_aiosmtpd_line_by_line(stream: bytes, cuts: list[int]) -> None:
    expected = line_by_line(stream)
    assert expected is not None
    assert asyncio.run(read_in_writes(stream, cuts, None)) == expected
    # The limit counts the bytes as sent before the dot line.
    sent = stream.index(b"\r\n.\r\n") + 2 if not stream.startswith(b".\r\n") else 0
    assert asyncio.run(read_in_writes(stream, cuts, sent))[0] == expected[0]
    if sent:
        assert asyncio.run(read_in_writes(stream, cuts, sent - 1)) == (None, expected[1])
