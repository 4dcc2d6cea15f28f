"""The reconciler, on a real store and an in-memory FAX.PLUS: every unclear fate settled once."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailfax.config import FaxplusSettings, QueueSettings
from mailfax.fax_identity import comment_with_marker, job_tag, upload_name
from mailfax.faxplus import LIST_PAGE, FaxRecord, OutboxRecord, TransientApiError, format_api_time
from mailfax.finish import JobFinisher
from mailfax.jobs import JobState
from mailfax.receipts.compose import ReceiptComposer
from mailfax.reconcile import Reconciler
from mailfax.store import SqlStore, open_store
from mailfax.worker import Wakeup
from tests.conftest import claim_one
from tests.fakes import FakeFaxApi, fax_record
from tests.gateway import text_part
from tests.test_store import accepted

S = JobState
NOW = 1_800_000_000.0
QUEUE = QueueSettings(reconcile_after=60, max_lifetime=5 * 86400, max_recoveries=3)
FAXPLUS = FaxplusSettings(webhook_grace=600)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class World:
    store: SqlStore
    api: FakeFaxApi
    clock: Clock
    reconciler: Reconciler


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = await open_store("", tmp_path)
    api = FakeFaxApi()
    clock = Clock()
    finisher = JobFinisher(store, ReceiptComposer("gw@example.com", "gw", "fax.local"), Wakeup())
    reconciler = Reconciler(store, api, finisher, QUEUE, FAXPLUS, clock, Wakeup(), Wakeup())
    yield World(store, api, clock, reconciler)
    await store.close()


async def accept(store: SqlStore, job_id: str = "j1", number: str = "+17185554567") -> None:
    await store.accept(accepted(f"m-{job_id}", NOW), [(job_id, number)])


async def make_unknown(world: World, job_id: str = "j1", number: str = "+17185554567") -> None:
    """A job whose send was attempted at NOW and whose answer was lost."""
    await accept(world.store, job_id, number)
    claimed = await claim_one(world.store, "w", NOW, NOW + 10)
    assert claimed is not None
    await world.store.transition(job_id, S.UPLOADING, S.SUBMITTING, NOW, {"submitted_at": NOW})
    await world.store.transition(job_id, S.SUBMITTING, S.UNKNOWN, NOW)
    world.clock.now = NOW + 61  # past reconcile_after


async def receipt_text(world: World) -> str:
    receipt = await world.store.claim_receipt(world.clock.now, world.clock.now + 60)
    assert receipt is not None
    parsed = email.message_from_bytes(receipt.content, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    text = text_part(parsed)
    assert isinstance(text, str)
    return text


async def state(world: World, job_id: str = "j1") -> JobState:
    job = await world.store.get_job(job_id)
    assert job is not None
    return job.state


async def test_a_lost_send_found_in_the_outbox_waits(world: World) -> None:
    await make_unknown(world)
    world.api.outbox.append(OutboxRecord("ob1", "submitted", ("+17185554567",), (job_tag("j1"),)))
    await world.reconciler.step()
    assert await state(world) is S.UNKNOWN
    assert world.api.sends == []


def own_fax(
    fax_id: str, job_id: str, second: float = NOW + 1, comment: str = "", file_name: str = ""
) -> FaxRecord:
    """A fax record to +17185554567 carrying the job's marker in its comment (or the proof
    given)."""
    if not (comment or file_name):
        comment = comment_with_marker(f"mail of {job_id}", job_id)
    submitted = format_api_time(second)
    return fax_record(
        fax_id, "+17185554567", "success", submitted, comment=comment, file_name=file_name
    )


async def test_a_lost_send_found_among_sent_faxes_is_adopted(world: World) -> None:
    await make_unknown(world)
    # Another fax to the same number, before the attempt, must not be taken for ours.
    world.api.faxes["old"] = fax_record(
        "old", "+17185554567", "success", format_api_time(NOW - 3600)
    )
    world.api.faxes["f9"] = own_fax("f9", "j1")
    await world.reconciler.step()
    job = await world.store.get_job("j1")
    assert job is not None and job.state is S.SUBMITTED and job.fax_id == "f9"
    # The confirmer is asked to fetch its status now.
    assert [e.fax_id for e in await world.store.due_fax_events(world.clock.now, 10)] == ["f9"]


async def test_a_fax_owned_by_another_job_is_not_adopted(world: World) -> None:
    await accept(world.store, "j0")
    await claim_one(world.store, "w", NOW, NOW + 10)
    await world.store.transition("j0", S.UPLOADING, S.SUBMITTING, NOW)
    await world.store.transition("j0", S.SUBMITTING, S.SUBMITTED, NOW, {"fax_id": "f9"})
    await make_unknown(world)
    world.api.faxes["f9"] = fax_record("f9", "+17185554567", "success", format_api_time(NOW + 1))
    await world.reconciler.step()
    assert await state(world) is S.QUEUED  # demonstrably not at FAX.PLUS: send again


async def test_a_lost_send_that_never_arrived_is_sent_again(world: World) -> None:
    await make_unknown(world)
    await world.reconciler.step()
    job = await world.store.get_job("j1")
    assert job is not None and job.state is S.QUEUED and job.run_at <= world.clock.now


async def test_a_lost_send_in_a_crowded_second_waits_for_its_webhook(world: World) -> None:
    await make_unknown(world)
    # A full listing page of faxes in one second after the attempt: FAX.PLUS may have more
    # there than it can list, ours among them, so sending again could fax it twice.
    for i in range(LIST_PAGE):
        number = f"+1646555{i:04d}"
        world.api.faxes[f"o{i}"] = fax_record(f"o{i}", number, "success", format_api_time(NOW + 1))
    world.api.unlisted_seconds = {float(int(NOW + 1))}  # the listing could not show them all
    await world.reconciler.step()
    assert await state(world) is S.UNKNOWN and world.api.sends == []
    # Its webhook came (parked: no job had that fax id): the fax is looked up and adopted.
    world.api.unlisted["lost"] = own_fax("lost", "j1")
    assert await world.store.park_fax_event("lost", "hook-lost", "success", world.clock.now)
    await world.reconciler.step()
    job = await world.store.get_job("j1")
    assert job is not None and job.state is S.SUBMITTED and job.fax_id == "lost"


async def test_not_reconciled_before_reconcile_after(world: World) -> None:
    await make_unknown(world)
    world.clock.now = NOW + 30
    await world.reconciler.step()
    assert await state(world) is S.UNKNOWN


async def test_three_crashes_quarantine_the_job_and_tell_the_sender(world: World) -> None:
    await accept(world.store)
    for crash in range(3):
        claimed = await claim_one(world.store, "w", world.clock.now, world.clock.now + 10)
        assert claimed is not None, crash
        world.clock.now += 11  # the worker died; its lease runs out
        await world.reconciler.step()
    job = await world.store.get_job("j1")
    assert job is not None and job.state is S.FAILED and job.fax_status == "quarantined"
    assert "put it aside" in await receipt_text(world)


async def test_jobs_expire_after_max_lifetime(world: World) -> None:
    await accept(world.store)
    world.clock.now = NOW + 5 * 86400 + 1
    await world.reconciler.step()
    job = await world.store.get_job("j1")
    assert job is not None and job.state is S.FAILED and job.fax_status == "expired"
    assert "not sent within 5 days" in await receipt_text(world)


async def test_silent_faxes_are_polled_after_webhook_grace(world: World) -> None:
    await accept(world.store)
    await claim_one(world.store, "w", NOW, NOW + 10)
    await world.store.transition("j1", S.UPLOADING, S.SUBMITTING, NOW)
    await world.store.transition("j1", S.SUBMITTING, S.SUBMITTED, NOW, {"fax_id": "f1"})
    world.clock.now = NOW + 599
    await world.reconciler.step()
    assert await world.store.due_fax_events(world.clock.now, 10) == []
    world.clock.now = NOW + 601
    await world.reconciler.step()
    await world.reconciler.step()  # not twice while the first poll is pending
    events = await world.store.due_fax_events(world.clock.now, 10)
    assert [(e.fax_id, e.hook_id) for e in events] == [("f1", "backstop")]


async def test_a_fax_to_the_number_without_proof_leaves_the_send_undecided(world: World) -> None:
    """Number and time are no proof: neither adopted (it may be another's) nor resent (it may
    be its own); noted once in the history, however many passes look at it."""
    await make_unknown(world)
    world.api.faxes["f9"] = fax_record("f9", "+17185554567", "success", format_api_time(NOW + 1))
    for _ in range(3):
        await world.reconciler.step()
    job = await world.store.get_job("j1")
    assert job is not None and job.state is S.UNKNOWN and job.fax_id is None
    assert world.api.sends == []
    notes = [e for e in await world.store.job_events("j1") if e[1] == e[2] == "unknown"]
    assert len(notes) == 1 and "f9" in notes[0][3] and "no proof" in notes[0][3]
    # Proof that comes later (the comment as FAX.PLUS now shows it) settles it.
    world.api.faxes["f9"] = own_fax("f9", "j1")
    await world.reconciler.step()
    assert await state(world) is S.SUBMITTED


async def test_a_fax_whose_file_name_names_the_job_is_adopted(world: World) -> None:
    await make_unknown(world)
    world.api.faxes["f9"] = own_fax("f9", "j1", file_name=upload_name("j1", 0, "a.pdf"))
    await world.reconciler.step()
    job = await world.store.get_job("j1")
    assert job is not None and job.state is S.SUBMITTED and job.fax_id == "f9"


async def make_same_number_burst(world: World, jobs: list[str]) -> None:
    """Lost sends of several jobs to one number, all attempted within one second."""
    for job_id in jobs:
        await accept(world.store, job_id)
    for _ in jobs:
        assert await claim_one(world.store, "w", NOW, NOW + 10) is not None
    for job_id in jobs:
        await world.store.transition(job_id, S.UPLOADING, S.SUBMITTING, NOW, {"submitted_at": NOW})
        await world.store.transition(job_id, S.SUBMITTING, S.UNKNOWN, NOW)
    world.clock.now = NOW + 61


async def outcomes(world: World, jobs: list[str]) -> dict[str, tuple[JobState, str | None]]:
    found = {}
    for job_id in jobs:
        job = await world.store.get_job(job_id)
        assert job is not None
        found[job_id] = (job.state, job.fax_id)
    return found


async def test_lost_sends_to_one_number_each_adopt_their_own_fax(world: World) -> None:
    """The ERP case: four lost sends to one number in one second; FAX.PLUS has the faxes of
    j3 and j1 (listed in that order, j3's first): each adopts its own, and the two that
    FAX.PLUS has no fax of are sent again."""
    jobs = ["j1", "j2", "j3", "j4"]
    await make_same_number_burst(world, jobs)
    world.api.faxes["fax-of-j3"] = own_fax("fax-of-j3", "j3", NOW)
    world.api.faxes["fax-of-j1"] = own_fax("fax-of-j1", "j1", NOW + 1)
    await world.reconciler.step()
    assert await outcomes(world, jobs) == {
        "j1": (S.SUBMITTED, "fax-of-j1"),
        "j2": (S.QUEUED, None),
        "j3": (S.SUBMITTED, "fax-of-j3"),
        "j4": (S.QUEUED, None),
    }


async def test_lost_sends_to_one_number_without_proof_all_stay_undecided(world: World) -> None:
    """FAX.PLUS's records carry no comment or name of ours (the docs do not promise them):
    two faxes went to the number, four sends were lost. Nobody's fax is adopted, nobody is
    sent again."""
    jobs = ["j1", "j2", "j3", "j4"]
    await make_same_number_burst(world, jobs)
    for fax_id in ("fa", "fb"):
        world.api.faxes[fax_id] = fax_record(
            fax_id, "+17185554567", "success", format_api_time(NOW + 1)
        )
    await world.reconciler.step()
    assert await outcomes(world, jobs) == {job: (S.UNKNOWN, None) for job in jobs}
    assert world.api.sends == []


async def test_proof_for_some_lost_sends_leaves_the_others_undecided(world: World) -> None:
    """j2's fax proves its own; a fax without proof may be j1's, j3's or j4's: they wait."""
    jobs = ["j1", "j2", "j3", "j4"]
    await make_same_number_burst(world, jobs)
    world.api.faxes["fb"] = own_fax("fb", "j2")
    world.api.faxes["fx"] = fax_record("fx", "+17185554567", "success", format_api_time(NOW))
    await world.reconciler.step()
    assert await outcomes(world, jobs) == {
        "j1": (S.UNKNOWN, None),
        "j2": (S.SUBMITTED, "fb"),
        "j3": (S.UNKNOWN, None),
        "j4": (S.UNKNOWN, None),
    }


async def test_a_mail_quoting_another_jobs_marker_proves_nothing_for_it(world: World) -> None:
    """A mail body may quote a marker (a forwarded receipt): only the last line counts."""
    jobs = ["j1", "j2"]
    await make_same_number_burst(world, jobs)
    quoting = comment_with_marker("see mailfax-job:j2\nthanks", "j1")
    world.api.faxes["f1"] = own_fax("f1", "j1", comment=quoting)
    await world.reconciler.step()
    assert await outcomes(world, jobs) == {"j1": (S.SUBMITTED, "f1"), "j2": (S.QUEUED, None)}


async def test_an_undecided_send_does_not_expire(world: World) -> None:
    """ "Not sent within 5 days" could be false for a send that may have gone out."""
    await make_unknown(world)
    world.api.faxes["f9"] = fax_record("f9", "+17185554567", "success", format_api_time(NOW + 1))
    world.clock.now = NOW + 5 * 86400 + 1
    await world.reconciler.step()
    assert await state(world) is S.UNKNOWN


class Throttled(FakeFaxApi):
    """FAX.PLUS answering 429 with a long Retry-After to every listing."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def list_outbox(self) -> list[OutboxRecord]:
        self.asked += 1
        raise TransientApiError("HTTP 429: slow down", retry_after=30.0)


async def test_a_429_pauses_reconciliation_for_its_retry_after(world: World) -> None:
    api = Throttled()
    world.reconciler = Reconciler(
        world.store,
        api,
        world.reconciler._finisher,
        QUEUE,
        FAXPLUS,
        world.clock,
        Wakeup(),
        Wakeup(),
    )
    await make_unknown(world)
    await world.reconciler.step()
    world.clock.now += 29
    await world.reconciler.step()
    assert api.asked == 1 and await state(world) is S.UNKNOWN
    world.clock.now += 2
    await world.reconciler.step()
    assert api.asked == 2
