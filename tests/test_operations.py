"""Operator actions on a real store (SQLite and PostgreSQL) and an in-memory FAX.PLUS: what
`jobs list`, `show`, `retry` and `cancel` do in each state, and what they refuse."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage

import pytest

from mailfax.config import FaxplusSettings, QueueSettings
from mailfax.fax_identity import comment_with_marker, job_tag
from mailfax.faxplus import OutboxRecord, format_api_time
from mailfax.finish import JobFinisher
from mailfax.jobs import JobState
from mailfax.operations import (
    JobOperator,
    OperationRefused,
    age,
    detail_json,
    detail_lines,
    job_detail,
    parse_since,
)
from mailfax.receipts.compose import ReceiptComposer
from mailfax.reconcile import Reconciler
from mailfax.store import SqlStore
from mailfax.worker import Wakeup
from tests.fakes import FakeFaxApi, fax_record
from tests.gateway import text_part
from tests.test_store import accepted

S = JobState
NOW = 1_800_000_000.0


@dataclass
class Desk:
    """An operator's desk: the store, FAX.PLUS, and the operator acting on them."""

    store: SqlStore
    api: FakeFaxApi
    operator: JobOperator


@pytest.fixture
def desk(store: SqlStore) -> Desk:
    api = FakeFaxApi()
    finisher = JobFinisher(store, ReceiptComposer("gw@example.com", "gw", "fax.local"), Wakeup())
    reconciler = Reconciler(
        store, api, finisher, QueueSettings(), FaxplusSettings(), lambda: NOW, Wakeup(), Wakeup()
    )
    return Desk(store, api, JobOperator(store, api, finisher, reconciler, lambda: NOW))


async def a_job(store: SqlStore, job_id: str, *moves: JobState, fax_id: str = "") -> None:
    """A job accepted at NOW - 60, then moved through `moves`."""
    await store.accept(accepted(f"m-{job_id}", NOW - 60), [(job_id, "+17185554567")])
    state = S.QUEUED
    for new in moves:
        values: dict[str, object] = {}
        if new is S.SUBMITTED and fax_id:
            values["fax_id"] = fax_id
        if new is S.SUBMITTING:
            values["submitted_at"] = NOW - 30
        assert await store.transition(job_id, state, new, NOW - 30, values)
        state = new


def receipt_text(content: bytes) -> str:
    receipt = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(receipt, EmailMessage)
    return text_part(receipt)


async def test_list_filters_by_state_time_and_sender(desk: Desk) -> None:
    store = desk.store
    await a_job(store, "j1")
    bob = dataclasses.replace(accepted("m-j2", NOW - 7200), mail_from="Bob@Example.org")
    await store.accept(bob, [("j2", "+16465550015")])
    await store.transition("j2", S.QUEUED, S.FAILED, NOW - 7000)

    everything = await store.list_jobs(None, None, "", 10)
    assert [s.job.id for s in everything] == ["j2", "j1"]  # by id, which begins with the time
    assert (everything[1].mail_from, everything[1].subject, everything[1].pages) == (
        "alice@example.com",
        "Invoice",
        3,
    )
    assert [s.job.id for s in await store.list_jobs(S.FAILED, None, "", 10)] == ["j2"]
    assert [s.job.id for s in await store.list_jobs(None, NOW - 3600, "", 10)] == ["j1"]
    assert [s.job.id for s in await store.list_jobs(None, None, "bob@EXAMPLE", 10)] == ["j2"]
    assert await store.list_jobs(None, None, "%", 10) == []  # LIKE wildcards are literal
    assert len(await store.list_jobs(None, None, "", 1)) == 1

    stats = await store.job_stats()
    assert (stats.counts[S.QUEUED], stats.counts[S.FAILED]) == (1, 1)
    assert stats.oldest_unfinished == NOW - 60


def test_since_takes_durations_and_dates() -> None:
    assert parse_since("90s", NOW) == NOW - 90
    assert parse_since("2h", NOW) == NOW - 7200
    assert parse_since("7d", NOW) == NOW - 7 * 86400
    assert parse_since("2024-05-01", NOW) == 1714521600.0
    assert parse_since("2024-05-01T08:00+02:00", NOW) == 1714521600.0 + 6 * 3600
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", NOW)
    assert [age(s) for s in (5, 600, 7500, 200_000)] == ["5s", "10m", "2h 5m", "2d 7h"]


async def test_retry_of_a_queued_job_makes_it_due_now(desk: Desk) -> None:
    await a_job(desk.store, "j1")
    assert await desk.store.transition("j1", S.QUEUED, S.UPLOADING, NOW - 50)
    assert await desk.store.transition("j1", S.UPLOADING, S.QUEUED, NOW - 50, {"run_at": NOW + 900})

    said = await desk.operator.retry("j1")

    assert "is due now" in said
    job = await desk.store.get_job("j1")
    assert job is not None and job.state is S.QUEUED and job.run_at == NOW
    assert (await desk.store.job_events("j1"))[-1][1:] == ("queued", "queued", "operator: run now")


