"""Pure receipt policy: which receipts a mail gets (loop and abuse safety, settings, opt-out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailfax.config import ReceiptsSettings
from mailfax.jobs import Job, JobState
from mailfax.mail.headers import original_headers
from mailfax.sender_policy import SenderPatterns
from mailfax.store import MessageRecord

# RFC 3834 §2: mail sent to many (or marked as junk) is not answered automatically.
MASS_MAIL_PRECEDENCE = frozenset({"bulk", "junk", "list"})


def why_no_receipt(message: MessageRecord) -> str:
    """Why this mail must get no receipt at all, or "" when it may (RFC 3834 and RFC 5321:
    never answer a null sender or automatic mail; and no backscatter: only senders who
    authenticated or came through a trusted relay)."""
    if not message.mail_from:
        return "the mail has a null sender"
    auto_submitted = message.auto_submitted.partition(";")[0].strip().lower()
    if auto_submitted not in ("", "no"):
        return f"the mail is Auto-Submitted: {auto_submitted}"
    precedence = str(original_headers(message.raw).get("Precedence", "")).strip().lower()
    if precedence in MASS_MAIL_PRECEDENCE:
        return f"the mail has Precedence: {precedence}"
    if not message.sender_verified:
        return "the sender's address is not verified (it neither authenticated nor relayed)"
    return ""


def wants_receipt(message: MessageRecord) -> bool:
    return not why_no_receipt(message)


@dataclass(frozen=True)
class ReceiptPolicy:
    """Which receipts a mail gets, by the [receipts] settings."""

    notify: str = "final"  # "final": results only; "all": also accepted and delay notices
    group: bool = False  # one summary per mail once all its recipients are final
    attach_report: bool = True
    attach_thumbnail: bool = False
    delay_warning: float = 4 * 3600.0
    no_success_receipts: SenderPatterns = field(
        default_factory=lambda: SenderPatterns(frozenset(), frozenset())
    )
    # The users who set success_receipts = false (`mailfax users set`); asked at each decision,
    # so a change to the users file applies without a restart.
    quiet_users: Callable[[], frozenset[str]] = frozenset

    @classmethod
    def from_settings(
        cls, settings: ReceiptsSettings, quiet_users: Callable[[], frozenset[str]] = frozenset
    ) -> ReceiptPolicy:
        return cls(
            notify=settings.notify,
            group=settings.group,
            attach_report=settings.attach_report,
            attach_thumbnail=settings.attach_thumbnail,
            delay_warning=settings.delay_warning,
            no_success_receipts=SenderPatterns.parse(settings.no_success_receipts),
            quiet_users=quiet_users,
        )

    def wants_success_receipts(self, message: MessageRecord) -> bool:
        """The per-sender opt-out: False for senders who only want to hear about failures,
        by [receipts] no_success_receipts (any sender) or the users file (who authenticated)."""
        if self.no_success_receipts.allows(message.mail_from):
            return False
        kind, _, user = message.admitted_by.partition(":")
        return not (kind == "user" and user in self.quiet_users())

    def wants_final(self, message: MessageRecord, delivered: bool) -> bool:
        return wants_receipt(message) and (not delivered or self.wants_success_receipts(message))

    def wants_accepted(self, message: MessageRecord) -> bool:
        """The "accepted, queued" notice is good news too: the opt-out silences it."""
        return (
            self.notify == "all" and wants_receipt(message) and self.wants_success_receipts(message)
        )

    def wants_delay_notice(self, message: MessageRecord) -> bool:
        return self.notify == "all" and wants_receipt(message)

    def wants_group_summary(self, message: MessageRecord, jobs: Sequence[Job]) -> bool:
        everything_delivered = all(job.state is JobState.DELIVERED for job in jobs)
        return self.wants_final(message, everything_delivered)
