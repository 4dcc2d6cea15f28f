"""Which receipts are queued, when, and never twice: on both databases, with an in-memory
FAX.PLUS for confirmation reports (accepted with the mail, results, group summaries, delays)."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from email.message import EmailMessage

import pytest

from mailfax.finish import JobFinisher
from mailfax.jobs import JobState
from mailfax.mail.model import Document
from mailfax.receipts.compose import FaxOutcome, ReceiptComposer
from mailfax.receipts.notices import DelayNotices, with_acceptance_receipt
from mailfax.receipts.policy import ReceiptPolicy
from mailfax.sender_policy import SenderPatterns
from mailfax.store import GroupSummary, NewReceipt, PendingReceipt, SqlStore, SummaryOutdated
from mailfax.worker import Wakeup
from tests.conftest import claim_one
from tests.fakes import FakeFaxApi
from tests.gateway import text_part
from tests.pdfs import pdf_with_pages
from tests.test_store import accepted

S = JobState
NOW = 1000.0
PDF = b"%PDF-1.4 report"
NUMBERS = ("+17185554567", "+19175554321")


def composer(**policy: object) -> ReceiptComposer:
    return ReceiptComposer(
        "mailfax@gw.example.com",
        "gw.example.com",
        "fax.local",
        policy=ReceiptPolicy(**policy),  # type: ignore[arg-type]
    )


def delivered(fax_id: str) -> FaxOutcome:
    return FaxOutcome(True, "success", fax_id, 2, "1970-01-01 00:16:40", duration=60, cost=2)


async def accept(store: SqlStore, receipts: ReceiptComposer, numbers: tuple[str, ...]) -> None:
    jobs = [(f"j{i}", number) for i, number in enumerate(numbers, 1)]
    mail = dataclasses.replace(
        accepted(now=NOW),
        documents=(Document("a.pdf", pdf_with_pages(2), 2),),
        raw=b"Message-ID: <x@y>\r\n\r\n",
    )
    await store.accept(with_acceptance_receipt(receipts, mail, jobs), jobs)


async def submit(store: SqlStore, job_id: str, fax_id: str) -> None:
    assert await claim_one(store, "w", NOW, NOW + 60) is not None
    assert await store.transition(job_id, S.UPLOADING, S.SUBMITTING, NOW)
    assert await store.transition(job_id, S.SUBMITTING, S.SUBMITTED, NOW, {"fax_id": fax_id})


async def finish(finisher: JobFinisher, store: SqlStore, job_id: str, outcome: FaxOutcome) -> None:
    job = await store.get_job(job_id)
    assert job is not None
    assert await finisher.finish(job, S.SUBMITTED, outcome, NOW + 10)


async def queued(store: SqlStore) -> list[PendingReceipt]:
    """Every receipt due, claimed in the order they were queued."""
    claimed = []
    while (receipt := await store.claim_receipt(NOW + 10**6, NOW + 2 * 10**6)) is not None:
        claimed.append(receipt)
    return claimed


def parsed(receipt: PendingReceipt) -> EmailMessage:
    message = email.message_from_bytes(receipt.content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_accepted_notice_is_queued_with_the_mail(store: SqlStore) -> None:
    await accept(store, composer(notify="all"), NUMBERS)
    [notice] = await queued(store)
    assert (notice.kind, notice.job_id, notice.recipient) == ("accepted", None, "alice@example.com")
    assert parsed(notice)["Subject"] == "Fax to 2 numbers accepted (2 pages)"


async def test_no_accepted_notice_by_default_or_for_opted_out_senders(store: SqlStore) -> None:
    await accept(store, composer(), NUMBERS[:1])
    quiet = composer(notify="all", no_success_receipts=SenderPatterns.parse(["@example.com"]))
    await store.accept(
        with_acceptance_receipt(quiet, accepted("m2", NOW), [("j9", NUMBERS[0])]),
        [("j9", NUMBERS[0])],
    )
    assert await queued(store) == []


async def test_result_receipt_attaches_the_confirmation_report(store: SqlStore) -> None:
    api = FakeFaxApi(reports={"f1": PDF})
    finisher = JobFinisher(store, composer(attach_thumbnail=True), Wakeup(), api)
    await accept(store, composer(), NUMBERS[:1])
    await submit(store, "j1", "f1")
    await finish(finisher, store, "j1", delivered("f1"))
    [receipt] = await queued(store)
    assert (receipt.kind, receipt.job_id) == ("final", "j1")
    message = parsed(receipt)
    human = next(message.iter_parts())
    files = [(p.get_content_type(), p.get_filename()) for p in human.iter_attachments()]
    assert files == [
        ("application/pdf", "fax-report-f1.pdf"),
        ("image/png", "first-page.png"),
    ]
    assert "Duration: 1 min 0 s" in text_part(message)
    job = await store.get_job("j1")
    assert job is not None and (job.fax_duration, job.fax_cost) == (60.0, 2.0)


async def test_a_report_fetch_failure_neither_blocks_nor_loses_the_receipt(
    store: SqlStore,
) -> None:
    finisher = JobFinisher(store, composer(), Wakeup(), FakeFaxApi())  # has no reports
    await accept(store, composer(), NUMBERS[:1])
    await submit(store, "j1", "f1")
    await finish(finisher, store, "j1", delivered("f1"))
    [receipt] = await queued(store)
    text = text_part(parsed(receipt))
    assert "report is not attached: FAX.PLUS did not provide it (HTTP 404: not_found)." in text


async def test_opted_out_senders_hear_only_of_failures(store: SqlStore) -> None:
    quiet = composer(no_success_receipts=SenderPatterns.parse(["alice@example.com"]))
    finisher = JobFinisher(store, quiet, Wakeup())
    await accept(store, quiet, NUMBERS)
    await submit(store, "j1", "f1")
    await submit(store, "j2", "f2")
    await finish(finisher, store, "j1", delivered("f1"))
    await finish(finisher, store, "j2", FaxOutcome(False, "failed_no_answer", "f2", 0))
    assert [(r.kind, r.job_id) for r in await queued(store)] == [("final", "j2")]


async def test_group_summary_once_the_last_recipient_is_final(store: SqlStore) -> None:
    api = FakeFaxApi(reports={"f1": PDF})
    finisher = JobFinisher(store, composer(group=True), Wakeup(), api)
    await accept(store, composer(), NUMBERS)
    await submit(store, "j1", "f1")
    await submit(store, "j2", "f2")
    await finish(finisher, store, "j1", delivered("f1"))
    assert await queued(store) == []  # j2 is still out
    await finish(finisher, store, "j2", FaxOutcome(False, "failed_no_answer", "f2", 0))
    [summary] = await queued(store)
    assert (summary.kind, summary.job_id) == ("group", None)
    message = parsed(summary)
    assert message["Subject"] == "Fax to 2 numbers: 1 delivered, 1 not (2 pages)"
    files = [p.get_filename() for p in next(message.iter_parts()).iter_attachments()]
    assert files == ["fax-report-f1.pdf"]
    record = await store.receipt_of("j1")
    assert record is not None and record.kind == "group" and record.id == summary.id
    # A retry after the summary was queued gets a receipt of its own.
    assert await store.requeue_as_new_job("j2", "j3", NOW, "by hand") is not None
    await submit(store, "j3", "f3")
    await finish(finisher, store, "j3", delivered("f3"))
    [own] = await queued(store)
    assert (own.kind, own.job_id) == ("final", "j3")
    record = await store.receipt_of("j3")
    assert record is not None and record.kind == "final"


async def test_recipients_finishing_together_make_one_summary(store: SqlStore) -> None:
    api = FakeFaxApi(reports={f"f{i}": PDF for i in range(1, 7)})
    finisher = JobFinisher(store, composer(group=True), Wakeup(), api)
    numbers = tuple(f"+1646555{i:04d}" for i in range(6))
    await accept(store, composer(), numbers)
    for i in range(1, 7):
        await submit(store, f"j{i}", f"f{i}")
    await asyncio.gather(
        *(finish(finisher, store, f"j{i}", delivered(f"f{i}")) for i in range(1, 7))
    )
    [summary] = await queued(store)
    assert summary.kind == "group"
    # Composed once every job was final, so with every fax's report (not only the last's).
    files = [p.get_filename() for p in next(parsed(summary).iter_parts()).iter_attachments()]
    assert files == [f"fax-report-f{i}.pdf" for i in range(1, 7)]


async def test_a_summary_composed_before_another_job_finished_is_not_queued(
    store: SqlStore,
) -> None:
    await accept(store, composer(), NUMBERS)
    await submit(store, "j1", "f1")
    await submit(store, "j2", "f2")
    before = tuple(await store.jobs_of_message("m1"))
    assert await store.transition("j1", S.SUBMITTED, S.DELIVERED, NOW + 1)
    # Composed when j1 was still out, so it tells of j1 wrongly: the move is not made.
    outdated = GroupSummary(before[:1], NewReceipt("r1", "alice@example.com", b"summary"))
    with pytest.raises(SummaryOutdated):
        await store.transition("j2", S.SUBMITTED, S.DELIVERED, NOW + 2, group=outdated)
    job = await store.get_job("j2")
    assert job is not None and job.state is S.SUBMITTED
    assert await queued(store) == []
    now = tuple(await store.jobs_of_message("m1"))
    current = GroupSummary(now[:1], NewReceipt("r2", "alice@example.com", b"summary"))
    assert await store.transition("j2", S.SUBMITTED, S.DELIVERED, NOW + 2, group=current)
    assert [r.id for r in await queued(store)] == ["r2"]


async def test_delay_notices_come_once_and_only_when_wanted(store: SqlStore) -> None:
    notices = DelayNotices(store, composer(notify="all", delay_warning=3600), Wakeup())
    await accept(store, composer(), NUMBERS[:1])
    silent = dataclasses.replace(accepted("m2", NOW), mail_from="")  # null sender: none
    await store.accept(silent, [("j2", NUMBERS[1])])
    await notices.step(NOW + 3599)
    assert await queued(store) == []
    await notices.step(NOW + 3601)
    await notices.step(NOW + 3602)  # the next pass: nothing new
    [notice] = await queued(store)
    assert (notice.kind, notice.job_id) == ("delayed", "j1")
    assert "has not been sent after 1 hour" in text_part(parsed(notice))
    assert await store.jobs_awaiting_delay_notice(NOW + 4000, 10) == []  # j2 skipped once


async def test_no_delay_notices_unless_notify_is_all(store: SqlStore) -> None:
    await accept(store, composer(), NUMBERS[:1])
    await DelayNotices(store, composer(delay_warning=1), Wakeup()).step(NOW + 3600)
    assert await queued(store) == []
    assert len(await store.jobs_awaiting_delay_notice(NOW + 3600, 10)) == 1


@pytest.mark.parametrize("kind", ["accepted", "delayed", "final", "group"])
async def test_preview_composes_without_queueing(store: SqlStore, kind: str) -> None:
    finisher = JobFinisher(store, composer(attach_thumbnail=True), Wakeup(), FakeFaxApi())
    await accept(store, composer(), NUMBERS[:1])
    await store.accept(dataclasses.replace(accepted("m2", NOW), documents=()), [("j2", NUMBERS[1])])
    job = await store.get_job("j1")
    message = await store.message("m1")
    assert job is not None and message is not None
    if kind in ("final", "group"):
        with pytest.raises(ValueError, match="not final yet"):
            await finisher.preview(job, message, kind, NOW)
        await submit(store, "j1", "f1")
        await finish(JobFinisher(store, composer(), Wakeup()), store, "j1", delivered("f1"))
        await queued(store)
        job = await store.get_job("j1")
        assert job is not None
    receipt = await finisher.preview(job, message, kind, NOW + 3600)
    assert receipt["X-Mailfax-Receipt"] == kind
    assert await queued(store) == []


async def test_each_kind_of_receipt_is_queued_once(store: SqlStore) -> None:
    await accept(store, composer(), NUMBERS)
    delayed = NewReceipt("r1", "alice@example.com", b"x", "delayed")
    assert await store.queue_receipt("m1", "j1", delayed, NOW)
    assert not await store.queue_receipt("m1", "j1", dataclasses.replace(delayed, id="r2"), NOW)
    assert not await store.skip_receipt("m1", "j1", "delayed", "decided before", NOW)
    assert await store.skip_receipt("m1", "j2", "delayed", "the sender opted out", NOW)
    group = NewReceipt("r3", "alice@example.com", b"x", "group")
    assert await store.queue_receipt("m1", None, group, NOW)
    assert not await store.queue_receipt("m1", None, dataclasses.replace(group, id="r4"), NOW)
    assert [r.id for r in await queued(store)] == ["r1", "r3"]  # skipped ones are never sent
