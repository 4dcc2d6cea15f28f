"""Pure: what a receipt says, as the fields its templates are given (see docs/receipts.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailfax.faxplus import parse_api_time
from mailfax.jobs import REDIAL_STATUSES, Job, JobState
from mailfax.mail.model import PartReport
from mailfax.policy import format_for_humans
from mailfax.receipts.reasons import MAILFAX_REASONS, NOTHING_SENT, detail_for_sender, reason_for
from mailfax.store import MessageRecord

KINDS = ("accepted", "delayed", "final", "group")
# The mail's text, shown so the sender recognises the fax; longer is cut.
MAX_COMMENT_CHARS = 300


@dataclass(frozen=True)
class FaxOutcome:
    """How a job ended, as far as the receipt is concerned."""

    delivered: bool
    status: str  # a FAX.PLUS status, or mailfax's own e.g. "rejected"
    fax_id: str | None
    pages_sent: int | None
    start_time: str = ""  # FAX.PLUS's "YYYY-MM-DD HH:MM:SS" (UTC)
    detail: str = ""  # FAX.PLUS's error text when the API refused the fax
    duration: float | None = None  # seconds on the line
    cost: float | None = None  # as FAX.PLUS counts it


def outcome_of(job: Job) -> FaxOutcome:
    """The outcome a final job recorded (the store keeps what the receipt needs)."""
    return FaxOutcome(
        delivered=job.state is JobState.DELIVERED,
        status=job.fax_status or "",
        fax_id=job.fax_id,
        pages_sent=job.pages_sent,
        start_time=job.fax_start_time or "",
        detail=job.error or "",
        duration=job.fax_duration,
        cost=job.fax_cost,
    )


@dataclass(frozen=True)
class ConfirmationReport:
    """FAX.PLUS's confirmation report of one fax, or why it could not be had."""

    fax_id: str
    pdf: bytes | None
    problem: str = ""


@dataclass(frozen=True)
class Attachments:
    """What the I/O layer fetched or rendered before composing: never the mail's documents."""

    reports: Mapping[str, ConfirmationReport] = field(default_factory=dict)  # by fax id
    thumbnail: bytes | None = None  # PNG of the first faxed page


NO_ATTACHMENTS = Attachments()


@dataclass(frozen=True)
class FaxFields:
    """One recipient's fax."""

    job_id: str
    number: str  # for people: +1 718-555-4567
    number_e164: str  # +17185554567
    # queued | waiting to dial again | sending | delivered | partly delivered | failed | cancelled
    state: str
    final: bool
    delivered: bool
    headline: str  # the result in one sentence
    result: str  # the result and its reason in a few words: "not delivered: line busy"
    status: str  # FAX.PLUS status, or mailfax's own (rejected, expired, ...); "" for none yet
    faxplus_status: str  # the status when it is FAX.PLUS's, else ""
    status_code: str  # RFC 3463, as in the delivery-status part
    what_happened: str
    retried: str  # whether mailfax tried again
    what_to_do: str
    detail: str  # FAX.PLUS's own words, or the canceller's reason, when there are some
    pages_sent: int | None
    pages_submitted: int
    pages: str  # "3 of 6 sent: pages 1-3 went through, pages 4-6 did not"
    # How many of the documents' pages, from the first, went through; None when not known.
    pages_through: int | None
    fax_id: str
    started: str  # "2026-11-26 10:00:00 UTC", or ""
    duration: str  # "1 min 30 s", or ""
    cost: str  # "2 FAX.PLUS credits", or "" when not known
    attempts: int
    report_attached: bool
    report_problem: str  # why a wanted confirmation report is not attached, else ""


@dataclass(frozen=True)
class DocumentLine:
    """One part of the mail as the receipt lists it: whether it was sent, when that is known."""

    name: str
    faxed: bool  # chosen for the fax (as it is, or converted to PDF)
    words: str  # "sent, 3 pages", "included, 1 page (converted to PDF)", "not faxed (...)"


@dataclass(frozen=True)
class MailFields:
    """The sender's mail."""

    queue_id: str
    sender: str
    subject: str
    received: str
    comment: str  # the mail's text (the fax comment), cut to MAX_COMMENT_CHARS
    parts: tuple[PartReport, ...]  # every part: name, content_type, size, pages, action, reason
    faxed_parts: tuple[PartReport, ...]
    ignored_parts: tuple[PartReport, ...]
    pages_submitted: int


