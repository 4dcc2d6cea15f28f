"""The simulator's injected faults over loopback HTTP: API calls, webhooks, seed, ledger file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailfax._http import HttpServer
from mailfax.config import ConfigError, load_settings
from mailfax.sandbox import DEFAULT_TOKEN, Simulator, SimulatorSettings
from mailfax.sandbox.faults import Faults, RequestFault
from tests.conftest import eventually
from tests.pdfs import pdf_with_pages

FROM = "+16465550001"
TO = "+12125550001"
HOOK_PATH = "/webhooks/faxplus/s3cret"
DEADLINE = 5.0  # seconds any single wait may take before the test fails
MAX_SEEDS = 1000

Json = dict[str, Any]


class Receiver:
    """A webhook receiver that records every POST; like the gateway, it knows only one path."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[tuple[str, Json]] = []  # (path, payload), in arrival order
        self._arrived = asyncio.Event()
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        self.calls.append((request.url.path, await request.json()))
        self._arrived.set()
        known = request.url.path == HOOK_PATH
        return JSONResponse({}, status_code=200 if known else 404)

    async def wait_for(self, count: int) -> list[Json]:
        """The payloads of the first `count` calls, once that many have arrived."""
        async with asyncio.timeout(DEADLINE):
            while len(self.calls) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return [payload for _, payload in self.calls[:count]]


@dataclass
class Rig:
    sim: Simulator
    server: HttpServer
    api: httpx.AsyncClient
    receiver: Receiver

    async def upload(self) -> str:
        files = {"fax_file": ("doc.pdf", pdf_with_pages(1))}
        response = await self.api.post("/accounts/self/files", files=files)
        assert response.status_code == 200, response.text
        return str(response.json()["path"])

    async def send(self, path: str, to: str = TO, **client: Any) -> httpx.Response:
        payload = {"from": FROM, "to": [to], "files": [path], "return_ids": True}
        return await self.api.post("/accounts/self/outbox", json=payload, **client)

    async def send_ok(self, to: str = TO) -> str:
        response = await self.send(await self.upload(), to)
        assert response.status_code == 201, response.text
        return str(response.json()["ids"][to])

    async def add_hook(self) -> None:
        target = f"{self.receiver.url}{HOOK_PATH}"
        response = await self.api.post("/hooks", json={"target": target, "event": "fax_sent"})
        assert response.status_code == 200, response.text

    async def ledger(self) -> list[Json]:
        """The ledger over HTTP, which is never faulted, checked against the in-process view."""
        async with httpx.AsyncClient(trust_env=False) as anonymous:
            response = await anonymous.get(f"{self.server.url}/sandbox/ledger")
        assert response.status_code == 200
        assert response.json()["faxes"] == self.sim.ledger()
        return list(response.json()["faxes"])

    async def fax_status(self, fax_id: str) -> str:
        return str((await self.api.get(f"/accounts/self/faxes/{fax_id}")).json()["status"])


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def start_rig() -> AsyncIterator[RigFactory]:
    """Starts simulators (delay 0) with the given settings, each with a webhook receiver."""
    closers: list[Callable[[], Awaitable[None]]] = []

    async def start(**settings: Any) -> Rig:
        receiver = Receiver()
        receiver_server = HttpServer(receiver.app, "127.0.0.1", 0)
        await receiver_server.start()
        receiver.url = receiver_server.url
        sim = Simulator(SimulatorSettings(delay=0, **settings))
        server = HttpServer(sim.app, "127.0.0.1", 0)
        await server.start()
        api = httpx.AsyncClient(
            base_url=f"{server.url}/v3",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
            trust_env=False,
            timeout=DEADLINE,
        )
        closers.extend([receiver_server.stop, server.stop, sim.aclose, api.aclose])
        return Rig(sim, server, api, receiver)

    yield start
    # Stopped together: each uvicorn stop costs 0.1-0.2 s.
    await asyncio.gather(*(close() for close in closers))


