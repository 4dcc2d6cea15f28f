"""Who may send: an authenticated user, a trusted relay, or nobody; and to which numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailfax.config import LimitsSettings, PolicySettings, SmtpSettings
from mailfax.networks import Networks
from mailfax.number_policy import NumberPolicy
from mailfax.policy import FaxRecipient, Refusal, read_recipient
from mailfax.quotas import QuotaLimits
from mailfax.sender_policy import SenderPatterns, normalise_address
from mailfax.users import POLICY_OVERRIDES, User

AUTH_REQUIRED = Refusal(530, "5.7.0", "Authentication required")


@dataclass(frozen=True)
class Admission:
    """How a mail's sender got in, with the number policy and quotas that apply to it."""

    kind: str  # "user" (authenticated) | "relay" (trusted network) | "open" (require_auth off)
    name: str  # the user name, or the client address
    sender_key: str  # whose per-sender quota the mail counts against
    numbers: NumberPolicy
    quotas: QuotaLimits
    user: User | None = None

    @property
    def record(self) -> str:
        """What the messages table keeps: "user:alice", "relay:10.0.0.5", "open:192.0.2.7"."""
        return f"{self.kind}:{self.name}"


class AdmissionPolicy:
    """The [smtp] sender rules, [policy] and [limits], parsed once for the listener."""

    def __init__(self, smtp: SmtpSettings, policy: PolicySettings, limits: LimitsSettings) -> None:
        self.trusted = Networks(smtp.trusted_networks)
        self.allowed_senders = SenderPatterns.parse(smtp.allowed_senders)
        self._require_auth = smtp.auth_required
        self._smtp = smtp
        self._policy = policy
        self._limits = limits
        self._numbers = NumberPolicy.from_lists(
            {key: getattr(policy, key) for key in POLICY_OVERRIDES}
        )

    def is_trusted(self, client: str) -> bool:
        return self.trusted.match(client) is not None

    def admit(self, client: str, user: User | None, mail_from: str) -> Admission | Refusal:
        """Decide at MAIL FROM (`mail_from` "" is the null sender)."""
        if user is not None:
            if not mail_from or not user.senders.allows(mail_from):
                return not_users_address(mail_from or "<>", user)
            return Admission(
                "user",
                user.name,
                f"user:{user.name}",
                self._user_numbers(user),
                self._quota_limits(user),
                user,
            )
        trusted = self.is_trusted(client)
        if not trusted and self._require_auth:
            return AUTH_REQUIRED
        if mail_from and self.allowed_senders and not self.allowed_senders.allows(mail_from):
            return Refusal(553, "5.7.1", f"<{mail_from}> may not send through this gateway")
        address = normalise_address(mail_from) if mail_from else None
        return Admission(
            "relay" if trusted else "open",
            client,
            f"sender:{address}" if address else f"client:{client}",
            self._numbers,
            self._quota_limits(None),
        )

    def recipient(self, address: str, admission: Admission | None = None) -> FaxRecipient | Refusal:
        """How RCPT TO reads `address`: the number to fax, or the refusal, under the number
        rules of the admitted sender ([policy]'s without one)."""
        verdict = read_recipient(
            address, self._smtp.domain, self._smtp.default_region, self._policy.number_check
        )
        if isinstance(verdict, Refusal):
            return verdict
        numbers = admission.numbers if admission is not None else self._numbers
        return numbers.refusal(verdict.number) or verdict

    def check_from_header(self, admission: Admission, froms: Sequence[Any]) -> Refusal | None:
        """The From header (`froms`: every one the mail has, parsed) must name the same people
        the envelope may: a user's own addresses, or allowed_senders for relays (checked at
        DATA, once headers are in). Where that binding applies, a From that RFC 5322 forbids
        (none, two, a group, no address) is refused: it would name nobody to check."""
        if admission.user is None and not self.allowed_senders:
            return None
        problem = from_header_problem(froms)
        if problem:
            return Refusal(550, "5.6.0", problem)
        for address in [a.addr_spec for a in froms[0].addresses]:
            if admission.user is not None:
                if not admission.user.senders.allows(address):
                    return not_users_address(address, admission.user)
            elif self.allowed_senders and not self.allowed_senders.allows(address):
                return Refusal(553, "5.7.1", f"From: <{address}> may not send through this gateway")
        return None

    def _user_numbers(self, user: User) -> NumberPolicy:
        if not user.policy:
            return self._numbers
        rules = {key: user.policy.get(key, getattr(self._policy, key)) for key in POLICY_OVERRIDES}
        return NumberPolicy.from_lists(rules, source=f"user {user.name}")

    def _quota_limits(self, user: User | None) -> QuotaLimits:
        overrides = user.limits if user is not None else {}
        return QuotaLimits(
            faxes_per_hour=overrides.get("faxes_per_hour", self._limits.faxes_per_hour),
            pages_per_day=overrides.get("pages_per_day", self._limits.pages_per_day),
            global_faxes_per_hour=self._limits.global_faxes_per_hour,
            global_pages_per_day=self._limits.global_pages_per_day,
        )


def from_header_problem(froms: Sequence[Any]) -> str:
    """Why the From headers (parsed) do not name the mail's author as RFC 5322 3.6.2 wants:
    exactly one From, of mailboxes each with an address (no group); "" when they do."""
    if not froms:
        return "The mail has no From header: add one with your address"
    if len(froms) > 1:
        return f"The mail has {len(froms)} From headers; send it with one, with your address"
    header = froms[0]
    if any(group.display_name is not None for group in getattr(header, "groups", ())):
        return "From: is a group (such as undisclosed-recipients:;); put your address there"
    addresses = getattr(header, "addresses", ())
    if not addresses or any(not a.username or not a.domain for a in addresses):
        return "From: names no address; put your address there"
    return ""


def not_users_address(address: str, user: User) -> Refusal:
    return Refusal(553, "5.7.1", f"<{address}> is not a sender address of user {user.name}")