@dataclass(frozen=True)
class ReceiptFields:
    """Everything one receipt says; its templates get each field as a variable."""

    kind: str  # accepted | delayed | final | group
    tone: str  # good | partial | bad | waiting (the HTML's colour)
    title: str  # the receipt's Subject
    headline: str  # the receipt's news in one sentence
    mail: MailFields
    faxes: tuple[FaxFields, ...]  # every recipient this receipt is about
    fax: FaxFields | None  # the one fax of a delayed or final receipt
    documents: tuple[DocumentLine, ...]  # every part of the mail, sent or not when known
    thumbnail_attached: bool
    delay: str  # how long a delayed fax has waited, e.g. "4 hours"
    gives_up: str  # when mailfax stops trying (accepted, delayed)
    gateway: str  # the reporting host

    def variables(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def pages_submitted(message: MessageRecord) -> int:
    return sum(part.pages or 0 for part in message.report if part.is_faxed)


def plural(count: int | None, noun: str) -> str:
    """3 pages, 1 page, ? pages."""
    return f"{'?' if count is None else count} {noun}{'' if count == 1 else 's'}"


def when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float) -> str:
    """4 hours, 1 hour 30 minutes, 45 seconds: the two largest units."""
    units = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
    left = round(seconds)
    words = []
    for name, size in units:
        count, left = divmod(left, size)
        if count:
            words.append(plural(count, name))
    return " ".join(words[:2]) or "0 seconds"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _cost(cost: float | None) -> str:
    return "" if cost is None else f"{cost:g} FAX.PLUS credit{'' if cost == 1 else 's'}"


def _started(start_time: str) -> str:
    moment = parse_api_time(start_time) if start_time else None
    return when(moment) if moment is not None else start_time


def _page_span(first: int, last: int) -> str:
    return f"page {first}" if first == last else f"pages {first}-{last}"


def _pages_through(
    state: str, pages_sent: int | None, message: MessageRecord, cover_page: bool
) -> int | None:
    """How many of the documents' pages, from the first, went through. FAX.PLUS reports only
    how many pages went; a fax sends its pages in order, so a partial fax's are the first ones,
    unless a cover page (counted or not: FAX.PLUS does not say) or a part of unknown length
    leaves their numbers unsure. `pages_sent` is None when not known."""
    submitted = pages_submitted(message)
    if state == "delivered":
        return submitted
    if pages_sent == 0:
        return 0
    faxed = [part for part in message.report if part.is_faxed]
    if pages_sent is None or cover_page or any(part.pages is None for part in faxed):
        return None
    return pages_sent if pages_sent < submitted else None


def _pages(counted: int | None, submitted: int, through: int | None, final: bool) -> str:
    """The receipt's Pages line: how many went (`counted`), and for a partial fax which."""
    if not final:
        return plural(submitted, "page")
    if counted is None:
        return f"{plural(submitted, 'page')}; how many went through is not known"
    line = f"{counted} of {submitted} sent"
    if through and through < submitted:
        went, missed = _page_span(1, through), _page_span(through + 1, submitted)
        line += f": {went} went through, {missed} did not"
    return line


def _pages_went(pages_sent: int | None, submitted: int, through: int | None) -> str:
    """A partial fax's pages in a few words: which went when that is known."""
    if through:
        return f"{_page_span(1, through)} of {submitted} sent"
    return f"{pages_sent} of {plural(submitted, 'page')} sent"


def result_words(job: Job, outcome: FaxOutcome, pages_went: str = "") -> str:
    """A final result and its reason in a few words, as the subject and headline say it:
    "not delivered: line busy"; a partial fax's `pages_went` defaults to their count."""
    state = _state(job, outcome)
    in_short = reason_for(outcome.status).in_short
    if state == "partly delivered":
        return f"partly delivered: {pages_went or plural(outcome.pages_sent, 'page') + ' sent'}"
    if state == "cancelled":
        return f"not sent: {in_short}"
    return "delivered" if state == "delivered" else f"not delivered: {in_short}"


def _headline(number: str, state: str, pages: str, result: str) -> str:
    sentences = {
        "delivered": f"Your fax to {number} was delivered: {pages} sent.",
        "partly delivered": f"Your fax to {number} was only {result}.",
        "failed": f"Your fax to {number} was {result}.",
        "cancelled": f"Your fax to {number} was {result}.",
        "queued": f"Your fax to {number} is queued and will be sent shortly.",
        "waiting to dial again": f"Your fax to {number} is waiting to be dialled again.",
        "sending": f"Your fax to {number} is being sent; mailfax is waiting for the result.",
    }
    return sentences[state]


