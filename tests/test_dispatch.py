"""The dispatcher on a real store and an in-memory FAX.PLUS: what it sends, and how."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

from mailfax.config import QueueSettings
from mailfax.dispatch import Dispatcher, SendPacer
from mailfax.finish import JobFinisher
from mailfax.jobs import JobState
from mailfax.receipts.compose import ReceiptComposer
from mailfax.store import open_store
from mailfax.worker import Wakeup
from tests.conftest import eventually
from tests.fakes import FakeFaxApi
from tests.test_store import accepted


async def dispatch_one(tmp_path: Path, cover_page: bool) -> FakeFaxApi:
    store = await open_store("", tmp_path)
    try:
        message = dataclasses.replace(accepted(now=1000.0), sender_name="Alice Example")
        await store.accept(message, [("j1", "+17185554567")])
        api = FakeFaxApi()
        finisher = JobFinisher(store, ReceiptComposer("gw@x.org", "gw", "fax.local"), Wakeup())
        dispatcher = Dispatcher(
            store,
            api,
            finisher,
            "+16465550001",
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
    assert send["to"] == ["+17185554567"] and send["from"] == "+16465550001"
    assert send["files"] == ["/transient-1", "/transient-2"]
    assert send["comment"] == "hello\n\nmailfax-job:j1"
    assert send["tags"] == ["mailfax", "mailfax-job:j1"]
    assert send["cover_page"] is None


async def test_cover_page_when_configured(tmp_path: Path) -> None:
    api = await dispatch_one(tmp_path, cover_page=True)
    assert api.sends[0]["cover_page"] == {
        "name_from": "Alice Example",
        "name_to": "+1 718-555-4567",
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


class SlowUploads(FakeFaxApi):
    """Each upload waits until the test lets it finish (and may move the clock meanwhile)."""

    def __init__(self, clock: list[float], advance: float = 0.0) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self._clock = clock
        self._advance = advance

    async def upload_file(self, name: str, data: bytes, file_format: str = "pdf") -> str:
        self.started.set()
        await self.release.wait()
        self._clock[0] += self._advance
        return await super().upload_file(name, data, file_format)


async def start_one(tmp_path: Path, api: FakeFaxApi, clock: list[float], lease: float) -> Any:
    store = await open_store("", tmp_path)
    await store.accept(accepted(now=1000.0), [("j1", "+17185554567")])
    finisher = JobFinisher(store, ReceiptComposer("gw@x.org", "gw", "fax.local"), Wakeup())
    dispatcher = Dispatcher(
        store, api, finisher, "+16465550001", QueueSettings(lease=lease), lambda: clock[0], Wakeup()
    )
    await dispatcher.step()
    return store, dispatcher


async def test_a_send_never_starts_on_a_lease_that_ran_out(tmp_path: Path) -> None:
    """Uploads outlasted the lease (no renewal got through): recovery may already have handed
    the job to reconciliation, so the worker must not send it."""
    clock = [1000.0]
    api = SlowUploads(clock, advance=200.0)
    store, dispatcher = await start_one(tmp_path, api, clock, lease=120.0)
    try:
        api.release.set()
        await dispatcher.drain(10)
        assert api.sends == []
        job = await store.get_job("j1")
        assert job is not None and job.state is JobState.UPLOADING
    finally:
        await store.close()


async def test_the_lease_is_renewed_while_the_worker_works(tmp_path: Path) -> None:
    clock = [1000.0]
    api = SlowUploads(clock)
    store, dispatcher = await start_one(tmp_path, api, clock, lease=0.3)
    try:
        await asyncio.wait_for(api.started.wait(), 5)
        clock[0] = 1001.0  # later renewals say so

        async def renewed() -> bool:
            with contextlib.closing(sqlite3.connect(tmp_path / "mailfax.sqlite3")) as db:
                row = db.execute("SELECT state, lease_until FROM jobs").fetchone()
            return bool(row == ("uploading", 1001.3))

        await eventually(renewed, timeout=5, what="a renewed lease")
        api.release.set()
        await dispatcher.drain(10)
        job = await store.get_job("j1")
        assert job is not None and job.state is JobState.SUBMITTED and len(api.sends) == 1
    finally:
        await store.close()
