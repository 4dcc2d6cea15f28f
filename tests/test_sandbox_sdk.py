"""Alohi's official SDK (faxplus-api) drives the simulator; its models must accept every answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import faxplus
import pikepdf
import pytest
from faxplus.rest import ApiException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mailfax._http import HttpServer
from mailfax.faxplus import FaxPlusClient, NotFoundApiError
from mailfax.metrics import api_endpoint
from mailfax.sandbox import DEFAULT_TOKEN, Simulator, SimulatorSettings
from mailfax.sandbox.dialling import display_number
from mailfax.sandbox.variants import ALL, VARIANTS, parse_variants

FROM = "+16465550001"
EVENT_DEADLINE = 5.0
# The default reading, each variant alone, and all of them at once.
VARIANT_SETS = [(), *((name,) for name in VARIANTS), (ALL,)]


@dataclass
class Apis:
    """The SDK's API groups, all sharing one client configured for the simulator."""

    accounts: Any
    numbers: Any
    files: Any
    outbox: Any
    faxes: Any
    hooks: Any


@dataclass
class Harness:
    apis: Apis
    webhook_url: str
    webhooks: asyncio.Queue[dict[str, Any]]
    variants: frozenset[str]

    async def next_webhook(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.webhooks.get(), EVENT_DEADLINE)

    async def hook_and_upload(self, document: Path, pages: int) -> Any:
        """Register the fax_sent webhook and upload a blank PDF of `pages` pages."""
        pdf = pikepdf.new()
        for _ in range(pages):
            pdf.add_blank_page()
        pdf.save(document)
        await asyncio.to_thread(
            self.apis.hooks.create_webhook,
            body=faxplus.Webhook(target=self.webhook_url, event="fax_sent"),
        )
        return await asyncio.to_thread(
            self.apis.files.upload_file, "self", fax_file=str(document), format="pdf"
        )

    def number(self, number: str) -> str:
        """A number as this simulator's records and webhooks show it."""
        return display_number(number) if "formatted-numbers" in self.variants else number


def sdk_apis(api_url: str, downloads: Path) -> Apis:
    configuration = faxplus.Configuration()
    configuration.host = api_url
    # The SDK always sets Authorization from access_token ("Bearer " when empty), which
    # overrides an ApiClient(header_name="Authorization", ...) default header.
    configuration.access_token = DEFAULT_TOKEN
    configuration.temp_folder_path = str(downloads)
    client = faxplus.ApiClient(configuration)
    return Apis(
        accounts=faxplus.AccountsApi(client),
        numbers=faxplus.NumbersApi(client),
        files=faxplus.FilesApi(client),
        outbox=faxplus.OutboxApi(client),
        faxes=faxplus.FaxesApi(client),
        hooks=faxplus.WebhooksApi(client),
    )


@pytest.fixture(params=VARIANT_SETS, ids=lambda variants: ",".join(variants) or "default")
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    webhooks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive(request: Request) -> Response:
        await webhooks.put(await request.json())
        return JSONResponse({})

    variants: tuple[str, ...] = request.param
    sim = Simulator(SimulatorSettings(delay=0, variants=variants))
    sim_server = HttpServer(sim.app, "127.0.0.1", 0)
    sink_server = HttpServer(
        Starlette(routes=[Route("/hook", receive, methods=["POST"])]), "127.0.0.1", 0
    )
    await sim_server.start()
    await sink_server.start()
    yield Harness(
        sdk_apis(f"{sim_server.url}/v3", tmp_path),
        f"{sink_server.url}/hook",
        webhooks,
        parse_variants(variants),
    )
    await sim.aclose()
    await asyncio.gather(sim_server.stop(), sink_server.stop())


def sdk_webhook(apis: Apis, payload: dict[str, Any]) -> Any:
    """A fax_sent callback read into the SDK's WebhookCallback model."""
    client = apis.faxes.api_client
    # The SDK reads webhooks nowhere itself; its (private) deserializer reads any model.
    return client._ApiClient__deserialize(payload, "WebhookCallback")


def send_time(offset: timedelta) -> str:
    return (datetime.now(UTC) + offset).strftime("%Y-%m-%d %H:%M:%S +0000")


async def test_sdk_reads_account_numbers_and_hooks(harness: Harness) -> None:
    apis = harness.apis

    account = await asyncio.to_thread(apis.accounts.get_user, "self")
    numbers = await asyncio.to_thread(apis.numbers.list_numbers, "self")
    number = await asyncio.to_thread(apis.numbers.get_number, "self", FROM)
    hook_id = await asyncio.to_thread(
        apis.hooks.create_webhook,
        body=faxplus.Webhook(target=harness.webhook_url, event="fax_sent"),
    )
    hooks = await asyncio.to_thread(apis.hooks.get_webhooks, "fax_sent")

    assert (account.account_type, account.status) == ("individual", "active")
    assert account.notifications.settings.email.send_fax is True
    provider_retries = 3 if "provider-retries" in harness.variants else 0
    assert account.settings.send_fax.retry.count == provider_retries
    assert [n.number for n in numbers.numbers] == [FROM]
    assert (number.number, number.status, number.owner_id) == (FROM, "active", account.uid)
    assert [(h.id, h.target, h.event) for h in hooks.data] == [
        (hook_id.id, harness.webhook_url, "fax_sent")
    ]
    await asyncio.to_thread(apis.hooks.delete_webhook, hook_id.id)
    assert (await asyncio.to_thread(apis.hooks.get_webhooks, "fax_sent")).data == []


