"""The SQL store: durable acceptance, conditional transitions, leases, receipts, webhook parking."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from mailfax.jobs import JobState, TransitionError
from mailfax.mail.model import Document, PartReport
from mailfax.quotas import QuotaCharge, QuotaExceeded
from mailfax.store import (
    LATEST,
    AcceptedMessage,
    NewReceipt,
    SchemaMismatch,
    SqlStore,
    StoreNotEmpty,
    StoreUnavailable,
    copy_store,
    open_store,
)
from mailfax.store.migrations import MIGRATIONS
from mailfax.store.pieces import PIECE_BYTES
from mailfax.worker import Wakeup
from tests.conftest import claim_one, eventually, fresh_pg_database

S = JobState


def accepted(message_id: str = "m1", now: float = 1000.0) -> AcceptedMessage:
    return AcceptedMessage(
        id=message_id,
        received_at=now,
        mail_from="alice@example.com",
        peer="127.0.0.1",
        header_message_id="<x@example.com>",
        subject="Invoice",
        auto_submitted="",
        comment="hello",
        report=(PartReport("a.pdf", "application/pdf", 10, 2, "faxed", "PDF"),),
        documents=(Document("a.pdf", b"%PDF-a", 2), Document("b.pdf", b"%PDF-b", 1)),
        raw=b"Subject: Invoice\r\n\r\nhello\r\n",
    )


async def test_accept_stores_message_documents_and_jobs(store: SqlStore) -> None:
    await store.accept(accepted(), [("j1", "+17185554567"), ("j2", "+19175554321")])
    job = await store.get_job("j1")
    assert job is not None and job.state is S.QUEUED and job.number == "+17185554567"
    assert [d.name for d in await store.documents("m1")] == ["a.pdf", "b.pdf"]
    message = await store.message("m1")
    assert message is not None and message.report[0].pages == 2 and message.comment == "hello"
    assert [e[2] for e in await store.job_events("j2")] == ["queued"]


async def test_sqlite_durability_pragmas(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    try:
        await store.accept(accepted(), [("j1", "+17185554567")])
        with sqlite3.connect(tmp_path / "mailfax.sqlite3") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()


async def test_a_large_commit_leaves_its_checkpoint_to_another_thread(tmp_path: Path) -> None:
    """SQLite copies the WAL into the database inside the commit that passes 4 MB; a batch
    holding a large mail commits without that, and the checkpoint thread copies it after."""
    store = await open_store("", tmp_path)
    database = tmp_path / "mailfax.sqlite3"
    try:
        pdf = b"%PDF-" + os.urandom(5_000_000)
        mail = dataclasses.replace(accepted(), documents=(Document("a.pdf", pdf, 2),))
        busy = threading.Event()
        assert store._db.checkpoint_thread is not None
        store._db.checkpoint_thread.submit(busy.wait)  # the checkpoint waits behind this
        await store.accept(mail, [("j1", "+17185554567")])
        assert database.stat().st_size < len(pdf)  # committed: in the WAL only
        busy.set()

        async def copied() -> bool:
            return database.stat().st_size > len(pdf)

        await eventually(copied, what="the checkpoint")
        assert [d.data for d in await store.documents("m1")] == [pdf]
    finally:
        busy.set()
        await store.close()


def _large(message_id: str = "m1", now: float = 1000.0) -> AcceptedMessage:
    """A mail of ~5.5 MB: its blobs are stored in pieces."""
    return dataclasses.replace(
        accepted(message_id, now),
        raw=b"Subject: scan\r\n\r\n" + b"x" * (PIECE_BYTES + 7),
        documents=(
            Document("a.pdf", b"%PDF-" + os.urandom(4 * PIECE_BYTES), 2),
            Document("b.pdf", b"%PDF-b", 1),
        ),
    )


async def _pieces_stored(store: SqlStore) -> tuple[int, int]:
    """Rows in blob_chunks and blobs_in_progress."""
    async with store.transaction() as conn:
        counts = [
            (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
            for table in ("blob_chunks", "blobs_in_progress")
        ]
    return counts[0], counts[1]


async def test_a_large_mail_is_stored_in_pieces_and_read_back_whole(store: SqlStore) -> None:
    mail = _large()
    await store.accept(mail, [("j1", "+17185554567")])
    assert [d.data for d in await store.documents("m1")] == [d.data for d in mail.documents]
    message = await store.message("m1")
    assert message is not None and message.raw == mail.raw
    # raw: 2 pieces, a.pdf ("%PDF-" and 4 MiB): 5, b.pdf: 1; and no mail unfinished
    assert await _pieces_stored(store) == (2 + 5 + 1, 0)
    async with store.transaction() as conn:
        row_sizes = (await conn.execute(text("SELECT length(raw) FROM messages"))).scalar_one()
    assert row_sizes == 0  # the rows point at the pieces, they do not hold a copy


async def test_a_small_mail_commits_while_a_large_one_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has one writer: a small mail waits for one piece, not for the whole large mail."""
    store = await open_store("", tmp_path)
    write_piece = store._commits._write_piece
    first_piece, go_on = asyncio.Event(), asyncio.Event()

    async def pausing(*statements: Any) -> None:
        await write_piece(*statements)
        first_piece.set()
        await go_on.wait()

    monkeypatch.setattr(store._commits, "_write_piece", pausing)
    try:
        large = asyncio.create_task(store.accept(_large(), [("j1", "+17185554567")]))
        await asyncio.wait_for(first_piece.wait(), 10)
        await asyncio.wait_for(store.accept(accepted("m2"), [("j2", "+19175554321")]), 10)
        assert await store.get_job("j2") is not None
        assert not large.done() and await store.get_job("j1") is None
        go_on.set()
        await asyncio.wait_for(large, 10)
        assert await store.get_job("j1") is not None
    finally:
        go_on.set()
        await store.close()