def seed_for(expected: list[RequestFault | None], **settings: Any) -> int:
    """A seed under which the first API requests meet `expected`, by the simulator's own odds.

    Each API request draws one decision, so a test can steer a fault onto the request it wants
    (a send) while the ones before it (an upload) pass.
    """
    for seed in range(MAX_SEEDS):
        faults = Faults(SimulatorSettings(seed=seed, **settings))
        if [faults.request_decision().fault for _ in expected] == expected:
            return seed
    raise AssertionError(f"no seed below {MAX_SEEDS} gives {expected}")


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"error_rate": 1.5}, "error_rate must be within 0..1"),
        ({"webhook_early_rate": -0.1}, "webhook_early_rate must be within 0..1"),
        ({"drop_rate": 0.6, "timeout_rate": 0.6}, "must be at most 1"),
        ({"webhook_drop_rate": 0.5, "webhook_duplicate_rate": 0.6}, "must be at most 1"),
        ({"latency": -1}, "latency must be >= 0"),
        ({"hang": -1}, "hang must be >= 0"),
    ],
)
def test_impossible_fault_settings_are_rejected(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorSettings(**settings)


def test_exclusive_rates_may_add_up_to_exactly_one() -> None:
    SimulatorSettings(error_rate=0.1, rate_limit_rate=0.2, timeout_rate=0.3, drop_rate=0.4)


def test_sandbox_config_keys_become_simulator_settings(tmp_path: Path) -> None:
    env = {
        "MAILFAX_SANDBOX_SEED": "7",
        "MAILFAX_SANDBOX_ERROR_RATE": "0.25",
        "MAILFAX_SANDBOX_WEBHOOK_WRONG_PATH_RATE": "0.5",
        "MAILFAX_SANDBOX_HANG": "3",
        "MAILFAX_SANDBOX_STATE_FILE": str(tmp_path / "ledger.json"),
    }
    sandbox = load_settings(environ=env).sandbox
    settings = SimulatorSettings.from_options(vars(sandbox))
    assert (settings.seed, settings.error_rate, settings.webhook_wrong_path_rate) == (7, 0.25, 0.5)
    assert (settings.hang, settings.state_file) == (3.0, str(tmp_path / "ledger.json"))
    assert settings.delay == sandbox.delay
    # The default [sandbox] is the default simulator; "" keeps the ledger in memory, like None.
    default = SimulatorSettings.from_options(vars(load_settings(environ={}).sandbox))
    assert default == SimulatorSettings(state_file="")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAILFAX_SANDBOX_DROP_RATE": "1.5"}, "[sandbox] drop_rate must be within 0..1"),
        (
            {"MAILFAX_SANDBOX_ERROR_RATE": "0.7", "MAILFAX_SANDBOX_RATE_LIMIT_RATE": "0.7"},
            "[sandbox] error_rate + rate_limit_rate + timeout_rate + drop_rate must be at most 1",
        ),
        ({"MAILFAX_SANDBOX_LATENCY": "-2"}, "[sandbox] latency must be >= 0"),
    ],
)
def test_invalid_sandbox_fault_config_names_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env)
    assert message in str(caught.value)
    assert "Fix:" in str(caught.value)


# --- API requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "fault", "status", "error"),
    [
        ({"error_rate": 0.5}, RequestFault.UNAVAILABLE, 503, "service_unavailable"),
        ({"error_rate": 0.5}, RequestFault.INTERNAL_ERROR, 500, "internal_error"),
        ({"rate_limit_rate": 0.5}, RequestFault.RATE_LIMITED, 429, "too_many_requests"),
    ],
)
async def test_refused_requests_are_not_processed(
    start_rig: RigFactory, settings: dict[str, float], fault: RequestFault, status: int, error: str
) -> None:
    rig = await start_rig(seed=seed_for([None, fault], **settings), **settings)
    path = await rig.upload()

    response = await rig.send(path)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert "injected by the sandbox" in response.json()["description"]
    if status == 429:
        assert response.headers["retry-after"] == "1"
    assert await rig.ledger() == []


async def test_every_request_is_refused_at_rate_one_even_unauthenticated(
    start_rig: RigFactory,
) -> None:
    rig = await start_rig(error_rate=0.5, rate_limit_rate=0.5)
    async with httpx.AsyncClient(base_url=rig.server.url, trust_env=False) as anonymous:
        statuses = {(await anonymous.get("/v3/accounts/self")).status_code for _ in range(20)}
    assert statuses == {500, 503, 429}
    assert await rig.ledger() == []


