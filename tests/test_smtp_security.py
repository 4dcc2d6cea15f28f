"""Only the right people can fax: TLS, AUTH, sender binding, trusted relays, number policy,
quotas and connection limits, each refusal seen by a real SMTP client (and swaks)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
import trustme

from mailfax.app import Endpoints, Gateway
from mailfax.config import load_settings
from mailfax.quotas import HOUR
from mailfax.users import User, hash_password, save_users
from tests.conftest import eventually
from tests.gateway import SmtpOutcome, gateway_env, receipts_in, transaction
from tests.pdfs import fax_mail

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_certificate(ca: trustme.CA, directory: Path, name: str = "cert") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by the test CA, as PEM files mailfax can load."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


def write_users(path: Path) -> None:
    hashed = hash_password(PASSWORD)
    save_users(
        path,
        {
            "alice": User("alice", ("alice@example.com",), hashed),
            # Overrides: premium numbers allowed, one fax an hour.
            "bob": User(
                "bob",
                ("@bob.example",),
                hashed,
                policy={"refused_types": ("emergency",)},
                limits={"faxes_per_hour": 1},
            ),
        },
    )


class FakeClock:
    """Wall-clock time plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@asynccontextmanager
async def secure_gateway(
    tmp_path: Path,
    ca: trustme.CA,
    clock: Callable[[], float] | None = None,
    **overrides: str,
) -> AsyncIterator[Gateway]:
    """A gateway as exposed on 587: STARTTLS, an implicit-TLS listener, AUTH required, no
    trusted network, the users alice and bob."""
    cert, key = write_certificate(ca, tmp_path)
    write_users(tmp_path / "users.toml")
    settings = {
        "smtp_tls_cert": str(cert),
        "smtp_tls_key": str(key),
        "smtp_tls_listen": "127.0.0.1:0",
        "smtp_require_auth": "true",
        "smtp_trusted_networks": "",
        **overrides,
    }
    gateway = Gateway(load_settings(environ=gateway_env(tmp_path, **settings)), clock=clock)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def connect(
    endpoints: Endpoints,
    ca: trustme.CA,
    *,
    starttls: bool = True,
    implicit: bool = False,
    source: str = "127.0.0.1",
    login: tuple[str, str] | None = None,
) -> aiosmtplib.SMTP:
    address = endpoints.smtp_tls if implicit else endpoints.smtp
    assert address is not None
    client = aiosmtplib.SMTP(
        hostname=address[0],
        port=address[1],
        timeout=10,
        use_tls=implicit,
        start_tls=False,
        tls_context=client_context(ca),
        source_address=(source, 0),
    )
    await client.connect()
    await client.ehlo()
    if starttls and not implicit:
        await client.starttls()
        await client.ehlo()
    if login is not None:
        await client.login(*login)
    return client


async def submit(
    client: aiosmtplib.SMTP,
    sender: str = "alice@example.com",
    recipients: tuple[str, ...] = ("+17185554567@fax.local",),
    header_from: str | None = None,
) -> SmtpOutcome:
    message = fax_mail(sender=header_from or sender)
    return await transaction(client, message, list(recipients), sender)


async def close(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except aiosmtplib.SMTPException:
        client.close()


def queued_id(outcome: SmtpOutcome) -> str:
    assert outcome.data is not None and outcome.data[0] == 250, outcome
    return outcome.data[1].rsplit(" ", 1)[-1]


def assert_reply(reply: tuple[int, str] | None, code: int, text: str) -> None:
    assert reply is not None and reply[0] == code and reply[1].startswith(text), reply


# --- TLS and AUTH ---------------------------------------------------------------------------


async def test_starttls_and_auth_then_accepted_with_a_receipt(
    tmp_path: Path, ca: trustme.CA
) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, login=("alice", PASSWORD))
        try:
            assert client.get_transport_info("ssl_object") is not None
            outcome = await submit(client)
        finally:
            await close(client)
        assert_reply(outcome.data, 250, "2.0.0 Ok: queued as ")
        [receipt] = await eventually(lambda: _receipts(tmp_path, 1), what="the receipt")
        assert receipt["To"] == "alice@example.com"
        assert gateway.store is not None
        message = await gateway.store.message(queued_id(outcome))
        assert message is not None and message.admitted_by == "user:alice"


