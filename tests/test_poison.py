"""Poison inputs through the real listeners: a mail, login or request that once jammed the
gateway is refused, or faxed with a correct receipt, and an ordinary sender's mail sent at the
same time is answered and faxed in its usual time (issue 15)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import quopri
import stat
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
import trustme

from mailfax import worker
from mailfax.app import Gateway
from mailfax.cli import main
from mailfax.dispatch import MAX_CONCURRENT_JOBS
from mailfax.jobs import TERMINAL, JobState
from mailfax.logs import log_event, masked, setup_logging
from mailfax.metrics import REGISTRY
from mailfax.receipts.compose import ReceiptComposer
from mailfax.status_page import ADMIN_FREE_FAILURES, COOKIE, SESSION_LIFETIME, session_value
from mailfax.store import MINIMAL_RECEIPT_PREFIX, SqlStore, StoreUnavailable, open_store
from tests.conftest import eventually
from tests.gateway import gateway_env, receipts_in, smtp_transaction, start_gateway, text_part
from tests.pdfs import fax_mail
from tests.test_smtp_security import PASSWORD, ca, close, connect, secure_gateway, submit

__all__ = ["ca"]  # the fixture, shared with the SMTP security tests

RECIPIENT = "+17185554567@fax.local"
# An ordinary mail is faxed and its receipt written in about a second here (simulator without
# delay); a mail that waits behind a jammed worker took 12-78 s, or never came.
USUAL_TIME = 8.0
# A German office's invoice as its mail client sends it: raw UTF-8 in the header block.
UTF8_SUBJECT = "Rechnung für März"
# An encoded CR LF in a Message-ID, trying to add a Bcc: to the receipt.
CRLF_MESSAGE_ID = b"=?utf-8?q?<a@b>=0D=0ABcc:_x@y?="


def raw_mail(subject: str, message_id: bytes, sender: str = "alice@example.com") -> bytes:
    """fax_mail with its Subject and Message-ID replaced by raw bytes, as clients send them."""
    mail = fax_mail(sender=sender, subject="SUBJECT", message_id="<MID@example.com>").as_bytes()
    mail = mail.replace(b"Subject: SUBJECT", b"Subject: " + subject.encode("utf-8"))
    return mail.replace(b"Message-ID: <MID@example.com>", b"Message-ID: " + message_id)


async def send_raw(
    gateway: Gateway, mail: bytes, ehlo: bytes = b"EHLO client.example", sender: str = ""
) -> tuple[int, str]:
    """MAIL, RCPT, DATA after the given EHLO line, as a client that speaks SMTPUTF8."""
    assert gateway.endpoints is not None and gateway.endpoints.smtp is not None
    host, port = gateway.endpoints.smtp
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
    await client.connect()
    try:
        ehlo_reply = await client.execute_command(ehlo)
        assert ehlo_reply.code == 250, ehlo_reply
        if ehlo.startswith(b"EHLO"):
            # RFC 6531 and RFC 6152: UTF-8 headers and addresses, 8-bit bodies, are welcome.
            assert {"SMTPUTF8", "8BITMIME"} <= set(ehlo_reply.message.splitlines())
        await client.mail(sender or "alice@example.com", options=["SMTPUTF8", "BODY=8BITMIME"])
        await client.rcpt(RECIPIENT)
        try:
            reply = await client.data(mail)
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        return reply.code, reply.message
    finally:
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.quit()


def queue_id(reply: tuple[int, str]) -> str:
    assert reply[0] == 250, reply
    return reply[1].rsplit(" ", 1)[-1]


async def receipt_for(state_dir: Path, queue: str, timeout: float = 30.0) -> EmailMessage:
    async def probe() -> EmailMessage | None:
        for receipt in receipts_in(state_dir):
            if receipt["X-Mailfax-Queue-ID"] == queue and receipt["X-Mailfax-Receipt"] == "final":
                return receipt
        return None

    return await eventually(probe, timeout=timeout, what=f"the final receipt of {queue}")


def global_headers(state_dir: Path, queue: str) -> str:
    """The message/global-headers part of a mail's receipt, decoded (a parser takes a message/*
    part for a message, and does not undo its quoted-printable)."""
    [raw] = [r for r in raw_receipts(state_dir) if f"X-Mailfax-Queue-ID: {queue}".encode() in r]
    part = raw.split(b"Content-Type: message/global-headers\n", 1)[1]
    head, _, body = part.partition(b"\n\n")
    assert b"Content-Transfer-Encoding: quoted-printable" in head
    return quopri.decodestring(body.split(b"\n--", 1)[0]).decode("utf-8")


def raw_receipts(state_dir: Path) -> list[bytes]:
    return [path.read_bytes() for path in (state_dir / "receipts" / "new").iterdir()]


async def ordinary_mail_in_usual_time(gateway: Gateway, state_dir: Path) -> float:
    """Send an ordinary mail; returns the seconds from its DATA to its final receipt."""
    assert gateway.endpoints is not None
    started = time.monotonic()
    outcome = await smtp_transaction(
        gateway.endpoints, fax_mail(message_id="<ordinary@example.com>"), [RECIPIENT]
    )
    assert outcome.data is not None
    receipt = await receipt_for(state_dir, queue_id(outcome.data), timeout=USUAL_TIME)
    assert receipt["Subject"] == "Fax delivered to +1 718-555-4567 (2 pages)"
    return time.monotonic() - started


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- item 1: 8-bit and UTF-8 headers --------------------------------------------------------


async def test_utf8_headers_are_rendered_everywhere_and_others_are_not_held_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = gateway_env(tmp_path, http_admin_token="admin-token-1234567890")
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.store is not None and gateway.endpoints is not None
        mail = raw_mail(UTF8_SUBJECT, CRLF_MESSAGE_ID)
        # Three poisoned mails and one ordinary one at the same time: their confirmations share
        # a batch of the confirmer, which one exception used to cancel whole.
        poisoned, ordinary = await asyncio.gather(
            asyncio.gather(
                *(send_raw(gateway, mail, "EHLO hôte.example".encode()) for _ in range(3))
            ),
            ordinary_mail_in_usual_time(gateway, tmp_path),
        )
        assert ordinary < USUAL_TIME
        for reply in poisoned:
            receipt = await receipt_for(tmp_path, queue_id(reply))
            assert receipt["Subject"] == "Fax delivered to +1 718-555-4567 (2 pages)"
            assert "Subject:  Rechnung für März" in text_part(receipt)
            # The encoded CR LF made no header line, and no msg-id that is not one is replied to.
            assert receipt["Bcc"] is None and receipt["In-Reply-To"] is None
            original = global_headers(tmp_path, queue_id(reply))
            assert "Subject: Rechnung für März\n" in original
            assert "Received: from hôte.example (127.0.0.1)" in original
        # Written for any smarthost: 7-bit, the UTF-8 as encoded-words and quoted-printable.
        assert all(content.isascii() for content in raw_receipts(tmp_path))

        # The job's detail on the status page and in `jobs show`.
        job = (await gateway.store.jobs_of_message(queue_id(poisoned[0])))[0]
        assert gateway.endpoints.http_url is not None
        async with httpx.AsyncClient(base_url=gateway.endpoints.http_url) as client:
            page = await client.get(
                f"/jobs/{job.id}", headers={"Authorization": "Bearer admin-token-1234567890"}
            )
        assert page.status_code == 200 and "<dd>Rechnung für März</dd>" in page.text
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert await asyncio.to_thread(main, ["jobs", "show", job.id]) == 0
        assert "  subject    Rechnung für März\n" in capsys.readouterr().out
    finally:
        await gateway.stop()

    # `mailfax inspect` reads the same bytes the same way.
    path = tmp_path / "mail.eml"
    path.write_bytes(mail)
    assert main(["inspect", str(path)]) == 0
    assert "Subject:  Rechnung für März\n" in capsys.readouterr().out


async def test_a_receipt_that_cannot_be_composed_still_finishes_its_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = ReceiptComposer.compose

    def broken_for_poison(self: ReceiptComposer, job: Any, message: Any, *args: Any) -> Any:
        # A receipt-composition bug that only this mail meets (a template the operator edited,
        # a header no one foresaw): the job must still end, with a receipt.
        if "poison" in message.subject:
            raise UnicodeEncodeError("ascii", "ü", 0, 1, "a bug in composing")
        return compose(self, job, message, *args)

    monkeypatch.setattr(ReceiptComposer, "compose", broken_for_poison)
    before = metric("mailfax_receipts_minimal_total")
    gateway = await start_gateway(tmp_path)
    try:
        assert gateway.store is not None and gateway.endpoints is not None
        poison = fax_mail(subject="poison", message_id="<poison@example.com>")
        poisoned, ordinary = await asyncio.gather(
            smtp_transaction(gateway.endpoints, poison, [RECIPIENT]),
            ordinary_mail_in_usual_time(gateway, tmp_path),
        )
        assert ordinary < USUAL_TIME
        assert poisoned.data is not None
        receipt = await receipt_for(tmp_path, queue_id(poisoned.data), timeout=USUAL_TIME)
        assert receipt.get_content_type() == "text/plain"
        assert receipt["Subject"] == "Fax to +1 718-555-4567: delivered"
        assert "could not compose its usual receipt" in receipt.get_content()
        [job] = await gateway.store.jobs_of_message(queue_id(poisoned.data))
        assert job.state is JobState.DELIVERED
        record = await gateway.store.receipt_of(job.id)
        assert record is not None and record.id.startswith(MINIMAL_RECEIPT_PREFIX)
        assert metric("mailfax_receipts_minimal_total") == before + 1
    finally:
        await gateway.stop()
    # `mailfax doctor` tells the operator.
    monkeypatch.setenv("MAILFAX_STATE_DIR", str(tmp_path))
    assert await asyncio.to_thread(main, ["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  receipts" in out and "1 receipt in the last 7 days was a minimal one" in out


async def test_one_failing_confirmation_leaves_its_batch_alone_and_retry_settles_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = gateway_env(tmp_path)
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.store is not None and gateway.endpoints is not None
        store = gateway.store
        job_by_fax_id = store.job_by_fax_id
        broken = True

        async def failing_for_poison(fax_id: str) -> Any:
            # Whatever makes one confirmation raise (a store error, a bug) keeps doing so.
            job = await job_by_fax_id(fax_id)
            message = await store.message(job.message_id) if job else None
            if broken and message is not None and message.subject == "poison":
                raise RuntimeError("this confirmation always fails")
            return job

        monkeypatch.setattr(store, "job_by_fax_id", failing_for_poison)
        poison = fax_mail(subject="poison", message_id="<poison@example.com>")
        parked = metric("mailfax_webhook_events_total", outcome="parked")
        poisoned = await smtp_transaction(gateway.endpoints, poison, [RECIPIENT])
        assert poisoned.data is not None

        async def webhook_parked() -> bool:
            return metric("mailfax_webhook_events_total", outcome="parked") > parked

        await eventually(webhook_parked, what="the poisoned fax's webhook")
        # Mails sent after it are confirmed in their usual time, beside it.
        ordinary = await asyncio.gather(
            *(ordinary_mail_in_usual_time(gateway, tmp_path) for _ in range(3))
        )
        assert all(took < USUAL_TIME for took in ordinary)
        [job] = await store.jobs_of_message(queue_id(poisoned.data))
        assert job.state is JobState.SUBMITTED
        # Once the cause is gone, the operator settles the job at once.
        broken = False
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert await asyncio.to_thread(main, ["jobs", "retry", job.id]) == 0
        assert "is asked for the result" in capsys.readouterr().out

        async def final() -> bool:
            current = await store.get_job(job.id)
            return current is not None and current.state in TERMINAL

        await eventually(final, timeout=USUAL_TIME, what="the retried job to be final")
        await receipt_for(tmp_path, queue_id(poisoned.data), timeout=USUAL_TIME)
    finally:
        await gateway.stop()


# --- item 5: a store error never stops a worker loop --------------------------------------


class FlakyStore:
    """The real store, whose every method fails once (StoreUnavailable) the first time a
    worker calls it after `arm`: each call site of every worker loop meets a store error."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._armed = False
        self.failed: set[str] = set()

    def arm(self) -> None:
        self._armed = True

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not asyncio.iscoroutinefunction(attribute) or name in ("close", "listen"):
            return attribute

        async def once_failing(*args: Any, **kwargs: Any) -> Any:
            if self._armed and name not in self.failed:
                self.failed.add(name)
                raise StoreUnavailable(f"injected: {name}")
            return await attribute(*args, **kwargs)

        return once_failing