async def test_latency_delays_each_answer_by_its_drawn_amount(start_rig: RigFactory) -> None:
    settings: dict[str, Any] = {"seed": 3, "latency": 0.3}
    faults = Faults(SimulatorSettings(**settings))
    expected = [faults.request_decision().latency for _ in range(3)]
    rig = await start_rig(**settings)

    for latency in expected:
        started = time.monotonic()
        response = await rig.api.get("/accounts/self")
        assert response.status_code == 200
        assert time.monotonic() - started >= latency
    assert max(expected) > 0.05


async def test_timeout_withholds_the_answer_of_a_processed_send(start_rig: RigFactory) -> None:
    hang = 0.5
    rig = await start_rig(timeout_rate=1.0, hang=hang)
    started = time.monotonic()
    path = await rig.upload()  # a patient client does get its answer, `hang` late
    assert time.monotonic() - started >= hang

    with pytest.raises(httpx.TimeoutException):
        await rig.send(path, timeout=0.1)

    # The send happened although its client never learned so.
    [entry] = await rig.ledger()
    assert entry["to"] == TO


async def test_drop_breaks_the_connection_after_a_processed_send(start_rig: RigFactory) -> None:
    settings = {"drop_rate": 0.5}
    rig = await start_rig(seed=seed_for([None, RequestFault.DROP], **settings), **settings)
    path = await rig.upload()

    with pytest.raises(httpx.RemoteProtocolError):
        await rig.send(path)

    [entry] = await rig.ledger()
    assert entry["to"] == TO


async def test_same_seed_same_decisions(start_rig: RigFactory) -> None:
    async def statuses(seed: int) -> list[int]:
        rig = await start_rig(seed=seed, error_rate=0.3, rate_limit_rate=0.3)
        return [(await rig.api.get("/accounts/self")).status_code for _ in range(30)]

    first = await statuses(11)
    assert await statuses(11) == first
    assert await statuses(12) != first
    assert {200, 429} <= set(first) and set(first) & {500, 503}


# --- webhooks ---------------------------------------------------------------------------------


async def test_early_webhook_arrives_before_the_send_is_answered(start_rig: RigFactory) -> None:
    rig = await start_rig(webhook_early_rate=1.0)
    await rig.add_hook()

    fax_id = await rig.send_ok()

    # Nothing is awaited between the 201 and this check: the webhook came first.
    assert [(path, call["data"]["id"]) for path, call in rig.receiver.calls] == [
        (HOOK_PATH, fax_id)
    ]
    assert (await rig.ledger())[0]["status"] == "success"


async def test_a_scheduled_send_is_never_answered_early(start_rig: RigFactory) -> None:
    rig = await start_rig(webhook_early_rate=1.0)
    await rig.add_hook()
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S +0000")
    payload = {"from": FROM, "to": [TO], "files": [await rig.upload()], "send_time": later}

    response = await rig.api.post("/accounts/self/outbox", json=payload)

    assert response.status_code == 201
    assert rig.receiver.calls == []
    assert [entry["status"] for entry in await rig.ledger()] == ["queued"]


# Early delivery makes the 201 wait for every POST of the webhook, so right after it the
# receiver has seen all it ever will: the next four tests need no quiet period.


async def test_duplicated_webhooks_repeat_the_same_payload(start_rig: RigFactory) -> None:
    rig = await start_rig(webhook_duplicate_rate=1.0, webhook_early_rate=1.0)
    await rig.add_hook()

    fax_id = await rig.send_ok()

    paths = [path for path, _ in rig.receiver.calls]
    payloads = [payload for _, payload in rig.receiver.calls]
    assert paths in ([HOOK_PATH] * 2, [HOOK_PATH] * 3)
    assert all(payload == payloads[0] for payload in payloads)
    assert payloads[0]["data"]["id"] == fax_id