async def test_implicit_tls_listener_offers_auth_at_once(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, implicit=True)
        try:
            assert "starttls" not in client.esmtp_extensions
            assert set(client.server_auth_methods) == {"plain", "login"}
            await client.auth_login("alice", PASSWORD)
            outcome = await submit(client)
        finally:
            await close(client)
        assert_reply(outcome.data, 250, "2.0.0 Ok: queued as ")


async def test_auth_before_tls_is_refused(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, starttls=False)
        try:
            assert "auth" not in client.esmtp_extensions
            token = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
            response = await client.execute_command(b"AUTH", b"PLAIN", token.encode())
        finally:
            await close(client)
        assert (response.code, response.message) == (
            538,
            "5.7.11 Encryption required for requested authentication mechanism",
        )


async def test_unauthenticated_mail_is_refused_when_auth_is_required(
    tmp_path: Path, ca: trustme.CA
) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca)
        try:
            outcome = await submit(client)
        finally:
            await close(client)
        assert_reply(outcome.mail, 530, "5.7.0 Authentication required")
        assert outcome.data is None


async def test_wrong_password_is_throttled_then_allowed_again(
    tmp_path: Path, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca)
        try:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as wrong:
                await client.auth_plain("alice", "guess")
            assert (wrong.value.code, wrong.value.message) == (
                535,
                "5.7.8 Authentication credentials invalid",
            )
            # At once again, even with the right password: not even checked.
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as throttled:
                await client.auth_plain("alice", PASSWORD)
            assert throttled.value.code == 454
            assert throttled.value.message.startswith("4.7.0 Too many failed logins; try again")
        finally:
            await close(client)
        assert any(r.getMessage() == "smtp.auth_failed" for r in caplog.records)

        endpoints = gateway.endpoints

        async def logs_in() -> bool:
            retry = await connect(endpoints, ca)
            try:
                await retry.auth_plain("alice", PASSWORD)
                return True
            except aiosmtplib.SMTPAuthenticationError:
                return False
            finally:
                await close(retry)

        # The first failure costs one second; polling while throttled must not extend it.
        await eventually(logs_in, timeout=10, what="the throttle to lift")


# --- sender binding and trusted relays ----------------------------------------------------


async def test_authenticated_user_cannot_spoof_envelope_or_from_header(
    tmp_path: Path, ca: trustme.CA
) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, login=("alice", PASSWORD))
        try:
            envelope = await submit(client, sender="ceo@example.com")
            header = await submit(client, header_from="CEO <ceo@example.com>")
            own_domain_user = await submit(client, sender="Alice@EXAMPLE.com")
        finally:
            await close(client)
        assert_reply(
            envelope.mail, 553, "5.7.1 <ceo@example.com> is not a sender address of user alice"
        )
        assert_reply(
            header.data, 553, "5.7.1 <ceo@example.com> is not a sender address of user alice"
        )
        assert_reply(own_domain_user.data, 250, "2.0.0 Ok: queued as ")
        assert gateway.simulator is not None
        await eventually(lambda: faxes_sent(gateway, 1), what="the one legitimate fax")


async def test_relay_attempt_to_another_domain_is_refused(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, login=("alice", PASSWORD))
        try:
            outcome = await submit(client, recipients=("someone@example.org",))
        finally:
            await close(client)
        assert outcome.rcpts == [(550, "5.7.1 Relaying denied")]