async def test_store_errors_in_every_worker_loop_do_not_stop_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores: list[FlakyStore] = []

    async def flaky_store(*args: Any, **kwargs: Any) -> Any:
        stores.append(FlakyStore(await open_store(*args, **kwargs)))
        return stores[-1]

    monkeypatch.setattr("mailfax.app.open_store", flaky_store)
    # A loop that failed waits this long before trying again (5 s in service).
    monkeypatch.setattr(worker, "IDLE_POLL", 0.5)
    # A short lease and reconciliation delay: a job whose claim met two store errors in a row
    # waits for those (a send interrupted is only ever settled by reconciliation).
    gateway = await start_gateway(
        tmp_path,
        gateway_env(
            tmp_path, queue_lease="4", faxplus_request_timeout="1.5", queue_reconcile_after="1"
        ),
    )
    try:
        assert gateway.endpoints is not None and gateway.dispatcher is not None
        stores[0].arm()
        # The first mail's DATA meets the error: 451, and its MTA sends it again.
        first = await smtp_transaction(gateway.endpoints, fax_mail(), [RECIPIENT])
        assert first.data is not None and first.data[0] == 451
        again = await smtp_transaction(gateway.endpoints, fax_mail(), [RECIPIENT])
        assert again.data is not None
        # Its way through every worker loop meets a store error at each kind of call.
        await receipt_for(tmp_path, queue_id(again.data), timeout=30.0)
        met = {"claim_jobs", "documents", "transition", "due_fax_events", "claim_receipt"}
        assert met <= stores[0].failed, stores[0].failed
        # After those errors, a mail is faxed as fast as ever (it stayed queued until restart).
        took = await ordinary_mail_in_usual_time(gateway, tmp_path)
        assert took < USUAL_TIME
        # Every slot came back: the dispatcher can run as many jobs at once as ever.
        assert gateway.dispatcher._slots._value == MAX_CONCURRENT_JOBS
    finally:
        await gateway.stop()