async def test_sdk_sends_a_fax_and_follows_it_to_the_report(
    harness: Harness, tmp_path: Path
) -> None:
    apis = harness.apis
    upload = await harness.hook_and_upload(tmp_path / "letter.pdf", pages=2)

    def payload(to: str, when: timedelta) -> Any:
        return faxplus.PayloadOutbox(
            from_number=FROM,
            to=[to],
            files=[upload.path],
            comment=faxplus.OutboxComment(text="job 9", tags=["job:9"]),
            options=faxplus.OutboxOptions(
                enhancement=True, retry=faxplus.RetryOptions(count=1, delay=5)
            ),
            send_time=send_time(when),
            return_ids=True,
            cover_page=faxplus.OutboxCoverPage(
                name_to="Clinic", name_from="Gateway", subject="Letter", flags=["urgent"]
            ),
        )

    # One fax is due now; the other is scheduled an hour ahead and stays in the outbox.
    held = await asyncio.to_thread(
        apis.outbox.send_fax, "self", body=payload("+12125550002", timedelta(hours=1))
    )
    sent = await asyncio.to_thread(
        apis.outbox.send_fax, "self", body=payload("+12125550001", timedelta(minutes=-1))
    )
    webhook = sdk_webhook(apis, await harness.next_webhook())

    fax_id = sent.ids["+12125550001"]
    assert (webhook.data.id == fax_id) is ("distinct-ids" not in harness.variants)
    assert webhook.hook.id == webhook.data.id  # a first attempt
    assert webhook.data.status == "success"
    assert len(held.ids["+12125550002"]) == 24

    outbox = await asyncio.to_thread(apis.outbox.list_outbox_faxes, "self")
    (pending,) = outbox.records
    assert (pending.to, pending.status, pending.page_count) == (
        ["+12125550002"],
        "scheduled_for_sending",
        2,
    )
    assert (pending.comment.text, pending.comment.tags) == ("job 9", ["job:9"])
    assert pending.cover_page.flags == ["urgent"]
    await asyncio.to_thread(
        apis.outbox.update_outbox_fax,
        "self",
        pending.id,
        body=faxplus.PayloadOutboxModification(comment="job 9, edited"),
    )
    fetched = await asyncio.to_thread(apis.outbox.get_outbox_fax, "self", pending.id)
    assert fetched.comment.text == "job 9, edited"
    await asyncio.to_thread(apis.outbox.delete_outbox_fax, "self", pending.id)
    assert (await asyncio.to_thread(apis.outbox.list_outbox_faxes, "self")).records == []

    faxes = await asyncio.to_thread(
        apis.faxes.list_faxes,
        "self",
        category="sent",
        limit=10,
        offset=0,
        sort_by="date",
        order="desc",
    )
    (listed,) = faxes.data.records
    # A send's id names its record only when the ids agree; the listing always does.
    fax = await asyncio.to_thread(apis.faxes.get_fax, "self", listed.id)
    assert listed == fax
    assert (fax.status, fax.pages, fax.direction) == ("success", 2, "outgoing")
    comment = "" if "no-comment" in harness.variants else "job 9"
    assert (fax.from_number, fax.to, fax.comment) == (
        harness.number(FROM),
        harness.number("+12125550001"),
        comment,
    )
    assert (fax.max_retry, fax.retry_delay, fax.cover_page.subject) == (1, 5, "Letter")
    if "formatted-numbers" in harness.variants:
        # The SDK's model names them so; the docs' example says from/to.
        assert webhook.data.to_number == fax.to

    # "Both IDs can be used with the API getFile handle."
    downloaded = await asyncio.to_thread(apis.files.get_file, "self", webhook.data.id, format="pdf")
    report = await asyncio.to_thread(apis.files.get_fax_report, "self", listed.id)
    with pikepdf.open(downloaded) as faxed:
        assert len(faxed.pages) == 2
    with pikepdf.open(report) as confirmation:
        assert len(confirmation.pages) == 1


async def test_sdk_reads_failures_and_redials(harness: Harness, tmp_path: Path) -> None:
    apis = harness.apis
    upload = await harness.hook_and_upload(tmp_path / "letter.pdf", pages=1)
    # Unanswered (answered on a redial where FAX.PLUS redials), partially sent, unallocated;
    # no options: the account's own retry setting applies.
    destinations = ["+12125550014", "+12125550016", "+12125550015"]
    body = faxplus.PayloadOutbox(
        from_number=FROM, to=destinations, files=[upload.path], return_ids=True
    )
    await asyncio.to_thread(apis.outbox.send_fax, "self", body=body)
    redials = "provider-retries" in harness.variants
    webhooks = [sdk_webhook(apis, await harness.next_webhook()) for _ in range(4 if redials else 3)]

    faxes = await asyncio.to_thread(apis.faxes.list_faxes, "self", category="sent")
    statuses = sorted(fax.status for fax in faxes.data.records)
    expected = ["failed_no_answer", "failed_unallocated_number", "partially_sent"]
    assert statuses == sorted([*expected, "success"] if redials else expected)
    assert sorted(webhook.data.status for webhook in webhooks) == statuses
    retried = [webhook for webhook in webhooks if webhook.hook.id != webhook.data.id]
    assert [webhook.data.status for webhook in retried] == (["success"] if redials else [])