def _state(job: Job, outcome: FaxOutcome | None) -> str:
    if outcome is None:
        if job.state is not JobState.QUEUED:
            return "sending"
        # A queued job with a fax status was busy or unanswered: it waits for its redial.
        return "waiting to dial again" if job.fax_status else "queued"
    if outcome.delivered:
        return "delivered"
    if outcome.status == "cancelled" or job.state is JobState.CANCELLED:
        return "cancelled"
    return "partly delivered" if outcome.pages_sent else "failed"


def fax_fields(
    job: Job,
    message: MessageRecord,
    outcome: FaxOutcome | None,
    attachments: Attachments = NO_ATTACHMENTS,
    cover_page: bool = False,
) -> FaxFields:
    """One recipient's fax: final when `outcome` is given, else as it stands. `cover_page`:
    FAX.PLUS put a cover page before the documents (so its page count may not match theirs)."""
    number = format_for_humans(job.number)
    submitted = pages_submitted(message)
    state = _state(job, outcome)
    status = outcome.status if outcome else (job.fax_status or "")
    reason = reason_for(status)
    retried = reason.retried
    if status in REDIAL_STATUSES and outcome is not None:
        retried = f"mailfax dialled {plural(job.redials + 1, 'time')} in all before giving up."
    pages_sent = outcome.pages_sent if outcome else None
    # A count of 0 is believed only of results that sent nothing: mailfax records 0 for every
    # failure, and a call cut short may have carried some pages.
    known = None if pages_sent == 0 and status not in NOTHING_SENT else pages_sent
    through = _pages_through(state, known, message, cover_page) if outcome else None
    went = _pages_went(pages_sent, submitted, through)
    result = result_words(job, outcome, went) if outcome else ""
    # A delivery whose count FAX.PLUS left out still sent every page: the Pages line says so.
    counted = through if known is None else known
    sent = f"{counted} of {plural(submitted, 'page')}"  # a delivery's: counted is known
    detail = detail_for_sender(status, outcome.detail if outcome else (job.error or ""))
    fax_id = (outcome.fax_id if outcome else job.fax_id) or ""
    report = attachments.reports.get(fax_id)
    # Only a report the I/O layer tried to fetch is mentioned: attached, or why not.
    report_attached = report is not None and report.pdf is not None
    report_problem = report.problem if report is not None and report.pdf is None else ""
    return FaxFields(
        job_id=job.id,
        number=number,
        number_e164=job.number,
        state=state,
        final=outcome is not None,
        delivered=state == "delivered",
        headline=_headline(number, state, sent, result),
        result=result,
        status=status,
        faxplus_status="" if status in MAILFAX_REASONS else status,
        status_code=reason.status_code if outcome else "",
        what_happened=reason.what_happened if outcome else "",
        retried=retried if outcome else "",
        what_to_do=reason.what_to_do if outcome else "",
        detail=detail,
        pages_sent=pages_sent,
        pages_submitted=submitted,
        pages=_pages(counted, submitted, through, outcome is not None),
        pages_through=through,
        fax_id=fax_id,
        started=_started(outcome.start_time) if outcome else "",
        duration=_duration(outcome.duration) if outcome else "",
        cost=_cost(outcome.cost) if outcome else "",
        attempts=job.attempts,
        report_attached=report_attached,
        report_problem=report_problem,
    )


def document_lines(message: MessageRecord, through: int | None) -> tuple[DocumentLine, ...]:
    """Every part of the mail: a chosen document is "sent", "not sent" or "partly sent" when
    the first `through` of the documents' pages are known to have gone, else "included"."""
    lines = []
    first = 1  # the fax page each document starts on
    for part in message.report:
        if not part.is_faxed:
            lines.append(DocumentLine(part.name, False, f"not faxed ({part.reason})"))
            continue
        pages = plural(part.pages, "page")
        if through is None:
            words = f"included, {pages}"
        elif part.pages is None:
            # Of a document of unknown length only all or nothing is known (_pages_through).
            words = f"{'sent' if through else 'not sent'}, {pages}"
        else:
            went = min(max(through - first + 1, 0), part.pages)
            first += part.pages
            if went == part.pages:
                words = f"sent, {pages}"
            elif went == 0:
                words = f"not sent, {pages}"
            else:
                words = f"partly sent: {_page_span(1, went)} of its {part.pages} went through"
        if part.action == "converted":
            words += " (converted to PDF)"
        lines.append(DocumentLine(part.name, True, words))
    return tuple(lines)