async def test_readiness_reports_a_worker_loop_that_stopped_making_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "STALL_AFTER", 0.5)
    gateway = await start_gateway(tmp_path)
    try:
        assert gateway.endpoints is not None and gateway.store is not None
        base = gateway.endpoints.http_url
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"{base}/readyz")
            assert ready.status_code == 200, ready.json()
            # The store hangs on one worker's call (a lock nobody releases): that loop stops.
            hung = asyncio.Event()
            store = gateway.store
            claim_jobs = store.claim_jobs

            async def hanging_claim(*args: Any, **kwargs: Any) -> Any:
                await hung.wait()
                return await claim_jobs(*args, **kwargs)

            monkeypatch.setattr(store, "claim_jobs", hanging_claim)
            outcome = await smtp_transaction(gateway.endpoints, fax_mail(), [RECIPIENT])
            assert outcome.data is not None and outcome.data[0] == 250

            async def stalled() -> dict[str, Any] | None:
                answer = await client.get(f"{base}/readyz")
                return answer.json() if answer.status_code == 503 else None

            report = await eventually(stalled, what="/readyz to report the stalled loop")
            assert report["checks"]["dispatch"] == "down"
            assert report["checks"]["receipts"] == "up"
            hung.set()
            await eventually(
                lambda: _ready(client, f"{base}/readyz"),
                what="/readyz ready again once the loop moves",
            )
    finally:
        await gateway.stop()


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    return (await client.get(url)).status_code == 200