async def test_sdk_surfaces_api_errors(harness: Harness) -> None:
    with pytest.raises(ApiException) as raised:
        await asyncio.to_thread(harness.apis.faxes.get_fax, "self", "0" * 24)

    assert raised.value.status == 404
    assert json.loads(raised.value.body)["error"] == "not_found"


class _Recorder:
    """ASGI middleware noting each API call as (endpoint with ids taken out, query keys)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls: set[tuple[str, frozenset[str]]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v3/"):
            endpoint = api_endpoint(scope["method"], scope["path"].removeprefix("/v3"))
            keys = frozenset(key for key, _ in parse_qsl(scope["query_string"].decode()))
            self.calls.add((endpoint, keys))
        await self.app(scope, receive, send)


async def test_sdk_drives_every_endpoint_the_gateway_calls(tmp_path: Path) -> None:
    """Every request mailfax's client makes (method, path, query keys) is one the official SDK
    makes too, against the same simulator: a new client call needs a new SDK check here."""
    document = tmp_path / "one.pdf"
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.save(document)
    sim = Simulator(SimulatorSettings(delay=0))
    gateway_calls, sdk_calls = _Recorder(sim.app), _Recorder(sim.app)
    gateway_server = HttpServer(gateway_calls, "127.0.0.1", 0)
    sdk_server = HttpServer(sdk_calls, "127.0.0.1", 0)
    await gateway_server.start()
    await sdk_server.start()
    try:
        # mailfax's client, every method, the way the gateway uses them.
        client = FaxPlusClient(f"{gateway_server.url}/v3", DEFAULT_TOKEN)
        async with contextlib.aclosing(client):
            await client.get_account()
            await client.list_numbers()
            path = await client.upload_file("one.pdf", document.read_bytes())
            ids = await client.send_fax(FROM, ["+12125550001"], [path], "c", ["mailfax"])
            await client.list_outbox()
            with contextlib.suppress(NotFoundApiError):
                await client.delete_outbox("0" * 32)
            await client.get_fax(next(iter(ids.values())))
            # A full first page makes the client ask for the next one ("offset").
            for _ in range(50):
                await client.send_fax(FROM, ["+12125550002"], [path], "c", ["mailfax"])
            await client.list_sent_faxes(0.0)
            hook = await client.create_hook("http://127.0.0.1:9/hook")
            await client.list_hooks()
            await client.delete_hook(hook)

        # The SDK, the same requests.
        apis = sdk_apis(f"{sdk_server.url}/v3", tmp_path)
        await asyncio.to_thread(apis.accounts.get_user, "self")
        await asyncio.to_thread(apis.numbers.list_numbers, "self")
        upload = await asyncio.to_thread(
            apis.files.upload_file, "self", fax_file=str(document), format="pdf"
        )
        body = faxplus.PayloadOutbox(
            from_number=FROM, to=["+12125550001"], files=[upload.path], return_ids=True
        )
        sent = await asyncio.to_thread(apis.outbox.send_fax, "self", body=body)
        await asyncio.to_thread(apis.outbox.list_outbox_faxes, "self")
        with pytest.raises(ApiException):
            await asyncio.to_thread(apis.outbox.delete_outbox_fax, "self", "0" * 32)
        await asyncio.to_thread(apis.faxes.get_fax, "self", sent.ids["+12125550001"])
        window = {"after": send_time(timedelta(hours=-1))[:19], "before": send_time(timedelta())}
        listed = await asyncio.to_thread(
            apis.faxes.list_faxes,
            "self",
            category="sent",
            limit=50,
            offset=0,
            sort_by="date",
            order="desc",
            **window,
        )
        assert sent.ids["+12125550001"] in [record.id for record in listed.data.records]
        created = await asyncio.to_thread(
            apis.hooks.create_webhook,
            body=faxplus.Webhook(target="http://127.0.0.1:9/hook", event="fax_sent"),
        )
        await asyncio.to_thread(apis.hooks.get_webhooks, "fax_sent")
        await asyncio.to_thread(apis.hooks.delete_webhook, created.id)
    finally:
        await sim.aclose()
        await asyncio.gather(gateway_server.stop(), sdk_server.stop())

    uncovered = {
        (endpoint, keys)
        for endpoint, keys in gateway_calls.calls
        if not any(e == endpoint and keys <= k for e, k in sdk_calls.calls)
    }
    assert uncovered == set()
    paged = frozenset({"category", "after", "limit", "offset", "sort_by", "order"})
    assert ("GET /accounts/{id}/faxes", paged) in gateway_calls.calls