async def test_untrusted_network_must_authenticate(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(tmp_path, ca, smtp_trusted_networks="127.0.0.1/32") as gateway:
        assert gateway.endpoints is not None
        outsider = await connect(gateway.endpoints, ca, source="127.0.0.2")
        relay = await connect(gateway.endpoints, ca, starttls=False)
        try:
            refused = await submit(outsider)
            accepted = await submit(relay, sender="bob@elsewhere.example")
        finally:
            await close(outsider)
            await close(relay)
        assert_reply(refused.mail, 530, "5.7.0 Authentication required")
        assert_reply(accepted.data, 250, "2.0.0 Ok: queued as ")
        assert gateway.store is not None
        message = await gateway.store.message(queued_id(accepted))
        assert message is not None and message.admitted_by == "relay:127.0.0.1"


async def test_trusted_relay_senders_are_limited_to_allowed_senders(
    tmp_path: Path, ca: trustme.CA
) -> None:
    async with secure_gateway(
        tmp_path,
        ca,
        smtp_trusted_networks="127.0.0.0/8",
        smtp_allowed_senders="@example.com,scanner@office.example",
    ) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, starttls=False)
        try:
            stranger = await submit(client, sender="mallory@evil.example")
            forged_header = await submit(client, header_from="mallory@evil.example")
            scanner = await submit(client, sender="scanner@office.example")
        finally:
            await close(client)
        assert_reply(stranger.mail, 553, "5.7.1 <mallory@evil.example> may not send through")
        assert_reply(forged_header.data, 553, "5.7.1 From: <mallory@evil.example> may not send")
        assert_reply(scanner.data, 250, "2.0.0 Ok: queued as ")


async def test_open_senders_are_faxed_but_get_no_receipt(tmp_path: Path, ca: trustme.CA) -> None:
    # require_auth off, and the client outside trusted_networks: its address is unverified.
    async with secure_gateway(
        tmp_path, ca, smtp_require_auth="false", smtp_trusted_networks="127.0.0.1/32"
    ) as gateway:
        assert gateway.endpoints is not None and gateway.simulator is not None
        client = await connect(gateway.endpoints, ca, starttls=False, source="127.0.0.3")
        try:
            outcome = await submit(client)
        finally:
            await close(client)
        assert_reply(outcome.data, 250, "2.0.0 Ok: queued as ")
        await eventually(lambda: faxes_sent(gateway, 1), what="the fax")
        assert gateway.store is not None
        message = await gateway.store.message(queued_id(outcome))
        assert message is not None and message.admitted_by == "open:127.0.0.3"
        store = gateway.store
        [summary] = await store.list_jobs(None, None, "", 10)

        async def final() -> bool:
            job = await store.get_job(summary.job.id)
            return job is not None and job.state.value == "delivered"

        await eventually(final, what="the job to be delivered")
        assert receipts_in(tmp_path) == []


# --- number policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipient", "reply"),
    [
        (
            "+19005550100@fax.local",
            "5.7.1 Fax to +19005550100 refused: it is a premium-rate number",
        ),
        (
            "112@fax.local",  # with default_region DE: +49112, the emergency line
            "5.7.1 Fax to +49112 refused: it is an emergency number",
        ),
        (
            "+4930123456@fax.local",
            "5.7.1 Fax to +4930123456 refused: +4930 is a blocked prefix",
        ),
        (
            "+33142000000@fax.local",
            "5.7.1 Fax to +33142000000 refused: FR is not an allowed country",
        ),
    ],
)
async def test_number_policy_refusals(
    tmp_path: Path, ca: trustme.CA, recipient: str, reply: str
) -> None:
    async with secure_gateway(
        tmp_path,
        ca,
        smtp_default_region="DE",
        policy_blocked_prefixes="+4930",
        policy_allowed_countries="DE,US",
    ) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, login=("alice", PASSWORD))
        try:
            outcome = await submit(client, recipients=(recipient,))
        finally:
            await close(client)
        assert outcome.rcpts == [(550, reply)]


async def test_per_user_number_override(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, login=("bob", PASSWORD))
        try:
            outcome = await submit(
                client, sender="bob@bob.example", recipients=("+19005550100@fax.local",)
            )
        finally:
            await close(client)
        assert outcome.rcpts == [(250, "2.1.5 Recipient ok: fax to +19005550100")]


# --- quotas -----------------------------------------------------------------------------