# --- item 9: the From header, where sender binding applies ---------------------------------


@pytest.mark.parametrize(
    ("from_lines", "reason"),
    [
        (b"From: alice@example.com\r\nFrom: mallory@example.org\r\n", "2 From headers"),
        (b"From: \r\n", "names no address"),
        (b"From: undisclosed-recipients:;\r\n", "is a group"),
        (b"", "no From header"),
    ],
)
async def test_a_from_header_rfc_5322_forbids_is_refused(
    tmp_path: Path, from_lines: bytes, reason: str
) -> None:
    env = gateway_env(tmp_path, smtp_allowed_senders="alice@example.com")
    gateway = await start_gateway(tmp_path, env)
    try:
        mail = fax_mail().as_bytes().replace(b"From: alice@example.com\n", b"")
        reply = await send_raw(gateway, from_lines.replace(b"\r\n", b"\n") + mail)
        assert reply[0] == 550 and reply[1].startswith("5.6.0"), reply
        assert reason in reply[1]
        # The same client's next, ordinary mail goes through.
        assert (await send_raw(gateway, fax_mail().as_bytes()))[0] == 250
    finally:
        await gateway.stop()


# --- item 10: a control character in EHLO ---------------------------------------------------


async def test_a_bare_cr_in_ehlo_is_refused_and_never_reaches_a_header(tmp_path: Path) -> None:
    gateway = await start_gateway(tmp_path)
    try:
        assert gateway.endpoints is not None and gateway.endpoints.smtp is not None
        # A raw socket: SMTP clients refuse to send a control character in a command.
        reader, writer = await asyncio.open_connection(*gateway.endpoints.smtp)

        async def say(line: bytes) -> bytes:
            writer.write(line + b"\r\n")
            reply = b""
            while reply[3:4] != b" ":
                reply = await asyncio.wait_for(reader.readline(), 10)
            return reply

        await asyncio.wait_for(reader.readline(), 10)  # the greeting
        for command in (b"EHLO evil.example\rX-Injected: yes", b"HELO evil\x1b[2Jexample"):
            assert (await say(command)).startswith(b"501 5.5.4 Invalid host name")
        # The session goes on with a proper greeting.
        assert (await say(b"EHLO client.example")).startswith(b"250 ")
        assert (await say(b"MAIL FROM:<alice@example.com>")).startswith(b"250 ")
        assert (await say(f"RCPT TO:<{RECIPIENT}>".encode())).startswith(b"250 ")
        assert (await say(b"DATA")).startswith(b"354 ")
        body = fax_mail().as_bytes().replace(b"\n", b"\r\n")
        reply = await say(body + b".")
        writer.close()
        assert reply.startswith(b"250 "), reply
        queue = reply.decode().split()[-1]
        receipt = await receipt_for(tmp_path, queue)
        assert "X-Injected" not in receipt.as_string()
    finally:
        await gateway.stop()


