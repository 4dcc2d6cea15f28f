"""Pure: what a send carries to prove whose fax it is, and how a lost send is settled by it.

A send whose answer was lost (a crash, a timeout) is found again at FAX.PLUS only by proof that
comes back with the fax: the job's tag in `comment.tags` (outbox entries return it), the same
marker in the comment text (fax records carry the text, if FAX.PLUS keeps it there), and the
uploaded files' names (if a record's `file_name` reflects them). Number and time are never
proof: an ERP faxes every order to one supplier, so several lost sends, and other faxes, may
share a number and a second. Without proof a lost send is left undecided for the operator:
adopting a neighbour's fax reports a fax delivered that never left, and resending while a fax
that may be its own exists faxes it twice."""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

TAG_PREFIX = "mailfax-job:"
# Only the comment's last line counts: the mail's own text may quote another job's marker.
_COMMENT_MARKER = re.compile(r"(?:\A|\n)mailfax-job:([0-9A-Za-z]+)\s*\Z")
_NAME_MARKER = re.compile(r"\Amailfax-job-([0-9A-Za-z]+)-[0-9]+")


def job_tag(job_id: str) -> str:
    """The tag each send carries in comment.tags, and the marker it adds to the comment text."""
    return f"{TAG_PREFIX}{job_id}"


def comment_with_marker(text: str, job_id: str) -> str:
    """The fax comment: the mail's text, then the job's marker on a line of its own."""
    marker = job_tag(job_id)
    return f"{text}\n\n{marker}" if text else marker


def upload_name(job_id: str, index: int, name: str) -> str:
    """The name a job's document is uploaded under: the job id (in case a fax record's
    `file_name` reflects it), then its own name (for people reading FAX.PLUS's web app),
    ending in .pdf as every faxed document is one (a converted scan.tif or terms.docx too):
    FAX.PLUS may go by the extension."""
    pdf = name if name.lower().endswith(".pdf") else f"{name}.pdf"
    return f"mailfax-job-{job_id}-{index + 1}-{pdf}"


class FaxEvidence(Protocol):
    """The fields of a fax record that can carry proof, and the ones that cannot."""

    @property
    def id(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def comment(self) -> str: ...
    @property
    def file_name(self) -> str: ...


FaxT = TypeVar("FaxT", bound=FaxEvidence)


def proven_jobs(fax: FaxEvidence) -> set[str]:
    """The job ids a fax record names as its own (normally none or one)."""
    return {job for job in (comment_proof(fax.comment), name_proof(fax.file_name)) if job}


def comment_proof(comment: str) -> str | None:
    """The job a fax comment names on its last line."""
    match = _COMMENT_MARKER.search(comment)
    return match.group(1) if match else None


def name_proof(file_name: str) -> str | None:
    """The job a file name carries (as uploaded by `upload_name`)."""
    match = _NAME_MARKER.search(file_name)
    return match.group(1) if match else None


def own_faxes(job_id: str, faxes: Sequence[FaxT], submitted_at: Mapping[str, float]) -> list[FaxT]:
    """The faxes that prove to be the job's, earliest submitted first."""
    own = [fax for fax in faxes if job_id in proven_jobs(fax)]
    return sorted(own, key=lambda fax: submitted_at.get(fax.id, 0.0))


def digits(number: str) -> str:
    return re.sub(r"\D", "", number)


class Verdict(enum.Enum):
    ADOPT = "adopt"  # this fax is provably the job's own
    WAIT = "wait"  # FAX.PLUS holds the job's fax in its outbox: its record comes later
    UNDECIDED = "undecided"  # a fax that may be the job's exists, without proof: the operator
    RESEND = "resend"  # FAX.PLUS demonstrably has no fax of this job


@dataclass(frozen=True)
class Settlement:
    verdict: Verdict
    reason: str  # a sentence for the job's history and the operator
    fax_id: str | None = None


@dataclass(frozen=True)
class LostSend:
    """What the reconciler knows of a job whose send answer was lost."""

    job_id: str
    number: str
    earliest: float  # the earliest submit time a record of its last attempt can carry


def settle_lost_send(
    send: LostSend,
    faxes: Sequence[FaxEvidence],
    submitted_at: Mapping[str, float],
    outbox_tags: Collection[str],
    taken: Collection[str],
    crowded: Iterable[float],
) -> Settlement:
    """Decide one lost send from what FAX.PLUS shows (`faxes` since the earliest attempt,
    `submitted_at` by fax id, the tags of its outbox, fax ids other jobs already hold, and the
    seconds it could not list in full)."""
    if job_tag(send.job_id) in outbox_tags:
        return Settlement(Verdict.WAIT, "FAX.PLUS holds the fax in its outbox")
    own = own_faxes(send.job_id, faxes, submitted_at)
    free = [fax for fax in own if fax.id not in taken]
    if free:
        fax = free[0]
        return Settlement(Verdict.ADOPT, f"found at FAX.PLUS as fax {fax.id}", fax.id)
    if own:
        held = ", ".join(fax.id for fax in own)
        return Settlement(Verdict.UNDECIDED, f"its fax {held} is held by another job")
    maybe = [
        fax
        for fax in faxes
        if fax.id not in taken
        and not proven_jobs(fax)
        and digits(fax.to) == digits(send.number)
        and submitted_at.get(fax.id, 0.0) >= send.earliest
    ]
    if maybe:
        # The earliest one named: the reason stays the same while more faxes arrive, so the
        # job's history notes it once.
        first = min(maybe, key=lambda fax: (submitted_at.get(fax.id, 0.0), fax.id))
        reason = (
            f"FAX.PLUS has a fax to this number since the send (the first: {first.id}) that "
            "carries no proof of whose it is"
        )
        return Settlement(Verdict.UNDECIDED, reason)
    if any(second >= send.earliest for second in crowded):
        reason = "FAX.PLUS could not list every fax of a busy second since the send"
        return Settlement(Verdict.UNDECIDED, reason)
    return Settlement(Verdict.RESEND, "FAX.PLUS has no such fax: sending again")