async def test_quota_exceeded_then_lifted_after_the_window_and_kept_across_restarts(
    tmp_path: Path, ca: trustme.CA
) -> None:
    clock = FakeClock()
    # bob may send one fax an hour (users file); a 2-page fax per mail.
    async with secure_gateway(tmp_path, ca, clock=clock) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, login=("bob", PASSWORD))
        try:
            first = await submit(client, sender="bob@bob.example")
            second = await submit(client, sender="bob@bob.example")
        finally:
            await close(client)
        assert_reply(first.data, 250, "2.0.0 Ok: queued as ")
        assert_reply(second.data, 450, "4.7.1 Quota exceeded: at most 1 faxes per hour")
        assert second.data is not None and second.data[1].endswith(":00:00 UTC")
    # The count is in the store: a restarted gateway still refuses.
    async with secure_gateway(tmp_path, ca, clock=clock) as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, login=("bob", PASSWORD))
        try:
            again = await submit(client, sender="bob@bob.example")
            clock.offset += HOUR
            lifted = await submit(client, sender="bob@bob.example")
        finally:
            await close(client)
        assert_reply(again.data, 450, "4.7.1 Quota exceeded")
        assert_reply(lifted.data, 250, "2.0.0 Ok: queued as ")


async def test_global_page_quota_and_a_mail_larger_than_the_quota(
    tmp_path: Path, ca: trustme.CA
) -> None:
    async with secure_gateway(tmp_path, ca, limits_global_pages_per_day="3") as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, login=("alice", PASSWORD))
        try:
            fits = await submit(client)  # 2 pages
            over = await submit(client)  # 2 more: 4 > 3
            never = await submit(
                client, recipients=("+17185554567@fax.local", "+19175554321@fax.local")
            )
        finally:
            await close(client)
        assert_reply(fits.data, 250, "2.0.0 Ok")
        assert_reply(over.data, 450, "4.7.1 Quota exceeded: at most 3 pages per day for all")
        assert_reply(never.data, 552, "5.3.4 The mail alone exceeds the quota")


# --- connection limits and deadlines --------------------------------------------------------


