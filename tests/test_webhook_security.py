"""Forged and abusive webhooks change no job and send no receipt; the endpoint's guards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from mailfax.jobs import JobState
from tests.conftest import eventually
from tests.gateway import gateway_env, receipts_in, smtp_transaction, start_gateway
from tests.pdfs import fax_mail


def parked_attempts(database: Path) -> list[int]:
    with sqlite3.connect(database, timeout=30) as conn:
        return [row[0] for row in conn.execute("SELECT attempts FROM fax_events")]


async def test_forged_webhooks_change_nothing(tmp_path: Path) -> None:
    # The simulator reports the fax only after 60 s: until then FAX.PLUS knows no result.
    gateway = await start_gateway(tmp_path, gateway_env(tmp_path, sandbox_delay="60"))
    try:
        assert gateway.endpoints is not None and gateway.store is not None
        store = gateway.store
        outcome = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
        assert outcome.final[0] == 250
        [summary] = await store.list_jobs(None, None, "", 10)

        async def submitted() -> bool:
            job = await store.get_job(summary.job.id)
            return job is not None and job.state is JobState.SUBMITTED and bool(job.fax_id)

        await eventually(submitted, what="the job to be submitted")
        job = await store.get_job(summary.job.id)
        assert job is not None and job.fax_id
        base, target = gateway.endpoints.http_url, gateway.endpoints.webhook_url
        assert base and target
        async with httpx.AsyncClient() as client:
            # Wrong path: 404 and nothing parked.
            wrong = await client.post(
                f"{base}/webhooks/faxplus/guessed", json={"data": {"id": job.fax_id}}
            )
            assert wrong.status_code == 404
            # Right path, invented fax id; right id with a status FAX.PLUS contradicts.
            for fax_id in ("0123456789abcdef01234567", job.fax_id):
                payload = {"hook": {"id": fax_id}, "data": {"id": fax_id, "status": "success"}}
                assert (await client.post(target, json=payload)).status_code == 200

        async def both_checked() -> bool:
            attempts = parked_attempts(tmp_path / "mailfax.sqlite3")
            return len(attempts) == 2 and all(a >= 1 for a in attempts)

        # Both hints were looked up at FAX.PLUS and put back to wait: neither is believed.
        await eventually(both_checked, what="both forged hints to be checked")
        after = await store.get_job(job.id)
        assert after is not None and after.state is JobState.SUBMITTED
        assert receipts_in(tmp_path) == []
    finally:
        await gateway.stop()


async def test_webhook_guards(tmp_path: Path) -> None:
    gateway = await start_gateway(
        tmp_path, gateway_env(tmp_path, http_webhook_rate_limit="1", http_webhook_secret="s3")
    )
    try:
        assert gateway.endpoints is not None and gateway.endpoints.webhook_url
        target = gateway.endpoints.webhook_url
        async with httpx.AsyncClient() as client:
            typed = await client.post(
                target,
                content=b"id=1",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert typed.status_code == 415
            # A burst of two, then one a second: the third request at once is refused.
            second = await client.post(target, json={"data": {"id": "x"}})
            third = await client.post(target, json={"data": {"id": "x"}})
            assert second.status_code == 200
            assert third.status_code == 429 and third.headers["retry-after"] == "1"
    finally:
        await gateway.stop()

    gateway = await start_gateway(
        tmp_path,
        gateway_env(
            tmp_path, http_webhook_allowed_networks="192.0.2.0/24", http_webhook_secret="s3"
        ),
    )
    try:
        assert gateway.endpoints is not None and gateway.endpoints.webhook_url
        async with httpx.AsyncClient() as client:
            outsider = await client.post(gateway.endpoints.webhook_url, json={"data": {"id": "x"}})
            assert outsider.status_code == 403
    finally:
        await gateway.stop()


async def test_oversized_webhook_is_refused_before_it_is_read(tmp_path: Path) -> None:
    gateway = await start_gateway(tmp_path, gateway_env(tmp_path))
    try:
        assert gateway.endpoints is not None and gateway.endpoints.webhook_url
        async with httpx.AsyncClient() as client:
            big = await client.post(gateway.endpoints.webhook_url, content=b"{" + b" " * 70_000)
            assert big.status_code == 413
    finally:
        await gateway.stop()