async def test_retry_of_a_submitted_job_asks_faxplus_now(desk: Desk) -> None:
    await a_job(desk.store, "j1", S.UPLOADING, S.SUBMITTING, S.SUBMITTED, fax_id="fax-1")
    said = await desk.operator.retry("j1")
    assert "asked for the result of fax fax-1" in said
    [hint] = await desk.store.due_fax_events(NOW, 10)
    assert (hint.fax_id, hint.hook_id) == ("fax-1", "operator")


async def test_retry_of_an_unknown_job_adopts_or_resends(desk: Desk) -> None:
    await a_job(desk.store, "found", S.UPLOADING, S.SUBMITTING, S.UNKNOWN)
    await a_job(desk.store, "lost", S.UPLOADING, S.SUBMITTING, S.UNKNOWN)
    desk.api.faxes["fax-9"] = fax_record(
        "fax-9",
        "+17185554567",
        "in_progress",
        format_api_time(NOW - 25),
        comment=comment_with_marker("hello", "found"),
    )

    assert "found at FAX.PLUS as fax fax-9" in await desk.operator.retry("found")
    # Only one fax to that number exists, and it is found's: the other send never arrived.
    assert "queued to be sent again" in await desk.operator.retry("lost")
    found, lost = await desk.store.get_job("found"), await desk.store.get_job("lost")
    assert found is not None and found.state is S.SUBMITTED and found.fax_id == "fax-9"
    assert lost is not None and lost.state is S.QUEUED


async def test_an_undecided_send_is_settled_by_the_operator(desk: Desk) -> None:
    """A fax to the number without proof: `retry` says it is undecided and how to settle it;
    --adopt takes a fax that can be the job's, --resend sends it again; both in the history."""
    await a_job(desk.store, "j1", S.UPLOADING, S.SUBMITTING, S.UNKNOWN)
    await a_job(desk.store, "j2", S.UPLOADING, S.SUBMITTING, S.UNKNOWN)
    submitted = format_api_time(NOW - 25)
    desk.api.faxes["fx"] = fax_record("fx", "+17185554567", "success", submitted)
    said = await desk.operator.retry("j1")
    assert "undecided" in said and "--adopt FAX_ID" in said and "--resend" in said
    assert desk.api.sends == []

    assert "adopted FAX.PLUS fax fx" in await desk.operator.decide_lost_send("j1", "fx", False)
    assert "queued to be sent again" in await desk.operator.decide_lost_send("j2", None, True)
    j1, j2 = await desk.store.get_job("j1"), await desk.store.get_job("j2")
    assert j1 is not None and (j1.state, j1.fax_id) == (S.SUBMITTED, "fx")
    assert j2 is not None and j2.state is S.QUEUED
    assert (await desk.store.job_events("j1"))[-1][1:] == (
        "unknown",
        "submitted",
        "operator: sent as fax fx",
    )
    assert (await desk.store.job_events("j2"))[-1][3] == "operator: not sent; sending again"


@pytest.mark.parametrize(
    ("fax", "refusal"),
    [
        ("missing", "FAX.PLUS has no fax missing"),
        ("elsewhere", "went to +19175554321, not to job j1's number"),
        ("marked", "is the send of job other, not of job j1"),
        ("held", "is the send of job j0, not of job j1"),
    ],
)
async def test_adopting_a_fax_that_cannot_be_the_jobs_is_refused(
    desk: Desk, fax: str, refusal: str
) -> None:
    await a_job(desk.store, "j0", S.UPLOADING, S.SUBMITTING, S.SUBMITTED, fax_id="held")
    await a_job(desk.store, "j1", S.UPLOADING, S.SUBMITTING, S.UNKNOWN)
    at = format_api_time(NOW - 25)
    desk.api.faxes["elsewhere"] = fax_record("elsewhere", "+19175554321", "success", at)
    marked = comment_with_marker("hi", "other")
    desk.api.faxes["marked"] = fax_record("marked", "+17185554567", "success", at, comment=marked)
    desk.api.faxes["held"] = fax_record("held", "+17185554567", "success", at)
    with pytest.raises(OperationRefused, match=re.escape(refusal)):
        await desk.operator.decide_lost_send("j1", fax, False)
    job = await desk.store.get_job("j1")
    assert job is not None and job.state is S.UNKNOWN


async def test_adopt_and_resend_apply_only_to_a_lost_send(desk: Desk) -> None:
    await a_job(desk.store, "j1")
    with pytest.raises(OperationRefused, match="settle only a lost send"):
        await desk.operator.decide_lost_send("j1", None, True)