async def test_too_many_connections(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(
        tmp_path, ca, limits_max_connections="3", limits_max_connections_per_client="2"
    ) as gateway:
        assert gateway.endpoints is not None
        host, port = smtp_address(gateway)
        held = [await connect(gateway.endpoints, ca, starttls=False) for _ in range(2)]
        try:
            per_client = await _greeting(host, port, "127.0.0.1")
            held.append(await connect(gateway.endpoints, ca, starttls=False, source="127.0.0.2"))
            total = await _greeting(host, port, "127.0.0.3")
        finally:
            for client in held:
                await close(client)
        assert per_client == b"421 4.7.0 Too many connections from your address, try again later"
        assert total == b"421 4.7.0 Too many connections, try again later"

        # Closed connections are counted out again.
        async def greeted() -> bool:
            return (await _greeting(host, port, "127.0.0.1")).startswith(b"220 ")

        await eventually(greeted, what="a free connection slot")


async def test_command_limit_counts_untrusted_clients_only(tmp_path: Path, ca: trustme.CA) -> None:
    """An MTA in front sends mail after mail on one connection; other clients are cut off."""
    async with secure_gateway(
        tmp_path, ca, limits_command_call_limit="3", smtp_trusted_networks="127.0.0.1/32"
    ) as gateway:
        assert gateway.endpoints is not None
        trusted = await connect(gateway.endpoints, ca, starttls=False)
        other = await connect(gateway.endpoints, ca, starttls=False, source="127.0.0.2")
        try:
            trusted_codes = [(await trusted.noop()).code for _ in range(5)]
            other_codes = []
            for _ in range(4):
                try:
                    other_codes.append((await other.noop()).code)
                except aiosmtplib.SMTPResponseException as exc:
                    other_codes.append(exc.code)
        finally:
            await close(trusted)
            await close(other)
        assert trusted_codes == [250] * 5
        assert other_codes == [250, 250, 250, 421]


async def test_vrfy_expn_and_the_session_deadline(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(tmp_path, ca, limits_session_deadline="1") as gateway:
        assert gateway.endpoints is not None
        client = await connect(gateway.endpoints, ca, starttls=False)
        vrfy = await client.execute_command(b"VRFY", b"alice")
        expn = await client.execute_command(b"EXPN", b"staff")
        assert (vrfy.code, vrfy.message) == (502, "5.5.1 VRFY is not supported")
        assert (expn.code, expn.message) == (502, "5.5.1 EXPN is not supported")

        # Within a second the server says 421 and closes, without a command from us.
        async def closed() -> bool:
            return not client.is_connected

        await eventually(closed, timeout=5, what="the session deadline")


async def test_data_deadline_closes_a_slow_upload(tmp_path: Path, ca: trustme.CA) -> None:
    async with secure_gateway(
        tmp_path, ca, smtp_trusted_networks="127.0.0.1/32", limits_data_deadline="0.5"
    ) as gateway:
        assert gateway.endpoints is not None
        host, port = smtp_address(gateway)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            await reader.readline()
            for command in (
                b"EHLO me",
                b"MAIL FROM:<a@example.com>",
                b"RCPT TO:<17185554567@fax.local>",
            ):
                writer.write(command + b"\r\n")
                while (await reader.readline())[3:4] == b"-":
                    pass
            writer.write(b"DATA\r\n")
            assert (await reader.readline()).startswith(b"354")
            writer.write(b"Subject: slow\r\n")  # and then nothing more
            reply = await asyncio.wait_for(reader.readline(), 5)
            assert reply == b"421 4.4.2 Timeout, closing connection\r\n"
            assert await asyncio.wait_for(reader.read(), 5) == b""
        finally:
            writer.close()


# --- swaks ------------------------------------------------------------------------------


async def test_swaks_auth_before_tls_and_a_full_tls_submission(
    tmp_path: Path, ca: trustme.CA
) -> None:
    swaks = shutil.which("swaks")
    assert swaks, "swaks is installed by .ci/run (apt-get install swaks libnet-ssleay-perl)"
    (tmp_path / "mail.eml").write_bytes(fax_mail().as_bytes())
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        host, port = smtp_address(gateway)
        common = [
            "--server", f"{host}:{port}", "--from", "alice@example.com",
            "--to", "17185554567@fax.local", "--auth", "LOGIN",
            "--auth-user", "alice", "--auth-password", PASSWORD,
            "--data", str(tmp_path / "mail.eml"),
        ]  # fmt: skip
        plain_code, plain_out = await _run(swaks, *common)
        tls_code, tls_out = await _run(swaks, *common, "--tls")
    assert plain_code != 0
    assert "Host did not advertise authentication" in plain_out
    assert tls_code == 0, tls_out
    assert "<~  250 2.0.0 Ok: queued as " in tls_out


# --- helpers ----------------------------------------------------------------------------


async def faxes_sent(gateway: Gateway, count: int) -> bool:
    assert gateway.simulator is not None
    return len(gateway.simulator.ledger()) == count


def smtp_address(gateway: Gateway) -> tuple[str, int]:
    assert gateway.endpoints is not None and gateway.endpoints.smtp is not None
    return gateway.endpoints.smtp


async def _receipts(state_dir: Path, count: int) -> list[EmailMessage] | None:
    found = receipts_in(state_dir)
    return list(found) if len(found) >= count else None


async def _greeting(host: str, port: int, source: str) -> bytes:
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        return (await asyncio.wait_for(reader.readline(), 5)).rstrip(b"\r\n")
    finally:
        writer.close()


async def _run(*command: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_sighup_reloads_the_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    cert, key = write_certificate(ca, tmp_path)
    env = gateway_env(tmp_path, smtp_tls_cert=str(cert), smtp_tls_key=str(key))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailfax",
        "serve",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    try:
        assert process.stdout is not None
        banner = ""
        while "Stop with Ctrl-C." not in banner:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, f"mailfax serve exited early: {banner}"
            banner += line.decode()
        match = re.search(r"SMTP\s+(\S+):(\d+)", banner)
        assert match, banner
        endpoints = Endpoints((match.group(1), int(match.group(2))), None, None, "", "")

        async def served_certificate() -> bytes:
            client = await connect(endpoints, ca)
            try:
                ssl_object = client.get_transport_info("ssl_object")
                return bytes(ssl_object.getpeercert(binary_form=True))
            finally:
                await close(client)

        first = await served_certificate()
        # Renewed in place (as certbot does), then SIGHUP.
        renewed_cert, renewed_key = write_certificate(ca, tmp_path, "renewed")
        renewed_cert.replace(cert)
        renewed_key.replace(key)
        assert await served_certificate() == first  # nothing changes before the signal
        process.send_signal(signal.SIGHUP)

        async def renewed() -> bool:
            return await served_certificate() != first

        await eventually(renewed, what="the renewed certificate to be served")
        assert process.returncode is None  # SIGHUP did not stop the gateway
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
