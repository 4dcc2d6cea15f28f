"""Pure rules of whose fax is whose: what a send carries, and how a lost send is settled."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mailfax.fax_identity import (
    LostSend,
    Verdict,
    comment_with_marker,
    job_tag,
    proven_jobs,
    settle_lost_send,
    upload_name,
)

NUMBER = "+17185554567"


@dataclass(frozen=True)
class Fax:
    id: str
    to: str = NUMBER
    comment: str = ""
    file_name: str = ""


def test_a_send_carries_its_job_in_tag_comment_and_upload_names() -> None:
    assert job_tag("1a2b") == "mailfax-job:1a2b"
    assert comment_with_marker("Please sign.", "1a2b") == "Please sign.\n\nmailfax-job:1a2b"
    assert comment_with_marker("", "1a2b") == "mailfax-job:1a2b"
    assert upload_name("1a2b", 0, "invoice.pdf") == "mailfax-job-1a2b-1-invoice.pdf"
    assert upload_name("1a2b", 2, "x.PDF") == "mailfax-job-1a2b-3-x.PDF"
    # Converted documents are PDFs too, and uploaded as such.
    assert upload_name("1a2b", 0, "terms.docx") == "mailfax-job-1a2b-1-terms.docx.pdf"
    assert upload_name("1a2b", 0, "scan") == "mailfax-job-1a2b-1-scan.pdf"


@pytest.mark.parametrize(
    ("comment", "file_name", "jobs"),
    [
        ("Please sign.\n\nmailfax-job:1a2b", "", {"1a2b"}),
        ("mailfax-job:1a2b\n", "fax-to-17185554567", {"1a2b"}),
        ("", "mailfax-job-1a2b-1-invoice.pdf", {"1a2b"}),
        ("x\nmailfax-job:aa", "mailfax-job-bb-1-x.pdf", {"aa", "bb"}),
        # Quoted in the mail's text, not the comment's last line: no proof.
        ("see mailfax-job:aa\nthanks", "", set()),
        ("mailfax-job:aa in the middle", "", set()),
        ("", "invoice-mailfax-job-aa-1.pdf", set()),
        ("", "fax-to-17185554567", set()),
    ],
)
def test_what_proves_whose_a_fax_is(comment: str, file_name: str, jobs: set[str]) -> None:
    assert proven_jobs(Fax("f", comment=comment, file_name=file_name)) == jobs


LOST = LostSend("j1", NUMBER, earliest=100.0)
MINE = Fax("mine", comment=comment_with_marker("hi", "j1"))
THEIRS = Fax("theirs", comment=comment_with_marker("hi", "j2"))
BARE = Fax("bare", to="+1 718-555-4567")


@pytest.mark.parametrize(
    ("faxes", "outbox", "taken", "crowded", "verdict", "fax_id"),
    [
        ([], {"mailfax-job:j1"}, set(), [], Verdict.WAIT, None),
        ([THEIRS, MINE], set(), set(), [], Verdict.ADOPT, "mine"),
        ([MINE, BARE], set(), set(), [101.0], Verdict.ADOPT, "mine"),
        ([MINE], set(), {"mine"}, [], Verdict.UNDECIDED, None),
        ([BARE], set(), set(), [], Verdict.UNDECIDED, None),
        ([BARE], set(), {"bare"}, [], Verdict.RESEND, None),
        ([THEIRS], set(), set(), [], Verdict.RESEND, None),
        ([Fax("other", to="+19175554321")], set(), set(), [], Verdict.RESEND, None),
        ([], set(), set(), [101.0], Verdict.UNDECIDED, None),
        ([], set(), set(), [99.0], Verdict.RESEND, None),
        ([], set(), set(), [], Verdict.RESEND, None),
    ],
    ids=[
        "in the outbox: wait",
        "its own among others: adopt",
        "its own, even in a crowded second: adopt",
        "its own held by another job: undecided",
        "a bare fax to the number: undecided",
        "a bare fax another job holds: resend",
        "only another job's fax: resend",
        "a fax to another number: resend",
        "a crowded second since the send: undecided",
        "a crowded second before the send: resend",
        "nothing at all: resend",
    ],
)
def test_a_lost_send_is_settled_by_proof_only(
    faxes: list[Fax],
    outbox: set[str],
    taken: set[str],
    crowded: list[float],
    verdict: Verdict,
    fax_id: str | None,
) -> None:
    submitted = {fax.id: 101.0 for fax in faxes}
    settlement = settle_lost_send(LOST, faxes, submitted, outbox, taken, crowded)
    assert (settlement.verdict, settlement.fax_id) == (verdict, fax_id)


def test_a_bare_fax_before_the_send_is_no_candidate() -> None:
    settlement = settle_lost_send(LOST, [BARE], {"bare": 99.0}, set(), set(), [])
    assert settlement.verdict is Verdict.RESEND


def test_the_earliest_of_its_own_faxes_is_adopted() -> None:
    again = Fax("again", comment=comment_with_marker("hi", "j1"))
    submitted = {"mine": 102.0, "again": 101.0}
    settlement = settle_lost_send(LOST, [MINE, again], submitted, set(), set(), [])
    assert settlement.fax_id == "again"
    assert settlement.reason == "found at FAX.PLUS as fax again"


def test_an_undecided_reason_names_the_first_candidate_only() -> None:
    later = Fax("later")
    submitted = {"bare": 101.0, "later": 105.0}
    settlement = settle_lost_send(LOST, [later, BARE], submitted, set(), set(), [])
    assert settlement.reason == (
        "FAX.PLUS has a fax to this number since the send (the first: bare) that carries "
        "no proof of whose it is"
    )
