"""The FAX.PLUS simulator over real loopback HTTP: API, lifecycle, webhooks, ledger, variants."""

from __future__ import annotations

import asyncio
import io
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pikepdf
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from mailfax._http import HttpServer
from mailfax.cli import _parser as cli_parser
from mailfax.sandbox import DEFAULT_TOKEN, Simulator, SimulatorSettings, payloads
from mailfax.sandbox.dialling import display_number
from mailfax.sandbox.variants import VARIANTS, parse_variants
from tests.conftest import eventually

FROM = "+16465550001"
EVENT_DEADLINE = 5.0  # seconds to wait for background work before failing
LONG_DELAY = 30.0  # keeps a fax in the outbox for the whole test
HEX24 = re.compile(r"[0-9a-f]{24}")
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
OUTBOX_KEYS = {
    "comment", "contact_name", "designated_src", "extra_info", "file_changes", "files", "id",
    "initiated_from", "ip", "last_updated_status_time", "options", "page_count", "retry",
    "send_time", "should_enhance", "src", "status", "status_changes", "submit_time", "to", "uid",
}  # fmt: skip
FAX_KEYS = {
    "comment", "cost", "cost_details", "description", "direction", "duration", "file",
    "file_name", "from", "header", "id", "is_read", "is_spam", "last_update", "max_retry",
    "owner_id", "pages", "retry_delay", "scheduled_time", "start_time", "status", "submit_time",
    "to",
}  # fmt: skip

Json = dict[str, Any]


def make_pdf(pages: int) -> bytes:
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page()
    output = io.BytesIO()
    pdf.save(output)
    return output.getvalue()


def make_tiff(pages: int) -> bytes:
    """A little-endian TIFF skeleton: a chain of empty image file directories."""
    header = b"II*\x00" + struct.pack("<I", 8)
    directories = b""
    for index in range(pages):
        next_offset = 8 + 6 * (index + 1) if index < pages - 1 else 0
        directories += struct.pack("<HI", 0, next_offset)
    return header + directories


def utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Sandbox:
    sim: Simulator
    server: HttpServer
    api: httpx.AsyncClient

    async def upload(self, content: bytes | None = None, name: str = "doc.pdf") -> str:
        files = {"fax_file": (name, make_pdf(1) if content is None else content)}
        response = await self.api.post(
            "/accounts/self/files", params={"format": "pdf"}, files=files
        )
        assert response.status_code == 200, response.text
        path = response.json()["path"]
        assert isinstance(path, str)
        return path

    async def send(self, to: list[str], files: list[str], **extra: Any) -> httpx.Response:
        payload = {"from": FROM, "to": to, "files": files, "return_ids": True, **extra}
        return await self.api.post("/accounts/self/outbox", json=payload)

    async def send_ok(self, to: list[str], files: list[str], **extra: Any) -> dict[str, str]:
        response = await self.send(to, files, **extra)
        assert response.status_code == 201, response.text
        ids = response.json()["ids"]
        assert isinstance(ids, dict)
        return ids

    async def add_hook(self, target: str) -> str:
        response = await self.api.post("/hooks", json={"target": target, "event": "fax_sent"})
        assert response.status_code == 200, response.text
        hook_id = response.json()["id"]
        assert isinstance(hook_id, str)
        return hook_id

    async def ledger(self) -> list[Json]:
        """The ledger over HTTP (which needs no token), checked against the in-process view."""
        async with httpx.AsyncClient(trust_env=False) as anonymous:
            response = await anonymous.get(f"{self.server.url}/sandbox/ledger")
        assert response.status_code == 200
        faxes = response.json()["faxes"]
        assert faxes == self.sim.ledger()
        return list(faxes)

    def ledger_entry(self, fax_id: str) -> dict[str, object]:
        return next(entry for entry in self.sim.ledger() if entry["id"] == fax_id)


class Servers:
    """The loopback servers of one test, stopped together: each stop costs uvicorn 0.1-0.2 s."""

    def __init__(self) -> None:
        self._started: list[HttpServer] = []

    async def start(self, app: ASGIApp) -> HttpServer:
        server = HttpServer(app, "127.0.0.1", 0)
        await server.start()
        self._started.append(server)
        return server

    async def stop_all(self) -> None:
        await asyncio.gather(*(server.stop() for server in self._started))


class WebhookSink:
    """A webhook receiver; answers 503 to its first `failures` calls."""

    def __init__(self, url: str, failures: int) -> None:
        self.url = url
        self.failures = failures
        self.attempts = 0
        self._payloads: asyncio.Queue[Json] = asyncio.Queue()

    @classmethod
    async def start(cls, servers: Servers, failures: int = 0) -> WebhookSink:
        sink = cls("", failures)
        server = await servers.start(
            Starlette(routes=[Route("/hook", sink._receive, methods=["POST"])])
        )
        sink.url = f"{server.url}/hook"
        return sink

    async def _receive(self, request: Request) -> Response:
        self.attempts += 1
        if self.attempts <= self.failures:
            return JSONResponse({"error": "try later"}, status_code=503)
        await self._payloads.put(await request.json())
        return JSONResponse({})

    async def next(self, count: int = 1) -> list[Json]:
        return [await asyncio.wait_for(self._payloads.get(), EVENT_DEADLINE) for _ in range(count)]

    def pending(self) -> int:
        return self._payloads.qsize()


SandboxFactory = Callable[..., Awaitable[Sandbox]]


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    started = Servers()
    yield started
    await started.stop_all()


@pytest.fixture
async def start_sandbox(servers: Servers) -> AsyncIterator[SandboxFactory]:
    started: list[Sandbox] = []

    async def start(delay: float = 0.0, variants: tuple[str, ...] = (), **settings: Any) -> Sandbox:
        sim = Simulator(SimulatorSettings(delay=delay, variants=variants, **settings))
        server = await servers.start(sim.app)
        api = httpx.AsyncClient(
            base_url=f"{server.url}/v3",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
            trust_env=False,
        )
        started.append(Sandbox(sim, server, api))
        return started[-1]

    yield start
    for sandbox in started:
        await sandbox.api.aclose()
        await sandbox.sim.aclose()


