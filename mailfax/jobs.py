"""Pure job model: fax job states, the allowed transitions between them, and retry timing."""

from __future__ import annotations

import enum
import random
import secrets
from dataclasses import dataclass


class JobState(enum.StrEnum):
    QUEUED = "queued"  # accepted, waiting for a worker (or for its retry time)
    UPLOADING = "uploading"  # claimed by a worker, documents being uploaded
    SUBMITTING = "submitting"  # POST /outbox may be in flight
    SUBMITTED = "submitted"  # FAX.PLUS answered with the fax id; waiting for the result
    UNKNOWN = (
        "unknown"  # a send whose answer we did not see; must be reconciled, never resent blindly
    )
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED})

_S = JobState
ALLOWED: dict[JobState, frozenset[JobState]] = {
    _S.QUEUED: frozenset({_S.UPLOADING, _S.FAILED, _S.CANCELLED}),
    # Back to QUEUED only when FAX.PLUS demonstrably did not take the fax.
    _S.UPLOADING: frozenset({_S.SUBMITTING, _S.QUEUED, _S.FAILED, _S.CANCELLED}),
    _S.SUBMITTING: frozenset({_S.SUBMITTED, _S.UNKNOWN, _S.QUEUED, _S.FAILED}),
    _S.UNKNOWN: frozenset({_S.SUBMITTED, _S.QUEUED, _S.FAILED}),
    # SUBMITTED -> QUEUED is mailfax's own redial after busy/no answer.
    _S.SUBMITTED: frozenset({_S.DELIVERED, _S.FAILED, _S.QUEUED, _S.CANCELLED}),
    _S.DELIVERED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
}


class TransitionError(ValueError):
    """A transition the state machine does not allow."""


def check_transition(current: JobState, new: JobState) -> None:
    """Raise TransitionError unless current -> new is allowed."""
    if new not in ALLOWED[current]:
        raise TransitionError(f"job cannot move from {current} to {new}")


@dataclass(frozen=True)
class Job:
    """One fax to one recipient, as the store holds it."""

    id: str
    message_id: str
    number: str
    state: JobState
    attempts: int
    created_at: float  # epoch seconds, UTC
    run_at: float
    uploaded: tuple[str, ...] = ()
    fax_id: str | None = None
    fax_status: str | None = None
    pages_sent: int | None = None
    error: str | None = None
    submitted_at: float | None = None
    recoveries: int = 0
    redials: int = 0
    updated_at: float = 0.0
    lease_owner: str | None = None  # the claim token of the worker holding the job
    # From the final fax record (for receipts): FAX.PLUS's start time text, seconds, cost.
    fax_start_time: str | None = None
    fax_duration: float | None = None
    fax_cost: float | None = None


# FAX.PLUS statuses after which dialling again later may well succeed: busy, no answer, and
# those its docs call transient (the system was busy, a network problem, a normal clearing).
REDIAL_STATUSES = frozenset(
    {
        "failed_user_busy",
        "failed_no_answer",
        "failed_to_send",
        "failed_normal_temporary_failure",
        "failed_normal_clearing",
    }
)


# FAX.PLUS could not turn a document into fax pages.
CONVERTER_STATUSES = frozenset(
    {
        "failed_office_converter_issue",
        "failed_unknown_converter_issue",
        "failed_convert_to_tiff_issue",
        "failed_mimetype_not_supported",
        "failed_image_preparation",
        "failed_separate_file_pages_issue",
    }
)


def account_problem(status: str) -> str:
    """The operator's problem a FAX.PLUS fax status shows, or "" (a problem of the fax's)."""
    if status == "insufficient_credit":
        return status
    if status in CONVERTER_STATUSES:
        return "converter"
    return ""


def should_redial(status: str, redials: int, retries: int) -> bool:
    """mailfax's own retry of a busy or unanswered fax, up to `retries` times."""
    return status in REDIAL_STATUSES and redials < retries


def retry_delay(age: float, min_backoff: float, max_backoff: float, rng: random.Random) -> float:
    """Postfix-style: wait about as long as the job is old (seconds), clamped, +-20% jitter."""
    base = min(max(age, min_backoff), max_backoff)
    return base * rng.uniform(0.8, 1.2)


def new_id(now: float) -> str:
    """A time-ordered, unguessable id: 11 hex digits of milliseconds + 10 random hex digits."""
    return f"{int(now * 1000):011x}{secrets.token_hex(5)}"
