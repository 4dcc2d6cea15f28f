"""The confirmer on a real store and an in-memory FAX.PLUS whose ids disagree: a fax is found
under whichever id FAX.PLUS lists it, by the proof it carries, never by number and time."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailfax.config import QueueSettings
from mailfax.fax_identity import comment_with_marker
from mailfax.faxplus import SentListing, format_api_time
from mailfax.finish import JobFinisher
from mailfax.jobs import JobState
from mailfax.metrics import REGISTRY
from mailfax.receipts.compose import ReceiptComposer
from mailfax.store import SqlStore, open_store
from mailfax.webhooks import FaxStatusConfirmer
from mailfax.worker import Wakeup
from tests.conftest import claim_one
from tests.fakes import FakeFaxApi, fax_record
from tests.test_store import accepted

S = JobState
NOW = 1_800_000_000.0


class Desk:
    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.api = FakeFaxApi()
        self.now = NOW
        finisher = JobFinisher(
            store, ReceiptComposer("gw@example.com", "gw", "fax.local"), Wakeup()
        )
        self.confirmer = FaxStatusConfirmer(
            store, self.api, finisher, lambda: self.now, QueueSettings(), retries=2
        )

    async def submitted(self, job_id: str, sent_as: str) -> None:
        """A job whose send answered with id `sent_as`."""
        await self.store.accept(accepted(f"m-{job_id}", NOW), [(job_id, "+17185554567")])
        assert await claim_one(self.store, "w", NOW, NOW + 10) is not None
        await self.store.transition(job_id, S.UPLOADING, S.SUBMITTING, NOW, {"submitted_at": NOW})
        await self.store.transition(job_id, S.SUBMITTING, S.SUBMITTED, NOW, {"fax_id": sent_as})

    def listed(self, fax_id: str, job_id: str | None) -> None:
        """A fax record FAX.PLUS lists under `fax_id` (with the job's marker, if given)."""
        comment = comment_with_marker("hello", job_id) if job_id else ""
        self.api.faxes[fax_id] = fax_record(
            fax_id, "+17185554567", "success", format_api_time(NOW + 1), comment=comment
        )

    async def state(self, job_id: str) -> tuple[JobState, str | None]:
        job = await self.store.get_job(job_id)
        assert job is not None
        return job.state, job.fax_id


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    store = await open_store("", tmp_path)
    yield Desk(store)
    await store.close()


async def test_a_fax_unknown_under_its_send_id_is_found_by_its_proof(desk: Desk) -> None:
    """GET /faxes/<send id> answers 404 (the docs do not promise the ids agree): the listing's
    record that names the job is its fax; its id is learnt and its result finishes the job."""
    await desk.submitted("j1", sent_as="send-1")
    desk.listed("rec-9", None)  # another fax to the number, without proof: not taken
    desk.listed("rec-1", "j1")
    assert await desk.store.park_fax_event("send-1", "backstop", "", NOW)
    await desk.confirmer.step()
    assert await desk.state("j1") == (S.DELIVERED, "rec-1")
    notes = [e[3] for e in await desk.store.job_events("j1") if e[1] == e[2] == "submitted"]
    assert notes == ["FAX.PLUS lists its fax as rec-1 (its send answered send-1)"]


async def test_without_proof_a_fax_unknown_under_its_send_id_is_not_guessed(desk: Desk) -> None:
    await desk.submitted("j1", sent_as="send-1")
    desk.listed("rec-1", None)
    assert await desk.store.park_fax_event("send-1", "backstop", "", NOW)
    await desk.confirmer.step()
    assert await desk.state("j1") == (S.SUBMITTED, "send-1")


async def test_a_webhook_under_an_id_no_job_has_teaches_the_listed_ids(desk: Desk) -> None:
    """The webhook's data.id is a third id (the SDK: it may differ from the listing's): the
    faxes listed since then that prove whose they are are confirmed under their listed ids;
    jobs of other faxes are left alone."""
    await desk.submitted("j1", sent_as="send-1")
    await desk.submitted("j2", sent_as="send-2")
    desk.listed("rec-1", "j1")
    assert await desk.store.park_fax_event("hook-77", "hook-77", "success", NOW + 2)
    desk.now = NOW + 3
    await desk.confirmer.step()  # learns rec-1 and parks its confirmation
    await desk.confirmer.step()
    assert await desk.state("j1") == (S.DELIVERED, "rec-1")
    assert await desk.state("j2") == (S.SUBMITTED, "send-2")


def problems(kind: str) -> float:
    value = REGISTRY.get_sample_value("mailfax_faxplus_account_problems_total", {"problem": kind})
    return value or 0.0


async def test_a_fax_refused_for_want_of_credit_waits_in_the_queue(desk: Desk) -> None:
    """Every queued fax would fail the same way: none is failed for it, none uses a redial."""
    await desk.submitted("j1", sent_as="f1")
    desk.listed("f1", "j1")
    desk.api.faxes["f1"] = dataclasses.replace(desk.api.faxes["f1"], status="insufficient_credit")
    before = problems("insufficient_credit")
    assert await desk.store.park_fax_event("f1", "f1", "insufficient_credit", NOW)
    await desk.confirmer.step()
    job = await desk.store.get_job("j1")
    assert job is not None and (job.state, job.redials, job.fax_id) == (S.QUEUED, 0, None)
    assert job.error == "insufficient_credit: waiting for the FAX.PLUS account to have credit"
    assert job.run_at > NOW and job.fax_status == "insufficient_credit"
    assert problems("insufficient_credit") == before + 1


async def test_a_converter_failure_fails_the_fax_and_tells_the_operator(desk: Desk) -> None:
    await desk.submitted("j1", sent_as="f1")
    desk.listed("f1", "j1")
    failed = "failed_office_converter_issue"
    desk.api.faxes["f1"] = dataclasses.replace(desk.api.faxes["f1"], status=failed)
    before = problems("converter")
    assert await desk.store.park_fax_event("f1", "f1", failed, NOW)
    await desk.confirmer.step()
    assert await desk.state("j1") == (S.FAILED, "f1")
    assert problems("converter") == before + 1


class CountedListings(FakeFaxApi):
    def __init__(self) -> None:
        super().__init__()
        self.listings = 0

    async def list_sent_faxes(self, after: float) -> SentListing:
        self.listings += 1
        return await super().list_sent_faxes(after)


@pytest.mark.parametrize(("ids_agree", "listings"), [(True, 0), (False, 1)])
async def test_where_the_live_test_saw_the_ids_agree_no_listing_is_asked(
    desk: Desk, ids_agree: bool, listings: int
) -> None:
    """An unknown webhook id is then an early or foreign one: listing could teach nothing."""
    api = CountedListings()
    finisher = JobFinisher(desk.store, ReceiptComposer("gw@x.org", "gw", "fax.local"), Wakeup())
    confirmer = FaxStatusConfirmer(
        desk.store, api, finisher, lambda: NOW, QueueSettings(), 2, ids_agree=ids_agree
    )
    assert await desk.store.park_fax_event("hook-1", "hook-1", "success", NOW)
    await confirmer.step()
    assert api.listings == listings
