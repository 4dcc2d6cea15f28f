"""`mailfax doctor` against the simulator, a real SMTP server and real databases: healthy, and
with each check failing for the reason an operator would meet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from mailfax._http import HttpServer
from mailfax.app import webhook_target
from mailfax.config import load_settings
from mailfax.doctor import FAIL, OK, SKIP, CheckResult, Context, run_checks
from mailfax.faxplus import FaxPlusClient
from mailfax.jobs import JobState
from mailfax.sandbox import Simulator, SimulatorSettings
from mailfax.store import open_store
from tests.conftest import claim_one, fresh_pg_database
from tests.gateway import gateway_env
from tests.office import SOFFICE
from tests.test_cli import free_port, run
from tests.test_store import accepted

TOKEN = "tok-doctor"
SECRET = "doctor-secret"
PUBLIC_URL = "https://fax-gw.example.com"


class _Accepting:
    """An SMTP handler that takes whatever comes."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


@dataclass
class Surroundings:
    """What a healthy gateway talks to, and the environment that configures it."""

    env: dict[str, str]
    api_url: str


@pytest.fixture
async def surroundings(tmp_path: Path) -> AsyncIterator[Surroundings]:
    simulator = Simulator(SimulatorSettings(token=TOKEN, delay=0))
    api_server = HttpServer(simulator.app, "127.0.0.1", 0)
    await api_server.start()
    loop = asyncio.get_running_loop()
    smarthost = await loop.create_server(lambda: SMTP(_Accepting()), "127.0.0.1", 0)
    smtp_port = smarthost.sockets[0].getsockname()[1]
    api_url = f"{api_server.url}/v3"
    async with contextlib.aclosing(FaxPlusClient(api_url, TOKEN)) as api:
        await api.create_hook(webhook_target(PUBLIC_URL, SECRET))
    store = await open_store("", tmp_path)
    await store.close()
    env = gateway_env(
        tmp_path,
        faxplus_api_url=api_url,
        faxplus_token=TOKEN,
        faxplus_from_number="+16465550001",
        http_public_url=PUBLIC_URL,
        http_webhook_secret=SECRET,
        receipts_smarthost=f"smtp://127.0.0.1:{smtp_port}",
    )
    yield Surroundings(env, api_url)
    smarthost.close()
    await smarthost.wait_closed()
    await api_server.stop()
    await simulator.aclose()


async def doctor(env: dict[str, str], **overrides: str) -> dict[str, CheckResult]:
    settings = load_settings(
        environ={**env, **{f"MAILFAX_{k.upper()}": v for k, v in overrides.items()}}
    )
    api = FaxPlusClient(settings.faxplus.api_url, settings.faxplus.token)
    try:
        return {result.check: result for result in await run_checks(Context(settings, api))}
    finally:
        await api.aclose()


def statuses(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: result.status for name, result in results.items()}


async def test_a_healthy_gateway_passes_every_check(surroundings: Surroundings) -> None:
    results = await doctor(surroundings.env)
    assert statuses(results) == dict.fromkeys(
        (
            "token",
            "from-number",
            "webhook",
            "store",
            "smarthost",
            "lost-sends",
            "credit",
            "receipts",
        ),
        OK,
    ) | {"office": OK if SOFFICE else SKIP}
    assert results["token"].detail.startswith("FAX.PLUS account sandbox@example.com is active")
    assert results["webhook"].detail.endswith(f"targets {PUBLIC_URL}/webhooks/faxplus/<secret>")
    assert "schema version" in results["store"].detail
    assert results["smarthost"].detail.startswith("smtp://127.0.0.1:")


async def test_a_wrong_token_fails_and_skips_what_needs_it(surroundings: Surroundings) -> None:
    results = await doctor(surroundings.env, faxplus_token="not-the-token")
    assert statuses(results)["token"] == FAIL
    assert "HTTP 401" in results["token"].detail
    assert "Personal Access Token" in results["token"].fix
    assert "not-the-token" not in str(results)
    assert (results["from-number"].status, results["webhook"].status) == (SKIP, SKIP)
    assert results["store"].status == OK


async def test_an_unreachable_api_fails_the_token_check(surroundings: Surroundings) -> None:
    results = await doctor(surroundings.env, faxplus_api_url=f"http://127.0.0.1:{free_port()}/v3")
    assert results["token"].status == FAIL
    assert results["token"].detail.startswith("cannot reach http://127.0.0.1:")
    assert "[faxplus] api_url" in results["token"].fix


async def test_a_number_not_on_the_account_fails(surroundings: Surroundings) -> None:
    results = await doctor(surroundings.env, faxplus_from_number="+13475559999")
    assert results["from-number"].status == FAIL
    assert results["from-number"].detail == (
        "+13475559999 is not a number of this account (active: +16465550001)"
    )

    # Every number of a comma-separated `from` (FAX.PLUS balances sends over them).
    both = "+16465550001, +13475559999"
    results = await doctor(surroundings.env, faxplus_from_number=both)
    assert results["from-number"].status == FAIL
    assert results["from-number"].detail.startswith("+13475559999 is not a number")
    same = "+16465550001,+16465550001"
    results = await doctor(surroundings.env, faxplus_from_number=same)
    assert results["from-number"].detail == f"{same} are active on the account"


