"""The dispatcher on a real store and an in-memory FAX.PLUS: what it sends, and how."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mailfax.config import QueueSettings
from mailfax.dispatch import Dispatcher, SendPacer
from mailfax.finish import JobFinisher
from mailfax.jobs import JobState
from mailfax.receipts.compose import ReceiptComposer
from mailfax.store import open_store
from mailfax.worker import Wakeup
from tests.fakes import FakeFaxApi
from tests.test_store import accepted


async def dispatch_one(tmp_path: Path, cover_page: bool) -> FakeFaxApi:
    store = await open_store("", tmp_path)
    try:
        message = dataclasses.replace(accepted(now=1000.0), sender_name="Alice Example")
        await store.accept(message, [("j1", "+15551234567")])
        api = FakeFaxApi()
        finisher = JobFinisher(store, ReceiptComposer("gw@x.org", "gw", "fax.local"), Wakeup())
        dispatcher = Dispatcher(
            store,
            api,
            finisher,
            "+15550000001",
            QueueSettings(),
            lambda: 1000.0,
            Wakeup(),
            cover_page,
        )
        await dispatcher.step()
        await dispatcher.drain(10)
        job = await store.get_job("j1")
        assert job is not None and job.state is JobState.SUBMITTED and job.fax_id == "fax1-0"
        assert job.uploaded == ("/transient-1", "/transient-2")
        return api
    finally:
        await store.close()


async def test_send_carries_documents_comment_and_job_tag(tmp_path: Path) -> None:
    """What comes back with the fax proves whose it is: the tag (outbox entries), the marker
    as the comment's last line (fax records) and the upload names (a record's file_name)."""
    api = await dispatch_one(tmp_path, cover_page=False)
    assert api.uploads == ["mailfax-job-j1-1-a.pdf", "mailfax-job-j1-2-b.pdf"]
    [send] = api.sends
    assert send["to"] == ["+15551234567"] and send["from"] == "+15550000001"
    assert send["files"] == ["/transient-1", "/transient-2"]
    assert send["comment"] == "hello\n\nmailfax-job:j1"
    assert send["tags"] == ["mailfax", "mailfax-job:j1"]
    assert send["cover_page"] is None


async def test_cover_page_when_configured(tmp_path: Path) -> None:
    api = await dispatch_one(tmp_path, cover_page=True)
    assert api.sends[0]["cover_page"] == {
        "name_from": "Alice Example",
        "name_to": "+1 555-123-4567",
        "subject": "Invoice",
        "message": "hello",
    }


def test_send_pacer_holds_every_second_to_its_rate() -> None:
    now = [100.0]
    pacer = SendPacer(3, lambda: now[0])
    assert [pacer.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert pacer.reserve() == 1.0  # the fourth starts a second after the first
    now[0] = 100.5
    assert pacer.reserve() == 0.5  # a second after the second start (100.0): 101.0
    now[0] = 103.0
    assert pacer.reserve() == 0.0  # the window has moved on
