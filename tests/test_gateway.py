"""End to end on loopback: SMTP client, gateway, simulator over HTTP, webhook, Maildir receipt."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailfax.app import Gateway
from mailfax.jobs import JobState
from mailfax.smtp.extraction import ExtractionPool
from mailfax.store import open_store
from tests.conftest import eventually
from tests.gateway import (
    faxed_comment,
    faxed_documents,
    gateway_env,
    receipts_in,
    smtp_transaction,
    start_gateway,
    text_part,
)
from tests.pdfs import encrypted_pdf, fax_mail, pdf_with_pages


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    running = await start_gateway(tmp_path)
    yield running
    await running.stop()


def drop_table(database: Path, table: str) -> None:
    """Break the store for real: acceptance's last insert (job_events) then fails."""
    with sqlite3.connect(database, timeout=30) as conn:
        conn.execute(f"DROP TABLE {table}")


def ledger(gateway: Gateway) -> list[dict[str, Any]]:
    assert gateway.simulator is not None
    return gateway.simulator.ledger()


def queue_id(reply: tuple[int, str]) -> str:
    code, text = reply
    assert code == 250, reply
    assert text.startswith("2.0.0 Ok: queued as "), text
    return text.rsplit(" ", 1)[-1]


async def wait_receipts(state_dir: Path, count: int) -> list[Any]:
    async def probe() -> list[Any] | None:
        found = receipts_in(state_dir)
        return found if len(found) >= count else None

    return await eventually(probe, what=f"{count} receipt(s)")