@pytest.mark.parametrize(
    ("overrides", "problem", "fix"),
    [
        (
            {"http_public_url": "https://elsewhere.example.com"},
            "no fax_sent webhook targets https://elsewhere.example.com/webhooks/faxplus/<secret>",
            "run `mailfax webhooks register`",
        ),
        (
            {"http_webhook_secret": "rotated"},
            f"the fax_sent webhook for {PUBLIC_URL} has another secret",
            "mailfax webhooks delete ID",
        ),
        ({"http_webhook_secret": ""}, "no webhook secret yet", "it creates the secret"),
    ],
)
async def test_a_missing_webhook_fails(
    surroundings: Surroundings, overrides: dict[str, str], problem: str, fix: str
) -> None:
    results = await doctor(surroundings.env, **overrides)
    assert results["webhook"].status == FAIL
    assert results["webhook"].detail.startswith(problem)
    assert fix in results["webhook"].fix
    assert "rotated" not in results["webhook"].detail


async def test_an_outdated_or_unreachable_store_fails(surroundings: Surroundings) -> None:
    async with fresh_pg_database() as url:
        results = await doctor(surroundings.env, store_url=url)
    assert results["store"].status == FAIL
    assert "schema is version 0" in results["store"].detail
    assert results["store"].fix == "run `mailfax db upgrade` (with the same configuration)"

    down = f"postgresql://mailfax:hunter2@127.0.0.1:{free_port()}/mailfax"
    results = await doctor(surroundings.env, store_url=down)
    assert results["store"].status == FAIL
    assert results["store"].detail.startswith("cannot reach postgresql://mailfax:***@127.0.0.1")
    assert "hunter2" not in str(results)


async def test_a_smarthost_that_takes_no_connection_fails(surroundings: Surroundings) -> None:
    results = await doctor(surroundings.env, receipts_smarthost=f"smtp://127.0.0.1:{free_port()}")
    assert results["smarthost"].status == FAIL
    assert "did not take a connection: Error connecting to 127.0.0.1" in results["smarthost"].detail
    assert "[receipts] smarthost" in results["smarthost"].fix


async def test_the_command_prints_one_line_per_check_and_exits_non_zero_on_failure(
    surroundings: Surroundings, tmp_path: Path
) -> None:
    code, out, _ = await run("doctor", env=surroundings.env)
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["ok", "config"],
        ["ok", "token"],
        ["ok", "from-number"],
        ["ok", "webhook"],
        ["ok", "store"],
        ["ok", "smarthost"],
        ["ok", "lost-sends"],
        ["ok", "credit"],
        ["ok", "receipts"],
        ["ok" if SOFFICE else "skip", "office"],
    ]

    broken = {**surroundings.env, "MAILFAX_FAXPLUS_FROM_NUMBER": "+13475559999"}
    code, out, _ = await run("doctor", "--json", env=broken)
    assert code == 1
    failed = [check for check in json.loads(out) if check["status"] == FAIL]
    assert [check["check"] for check in failed] == ["from-number"]
    assert failed[0]["fix"].startswith("set [faxplus] from_number")

    config = tmp_path / "bad.toml"
    config.write_text('[smtp]\ndomain = "nodots"\n')
    code, out, _ = await run("doctor", "--config", str(config), env=surroundings.env)
    assert code == 1
    assert out.startswith("FAIL  config  [smtp] domain = 'nodots': not a domain name. Fix:")
    config.write_text("[smtp]\nmax_recipient = 3\n")
    code, out, _ = await run("doctor", "--config", str(config), env=surroundings.env)
    assert code == 1
    assert "did you mean 'max_recipients'? Fix: correct the configuration file" in out, out


async def test_a_lost_send_left_undecided_fails_with_the_way_to_settle_it(
    surroundings: Surroundings, tmp_path: Path
) -> None:
    store = await open_store("", tmp_path)
    long_ago = time.time() - 3600
    try:
        await store.accept(accepted("m1", long_ago), [("j1", "+17185554567")])
        assert await claim_one(store, "w", long_ago, long_ago + 10) is not None
        S = JobState
        await store.transition("j1", S.UPLOADING, S.SUBMITTING, long_ago)
        await store.transition("j1", S.SUBMITTING, S.UNKNOWN, long_ago)
        reason = "undecided: FAX.PLUS has a fax to this number since the send (the first: fx)"
        assert await store.note_job("j1", S.UNKNOWN, long_ago + 70, reason, {"error": reason})
    finally:
        await store.close()
    results = await doctor(surroundings.env)
    assert results["lost-sends"].status == FAIL
    assert (
        "job j1 to +17185554567: undecided: FAX.PLUS has a fax to this number"
        in results["lost-sends"].detail
    )
    assert "mailfax jobs retry ID --adopt FAX_ID" in results["lost-sends"].fix


async def test_faxes_waiting_for_credit_fail_the_credit_check(
    surroundings: Surroundings, tmp_path: Path
) -> None:
    store = await open_store("", tmp_path)
    try:
        await store.accept(accepted("m1", time.time()), [("j1", "+17185554567")])
        assert await claim_one(store, "w", time.time(), time.time() + 10) is not None
        S = JobState
        now = time.time()
        await store.transition("j1", S.UPLOADING, S.SUBMITTING, now)
        await store.transition("j1", S.SUBMITTING, S.SUBMITTED, now, {"fax_id": "f1"})
        waits = {"fax_status": "insufficient_credit", "fax_id": None, "run_at": now + 60}
        await store.transition("j1", S.SUBMITTED, S.QUEUED, now, waits)
    finally:
        await store.close()
    results = await doctor(surroundings.env)
    assert results["credit"].status == FAIL
    assert "refused 1 queued fax(es) for insufficient credit" in results["credit"].detail
    assert results["credit"].fix.startswith("top up the FAX.PLUS account")