@pytest.fixture
async def sandbox(start_sandbox: SandboxFactory) -> Sandbox:
    return await start_sandbox()


@pytest.fixture
async def sink(servers: Servers) -> WebhookSink:
    return await WebhookSink.start(servers)


# --- settings, auth and routing ------------------------------------------------------------


def test_settings_reject_values_the_api_could_not_represent() -> None:
    with pytest.raises(ValueError, match="delay"):
        SimulatorSettings(delay=-1)
    with pytest.raises(ValueError, match="from_number"):
        SimulatorSettings(from_number="555-0100")
    with pytest.raises(ValueError, match="token"):
        SimulatorSettings(token="")


async def test_requests_without_the_token_are_unauthorized(sandbox: Sandbox) -> None:
    wrong_credentials = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {DEFAULT_TOKEN}"},
    ]
    async with httpx.AsyncClient(base_url=sandbox.server.url, trust_env=False) as anonymous:
        for headers in wrong_credentials:
            for path in ("/v3/accounts/self", "/v3/hooks?event=fax_sent", "/v3/no/such/path"):
                response = await anonymous.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.json()["error"] == "unauthorized"
                assert response.json()["description"]


async def test_unknown_users_paths_and_methods_get_json_errors(sandbox: Sandbox) -> None:
    for path in ("/accounts/someone-else/outbox", "/no/such/path", "/accounts/self/faxes/nope"):
        response = await sandbox.api.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    outside = await sandbox.api.get(f"{sandbox.server.url}/elsewhere")
    assert (outside.status_code, outside.json()["error"]) == (404, "not_found")
    wrong_method = await sandbox.api.patch("/accounts/self/outbox")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


async def test_account_and_its_one_active_number(sandbox: Sandbox) -> None:
    account = (await sandbox.api.get("/accounts/self")).json()
    assert account["account_type"] == "individual"
    assert account["status"] == "active"
    assert re.fullmatch(r"[0-9a-f]{32}", account["uid"])
    assert (await sandbox.api.get(f"/accounts/{account['uid']}")).json() == account

    numbers = (await sandbox.api.get("/accounts/self/numbers")).json()["numbers"]
    assert [(n["number"], n["status"], n["owner_id"]) for n in numbers] == [
        (FROM, "active", account["uid"])
    ]
    for spelling in ("%2B16465550001", "16465550001"):
        response = await sandbox.api.get(f"/accounts/self/numbers/{spelling}")
        assert response.json() == numbers[0]
    assert (await sandbox.api.get("/accounts/self/numbers/%2B13475559999")).status_code == 404


# --- uploads ---------------------------------------------------------------------------------


async def test_upload_returns_a_transient_path(sandbox: Sandbox) -> None:
    path = await sandbox.upload(make_pdf(2))
    assert re.fullmatch(r"/transient-[0-9a-f-]{36}", path)


async def test_bad_uploads_are_rejected(sandbox: Sandbox) -> None:
    cases: list[tuple[dict[str, str], dict[str, Any], str]] = [
        ({"format": "docx"}, {"files": {"fax_file": ("a.pdf", b"%PDF")}}, "format"),
        ({"format": "pdf"}, {"files": {"other": ("a.pdf", b"%PDF")}}, "fax_file"),
        ({"format": "pdf"}, {"files": {"fax_file": ("", b"%PDF")}}, "filename"),
        ({"format": "pdf"}, {"content": b"%PDF-1.4"}, "multipart/form-data"),
    ]
    for params, body, message in cases:
        response = await sandbox.api.post("/accounts/self/files", params=params, **body)
        assert response.status_code == 400, message
        assert response.json()["error"] == "bad_request"
        assert message in response.json()["description"]


async def test_page_counts_come_from_pdf_and_tiff_content(start_sandbox: SandboxFactory) -> None:
    sandbox = await start_sandbox(delay=LONG_DELAY)
    uploads = [
        await sandbox.upload(make_pdf(3), "three.pdf"),
        await sandbox.upload(make_tiff(2), "two.tiff"),
        await sandbox.upload(b"%PDF-1.7 not really a pdf", "broken.pdf"),
    ]
    ids = await sandbox.send_ok(["+12125550001"], uploads)

    files = sandbox.ledger_entry(ids["+12125550001"])["files"]
    assert files == [
        {"path": uploads[0], "name": "three.pdf", "pages": 3},
        {"path": uploads[1], "name": "two.tiff", "pages": 2},
        {"path": uploads[2], "name": "broken.pdf", "pages": 0},
    ]
    (record,) = (await sandbox.api.get("/accounts/self/outbox")).json()["records"]
    assert record["page_count"] == 5


# --- sending and the outbox ------------------------------------------------------------------


async def test_send_answers_201_with_one_fax_id_per_destination(sandbox: Sandbox) -> None:
    path = await sandbox.upload()
    destinations = ["+12125550001", "+12125550002", "+4930123456"]

    ids = await sandbox.send_ok(destinations, [path])

    assert list(ids) == destinations
    assert all(HEX24.fullmatch(fax_id) for fax_id in ids.values())
    assert len(set(ids.values())) == len(destinations)
    without_ids = await sandbox.send(["+12125550003"], [path], return_ids=False)
    assert (without_ids.status_code, without_ids.json()) == (201, {})


