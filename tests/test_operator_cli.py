"""`mailfax jobs ...` as an operator runs it, beside a running gateway, and `jobs cancel` taking a
fax back out of the simulator's outbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailfax._http import HttpServer
from mailfax.app import Gateway, register_webhook
from mailfax.cli import main
from mailfax.faxplus import FaxPlusClient
from mailfax.finish import JobFinisher
from mailfax.jobs import JobState
from mailfax.operations import JobOperator
from mailfax.receipts.compose import ReceiptComposer
from mailfax.reconcile import Reconciler
from mailfax.sandbox import DEFAULT_TOKEN, Simulator, SimulatorSettings
from mailfax.store import open_store
from mailfax.worker import Wakeup
from tests.conftest import eventually
from tests.gateway import gateway_env, receipts_in, smtp_transaction, start_gateway
from tests.pdfs import fax_mail
from tests.test_cli import run
from tests.test_store import accepted


@pytest.fixture
async def api_env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """A standalone simulator both the gateway and the commands use, as with the real API."""
    simulator = Simulator(SimulatorSettings(token="tok-ops", delay=0))
    server = HttpServer(simulator.app, "127.0.0.1", 0)
    await server.start()
    yield gateway_env(tmp_path, faxplus_api_url=f"{server.url}/v3", faxplus_token="tok-ops")
    await server.stop()
    await simulator.aclose()


async def jobs(env: dict[str, str], *args: str) -> Any:
    code, out, err = await run("jobs", *args, "--json", env=env)
    assert code == 0, err
    return json.loads(out)


def ids(listed: list[dict[str, Any]]) -> list[str]:
    return sorted(j["id"] for j in listed)


async def test_list_show_and_retry_beside_a_running_gateway(
    api_env: dict[str, str], tmp_path: Path
) -> None:
    gateway = await start_gateway(tmp_path, api_env)
    try:
        assert gateway.endpoints is not None and gateway.endpoints.webhook_url
        api = FaxPlusClient(api_env["MAILFAX_FAXPLUS_API_URL"], "tok-ops")
        async with contextlib.aclosing(api):
            await register_webhook(api, gateway.endpoints.webhook_url)
        for number in ("17185554567", "16465550015"):
            outcome = await smtp_transaction(
                gateway.endpoints, fax_mail(), [f"{number}@fax.local"], sender="Carol@Example.com"
            )
            assert outcome.final[0] == 250

        async def receipts(count: int) -> list[EmailMessage] | None:
            found = receipts_in(tmp_path)
            return found if len(found) == count else None

        await eventually(lambda: receipts(2), what="two receipts")

        assert gateway.store is not None
        numbers = {s.job.number: s.job.id for s in await gateway.store.list_jobs(None, None, "", 5)}
        failed, delivered = numbers["+16465550015"], numbers["+17185554567"]
        # Read-only commands (and refusals), side by side.
        (
            listed,
            by_carol,
            by_dave,
            since_1h,
            from_future,
            text_list,
            shown,
            text_show,
            refusals,
        ) = await asyncio.gather(
            jobs(api_env, "list"),
            jobs(api_env, "list", "--state", "failed", "--sender", "carol@example"),
            jobs(api_env, "list", "--sender", "dave"),
            jobs(api_env, "list", "--since", "1h"),
            jobs(api_env, "list", "--since", "2999-01-01"),
            run("jobs", "list", env=api_env),
            jobs(api_env, "show", failed),
            run("jobs", "show", failed, env=api_env),
            asyncio.gather(
                run("jobs", "retry", delivered, env=api_env),
                run("jobs", "show", "nope", env=api_env),
                run("jobs", "list", "--since", "soon", env=api_env),
            ),
        )
        assert sorted((j["number"], j["state"]) for j in listed) == [
            ("+16465550015", "failed"),
            ("+17185554567", "delivered"),
        ]
        assert {(j["sender"], j["pages"]) for j in listed} == {("Carol@Example.com", 2)}
        assert (ids(by_carol), ids(by_dave)) == ([failed], [])
        assert (ids(since_1h), ids(from_future)) == (sorted([failed, delivered]), [])
        assert text_list[1].split()[:6] == ["JOB", "STATE", "NUMBER", "PAGES", "AGE", "SENDER"]
        assert [step["to"] for step in shown["history"]][-1] == "failed"
        assert shown["faxplus"]["fax_status"] == "failed_unallocated_number"
        assert shown["message"]["parts"][0]["action"] == "faxed"
        assert shown["receipt"]["state"] == "sent"
        assert "History:" in text_show[1]
        assert "Receipt:   sent to Carol@Example.com (1 attempt, sent " in text_show[1]
        resend, unknown, bad_since = refusals
        assert resend[0] == 1 and "--resend-delivered" in resend[2]
        assert unknown[0] == 1 and "no job nope" in unknown[2]
        assert bad_since[0] == 2 and "neither a duration" in bad_since[2]

        # A failed fax is retried as a new job, which goes all the way (and fails again).
        code, out, err = await run("jobs", "retry", failed, env=api_env)
        assert code == 0 and f"job {failed} stays failed; new job" in out
        # The result only: no log lines at the default level, on either stream.
        assert len(out.splitlines()) == 1 and err == "", (out, err)
        await eventually(lambda: receipts(3), what="the retry's receipt")
        [again] = await gateway.store.list_jobs(JobState.FAILED, None, "", 1)
        assert again.job.number == "+16465550015" and again.job.id != failed
    finally:
        await gateway.stop()


async def test_cancel_and_retry_of_queued_jobs_with_no_gateway_running(tmp_path: Path) -> None:
    env = gateway_env(tmp_path)
    store = await open_store("", tmp_path)
    try:
        await store.accept(accepted("m1"), [("j1", "+17185554567"), ("j2", "+19175554321")])
    finally:
        await store.close()

    code, out, _ = await run("jobs", "retry", "j2", env=env)
    assert code == 0 and out.startswith("job j2 is due now")
    code, out, err = await run(
        "jobs", "cancel", "j1", "--reason", "sent to the wrong clinic", env=env
    )
    assert code == 0 and out == "job j1 cancelled; the sender gets a receipt saying so\n"
    assert err == ""  # the result only: routine log lines stay quiet in a one-shot command
    shown = await jobs(env, "show", "j1")
    assert shown["state"] == "cancelled"
    assert shown["history"][-1]["detail"] == (
        "cancelled by the gateway's administrator: sent to the wrong clinic"
    )
    assert shown["receipt"]["state"] == "pending"  # sent by the gateway when it runs
    code, _, err = await run("jobs", "cancel", "j1", env=env)
    assert code == 1 and "already cancelled" in err


async def test_cancel_takes_the_fax_out_of_the_faxplus_outbox(tmp_path: Path) -> None:
    # The simulator holds each fax for a minute: time for the operator to change their mind.
    gateway: Gateway = await start_gateway(tmp_path, gateway_env(tmp_path, sandbox_delay="60"))
    try:
        assert gateway.endpoints is not None and gateway.store is not None
        store = gateway.store
        outcome = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
        assert outcome.final[0] == 250

        async def submitted() -> str | None:
            [summary] = await store.list_jobs(None, None, "", 5)
            return summary.job.id if summary.job.state is JobState.SUBMITTED else None

        job_id = await eventually(submitted, what="the fax to be in the outbox")
        api = FaxPlusClient(gateway.endpoints.api_url, DEFAULT_TOKEN)
        try:
            composer = ReceiptComposer("gw@example.com", "gw", "fax.local")
            finisher = JobFinisher(store, composer, Wakeup())
            queue, faxplus = gateway.settings.queue, gateway.settings.faxplus
            reconciler = Reconciler(
                store, api, finisher, queue, faxplus, time.time, Wakeup(), Wakeup()
            )
            said = await JobOperator(store, api, finisher, reconciler, time.time).cancel(job_id)
            assert await api.list_outbox() == []
        finally:
            await api.aclose()
        assert "deleted from the FAX.PLUS outbox" in said
        assert gateway.simulator is not None
        [sent] = gateway.simulator.ledger()
        assert sent["status"] == "cancelled"
        job = await store.get_job(job_id)
        assert job is not None and job.state is JobState.CANCELLED
    finally:
        await gateway.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["doctor"],
        ["jobs"],
        ["jobs", "list"],
        ["jobs", "show"],
        ["jobs", "retry"],
        ["jobs", "cancel"],
    ],
)
def test_help_everywhere(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: mailfax {' '.join(args)}")