async def test_dropped_webhooks_never_arrive(start_rig: RigFactory) -> None:
    rig = await start_rig(webhook_drop_rate=1.0, webhook_early_rate=1.0)
    await rig.add_hook()

    fax_id = await rig.send_ok()

    assert rig.receiver.calls == []
    assert await rig.fax_status(fax_id) == "success"


async def test_misrouted_webhooks_miss_the_real_target(start_rig: RigFactory) -> None:
    rig = await start_rig(webhook_wrong_path_rate=1.0, webhook_early_rate=1.0)
    await rig.add_hook()

    fax_id = await rig.send_ok()

    [(path, payload)] = rig.receiver.calls
    assert path == f"{HOOK_PATH}-misrouted"
    assert payload["data"]["id"] == fax_id


async def test_reordered_webhook_is_preceded_by_a_stale_contradiction(
    start_rig: RigFactory,
) -> None:
    rig = await start_rig(webhook_reorder_rate=1.0, webhook_early_rate=1.0)
    await rig.add_hook()

    delivered = await rig.send_ok("+12125550001")
    busy = await rig.send_ok("+12125550013")

    statuses = [(call["data"]["id"], call["data"]["status"]) for _, call in rig.receiver.calls]
    assert statuses == [
        (delivered, "failed_user_busy"),
        (delivered, "success"),
        (busy, "success"),
        (busy, "failed_user_busy"),
    ]
    assert await rig.fax_status(delivered) == "success"
    assert await rig.fax_status(busy) == "failed_user_busy"


async def test_reordered_webhook_follows_its_stale_copy(start_rig: RigFactory) -> None:
    rig = await start_rig(webhook_reorder_rate=1.0)
    await rig.add_hook()

    fax_id = await rig.send_ok()
    stale, true = await rig.receiver.wait_for(2)

    assert (stale["data"]["id"], stale["data"]["status"]) == (fax_id, "failed_user_busy")
    assert (true["data"]["id"], true["data"]["status"]) == (fax_id, "success")


# --- the ledger across restarts ---------------------------------------------------------------


async def test_state_file_keeps_the_ledger_across_restarts(
    start_rig: RigFactory, tmp_path: Path
) -> None:
    state_file = tmp_path / "ledger.json"
    first = await start_rig(state_file=state_file)
    first_id = await first.send_ok("+12125550001")
    await eventually(lambda: _completed(first), timeout=DEADLINE, what="the first fax to complete")
    before_restart = await first.ledger()
    await first.sim.aclose()

    second = await start_rig(state_file=state_file)
    assert await second.ledger() == before_restart
    second_id = await second.send_ok("+12125550002")

    ledger = await second.ledger()
    assert [entry["id"] for entry in ledger] == [first_id, second_id]
    assert json.loads(state_file.read_text())["faxes"] == ledger
    assert os.listdir(tmp_path) == ["ledger.json"]  # no temporary file left behind


async def _completed(rig: Rig) -> bool:
    return all(entry["status"] == "success" for entry in await rig.ledger())


# --- the command line -------------------------------------------------------------------------


async def test_simulator_command_takes_fault_flags(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mailfax", "simulator", "--listen", "127.0.0.1:0"]
    refused = await asyncio.create_subprocess_exec(
        *command, "--drop-rate", "1.5", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(refused.communicate(), DEADLINE * 6)
    assert refused.returncode == 2
    assert "drop_rate must be within 0..1" in err.decode()

    state_file = tmp_path / "ledger.json"
    flags = ["--error-rate", "1", "--seed", "4", "--state-file", str(state_file)]
    simulator = await asyncio.create_subprocess_exec(
        *command, *flags, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        assert simulator.stdout is not None
        ready = await asyncio.wait_for(simulator.stdout.readline(), DEADLINE * 6)
        base = ready.decode().split(" on ")[1].split(" ")[0].removesuffix("/v3")
        async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
            refusal = await client.get("/v3/accounts/self")
            ledger = await client.get("/sandbox/ledger")
        assert refusal.status_code in (500, 503)
        assert (ledger.status_code, ledger.json()) == (200, {"faxes": []})
    finally:
        simulator.terminate()
        await asyncio.wait_for(simulator.wait(), DEADLINE * 6)