async def test_pending_fax_is_visible_in_the_outbox(start_sandbox: SandboxFactory) -> None:
    sandbox = await start_sandbox(delay=LONG_DELAY)
    path = await sandbox.upload(make_pdf(2))
    comment = {"text": "job 42", "tags": ["email-gw", "job:42"]}
    options = {"enhancement": False, "retry": {"count": 2, "delay": 15}}

    await sandbox.send_ok(
        ["+12125550001", "+12125550002"], [path], comment=comment, options=options
    )

    (record,) = (await sandbox.api.get("/accounts/self/outbox")).json()["records"]
    assert set(record) >= OUTBOX_KEYS
    assert re.fullmatch(r"[0-9a-f]{32}", record["id"])
    assert record["status"] == "scheduled_for_sending"
    assert record["comment"] == comment
    assert record["options"] == options
    assert record["retry"] == {"count": 2, "delay": 15}
    assert record["should_enhance"] is False
    assert (record["src"], record["to"], record["files"]) == (
        FROM,
        ["+12125550001", "+12125550002"],
        [path],
    )
    assert record["page_count"] == 2
    assert record["ip"] == "127.0.0.1"
    assert re.fullmatch(TIME.pattern + r" \+0000", record["submit_time"])
    assert [change["status"] for change in record["status_changes"]] == [
        "submitted",
        "scheduled_for_sending",
    ]
    single = await sandbox.api.get(f"/accounts/self/outbox/{record['id']}")
    assert single.json() == record


async def test_outbox_comment_can_be_edited_while_pending(start_sandbox: SandboxFactory) -> None:
    sandbox = await start_sandbox(delay=LONG_DELAY)
    ids = await sandbox.send_ok(["+12125550001"], [await sandbox.upload()], comment={"text": "a"})
    (record,) = (await sandbox.api.get("/accounts/self/outbox")).json()["records"]
    url = f"/accounts/self/outbox/{record['id']}"

    response = await sandbox.api.put(url, json={"comment": "edited"})

    assert (response.status_code, response.json()) == (200, {})
    assert (await sandbox.api.get(url)).json()["comment"]["text"] == "edited"
    assert sandbox.ledger_entry(ids["+12125550001"])["comment"] == "edited"
    rejected = await sandbox.api.put(url, json={"comment": {"text": "object"}})
    assert rejected.status_code == 400


