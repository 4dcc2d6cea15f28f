"""verify_sender for trusted relays: Authentication-Results, and DKIM/SPF against a DNS
server of the test's own on 127.0.0.1 (and one that never answers: fail closed)."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import cast

import dkim
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailfax.app import Gateway
from tests.gateway import gateway_env, smtp_transaction, start_gateway
from tests.pdfs import fax_mail

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = RSA_KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption(),
)
PUBLIC_B64 = base64.b64encode(
    RSA_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def txt(value: str) -> str:
    """TXT rdata text: strings of at most 255 characters."""
    return " ".join(f'"{value[i : i + 200]}"' for i in range(0, len(value), 200))


ZONE = {
    "s1._domainkey.example.com.": txt(f"v=DKIM1; k=rsa; p={PUBLIC_B64}"),
    "example.com.": txt("v=spf1 ip4:192.0.2.1 -all"),
    "spf.example.": txt("v=spf1 ip4:127.0.0.0/8 -all"),
}


class ZoneServer(asyncio.DatagramProtocol):
    """Answers TXT queries from ZONE; every other name does not exist."""

    def __init__(self, zone: Mapping[str, str]) -> None:
        self._zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        if name in self._zone and dns.rdatatype.to_text(question.rdtype) == "TXT":
            response.answer.append(
                dns.rrset.from_text(question.name, 60, "IN", "TXT", self._zone[name])
            )
        elif name not in self._zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def zone_port() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: ZoneServer(ZONE), local_addr=("127.0.0.1", 0)
    )
    try:
        yield int(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


def signed(message: bytes) -> bytes:
    signature: bytes = dkim.sign(
        message,
        b"s1",
        b"example.com",
        PRIVATE_PEM,
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    return signature + message


def mail(sender: str) -> bytes:
    return fax_mail(sender=sender).as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


async def send(gateway: Gateway, raw: bytes, sender: str) -> tuple[int, str]:
    assert gateway.endpoints is not None
    outcome = await smtp_transaction(gateway.endpoints, raw, ["17185554567@fax.local"], sender)
    return outcome.final


async def test_dkim_and_spf_verified_by_mailfax(tmp_path: Path, zone_port: int) -> None:
    env = gateway_env(
        tmp_path,
        smtp_verify_sender="dkim-spf",
        smtp_dns_resolvers=f"127.0.0.1:{zone_port}",
        smtp_dns_timeout="2",
    )
    gateway = await start_gateway(tmp_path, env)
    try:
        good = signed(mail("alice@example.com"))
        assert (await send(gateway, good, "alice@example.com"))[0] == 250
        # Changed after signing: the signature breaks, and example.com's SPF has no 127.0.0.1.
        tampered = good.replace(b"Invoice 42", b"Invoice 99")
        code, text = await send(gateway, tampered, "alice@example.com")
        assert code == 550 and text.startswith("5.7.1 Sender not verified: no aligned DKIM"), text
        # Unsigned, but the envelope domain's SPF allows this relay's client.
        assert (await send(gateway, mail("bob@spf.example"), "bob@spf.example"))[0] == 250
    finally:
        await gateway.stop()


async def test_dns_that_does_not_answer_fails_closed(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        env = gateway_env(
            tmp_path,
            smtp_verify_sender="dkim-spf",
            smtp_dns_resolvers=f"127.0.0.1:{port}",
            smtp_dns_timeout="0.5",
        )
        gateway = await start_gateway(tmp_path, env)
        try:
            code, text = await send(gateway, mail("bob@spf.example"), "bob@spf.example")
        finally:
            await gateway.stop()
    assert (code, text) == (
        451,
        "4.4.3 Sender could not be verified: DNS did not answer; try later",
    )


async def test_authentication_results_of_our_own_server(tmp_path: Path) -> None:
    env = gateway_env(
        tmp_path,
        smtp_verify_sender="authentication-results",
        smtp_authserv_id="mx.example.net",
    )
    gateway = await start_gateway(tmp_path, env)
    try:
        body = mail("alice@example.com")
        ours = b"Authentication-Results: mx.example.net; dmarc=pass header.from=example.com\r\n"
        forged = b"Authentication-Results: mx.example.net; dmarc=pass header.from=example.com\r\n"
        theirs = b"Authentication-Results: mx.example.net; dmarc=fail header.from=example.com\r\n"
        assert (await send(gateway, ours + body, "alice@example.com"))[0] == 250
        # The relay's verdict (fail) is on top; the sender's own "pass" below is ignored.
        code, text = await send(gateway, theirs + forged + body, "alice@example.com")
        assert (code, text) == (550, "5.7.1 Sender not verified: DMARC fail for example.com")
        code, text = await send(gateway, body, "alice@example.com")
        assert code == 550 and "no Authentication-Results header" in text
    finally:
        await gateway.stop()