def mail_fields(message: MessageRecord) -> MailFields:
    comment = " ".join(message.comment.split())
    if len(comment) > MAX_COMMENT_CHARS:
        comment = comment[: MAX_COMMENT_CHARS - 3] + "..."
    return MailFields(
        queue_id=message.id,
        sender=message.mail_from,
        subject=message.subject,
        received=when(message.received_at),
        comment=comment,
        parts=message.report,
        faxed_parts=tuple(part for part in message.report if part.is_faxed),
        ignored_parts=tuple(part for part in message.report if not part.is_faxed),
        pages_submitted=pages_submitted(message),
    )


def _tone(faxes: Sequence[FaxFields]) -> str:
    if not all(fax.final for fax in faxes):
        return "waiting"
    return "good" if all(fax.delivered for fax in faxes) else "bad"


def _recipients(faxes: Sequence[FaxFields]) -> str:
    return faxes[0].number if len(faxes) == 1 else plural(len(faxes), "number")


def _title(kind: str, faxes: Sequence[FaxFields], pages: int) -> str:
    to = _recipients(faxes)
    counted = plural(pages, "page")
    if kind == "accepted":
        return f"Fax to {to} accepted ({counted})"
    if kind == "delayed":
        return f"Fax to {to} delayed: not sent yet ({counted})"
    if all(fax.delivered for fax in faxes):
        return f"Fax delivered to {to} ({counted})"
    if kind == "group":
        delivered = sum(fax.delivered for fax in faxes)
        partly = sum(fax.state == "partly delivered" for fax in faxes)
        counts = [f"{delivered} delivered", f"{partly} partly" if partly else ""]
        counts.append(f"{len(faxes) - delivered - partly} not")
        return f"Fax to {to}: {', '.join(filter(None, counts))} ({counted})"
    return f"Fax to {to} {faxes[0].result}"


def _mail_headline(kind: str, faxes: Sequence[FaxFields], delay: str) -> str:
    to = _recipients(faxes)
    if kind == "accepted":
        return f"mailfax has accepted your fax to {to} and queued it for sending."
    if kind == "delayed":
        return f"Your fax to {to} has not been sent after {delay}; mailfax is still trying."
    if kind == "group":
        delivered = sum(fax.delivered for fax in faxes)
        if delivered == len(faxes):
            return f"Your fax was delivered to all {to}."
        return f"Your fax was delivered to {delivered} of {to}."
    return faxes[0].headline


def _without(names: Sequence[str], title: str, headline: str) -> tuple[str, str]:
    """The subject and first sentence of a fax sent without the files `names`."""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    verb = "was" if len(names) == 1 else "were"
    return (
        f"{title}, without {listed}",
        f"{listed} could not be faxed and {verb} left out of this fax. {headline}",
    )


def receipt_fields(
    kind: str,
    message: MessageRecord,
    faxes: Sequence[FaxFields],
    gateway: str,
    thumbnail_attached: bool = False,
    waited: float = 0.0,
    gives_up: float | None = None,
) -> ReceiptFields:
    mail = mail_fields(message)
    delay = span(waited) if kind == "delayed" else ""
    # Whether each document went is known of a final result (a fax not final has no
    # pages_through); a summary knows it when all its faxes agree.
    through = {fax.pages_through for fax in faxes}
    title = _title(kind, faxes, mail.pages_submitted)
    headline = _mail_headline(kind, faxes, delay)
    tone = _tone(faxes)
    left_out = [part.name for part in mail.parts if part.left_out]
    if left_out:
        # Sent without attachments the sender chose ([smtp] unfaxable = fax-the-rest): the
        # subject and first sentence say so, and a delivery is amber, not green.
        title, headline = _without(left_out, title, headline)
        tone = "partial" if tone == "good" else tone
    return ReceiptFields(
        kind=kind,
        tone=tone,
        title=title,
        headline=headline,
        mail=mail,
        faxes=tuple(faxes),
        fax=faxes[0] if kind in ("delayed", "final") else None,
        documents=document_lines(message, through.pop() if len(through) == 1 else None),
        thumbnail_attached=thumbnail_attached,
        delay=delay,
        gives_up=when(gives_up) if gives_up is not None else "",
        gateway=gateway,
    )