async def test_retry_of_a_failed_job_is_a_new_job(desk: Desk) -> None:
    await a_job(desk.store, "j1", S.FAILED)
    said = await desk.operator.retry("j1")
    [new] = [s.job for s in await desk.store.list_jobs(S.QUEUED, None, "", 10)]
    assert f"new job {new.id}" in said and "j1 stays failed" in said
    assert (new.message_id, new.number, new.attempts) == ("m-j1", "+17185554567", 0)
    assert (await desk.store.job_events(new.id))[0][1:] == (
        None,
        "queued",
        "retry of job j1: by the operator",
    )
    old = await desk.store.get_job("j1")
    assert old is not None and old.state is S.FAILED
    assert (await desk.store.job_events("j1"))[-1][3] == f"retried as job {new.id}: by the operator"


async def test_retry_refuses_what_would_surprise(desk: Desk) -> None:
    await a_job(desk.store, "sent", S.UPLOADING, S.SUBMITTING, S.SUBMITTED, S.DELIVERED)
    await a_job(desk.store, "busy", S.UPLOADING)
    with pytest.raises(OperationRefused, match="--resend-delivered"):
        await desk.operator.retry("sent")
    assert "new job" in await desk.operator.retry("sent", resend_delivered=True)
    with pytest.raises(OperationRefused, match="being sent right now"):
        await desk.operator.retry("busy")
    with pytest.raises(OperationRefused, match="no job nope"):
        await desk.operator.retry("nope")


async def test_cancel_of_a_queued_job_tells_the_sender(desk: Desk) -> None:
    await a_job(desk.store, "j1")
    said = await desk.operator.cancel("j1", reason="wrong number")
    assert said == "job j1 cancelled; the sender gets a receipt saying so"
    job = await desk.store.get_job("j1")
    assert job is not None and job.state is S.CANCELLED and job.fax_status == "cancelled"
    receipt = await desk.store.claim_receipt(NOW, NOW + 60)
    assert receipt is not None and receipt.recipient == "alice@example.com"
    text = receipt_text(receipt.content)
    assert "administrator cancelled the fax" in text and "wrong number" in text


async def test_cancel_of_a_submitted_job_deletes_it_from_the_outbox(desk: Desk) -> None:
    await a_job(desk.store, "j1", S.UPLOADING, S.SUBMITTING, S.SUBMITTED, fax_id="fax-1")
    desk.api.outbox = [
        OutboxRecord("ob-1", "submitted", ("+17185554567",), (job_tag("j1"),)),
        OutboxRecord("ob-2", "submitted", ("+19175554321",), (job_tag("other"),)),
    ]
    said = await desk.operator.cancel("j1")
    assert "deleted from the FAX.PLUS outbox (ob-1)" in said
    assert [record.id for record in desk.api.outbox] == ["ob-2"]
    detail = await job_detail(desk.store, "j1")
    assert detail is not None and detail.job.state is S.CANCELLED
    assert detail.receipt is not None and detail.receipt.state == "pending"


async def test_cancel_refuses_what_cannot_be_cancelled(desk: Desk) -> None:
    await a_job(desk.store, "left", S.UPLOADING, S.SUBMITTING, S.SUBMITTED, fax_id="fax-1")
    await a_job(desk.store, "unsure", S.UPLOADING, S.SUBMITTING, S.UNKNOWN)
    await a_job(desk.store, "done", S.FAILED)
    with pytest.raises(OperationRefused, match=r"has left the FAX\.PLUS outbox"):
        await desk.operator.cancel("left")
    with pytest.raises(OperationRefused, match="jobs retry unsure"):
        await desk.operator.cancel("unsure")
    with pytest.raises(OperationRefused, match="already failed"):
        await desk.operator.cancel("done")
    left = await desk.store.get_job("left")
    assert left is not None and left.state is S.SUBMITTED


async def test_show_has_history_ids_extraction_and_receipt(desk: Desk) -> None:
    await a_job(desk.store, "j1", S.UPLOADING, S.SUBMITTING, S.SUBMITTED, fax_id="fax-1")
    detail = await job_detail(desk.store, "j1")
    assert detail is not None
    shown = detail_json(detail)
    assert [step["to"] for step in shown["history"]] == [
        "queued",
        "uploading",
        "submitting",
        "submitted",
    ]
    assert shown["faxplus"]["fax_id"] == "fax-1"
    assert shown["faxplus"]["tag"] == "mailfax-job:j1"
    assert shown["message"]["parts"][0]["name"] == "a.pdf"
    assert shown["receipt"] is None
    text = "\n".join(detail_lines(detail))
    assert "fax id     fax-1" in text and "submitting -> submitted" in text
    assert await job_detail(desk.store, "nope") is None
