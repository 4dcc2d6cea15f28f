"""`mailfax doctor --live-test` against the simulator in each reading of the docs: it reports
what that reading does, and stores it for the gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailfax._http import HttpServer
from mailfax.faxplus import FaxPlusClient
from mailfax.live_test import live_test
from mailfax.sandbox import DEFAULT_TOKEN, Simulator, SimulatorSettings
from mailfax.store import SqlStore, open_store
from mailfax.typeset import text_pdf
from tests.conftest import eventually
from tests.gateway import gateway_env, start_gateway
from tests.test_cli import run

FROM = "+16465550001"
TO = "+17185554567"


@contextlib.asynccontextmanager
async def simulator(variants: tuple[str, ...] = ()) -> AsyncIterator[tuple[str, FaxPlusClient]]:
    sim = Simulator(SimulatorSettings(delay=0.0, variants=variants))
    server = HttpServer(sim.app, "127.0.0.1", 0)
    await server.start()
    api = FaxPlusClient(f"{server.url}/v3", DEFAULT_TOKEN)
    try:
        # One fax before the test's: the default listing order needs two to show.
        path = await api.upload_file("earlier.pdf", text_pdf(["earlier"]))
        await api.send_fax(FROM, ["+19175554321"], [path], "earlier", [])
        yield f"{server.url}/v3", api
    finally:
        await api.aclose()
        await server.stop()
        await sim.aclose()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await open_store("", tmp_path)
    yield opened
    await opened.close()


@pytest.mark.parametrize(
    ("variants", "comment", "name"),
    [((), True, False), (("no-comment",), False, False), (("upload-names",), True, True)],
)
async def test_the_live_test_reports_what_the_account_does(
    store: SqlStore, variants: tuple[str, ...], comment: bool, name: bool
) -> None:
    async with simulator(variants) as (_, api):
        report = await live_test(api, store, FROM, TO, timeout=20, webhook_wait=0.5)
    assert report.ok, report.lines
    facts = report.facts
    assert facts["send_id_is_record_id"] is True and facts["get_fax_knows_send_id"] is True
    assert (facts["record_keeps_comment"], facts["record_file_name_is_upload_name"]) == (
        comment,
        name,
    )
    assert facts["record_max_retry"] == 0  # mailfax tells FAX.PLUS not to redial
    assert facts["listing_default_order"] == "newest first"
    assert facts["webhook_ids"] == [] and facts["ids_agree"] is False  # no gateway listened
    assert "webhook: none seen" in "\n".join(report.lines)
    warned = any(line.startswith("warning: records carry no proof") for line in report.lines)
    assert warned is not (comment or name)
    assert await store.faxplus_facts() == facts


async def test_the_webhook_a_running_gateway_parked_shows_its_id(tmp_path: Path) -> None:
    async with simulator() as (api_url, api):
        env = gateway_env(
            tmp_path,
            faxplus_api_url=api_url,
            faxplus_token=DEFAULT_TOKEN,
            faxplus_from_number=FROM,
            http_webhook_secret="live-secret",
        )
        gateway = await start_gateway(tmp_path, env)
        try:
            assert gateway.endpoints is not None and gateway.store is not None
            assert gateway.endpoints.webhook_url is not None
            await api.create_hook(gateway.endpoints.webhook_url)
            report = await live_test(api, gateway.store, FROM, TO, timeout=20)
            assert report.facts["webhook_ids"] != []
        finally:
            await gateway.stop()
    assert report.facts["ids_agree"] is True
    assert f"webhook: arrived as id {report.facts['webhook_ids'][0]}" in report.lines


async def test_the_command_asks_before_it_sends(tmp_path: Path) -> None:
    async with simulator() as (api_url, _):
        env = gateway_env(tmp_path, faxplus_api_url=api_url, faxplus_token=DEFAULT_TOKEN)
        code, _, err = await run("doctor", "--live-test", TO, env=env)
        assert code == 2 and "--live-test sends a real fax; add --yes" in err
        code, out, err = await run("doctor", "--live-test", TO, "--yes", "--timeout", "3", env=env)
        assert code == 0, err
        assert "record keeps the send's comment: yes" in out

    store = await open_store("", tmp_path)
    try:

        async def stored() -> bool:
            return bool(await store.faxplus_facts())

        await eventually(stored, timeout=5, what="the facts in the store")
    finally:
        await store.close()