# --- item 11: what a failed login logs -----------------------------------------------------


async def test_unknown_login_names_are_logged_masked_and_control_characters_escaped(
    tmp_path: Path, ca: trustme.CA, capfd: pytest.CaptureFixture[str]
) -> None:
    setup_logging()
    typed_password = "Winter2026!\r\x1b[31mforged=line"
    async with secure_gateway(tmp_path, ca) as gateway:
        assert gateway.endpoints is not None
        # From two addresses, so that neither attempt waits for the other's failure.
        for name, source in ((typed_password, "127.0.0.2"), ("bob", "127.0.0.3")):
            client = await connect(gateway.endpoints, ca, source=source)
            with pytest.raises(aiosmtplib.SMTPAuthenticationError):
                await client.login(name, "wrong password")
            await close(client)
        # An ordinary user logs in and faxes meanwhile.
        ordinary = await connect(gateway.endpoints, ca, login=("alice", PASSWORD))
        assert (await submit(ordinary)).final[0] == 250
        await close(ordinary)
    logged = capfd.readouterr().err
    failed = [line for line in logged.splitlines() if "event=smtp.auth_failed" in line]
    assert len(failed) == 2, logged
    assert f"user={masked(typed_password)}" in failed[0]
    assert "user=bob" in failed[1]
    assert "Winter2026" not in logged and "\x1b" not in logged and "\r" not in logged


