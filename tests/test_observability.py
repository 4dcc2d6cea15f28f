"""Health, readiness and Prometheus metrics on a running gateway's HTTP listener."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailfax.app import Gateway
from mailfax.faxplus import ApiError, FaxPlusClient
from mailfax.store import open_store
from tests.conftest import PG_ADMIN_URL, eventually, fresh_pg_database
from tests.gateway import gateway_env, receipts_in, smtp_transaction, start_gateway
from tests.pdfs import fax_mail

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    running = await start_gateway(tmp_path)
    yield running
    await running.stop()


async def scrape(gateway: Gateway) -> Samples:
    assert gateway.endpoints is not None and gateway.endpoints.http_url
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{gateway.endpoints.http_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_health_and_readiness(gateway: Gateway) -> None:
    assert gateway.endpoints is not None
    base = gateway.endpoints.http_url
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{base}/healthz")
        ready = await client.get(f"{base}/readyz")
        assert (health.status_code, health.text) == (200, "ok\n")
        assert ready.status_code == 200
        loops = {name: "up" for name in ("dispatch", "webhooks", "reconcile", "receipts")}
        assert ready.json() == {"ready": True, "checks": {**loops, "smtp": "up", "store": "up"}}
        # A gateway that stopped taking mail is alive but not ready.
        assert gateway._smtp is not None
        await gateway._smtp.close()
        down = await client.get(f"{base}/readyz")
        assert down.status_code == 503
        assert down.json()["checks"] == {**loops, "smtp": "down", "store": "up"}
        assert (await client.get(f"{base}/healthz")).status_code == 200


async def test_readiness_follows_the_database(tmp_path: Path) -> None:
    async with fresh_pg_database() as url:
        store = await open_store(url, tmp_path, check_schema=False)
        await store.upgrade()
        await store.close()
        gateway = await start_gateway(tmp_path, gateway_env(tmp_path, store_url=url))
        try:
            assert gateway.endpoints is not None
            base = gateway.endpoints.http_url
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{base}/readyz")).status_code == 200
                # The database goes away: no new connections, existing ones cut.
                name = url.rsplit("/", 1)[1]
                admin = await asyncpg.connect(PG_ADMIN_URL)
                try:
                    await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                    await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                        name,
                    )
                finally:
                    await admin.close()
                down = await client.get(f"{base}/readyz")
                assert down.status_code == 503
                assert down.json()["checks"]["store"] == "down"
                assert (await client.get(f"{base}/healthz")).status_code == 200
            assert value(await scrape(gateway), "mailfax_store_up") == 0.0
        finally:
            await gateway.stop()


async def test_metrics_count_what_happened(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None
    before = await scrape(gateway)
    accepted = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
    assert accepted.final[0] == 250
    refused = await smtp_transaction(
        gateway.endpoints, fax_mail(attachments=[]), ["17185554567@fax.local", "x@example.com"]
    )
    assert refused.final[0] == 550

    async def receipt() -> bool:
        return len(receipts_in(tmp_path)) == 1

    await eventually(receipt, what="the receipt")

    async def receipt_counted() -> Samples | None:
        samples = await scrape(gateway)
        sent = value(samples, "mailfax_receipts_total", outcome="sent")
        return samples if sent > value(before, "mailfax_receipts_total", outcome="sent") else None

    after = await eventually(receipt_counted, what="the receipt to be counted")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mailfax_mails_accepted_total") == 1
    assert delta("mailfax_mails_refused_total", reason="5.7.1") == 1  # relaying denied
    assert delta("mailfax_mails_refused_total", reason="5.6.0") == 1  # no document
    assert value(after, "mailfax_jobs", state="delivered") == 1
    assert value(after, "mailfax_jobs", state="queued") == 0
    assert value(after, "mailfax_queue_oldest_age_seconds") == 0
    assert value(after, "mailfax_store_up") == 1
    outbox = "POST /accounts/{id}/outbox"
    assert delta("mailfax_faxplus_request_duration_seconds_count", endpoint=outbox) == 1
    assert delta("mailfax_webhook_events_total", outcome="parked") >= 1
    assert delta("mailfax_webhook_events_total", outcome="confirmed") == 1
    assert delta("mailfax_receipts_total", outcome="sent") == 1

    # An API error is counted by endpoint and status.
    api = FaxPlusClient(gateway.endpoints.api_url, "wrong-token")
    try:
        with pytest.raises(ApiError):
            await api.get_account()
    finally:
        await api.aclose()
    errors = await scrape(gateway)
    unauthorised = {"endpoint": "GET /accounts/{id}", "error": "401"}
    name = "mailfax_faxplus_request_errors_total"
    assert value(errors, name, **unauthorised) - value(after, name, **unauthorised) == 1


async def test_queue_age_shows_a_stuck_job(tmp_path: Path) -> None:
    # FAX.PLUS unreachable: the accepted job waits in the queue, and its age shows.
    env = gateway_env(
        tmp_path,
        faxplus_api_url="http://127.0.0.1:9/v3",
        faxplus_token="t",
        faxplus_from_number="+16465550001",
        # After the failed upload the job waits a minute in the queue (not 0.2 s: the next
        # claim would show it uploading again whenever the scrape came then).
        queue_min_backoff="60",
    )
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.endpoints is not None
        outcome = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
        assert outcome.final[0] == 250

        upload = (("endpoint", "POST /accounts/{id}/files"), ("error", "ConnectError"))

        async def stuck() -> Samples | None:
            samples = await scrape(gateway)
            tried = samples.get(("mailfax_faxplus_request_errors_total", upload), 0) > 0
            # The error is counted before the job is back in the queue: wait for both.
            back = value(samples, "mailfax_jobs", state="queued") > 0
            return samples if tried and back else None

        samples = await eventually(stuck, what="a failed upload to be counted")
        assert value(samples, "mailfax_jobs", state="queued") == 1
        assert value(samples, "mailfax_queue_oldest_age_seconds") > 0
    finally:
        await gateway.stop()