async def test_pdf_mail_is_faxed_and_a_receipt_comes_back(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None
    outcome = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
    assert outcome.rcpts == [(250, "2.1.5 Recipient ok: fax to +17185554567")]
    queue_id(outcome.final)

    [receipt] = await wait_receipts(tmp_path, 1)
    [sent] = ledger(gateway)
    assert sent["to"] == "+17185554567"
    assert faxed_comment(sent) == "Please find the invoice attached."
    assert faxed_documents(sent) == [("invoice.pdf", 2)]
    assert sent["status"] == "success"
    job_tags = [t for t in sent["tags"] if t.startswith("mailfax-job:")]
    assert len(job_tags) == 1

    assert receipt["Subject"] == "Fax delivered to +1 718-555-4567 (2 pages)"
    assert receipt["To"] == "alice@example.com"
    assert receipt["Auto-Submitted"] == "auto-replied"
    assert receipt["In-Reply-To"] == "<invoice-42@example.com>"
    assert receipt.get_content_type() == "multipart/report"
    text = text_part(receipt)
    assert f"Fax id:   {sent['id']}" in text

    assert gateway.store is not None
    job = await gateway.store.get_job(job_tags[0].removeprefix("mailfax-job:"))
    assert job is not None and job.state is JobState.DELIVERED and job.fax_id == sent["id"]
    history = [event[2] for event in await gateway.store.job_events(job.id)]
    assert history == ["queued", "uploading", "submitting", "submitted", "delivered"]


async def test_failing_number_gets_a_failure_receipt(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None
    outcome = await smtp_transaction(gateway.endpoints, fax_mail(), ["+16465550015@fax.local"])
    queue_id(outcome.final)
    [receipt] = await wait_receipts(tmp_path, 1)
    assert receipt["Subject"] == "Fax to +1 646-555-0015 not delivered: number does not exist"
    text = text_part(receipt)
    assert "The number does not exist" in text
    assert "Action: failed" in list(receipt.iter_parts())[1].as_string()
    assert [f["status"] for f in ledger(gateway)] == ["failed_unallocated_number"]


async def test_busy_number_is_redialled_then_reported(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None
    queue_id(
        (await smtp_transaction(gateway.endpoints, fax_mail(), ["+16465550013@fax.local"])).final
    )
    [receipt] = await wait_receipts(tmp_path, 1)
    # [faxplus] retries = 2: the first call and two redials, then the sender is told.
    sends = ledger(gateway)
    assert [f["status"] for f in sends] == ["failed_user_busy"] * 3
    assert len({tuple(f["tags"]) for f in sends}) == 1  # one job
    text = text_part(receipt)
    assert "busy" in text and "Attempts: 3" in text


async def test_each_recipient_is_its_own_fax(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None
    recipients = ["17185554567@fax.local", "+1-646-555-0015@fax.local", "1-718-555-4567@fax.local"]
    outcome = await smtp_transaction(gateway.endpoints, fax_mail(), recipients)
    queue_id(outcome.final)
    receipts = await wait_receipts(tmp_path, 2)
    # The third address is the first number again: faxed once.
    assert sorted(f["to"] for f in ledger(gateway)) == ["+16465550015", "+17185554567"]
    assert sorted(str(r["Subject"]).split()[0:2] == ["Fax", "delivered"] for r in receipts) == [
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("17185554567@example.com", (550, "5.7.1 Relaying denied")),
        ("sales@fax.local", (550, "5.1.1 <sales@fax.local> is not a fax number")),
        ("12@fax.local", (550, "5.1.1 <12@fax.local> is not a fax number")),
    ],
)
async def test_recipient_refusals(
    gateway: Gateway, recipient: str, expected: tuple[int, str]
) -> None:
    assert gateway.endpoints is not None
    outcome = await smtp_transaction(gateway.endpoints, fax_mail(), [recipient])
    code, text = outcome.rcpts[0]
    assert (code, text[: len(expected[1])]) == expected
    assert outcome.data is None


async def test_too_many_recipients(gateway: Gateway) -> None:
    assert gateway.endpoints is not None
    recipients = [f"+1718555{i:04d}@fax.local" for i in range(11)]
    outcome = await smtp_transaction(gateway.endpoints, fax_mail(), recipients)
    assert [code for code, _ in outcome.rcpts] == [250] * 10 + [452]
    assert outcome.rcpts[-1][1].startswith("4.5.3 Too many recipients")
    queue_id(outcome.final)


@pytest.mark.parametrize(
    ("attachments", "expected"),
    [
        (
            [("photo.png", b"\x89PNG\r\n\x1a\n....", "image/png")],
            "5.6.0 The image 'photo.png' is damaged",
        ),
        ([], "5.6.0 No document to fax"),
        ([("locked.pdf", encrypted_pdf(), "application/pdf")], "5.6.0 The PDF 'locked.pdf' is"),
    ],
)
async def test_content_refusals(
    gateway: Gateway, tmp_path: Path, attachments: list[tuple[str, bytes, str]], expected: str
) -> None:
    assert gateway.endpoints is not None
    outcome = await smtp_transaction(
        gateway.endpoints, fax_mail(attachments=attachments), ["17185554567@fax.local"]
    )
    assert outcome.final[0] == 550
    assert outcome.final[1].startswith(expected), outcome.final
    assert ledger(gateway) == []


async def test_too_large_mail(tmp_path: Path) -> None:
    gateway = await start_gateway(tmp_path, gateway_env(tmp_path, smtp_max_message_size="60KB"))
    try:
        assert gateway.endpoints is not None
        big = fax_mail(
            attachments=[("big.pdf", pdf_with_pages(1) + b"%" * 80_000, "application/pdf")]
        )
        outcome = await smtp_transaction(gateway.endpoints, big, ["17185554567@fax.local"])
        assert outcome.final == (
            552,
            "5.3.4 Message too big: this gateway accepts at most 60000 bytes",
        )
    finally:
        await gateway.stop()


async def test_storage_failure_answers_451_and_keeps_nothing(
    gateway: Gateway, tmp_path: Path
) -> None:
    assert gateway.endpoints is not None
    # In a thread: the gateway's own store calls run on this event loop.
    await asyncio.to_thread(drop_table, tmp_path / "mailfax.sqlite3", "job_events")
    outcome = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
    assert outcome.final == (451, "4.3.0 Temporary failure, try again later")
    with sqlite3.connect(tmp_path / "mailfax.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0


async def test_internal_error_is_a_451_without_details(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(self: ExtractionPool, raw: bytes) -> Any:
        raise RuntimeError("db down: password=hunter2")

    monkeypatch.setattr(ExtractionPool, "extract", explode)
    assert gateway.endpoints is not None
    outcome = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
    assert outcome.final == (451, "4.3.0 Temporary failure, try again later")
    assert "hunter2" not in str(outcome)


async def test_null_sender_is_faxed_without_a_receipt(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None
    outcome = await smtp_transaction(
        gateway.endpoints, fax_mail(), ["17185554567@fax.local"], sender=""
    )
    queue_id(outcome.final)
    assert gateway.store is not None

    async def delivered() -> bool:
        return [f["status"] for f in ledger(gateway)] == ["success"]

    await eventually(delivered, what="the fax to be sent")
    assert gateway.simulator is not None
    job_id = ledger(gateway)[0]["tags"][-1].removeprefix("mailfax-job:")

    async def final() -> bool:
        job = await gateway.store.get_job(job_id) if gateway.store else None
        return job is not None and job.state is JobState.DELIVERED

    await eventually(final, what="the job to be final")
    assert receipts_in(tmp_path) == []


async def test_webhook_paths_and_forgeries(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None and gateway.store is not None
    queue_id(
        (await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])).final
    )
    await wait_receipts(tmp_path, 1)
    [sent] = ledger(gateway)
    base, webhook_url = gateway.endpoints.http_url, gateway.endpoints.webhook_url
    assert base and webhook_url
    async with httpx.AsyncClient() as client:
        wrong = await client.post(
            f"{base}/webhooks/faxplus/not-the-secret", json={"data": {"id": sent["id"]}}
        )
        assert wrong.status_code == 404
        assert (await client.get(f"{base}/anything")).status_code == 404
        # The right path with a replayed id and with an invented one: no change, no receipt.
        for fax_id in (sent["id"], "0123456789abcdef01234567"):
            payload = {
                "hook": {"id": fax_id, "event": "fax_sent"},
                "data": {"id": fax_id, "status": "failed"},
            }
            response = await client.post(webhook_url, json=payload)
            assert response.status_code == 200
        bad = await client.post(webhook_url, content=b"not json")
        assert bad.status_code == 400
    job = await gateway.store.job_by_fax_id(sent["id"])
    assert job is not None and job.state is JobState.DELIVERED
    assert len(receipts_in(tmp_path)) == 1


async def test_a_stop_mid_upload_puts_the_job_back_at_once(tmp_path: Path) -> None:
    # A FAX.PLUS that takes connections and never answers: the upload is cut off by the stop.
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    env = gateway_env(
        tmp_path,
        faxplus_api_url=f"http://127.0.0.1:{port}/v3",
        faxplus_token="t",
        faxplus_from_number="+16465550001",
    )
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.endpoints is not None and gateway.store is not None
        reply = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
        [job] = await gateway.store.jobs_of_message(queue_id(reply.final))

        async def uploading() -> bool:
            assert gateway.store is not None
            current = await gateway.store.get_job(job.id)
            return current is not None and current.state is JobState.UPLOADING

        async def connected() -> bool:
            return bool(held)

        await eventually(uploading, what="the upload to start")
        await eventually(connected, what="the upload's connection")
    finally:
        await gateway.stop()
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
    store = await open_store("", tmp_path)
    try:
        released = await store.get_job(job.id)
        # Not left leased for [queue] lease (120 s): the next start sends it at once.
        assert released is not None and released.state is JobState.QUEUED
        assert released.lease_owner is None
    finally:
        await store.close()


async def test_accepted_mail_survives_a_restart_and_is_sent_once(tmp_path: Path) -> None:
    # First life: FAX.PLUS unreachable, so the accepted job cannot be dispatched.
    unreachable = gateway_env(
        tmp_path,
        faxplus_api_url="http://127.0.0.1:9/v3",
        faxplus_token="t",
        faxplus_from_number="+16465550001",
    )
    first = await start_gateway(tmp_path, unreachable)
    assert first.endpoints is not None
    message_id = queue_id(
        (await smtp_transaction(first.endpoints, fax_mail(), ["17185554567@fax.local"])).final
    )
    await first.stop()

    second = await start_gateway(tmp_path)
    try:
        await wait_receipts(tmp_path, 1)
        [sent] = ledger(second)
        assert sent["to"] == "+17185554567" and sent["status"] == "success"
        assert second.store is not None
        message = await second.store.message(message_id)
        assert message is not None and message.subject == "Invoice 42"
    finally:
        await second.stop()