async def test_deleting_an_outbox_fax_cancels_it(
    start_sandbox: SandboxFactory, sink: WebhookSink
) -> None:
    sandbox = await start_sandbox(delay=0.2)
    await sandbox.add_hook(sink.url)
    path = await sandbox.upload()
    cancelled_id = (await sandbox.send_ok(["+12125550001"], [path]))["+12125550001"]
    (record,) = (await sandbox.api.get("/accounts/self/outbox")).json()["records"]

    deleted = await sandbox.api.delete(f"/accounts/self/outbox/{record['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {})
    # A second fax with the same delay completes strictly after the cancelled one would
    # have, so once its webhook is in, the cancelled fax has had every chance to go out.
    sent_id = (await sandbox.send_ok(["+12125550002"], [path]))["+12125550002"]
    (webhook,) = await sink.next()

    assert webhook["data"]["id"] == sent_id
    assert sink.pending() == 0
    assert sandbox.ledger_entry(cancelled_id)["status"] == "cancelled"
    assert sandbox.ledger_entry(sent_id)["status"] == "success"
    assert (await sandbox.api.get(f"/accounts/self/faxes/{cancelled_id}")).status_code == 404
    gone = await sandbox.api.get(f"/accounts/self/outbox/{record['id']}")
    assert gone.status_code == 404
    again = await sandbox.api.delete(f"/accounts/self/outbox/{record['id']}")
    assert again.status_code == 404


async def test_future_send_time_holds_the_fax_until_then(
    sandbox: Sandbox, sink: WebhookSink
) -> None:
    await sandbox.add_hook(sink.url)
    path = await sandbox.upload()
    later = utc_text(datetime.now(UTC) + timedelta(hours=1)) + " +0000"
    earlier = utc_text(datetime.now(UTC) - timedelta(hours=1)) + " +0000"

    await sandbox.send_ok(["+12125550001"], [path], send_time=later)
    due_id = (await sandbox.send_ok(["+12125550002"], [path], send_time=earlier))["+12125550002"]
    (webhook,) = await sink.next()

    assert webhook["data"]["id"] == due_id
    (held,) = (await sandbox.api.get("/accounts/self/outbox")).json()["records"]
    assert (held["to"], held["send_time"], held["status"]) == (
        ["+12125550001"],
        later,
        "scheduled_for_sending",
    )


async def test_invalid_send_payloads_are_rejected(sandbox: Sandbox) -> None:
    path = await sandbox.upload()

    def payload(**override: Any) -> Json:
        return {"from": FROM, "to": ["+12125550001"], "files": [path], **override}

    cases: list[tuple[object, str]] = [
        (payload(comment="plain text"), "'plain text' is not of type 'object'"),
        (payload(files=["/transient-unknown"]), "unknown file path"),
        (payload(files=[]), "files"),
        (payload(to=[]), "'to'"),
        (payload(to="+12125550001"), "is not of type 'array'"),
        (payload(to=["2125550001"]), "E.164"),
        (payload(to=["+12125550001", "+12125550001"]), "more than once"),
        (payload(**{"from": "+13475559999"}), "not a number of this account"),
        ({"to": ["+12125550001"], "files": [path]}, "'from' is a required property"),
        (payload(options={"retry": {"count": 5}}), "retry count"),
        (payload(send_time="tomorrow"), "send_time"),
        (payload(cover_page={"name_to": "A"}), "'name_from' is a required property"),
        (["not", "an", "object"], "is not of type 'object'"),
    ]
    for body, message in cases:
        response = await sandbox.api.post("/accounts/self/outbox", json=body)
        assert response.status_code == 400, message
        assert response.json()["error"] == "bad_request"
        assert message in response.json()["description"]
    malformed = await sandbox.api.post("/accounts/self/outbox", content=b"{not json")
    assert (malformed.status_code, malformed.json()["error"]) == (400, "bad_request")
    assert await sandbox.ledger() == []


async def test_no_number_is_an_accepted_sender(sandbox: Sandbox) -> None:
    path = await sandbox.upload()
    response = await sandbox.api.post(
        "/accounts/self/outbox", json={"from": "no_number", "to": ["+12125550001"], "files": [path]}
    )
    assert response.status_code == 201


# --- completion, fax records and webhooks ----------------------------------------------------


async def test_outcome_depends_on_the_destination_suffix(
    sandbox: Sandbox, sink: WebhookSink
) -> None:
    await sandbox.add_hook(sink.url)
    paths = [await sandbox.upload(make_pdf(2)), await sandbox.upload(make_pdf(3))]
    expected = {
        "+12125550000": ("success", 5),
        "+12125550013": ("failed_user_busy", 0),
        "+12125550014": ("failed_no_answer", 0),
        "+12125550015": ("failed_unallocated_number", 0),
        "+12125550016": ("partially_sent", 2),
    }

    ids = await sandbox.send_ok(list(expected), paths, comment={"text": "outcomes"})
    webhooks = await sink.next(len(expected))

    by_destination = {hook["data"]["to"]: hook["data"] for hook in webhooks}
    for destination, (status, pages) in expected.items():
        assert (by_destination[destination]["status"], by_destination[destination]["pages"]) == (
            status,
            pages,
        )
        fax = (await sandbox.api.get(f"/accounts/self/faxes/{ids[destination]}")).json()
        assert set(fax) >= FAX_KEYS
        assert (fax["id"], fax["status"], fax["pages"], fax["cost"]) == (
            ids[destination],
            status,
            pages,
            pages,
        )
        assert (fax["direction"], fax["from"], fax["to"]) == ("outgoing", FROM, destination)
        assert fax["comment"] == "outcomes"
        assert sandbox.ledger_entry(ids[destination])["status"] == status
    assert (await sandbox.api.get("/accounts/self/outbox")).json() == {"records": []}


async def test_fax_sent_webhook_payload(sandbox: Sandbox, sink: WebhookSink) -> None:
    await sandbox.add_hook(sink.url)
    uid = (await sandbox.api.get("/accounts/self")).json()["uid"]
    ids = await sandbox.send_ok(["+12125550001"], [await sandbox.upload(make_pdf(2))])

    (webhook,) = await sink.next()

    fax_id = ids["+12125550001"]
    hook, data = webhook["hook"], webhook["data"]
    assert set(webhook) == {"hook", "data"}
    assert hook["id"] == fax_id
    assert (hook["event"], hook["target"]) == ("fax_sent", sink.url)
    assert TIME.fullmatch(hook["event_time"])
    assert set(data) == {
        "id", "uid", "pages", "from", "to", "start_time", "file", "file_name", "status", "cost",
    }  # fmt: skip
    assert (data["id"], data["uid"], data["from"], data["to"]) == (
        fax_id,
        uid,
        FROM,
        "+12125550001",
    )
    assert (data["pages"], data["cost"], data["status"]) == (2, 2, "success")
    assert TIME.fullmatch(data["start_time"])
    assert re.fullmatch(r"[0-9a-f]{32}\.tiff", data["file"])
    assert data["file_name"] == "fax-to-12125550001"


@pytest.mark.parametrize(
    ("variants", "comment", "file_name"),
    [
        ((), "job 7\n\nmailfax-job:7", "fax-to-12125550001"),
        (("no-comment",), "", "fax-to-12125550001"),
        (("upload-names",), "job 7\n\nmailfax-job:7", "mailfax-job-7-1-scan.pdf"),
        (("all",), "", "mailfax-job-7-1-scan.pdf"),
    ],
)
async def test_variants_decide_what_a_fax_record_carries_of_the_send(
    start_sandbox: SandboxFactory,
    sink: WebhookSink,
    variants: tuple[str, ...],
    comment: str,
    file_name: str,
) -> None:
    """The docs promise neither that a fax record keeps the send's comment text nor that its
    file_name is the uploaded name: each reading is one the gateway must be correct in."""
    sandbox = await start_sandbox(variants=variants)
    await sandbox.add_hook(sink.url)
    path = await sandbox.upload(name="mailfax-job-7-1-scan.pdf")
    sent = {"text": "job 7\n\nmailfax-job:7", "tags": ["mailfax-job:7"]}
    fax_id = (await sandbox.send_ok(["+12125550001"], [path], comment=sent))["+12125550001"]
    ((webhook,),) = [await sink.next()]
    # Listed, as a send's id need not name its record (distinct-ids, part of all).
    (record,) = (await sandbox.api.get("/accounts/self/faxes")).json()["data"]["records"]
    assert (record["comment"], record["file_name"]) == (comment, file_name)
    assert webhook["data"]["file_name"] == file_name
    # The ledger keeps what was sent, whatever the records show.
    assert sandbox.ledger_entry(fax_id)["comment"] == sent["text"]


def test_unknown_variants_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown simulator variant 'sorted' \\(known: "):
        SimulatorSettings(variants=("no-comment,sorted",))


async def test_webhook_delivery_retries_server_errors(sandbox: Sandbox, servers: Servers) -> None:
    flaky = await WebhookSink.start(servers, failures=2)
    await sandbox.add_hook(flaky.url)

    ids = await sandbox.send_ok(["+12125550001"], [await sandbox.upload()])
    (webhook,) = await flaky.next()

    assert webhook["data"]["id"] == ids["+12125550001"]
    assert flaky.attempts == 3


async def test_fax_list_filters(sandbox: Sandbox, sink: WebhookSink) -> None:
    await sandbox.add_hook(sink.url)
    ids = await sandbox.send_ok(["+12125550001", "+12125550002"], [await sandbox.upload()])
    await sink.next(2)
    hour_ago = utc_text(datetime.now(UTC) - timedelta(hours=1))
    in_an_hour = utc_text(datetime.now(UTC) + timedelta(hours=1))

    async def listed(**params: str | int) -> list[str]:
        response = await sandbox.api.get("/accounts/self/faxes", params=params)
        assert response.status_code == 200, response.text
        return [record["id"] for record in response.json()["data"]["records"]]

    newest_first = [ids["+12125550002"], ids["+12125550001"]]
    assert await listed(category="sent") == newest_first
    assert await listed() == newest_first
    assert await listed(category="sent", after=hour_ago, before=in_an_hour) == newest_first
    assert await listed(category="inbox") == []
    assert await listed(category="spam") == []
    assert await listed(category="sent", after=in_an_hour) == []
    assert await listed(category="sent", before=hour_ago) == []
    assert await listed(category="sent", limit=1) == newest_first[:1]
    assert await listed(category="sent", limit=1, offset=1) == newest_first[1:]
    for bad in ({"category": "outbox"}, {"limit": 51}, {"limit": 0}, {"after": "yesterday"}):
        response = await sandbox.api.get("/accounts/self/faxes", params=bad)
        assert response.status_code == 400


async def test_fax_records_can_be_marked_read_and_deleted(
    sandbox: Sandbox, sink: WebhookSink
) -> None:
    await sandbox.add_hook(sink.url)
    fax_id = (await sandbox.send_ok(["+12125550001"], [await sandbox.upload()]))["+12125550001"]
    await sink.next()
    url = f"/accounts/self/faxes/{fax_id}"

    assert (await sandbox.api.put(url, json={"is_read": True, "comment": "seen"})).json() == {}
    fax = (await sandbox.api.get(url)).json()
    assert (fax["is_read"], fax["comment"]) == (True, "seen")
    assert (await sandbox.api.delete(url)).status_code == 200
    assert (await sandbox.api.get(url)).status_code == 404


async def test_faxed_document_and_confirmation_report(sandbox: Sandbox, sink: WebhookSink) -> None:
    await sandbox.add_hook(sink.url)
    paths = [await sandbox.upload(make_pdf(2)), await sandbox.upload(make_pdf(1))]
    fax_id = (await sandbox.send_ok(["+12125550013"], paths))["+12125550013"]
    (webhook,) = await sink.next()

    for handle in (fax_id, webhook["data"]["file"]):
        document = await sandbox.api.get(f"/accounts/self/files/{handle}", params={"format": "pdf"})
        assert document.headers["content-type"] == "application/pdf"
        with pikepdf.open(io.BytesIO(document.content)) as pdf:
            assert len(pdf.pages) == 3
    tiff = await sandbox.api.get(f"/accounts/self/files/{fax_id}", params={"format": "tiff"})
    assert tiff.status_code == 400
    # A fax made only of TIFF uploads cannot become a PDF here; it comes back as sent.
    tiff_fax = await sandbox.send_ok(["+12125550002"], [await sandbox.upload(make_tiff(1))])
    await sink.next()
    as_sent = await sandbox.api.get(f"/accounts/self/files/{tiff_fax['+12125550002']}")
    assert (as_sent.headers["content-type"], as_sent.content) == ("image/tiff", make_tiff(1))

    report = await sandbox.api.get(f"/accounts/self/report/{fax_id}")
    assert report.headers["content-type"] == "application/pdf"
    with pikepdf.open(io.BytesIO(report.content)) as pdf:
        assert len(pdf.pages) == 1
        text = pdf.pages[0].Contents.read_bytes()
    for expected in (fax_id, FROM, "+12125550013", "failed_user_busy", "Pages: 0 of 3"):
        assert expected.encode() in text
    assert (await sandbox.api.get("/accounts/self/report/" + "0" * 24)).status_code == 404


# --- hooks and ledger ------------------------------------------------------------------------


async def test_hooks_can_be_created_listed_and_deleted(sandbox: Sandbox) -> None:
    hook_id = await sandbox.add_hook("https://gateway.example/hook")

    listed = (await sandbox.api.get("/hooks", params={"event": "fax_sent"})).json()
    assert listed == {
        "data": [{"id": hook_id, "target": "https://gateway.example/hook", "event": "fax_sent"}]
    }
    received = await sandbox.api.get("/hooks", params={"event": "fax_received"})
    assert received.json() == {"data": []}
    assert (await sandbox.api.get("/hooks")).status_code == 400

    assert (await sandbox.api.delete(f"/hooks/{hook_id}")).json() == {}
    assert (await sandbox.api.get("/hooks", params={"event": "fax_sent"})).json() == {"data": []}
    assert (await sandbox.api.delete(f"/hooks/{hook_id}")).status_code == 404
    for bad in ({"target": "ftp://x", "event": "fax_sent"}, {"target": "http://x", "event": "x"}):
        assert (await sandbox.api.post("/hooks", json=bad)).status_code == 400


async def test_ledger_entries_are_queued_until_the_fax_completes(
    start_sandbox: SandboxFactory,
) -> None:
    sandbox = await start_sandbox(delay=LONG_DELAY)
    ids = await sandbox.send_ok(["+12125550001", "+12125550002"], [await sandbox.upload()])

    assert [(entry["id"], entry["status"]) for entry in await sandbox.ledger()] == [
        (ids["+12125550001"], "queued"),
        (ids["+12125550002"], "queued"),
    ]


async def test_ledger_records_final_status_of_every_destination(
    sandbox: Sandbox, sink: WebhookSink
) -> None:
    await sandbox.add_hook(sink.url)
    path = await sandbox.upload(make_pdf(2), "invoice.pdf")
    comment = {"text": "job 7", "tags": ["job:7"]}

    ids = await sandbox.send_ok(["+12125550001", "+12125550014"], [path], comment=comment)
    await sink.next(2)
    ledger = await sandbox.ledger()

    assert [(entry["id"], entry["to"], entry["status"]) for entry in ledger] == [
        (ids["+12125550001"], "+12125550001", "success"),
        (ids["+12125550014"], "+12125550014", "failed_no_answer"),
    ]
    for entry in ledger:
        assert (entry["from"], entry["comment"], entry["tags"]) == (FROM, "job 7", ["job:7"])
        assert entry["files"] == [{"path": path, "name": "invoice.pdf", "pages": 2}]
        assert TIME.fullmatch(entry["submitted_at"])


async def test_aclose_cancels_pending_transmissions(start_sandbox: SandboxFactory) -> None:
    sandbox = await start_sandbox(delay=LONG_DELAY)
    fax_id = (await sandbox.send_ok(["+12125550001"], [await sandbox.upload()]))["+12125550001"]

    await asyncio.wait_for(sandbox.sim.aclose(), EVENT_DEADLINE)

    assert sandbox.ledger_entry(fax_id)["status"] == "queued"
    assert len((await sandbox.api.get("/accounts/self/outbox")).json()["records"]) == 1


# --- variants: each reading of FAX.PLUS the docs allow -----------------------------------------

SECOND_NUMBER = "+16465550002"


async def listed(sandbox: Sandbox, **params: str | int) -> list[Json]:
    response = await sandbox.api.get("/accounts/self/faxes", params=params)
    assert response.status_code == 200, response.text
    records = response.json()["data"]["records"]
    assert isinstance(records, list)
    return records


def test_all_is_every_variant() -> None:
    assert parse_variants(["all"]) == frozenset(VARIANTS)
    assert parse_variants(["credit, converter", ""]) == {"credit", "converter"}


# --- distinct-ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("distinct", [False, True])
async def test_distinct_ids_relate_only_as_documented(
    start_sandbox: SandboxFactory, sink: WebhookSink, distinct: bool
) -> None:
    sandbox = await start_sandbox(variants=("distinct-ids",) if distinct else ())
    await sandbox.add_hook(sink.url)
    send_id = (await sandbox.send_ok(["+12125550001"], [await sandbox.upload()]))["+12125550001"]
    (webhook,) = await sink.next()
    (record,) = await listed(sandbox)
    session_id = webhook["data"]["id"]

    assert webhook["hook"]["id"] == session_id  # a first attempt
    assert len({send_id, session_id, record["id"]}) == (3 if distinct else 1)
    faxes = "/accounts/self/faxes"
    assert (await sandbox.api.get(f"{faxes}/{record['id']}")).json() == record
    for other_id in (send_id, session_id):
        expected = 404 if distinct else 200
        assert (await sandbox.api.get(f"{faxes}/{other_id}")).status_code == expected
    # "Both IDs can be used with the API getFile handle"; the send's id is not one of them.
    for handle in (session_id, record["id"], record["file"]):
        assert (await sandbox.api.get(f"/accounts/self/files/{handle}")).status_code == 200
        assert (await sandbox.api.get(f"/accounts/self/report/{handle}")).status_code == 200
    send_file = await sandbox.api.get(f"/accounts/self/files/{send_id}")
    assert send_file.status_code == (404 if distinct else 200)
    assert sandbox.ledger_entry(send_id)["status"] == "success"


# --- provider-retries ------------------------------------------------------------------------


async def test_provider_retries_redial_by_the_account_setting(
    start_sandbox: SandboxFactory, sink: WebhookSink
) -> None:
    sandbox = await start_sandbox(variants=("provider-retries",))
    await sandbox.add_hook(sink.url)
    account = (await sandbox.api.get("/accounts/self")).json()
    assert account["settings"]["send_fax"]["retry"] == {"count": 3, "delay": 1}
    path = await sandbox.upload()

    # Unanswered on the first dial, answered on FAX.PLUS's own redial.
    answered = (await sandbox.send_ok(["+12125550014"], [path]))["+12125550014"]
    first, second = await sink.next(2)

    assert [first["data"]["status"], second["data"]["status"]] == ["failed_no_answer", "success"]
    assert first["data"]["id"] == second["data"]["id"] == answered
    assert first["hook"]["id"] == answered
    assert second["hook"]["id"] != answered  # concepts/webhook: a retry
    records = await listed(sandbox)
    assert [(r["id"], r["status"], r["max_retry"]) for r in records] == [
        (second["hook"]["id"], "success", 3),
        (answered, "failed_no_answer", 3),
    ]
    entry = sandbox.ledger_entry(answered)
    assert (entry["status"], entry["attempts"], entry["options"]) == ("success", 2, {})

    # Always busy: the first dial and all three redials.
    always_busy = (await sandbox.send_ok(["+12125550013"], [path]))["+12125550013"]
    webhooks = await sink.next(4)
    assert [hook["data"]["status"] for hook in webhooks] == ["failed_user_busy"] * 4
    assert len({hook["hook"]["id"] for hook in webhooks}) == 4
    assert sandbox.ledger_entry(always_busy)["attempts"] == 4

    # A send's own options.retry wins over the account's setting.
    options = {"retry": {"count": 0}}
    no_redial = (await sandbox.send_ok(["+19295550014"], [path], options=options))["+19295550014"]
    (webhook,) = await sink.next()
    assert webhook["data"]["status"] == "failed_no_answer"
    entry = sandbox.ledger_entry(no_redial)
    assert (entry["status"], entry["attempts"], entry["options"]) == (
        "failed_no_answer",
        1,
        options,
    )
    # The gateway's own redial, a new send, gets through as FAX.PLUS's would have.
    redialled = (await sandbox.send_ok(["+19295550014"], [path], options=options))["+19295550014"]
    (webhook,) = await sink.next()
    assert (webhook["data"]["status"], sandbox.ledger_entry(redialled)["attempts"]) == (
        "success",
        1,
    )
    assert sink.pending() == 0


async def test_by_default_nothing_is_redialled_by_the_provider(
    sandbox: Sandbox, sink: WebhookSink
) -> None:
    await sandbox.add_hook(sink.url)
    path = await sandbox.upload()
    account = (await sandbox.api.get("/accounts/self")).json()
    assert account["settings"]["send_fax"]["retry"] == {"count": 0, "delay": 0}
    options = {"enhancement": True, "retry": {"count": 2, "delay": 1}}

    first = (await sandbox.send_ok(["+12125550014"], [path], options=options))["+12125550014"]
    (webhook,) = await sink.next()
    second = (await sandbox.send_ok(["+12125550014"], [path]))["+12125550014"]
    (redialled,) = await sink.next()

    # Unanswered every time, as before the variants.
    assert (webhook["data"]["status"], redialled["data"]["status"]) == (
        "failed_no_answer",
        "failed_no_answer",
    )
    assert [(e["id"], e["attempts"], e["options"]) for e in await sandbox.ledger()] == [
        (first, 1, options),
        (second, 1, {}),
    ]
    assert sink.pending() == 0


# --- listings: oldest-first and the SDK's sort_by/order/offset/limit ------------------------


@pytest.mark.parametrize("oldest_first", [False, True])
async def test_listings_honour_sort_order_and_paging(
    start_sandbox: SandboxFactory, sink: WebhookSink, oldest_first: bool
) -> None:
    sandbox = await start_sandbox(variants=("oldest-first",) if oldest_first else ())
    await sandbox.add_hook(sink.url)
    sends = [("+12125550003", 1), ("+12125550001", 3), ("+12125550002", 2)]
    ids = []
    for destination, pages in sends:  # one at a time, so they complete in this order
        path = await sandbox.upload(make_pdf(pages))
        ids.append((await sandbox.send_ok([destination], [path]))[destination])
        await sink.next()

    async def order(**params: str | int) -> list[str]:
        return [record["id"] for record in await listed(sandbox, **params)]

    oldest = ids
    newest = ids[::-1]
    assert await order() == (oldest if oldest_first else newest)
    assert await order(sort_by="date", order="desc") == newest
    assert await order(sort_by="date", order="asc") == oldest
    assert await order(order="desc", limit=2) == newest[:2]
    assert await order(order="desc", limit=2, offset=2) == newest[2:]
    assert await order(sort_by="pages", order="asc") == [ids[0], ids[2], ids[1]]
    assert await order(sort_by="to", order="desc") == [ids[0], ids[2], ids[1]]
    for bad in ({"sort_by": "size"}, {"order": "up"}, {"offset": -1}):
        response = await sandbox.api.get("/accounts/self/faxes", params=bad)
        assert (response.status_code, response.json()["error"]) == (400, "bad_request")


async def test_outbox_lists_oldest_first_unless_asked(start_sandbox: SandboxFactory) -> None:
    sandbox = await start_sandbox(delay=30.0, variants=("oldest-first",))
    path = await sandbox.upload()
    for destination in ("+12125550001", "+12125550002", "+12125550003"):
        await sandbox.send_ok([destination], [path])

    async def destinations(**params: str) -> list[str]:
        response = await sandbox.api.get("/accounts/self/outbox", params=params)
        return [record["to"][0] for record in response.json()["records"]]

    assert await destinations() == ["+12125550001", "+12125550002", "+12125550003"]
    assert await destinations(order="desc", limit="2") == ["+12125550003", "+12125550002"]


# --- formatted-numbers -----------------------------------------------------------------------


def test_numbers_are_displayed_like_the_docs_examples() -> None:
    assert display_number("+13343041234") == "+1 334-304-1234"
    assert display_number("+4930123456") == "+49 30123456"
    assert display_number("no_number") == "no_number"


async def test_formatted_numbers_in_webhooks_and_records(
    start_sandbox: SandboxFactory, sink: WebhookSink
) -> None:
    sandbox = await start_sandbox(variants=("formatted-numbers",))
    await sandbox.add_hook(sink.url)
    await sandbox.send_ok(["+13343041111"], [await sandbox.upload()])
    (webhook,) = await sink.next()
    (record,) = await listed(sandbox)

    data = webhook["data"]
    assert "from" not in data and "to" not in data
    assert (data["from_number"], data["to_number"]) == ("+1 646-555-0001", "+1 334-304-1111")
    assert (record["from"], record["to"]) == ("+1 646-555-0001", "+1 334-304-1111")
    # The ledger keeps what was sent.
    assert (await sandbox.ledger())[0]["to"] == "+13343041111"


# --- converter -------------------------------------------------------------------------------


@pytest.mark.parametrize("converter", [False, True])
async def test_converter_fails_what_it_cannot_convert(
    start_sandbox: SandboxFactory, sink: WebhookSink, converter: bool
) -> None:
    sandbox = await start_sandbox(variants=("converter",) if converter else ())
    await sandbox.add_hook(sink.url)
    pdf = make_pdf(1)
    uploads: list[tuple[str, bytes, str | None, str]] = [
        ("letter.pdf", pdf, "application/pdf", "success"),
        ("scan.tif", make_tiff(1), "image/tiff", "success"),
        ("letter.docx", pdf, None, "failed_office_converter_issue"),
        ("letter", pdf, None, "failed_mimetype_not_supported"),
        ("letter.pdf", pdf, "image/png", "failed_mimetype_not_supported"),
        ("broken.pdf", b"%PDF-1.7 not really", "application/pdf", "failed_office_converter_issue"),
    ]
    expected = {}
    for index, (name, content, media_type, status) in enumerate(uploads):
        part = (name, content) if media_type is None else (name, content, media_type)
        response = await sandbox.api.post(
            "/accounts/self/files", params={"format": "pdf"}, files={"fax_file": part}
        )
        destination = f"+1555111000{index}"
        await sandbox.send_ok([destination], [response.json()["path"]])
        expected[destination] = status if converter else "success"
    webhooks = await sink.next(len(uploads))

    assert {hook["data"]["to"]: hook["data"]["status"] for hook in webhooks} == expected
    for entry in await sandbox.ledger():
        assert entry["status"] == expected[entry["to"]]
        # A document that was never converted was never dialled.
        assert entry["attempts"] == (1 if entry["status"] == "success" else 0)


# --- credit ----------------------------------------------------------------------------------


async def test_credit_runs_out_into_insufficient_credit(
    start_sandbox: SandboxFactory, sink: WebhookSink
) -> None:
    sandbox = await start_sandbox(variants=("credit",), credit_pages=3)
    await sandbox.add_hook(sink.url)
    two_pages, one_page = await sandbox.upload(make_pdf(2)), await sandbox.upload(make_pdf(1))
    outcomes = []
    for destination, path in [
        ("+12125550001", two_pages),
        ("+12125550002", two_pages),  # 1 page left: refused
        ("+12125550013", one_page),  # busy: costs nothing
        ("+12125550003", one_page),
        ("+12125550004", one_page),  # spent
    ]:
        await sandbox.send_ok([destination], [path])
        (webhook,) = await sink.next()
        outcomes.append((webhook["data"]["status"], webhook["data"]["cost"]))

    assert outcomes == [
        ("success", 2),
        ("insufficient_credit", 0),
        ("failed_user_busy", 0),
        ("success", 1),
        ("insufficient_credit", 0),
    ]
    with pytest.raises(ValueError, match="credit_pages"):
        SimulatorSettings(credit_pages=-1)


# --- slow-outbox -----------------------------------------------------------------------------


async def test_slow_outbox_passes_through_converting_and_sending(
    start_sandbox: SandboxFactory, sink: WebhookSink
) -> None:
    sandbox = await start_sandbox(variants=("slow-outbox",))
    await sandbox.add_hook(sink.url)
    fax_id = (await sandbox.send_ok(["+12125550001"], [await sandbox.upload()]))["+12125550001"]
    seen: set[str] = set()

    async def sending() -> Json | None:
        records = (await sandbox.api.get("/accounts/self/outbox")).json()["records"]
        seen.update(record["status"] for record in records)
        return next((record for record in records if record["status"] == "sending"), None)

    entry = await eventually(sending, timeout=5.0, what="the outbox entry sending")
    assert "converting" in seen
    assert [change["status"] for change in entry["status_changes"]] == [
        "submitted",
        "converting",
        "scheduled_for_sending",
        "sending",
    ]
    assert await listed(sandbox) == []  # not a fax record yet
    (webhook,) = await sink.next()
    assert sandbox.ledger_entry(fax_id)["status"] == webhook["data"]["status"] == "success"
    assert (await sandbox.api.get("/accounts/self/outbox")).json() == {"records": []}


# --- documented errors and load-balanced senders ---------------------------------------------


async def test_documented_error_codes(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    path = await sandbox.upload()
    files = [path] * 11
    too_many_files = await sandbox.send(["+12125550001"], files)
    assert (too_many_files.status_code, too_many_files.json()["error"]) == (400, "too_many_files")
    destinations = [f"+1555{index:07d}" for index in range(4001)]
    too_many = await sandbox.send(destinations, [path])
    assert (too_many.status_code, too_many.json()["error"]) == (400, "too_many_destinations")
    # A send whose files add up to more than the limit (lowered here from 150 MB).
    monkeypatch.setattr(payloads, "MAX_SEND_BYTES", 2 * len(make_pdf(1)) - 1)
    too_large = await sandbox.send(["+12125550001"], [path, path])
    assert (too_large.status_code, too_large.json()["error"]) == (413, "payload_too_large")
    assert (await sandbox.send(["+12125550001"], [path])).status_code == 201
    assert len(await sandbox.ledger()) == 1


async def test_upload_over_150_mb_is_refused_on_its_content_length(sandbox: Sandbox) -> None:
    """Only the headers are sent: the 413 comes before the body would."""
    host, port = sandbox.server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    size = 150 * 1024 * 1024 + 1
    writer.write(
        (
            "POST /v3/accounts/self/files?format=pdf HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer sandbox\r\n"
            "Content-Type: multipart/form-data; boundary=XYZ\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5.0)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413 ")


async def test_comma_separated_from_balances_over_the_accounts_numbers(
    start_sandbox: SandboxFactory, sink: WebhookSink
) -> None:
    sandbox = await start_sandbox(from_number=f"{FROM},{SECOND_NUMBER}")
    await sandbox.add_hook(sink.url)
    numbers = (await sandbox.api.get("/accounts/self/numbers")).json()["numbers"]
    assert [number["number"] for number in numbers] == [FROM, SECOND_NUMBER]
    path = await sandbox.upload()
    destinations = ["+12125550001", "+12125550002", "+12125550003"]

    response = await sandbox.api.post(
        "/accounts/self/outbox",
        json={"from": f"{FROM},{SECOND_NUMBER}", "to": destinations, "files": [path]},
    )
    assert response.status_code == 201
    webhooks = await sink.next(3)

    used = {hook["data"]["to"]: hook["data"]["from"] for hook in webhooks}
    assert used == dict(zip(destinations, [FROM, SECOND_NUMBER, FROM], strict=True))
    unknown = await sandbox.api.post(
        "/accounts/self/outbox",
        json={"from": f"{FROM},+13475559999", "to": destinations, "files": [path]},
    )
    assert unknown.status_code == 400
    assert "+13475559999" in unknown.json()["description"]
    with pytest.raises(ValueError, match="from_number"):
        SimulatorSettings(from_number=f"{FROM},555")


async def test_ledger_keeps_options_as_received_and_counts_dials(
    start_sandbox: SandboxFactory,
) -> None:
    sandbox = await start_sandbox(delay=30.0)
    path = await sandbox.upload()
    options: dict[str, Any] = {"retry": {"count": 1}}  # no delay, no enhancement: as sent
    with_options = await sandbox.send_ok(["+12125550001"], [path], options=options)
    without = await sandbox.send_ok(["+12125550002"], [path])

    ledger = {entry["id"]: entry for entry in await sandbox.ledger()}
    assert ledger[with_options["+12125550001"]]["options"] == options
    assert ledger[without["+12125550002"]]["options"] == {}
    assert {entry["attempts"] for entry in ledger.values()} == {0}
    async with httpx.AsyncClient(trust_env=False) as anonymous:
        raw = (await anonymous.get(f"{sandbox.server.url}/sandbox/ledger")).json()
    assert set(raw["faxes"][0]) == {
        "id", "to", "from", "comment", "tags", "files", "status", "submitted_at", "options",
        "attempts",
    }  # fmt: skip


def test_simulator_command_line_sets_variants_numbers_and_credit() -> None:
    args = cli_parser().parse_args(
        [
            "simulator",
            "--variant",
            "credit,converter",
            "--variant",
            "slow-outbox",
            "--from-number",
            f"{FROM},{SECOND_NUMBER}",
            "--credit-pages",
            "7",
        ]
    )
    settings = SimulatorSettings.from_options({**vars(args), "variants": tuple(args.variants)})
    assert parse_variants(settings.variants) == {"credit", "converter", "slow-outbox"}
    assert (settings.numbers, settings.credit_pages) == ((FROM, SECOND_NUMBER), 7)
    defaults = cli_parser().parse_args(["simulator"])
    assert SimulatorSettings.from_options({**vars(defaults), "variants": ()}) == (
        SimulatorSettings()
    )