async def test_pieces_of_a_refused_large_mail_are_removed(store: SqlStore) -> None:
    one_an_hour = (QuotaCharge("faxes-per-hour", "sender:alice@example.com", 0.0, 3600.0, 1, 1),)
    await store.accept(
        dataclasses.replace(accepted("m0"), quota_charges=one_an_hour), [("j0", "+17185554567")]
    )
    with pytest.raises(QuotaExceeded):
        large = dataclasses.replace(_large(), quota_charges=one_an_hour)
        await store.accept(large, [("j1", "+17185554567")])
    assert await store.message("m1") is None
    assert await _pieces_stored(store) == (0, 0)


async def test_pieces_a_crash_interrupted_are_removed_after_an_hour(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.accept(_large("m1"), [("j1", "+17185554567")])
    write_piece = store._commits._write_piece
    written: list[tuple[Any, ...]] = []

    async def crashing(*statements: Any) -> None:
        if len(written) == 3:
            raise StoreUnavailable("the gateway died here")
        await write_piece(*statements)
        written.append(statements)

    monkeypatch.setattr(store._commits, "_write_piece", crashing)
    with pytest.raises(StoreUnavailable):
        await store.accept(_large("m2"), [("j2", "+17185554567")])
    assert await _pieces_stored(store) == (8 + 3, 1)
    await store.recover_expired(1000.0 + 3500)
    assert await _pieces_stored(store) == (8 + 3, 1)  # perhaps still being written
    await store.recover_expired(1000.0 + 3700)
    assert await _pieces_stored(store) == (8, 0)  # the accepted mail keeps its own
    message = await store.message("m1")
    assert message is not None and message.raw == _large().raw


async def test_failed_acceptance_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    try:
        with sqlite3.connect(tmp_path / "mailfax.sqlite3") as conn:
            conn.execute("DROP TABLE job_events")  # the last insert of accept() will fail
        with pytest.raises(StoreUnavailable):
            await store.accept(accepted(), [("j1", "+17185554567")])
        with sqlite3.connect(tmp_path / "mailfax.sqlite3") as conn:
            for table in ("messages", "documents", "jobs"):
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0  # noqa: S608
    finally:
        await store.close()


async def test_claim_takes_due_jobs_once(store: SqlStore) -> None:
    await store.accept(accepted(), [("j1", "+17185554567"), ("j2", "+19175554321")])
    first = await claim_one(store, "w1", 1000.0, 1100.0)
    second = await claim_one(store, "w2", 1000.0, 1100.0)
    assert first is not None and second is not None
    assert {first.id, second.id} == {"j1", "j2"}
    assert first.state is S.UPLOADING and first.attempts == 1
    assert await claim_one(store, "w3", 1000.0, 1100.0) is None


async def test_one_claim_fills_several_slots_oldest_first(store: SqlStore) -> None:
    await store.accept(accepted("m1", now=990.0), [("j1", "+17185554567")])
    await store.accept(accepted("m2", now=995.0), [("j2", "+19175554321")])
    claimed = await store.claim_jobs(["a", "b", "c"], 1000.0, 1100.0)
    assert [(job.id, job.lease_owner) for job in claimed] == [("j1", "a"), ("j2", "b")]
    assert await store.claim_jobs(["d"], 1000.0, 1100.0) == []


async def test_a_stopping_dispatcher_releases_only_its_own_uploads(store: SqlStore) -> None:
    await store.accept(accepted("m1", now=990.0), [("j1", "+17185554567")])
    await store.accept(accepted("m2", now=991.0), [("j2", "+19175554321")])
    await store.accept(accepted("m3", now=992.0), [("j3", "+19175554322")])
    await store.claim_jobs(["d1:a", "d1_:b", "d1:c"], 1000.0, 1100.0)
    assert await store.transition("j3", S.UPLOADING, S.SUBMITTING, 1001.0, owner="d1:c")
    assert await store.release_uploads("d1", 1002.0) == 1
    released, other, sending = [await store.get_job(j) for j in ("j1", "j2", "j3")]
    assert released is not None and other is not None and sending is not None
    assert released.state is S.QUEUED and released.lease_owner is None
    assert released.run_at == 1002.0
    assert other.state is S.UPLOADING and other.lease_owner == "d1_:b"  # another dispatcher
    assert sending.state is S.SUBMITTING  # a send in doubt stays leased
    again = await claim_one(store, "d2:x", 1002.0, 1200.0)
    assert again is not None and again.id == "j1" and again.attempts == 2


async def test_claim_respects_run_at(store: SqlStore) -> None:
    await store.accept(accepted(now=1000.0), [("j1", "+17185554567")])
    assert await claim_one(store, "w", 999.0, 1100.0) is None
    assert await store.next_job_due(999.0) == 1000.0


async def test_transitions_are_conditional(store: SqlStore) -> None:
    await store.accept(accepted(), [("j1", "+17185554567")])
    await claim_one(store, "w", 1000.0, 1100.0)
    assert await store.transition("j1", S.UPLOADING, S.SUBMITTING, 1001.0, {"uploaded": ["/p1"]})
    # A second worker (or a duplicate) expecting the old state changes nothing.
    assert not await store.transition("j1", S.UPLOADING, S.SUBMITTING, 1002.0)
    job = await store.get_job("j1")
    assert job is not None and job.uploaded == ("/p1",)
    with pytest.raises(TransitionError):
        await store.transition("j1", S.SUBMITTING, S.UPLOADING, 1003.0)


async def test_final_state_and_receipt_in_one_transaction(store: SqlStore) -> None:
    await store.accept(accepted(), [("j1", "+17185554567")])
    await claim_one(store, "w", 1000.0, 1100.0)
    await store.transition("j1", S.UPLOADING, S.SUBMITTING, 1001.0)
    await store.transition("j1", S.SUBMITTING, S.SUBMITTED, 1002.0, {"fax_id": "f1"})
    receipt = NewReceipt("r1", "alice@example.com", b"receipt")
    assert await store.transition("j1", S.SUBMITTED, S.DELIVERED, 1003.0, receipt=receipt)
    # A duplicate confirmation can neither move the job nor queue a second receipt.
    again = NewReceipt("r2", "alice@example.com", b"receipt")
    assert not await store.transition("j1", S.SUBMITTED, S.DELIVERED, 1004.0, receipt=again)
    claimed = await store.claim_receipt(1005.0, 1300.0)
    assert claimed is not None and claimed.id == "r1" and claimed.job_id == "j1"
    assert await store.claim_receipt(1005.0, 1300.0) is None  # leased
    await store.receipt_sent("r1", 1006.0)
    assert await store.claim_receipt(2000.0, 2300.0) is None


async def test_receipt_retry_and_lease_expiry(store: SqlStore) -> None:
    await store.accept(accepted(), [("j1", "+17185554567")])
    await claim_one(store, "w", 1000.0, 1100.0)
    await store.transition(
        "j1", S.UPLOADING, S.FAILED, 1001.0, receipt=NewReceipt("r1", "a@b.c", b"x")
    )
    assert (await store.claim_receipt(1001.0, 1301.0)) is not None
    # The sender crashed: after its lease the receipt comes due again.
    again = await store.claim_receipt(1302.0, 1600.0)
    assert again is not None and again.attempts == 2
    await store.receipt_later("r1", 5000.0, "smarthost down")
    assert await store.claim_receipt(4999.0, 5300.0) is None
    assert await store.next_receipt_due(4000.0) == 5000.0


async def test_each_queue_has_its_own_due_time(store: SqlStore) -> None:
    """The dispatcher waits for jobs and the receipt worker for receipts: neither is woken
    by the other's queue."""
    await store.accept(accepted(now=1000.0), [("j1", "+17185554567")])
    await claim_one(store, "w", 1000.0, 1100.0)
    receipt = NewReceipt("r1", "a@b.c", b"x")
    assert await store.transition("j1", S.UPLOADING, S.FAILED, 1001.0, receipt=receipt)
    await store.receipt_later("r1", 3000.0, "smarthost down")
    await store.accept(accepted("m2", now=2000.0), [("j2", "+19175554321")])
    assert await store.next_job_due(1500.0) == 2000.0
    assert await store.next_receipt_due(1500.0) == 3000.0
    assert await store.next_job_due(2500.0) is None  # j2 is due: nothing waits in the future
    assert await store.next_receipt_due(3000.0) is None


async def test_expired_leases_are_recovered(store: SqlStore) -> None:
    await store.accept(accepted(), [("j1", "+17185554567"), ("j2", "+19175554321")])
    a = await claim_one(store, "w", 1000.0, 1100.0)
    b = await claim_one(store, "w", 1000.0, 1100.0)
    assert a and b
    await store.transition(b.id, S.UPLOADING, S.SUBMITTING, 1001.0)
    assert await store.recover_expired(1050.0) == []
    moved = {
        job.id: (old, job.state, job.recoveries) for job, old in await store.recover_expired(1101.0)
    }
    assert moved == {a.id: (S.UPLOADING, S.QUEUED, 1), b.id: (S.SUBMITTING, S.UNKNOWN, 1)}


async def test_a_claim_that_lost_its_lease_cannot_act(store: SqlStore) -> None:
    await store.accept(accepted(), [("j1", "+17185554567")])
    first = await claim_one(store, "claim-1", 1000.0, 1100.0)
    assert first is not None
    assert await store.renew_lease("j1", "claim-1", 1150.0)
    await store.recover_expired(1151.0)  # claim-1's worker is presumed dead
    second = await claim_one(store, "claim-2", 1152.0, 1300.0)
    assert second is not None and second.attempts == 2
    # The first worker wakes up: its lease is gone, so it can neither renew nor move the job.
    assert not await store.renew_lease("j1", "claim-1", 1400.0)
    assert not await store.transition("j1", S.UPLOADING, S.SUBMITTING, 1153.0, owner="claim-1")
    assert await store.transition("j1", S.UPLOADING, S.SUBMITTING, 1153.0, owner="claim-2")


async def test_webhook_events_are_deduplicated(store: SqlStore) -> None:
    assert await store.park_fax_event("f1", "h1", "success", 1.0)
    assert not await store.park_fax_event("f1", "h1", "success", 2.0)
    assert await store.park_fax_event("f1", "h2", "success", 2.0)  # another attempt's hook
    events = await store.due_fax_events(10.0, 10)
    assert [(e.fax_id, e.hook_id) for e in events] == [("f1", "h1"), ("f1", "h2")]
    await store.fax_event_later(events[0].id, 100.0)
    await store.fax_event_done(events[1].id)
    assert await store.due_fax_events(10.0, 10) == []
    assert [e.attempts for e in await store.due_fax_events(100.0, 10)] == [1]


async def test_postgresql_schema_is_checked_at_start(tmp_path: Path) -> None:
    async with fresh_pg_database() as url:
        with pytest.raises(SchemaMismatch, match="run `mailfax db upgrade`"):
            await open_store(url, tmp_path)
        admin = await open_store(url, tmp_path, check_schema=False)
        assert [m.version for m in await admin.upgrade()] == [m.version for m in MIGRATIONS]
        assert await admin.upgrade() == []  # idempotent
        await admin.close()
        store = await open_store(url, tmp_path)  # now accepted
        await store.close()
        raw = await asyncpg.connect(url)
        await raw.execute("UPDATE schema_version SET version = version + 1")
        await raw.close()
        with pytest.raises(SchemaMismatch, match="newer than this mailfax"):
            await open_store(url, tmp_path)


async def test_sqlite_upgrades_itself(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    assert await store.schema_version() == LATEST
    await store.close()


async def test_a_version_1_database_gains_the_tables_of_large_mails(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    await store.close()
    with sqlite3.connect(tmp_path / "mailfax.sqlite3") as conn:
        conn.execute("DROP TABLE blob_chunks")
        conn.execute("DROP TABLE blobs_in_progress")
        conn.execute("UPDATE schema_version SET version = 1")
    store = await open_store("", tmp_path)  # SQLite upgrades itself
    try:
        assert await store.schema_version() == LATEST
        await store.accept(_large(), [("j1", "+17185554567")])
        assert await _pieces_stored(store) == (8, 0)
    finally:
        await store.close()


async def test_notify_wakes_listeners(store: SqlStore) -> None:
    if store.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite instances poll")
    woken = Wakeup()
    async with await store.listen({"mailfax_jobs": woken}):
        await store.accept(accepted(), [("j1", "+17185554567")])
        # Returns early only if the NOTIFY arrived (otherwise after 30 s: a timeout here).
        await asyncio.wait_for(woken.wait(30), 5)


async def test_database_clock(store: SqlStore) -> None:
    assert abs(await store.db_now() - time.time()) < 5


async def test_copy_sqlite_to_postgresql(tmp_path: Path) -> None:
    source = await open_store("", tmp_path)
    await source.accept(accepted(), [("j1", "+17185554567"), ("j2", "+19175554321")])
    large = _large("m-large")
    await source.accept(large, [("j3", "+17185554567")])
    await claim_one(source, "w", 1000.0, 1100.0)
    async with fresh_pg_database() as url:
        target = await open_store(url, tmp_path, check_schema=False)
        await target.upgrade()
        try:
            counts = await copy_store(source, target)
            assert counts["jobs"] == 3 and counts["messages"] == 2 and counts["documents"] == 4
            job = await target.get_job("j2")
            assert job is not None and job.number == "+19175554321"
            assert [d.data for d in await target.documents("m1")] == [b"%PDF-a", b"%PDF-b"]
            copied = [d.data for d in await target.documents("m-large")]
            assert copied == [d.data for d in large.documents]
            # Sequences moved past the copied ids: new history rows still insert.
            claimed = await claim_one(target, "w2", 1000.0, 1100.0)
            assert claimed is not None
            with pytest.raises(StoreNotEmpty):
                await copy_store(source, target)
        finally:
            await target.close()
            await source.close()


async def test_concurrent_acceptances_share_commits_but_fail_alone(store: SqlStore) -> None:
    good = [store.accept(accepted(f"m{i}"), [(f"j{i}", "+17185554567")]) for i in range(20)]
    clash = store.accept(accepted("m3"), [("j-clash", "+17185554567")])  # a duplicate id
    results = await asyncio.gather(*good, clash, return_exceptions=True)
    assert results[:-1] == [None] * 20
    assert isinstance(results[-1], StoreUnavailable)
    assert all([await store.get_job(f"j{i}") for i in range(20)])
    assert await store.get_job("j-clash") is None