def test_every_logged_value_has_its_control_characters_escaped(
    capfd: pytest.CaptureFixture[str],
) -> None:
    setup_logging()
    log_event(logging.getLogger("mailfax.test"), "test.event", value="a\rb\x1b[2J\u202ec")
    line = capfd.readouterr().err
    assert line.count("\n") == 1 and "\r" not in line and "\x1b" not in line
    assert 'value="a\\rb\\u001b[2J\\u202ec"' in line


# --- item 12: a webhook body that is JSON no one can use -----------------------------------


async def test_deep_or_surrogate_webhook_bodies_are_400_and_others_still_confirmed(
    tmp_path: Path,
) -> None:
    gateway = await start_gateway(tmp_path)
    try:
        assert gateway.endpoints is not None and gateway.endpoints.webhook_url is not None
        url = gateway.endpoints.webhook_url
        async with httpx.AsyncClient() as client:
            deep = b"[" * 20_000 + b"]" * 20_000
            surrogate = b'{"data": {"id": "\\ud800", "status": "success"}}'
            for body in (deep, surrogate):
                answer = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                assert answer.status_code == 400, answer.text
        took = await ordinary_mail_in_usual_time(gateway, tmp_path)
        assert took < USUAL_TIME
    finally:
        await gateway.stop()


# --- item 13: the state directory is the gateway's own -------------------------------------


async def test_the_store_its_wal_the_secret_and_receipts_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    gateway = await start_gateway(state, gateway_env(state))
    try:
        await ordinary_mail_in_usual_time(gateway, state)
    finally:
        await gateway.stop()
    mode = {path.name: stat.S_IMODE(path.stat().st_mode) for path in state.rglob("*")}
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert mode["mailfax.sqlite3"] == mode["webhook-secret"] == 0o600
    assert mode.get("mailfax.sqlite3-wal", 0o600) == 0o600
    assert mode["receipts"] == mode["new"] == 0o700
    receipts = list((state / "receipts" / "new").iterdir())
    assert receipts and all(stat.S_IMODE(r.stat().st_mode) == 0o600 for r in receipts)


# --- the status page: a login that expires, guesses that are throttled --------------------


async def test_status_page_logins_expire_and_wrong_tokens_are_throttled(tmp_path: Path) -> None:
    token = "status-token-1234567890"
    gateway = await start_gateway(tmp_path, gateway_env(tmp_path, http_admin_token=token))
    try:
        assert gateway.endpoints is not None and gateway.endpoints.http_url is not None
        async with httpx.AsyncClient(base_url=gateway.endpoints.http_url) as client:
            login = await client.post("/login", data={"token": token, "next": "/"})
            assert login.status_code == 303
            assert f"Max-Age={SESSION_LIFETIME}" in login.headers["set-cookie"]
            assert (await client.get("/")).status_code == 200
            # A cookie past its expiry, or with its expiry moved, is no login.
            client.cookies.clear()
            expired = session_value(token, int(time.time()) - 1)
            moved = f"{int(time.time()) + 3600}.{expired.partition('.')[2]}"
            for cookie in (expired, moved):
                client.cookies.set(COOKIE, cookie)
                assert (await client.get("/")).status_code == 401
        async with httpx.AsyncClient(base_url=gateway.endpoints.http_url) as guesser:
            answers = [
                (await guesser.post("/login", data={"token": f"guess-{n}"})).status_code
                for n in range(ADMIN_FREE_FAILURES)
            ]
            assert answers == [401] * ADMIN_FREE_FAILURES
            throttled = await guesser.post("/login", data={"token": token})
            assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
            assert "Too many wrong tokens" in throttled.text
    finally:
        await gateway.stop()
