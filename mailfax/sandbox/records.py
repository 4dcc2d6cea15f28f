"""The simulated account's records (uploads, sends, sessions, outbox entries, faxes, hooks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailfax.sandbox.dialling import Outcome
from mailfax.sandbox.listing import TIME_FORMAT

JsonObject = dict[str, object]

_SECONDS_PER_PAGE = 30


def utc_now() -> datetime:
    """The current UTC time at the one-second resolution the API exposes."""
    return datetime.now(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def format_zoned_time(moment: datetime) -> str:
    """The `send_time`/`submit_time` flavour, which carries an explicit offset."""
    return f"{format_time(moment)} +0000"


@dataclass(frozen=True)
class Upload:
    path: str
    file_name: str
    media_type: str  # the Content-Type the upload declared; "" when none
    content: bytes
    pages: int


@dataclass(frozen=True)
class RetryOptions:
    count: int = 0
    delay: int = 0

    def to_json(self) -> JsonObject:
        return {"count": self.count, "delay": self.delay}


@dataclass(frozen=True)
class SendRequest:
    """A validated `PayloadOutbox`."""

    source: str  # as sent: one number, several separated by commas, or no_number
    sources: tuple[str, ...]  # the numbers FAX.PLUS picks from, one per destination
    destinations: tuple[str, ...]
    files: tuple[Upload, ...]
    comment: str
    tags: tuple[str, ...]
    received_options: JsonObject  # `options` exactly as sent; {} when none
    options: JsonObject  # `options` with the defaults filled in, as the outbox shows it
    enhancement: bool
    retry: RetryOptions
    send_time: datetime | None
    return_ids: bool
    cover_page: JsonObject | None

    @property
    def page_count(self) -> int:
        return sum(upload.pages for upload in self.files)

    @property
    def asks_for_retry(self) -> bool:
        return isinstance(self.received_options.get("retry"), dict)


@dataclass
class Session:
    """One destination of one send: FAX.PLUS's faxing session, and the sandbox's ledger entry."""

    send_id: str  # in the send's `ids`
    session_id: str  # the webhook's data.id
    record_id: str  # the first attempt's fax record
    destination: str
    source: str
    request: SendRequest
    comment: str
    submitted_at: datetime
    retry: RetryOptions  # the redials the fax record announces (max_retry, retry_delay)
    status: str = "queued"
    attempts: int = 0  # times the line was dialled
    records: list[FaxRecord] = field(default_factory=list)

    def to_ledger_json(self) -> JsonObject:
        return {
            "id": self.send_id,
            "to": self.destination,
            "from": self.source,
            "comment": self.comment,
            "tags": list(self.request.tags),
            "files": [
                {"path": upload.path, "name": upload.file_name, "pages": upload.pages}
                for upload in self.request.files
            ],
            "status": self.status,
            "submitted_at": format_time(self.submitted_at),
            "options": self.request.received_options,
            "attempts": self.attempts,
        }


@dataclass
class OutboxEntry:
    """One accepted send request, waiting in the outbox until it is transmitted."""

    id: str
    request: SendRequest
    sessions: tuple[Session, ...]
    submitted_at: datetime
    ip: str
    comment: str
    status: str = "submitted"
    status_changes: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def fax_ids(self) -> dict[str, str]:
        return {session.destination: session.send_id for session in self.sessions}

    def change_status(self, status: str, at: datetime) -> None:
        self.status = status
        self.status_changes.append((at, status))

    def to_json(self, uid: str) -> JsonObject:
        request = self.request
        send_time = request.send_time or self.submitted_at
        last_change = self.status_changes[-1][0] if self.status_changes else self.submitted_at
        record: JsonObject = {
            "comment": {"text": self.comment, "tags": list(request.tags)},
            "contact_name": "",
            "designated_src": "",
            "extra_info": {},
            "file_changes": [],
            "files": [upload.path for upload in request.files],
            "id": self.id,
            "initiated_from": {"from_id": "", "type": ""},
            "ip": self.ip,
            "last_updated_status_time": format_time(last_change),
            "options": request.options,
            "page_count": request.page_count,
            "retry": request.retry.to_json(),
            "send_time": format_zoned_time(send_time),
            "should_enhance": request.enhancement,
            "src": request.source,
            "status": self.status,
            "status_changes": [
                {"at": format_time(at), "status": status} for at, status in self.status_changes
            ],
            "submit_time": format_zoned_time(self.submitted_at),
            "to": list(request.destinations),
            "uid": uid,
        }
        if request.cover_page is not None:
            record["cover_page"] = request.cover_page
        return record


@dataclass
class FaxRecord:
    """The CDR of one attempt to fax one destination."""

    id: str
    session: Session
    attempt: int  # 1 for the first dial, 2.. for FAX.PLUS's own redials
    file_id: str
    comment: str
    outcome: Outcome
    started_at: datetime
    file_name: str
    is_read: bool = False

    @property
    def source(self) -> str:
        return self.session.source

    @property
    def destination(self) -> str:
        return self.session.destination

    def to_json(self, uid: str, show_number: Callable[[str], str]) -> JsonObject:
        pages = self.outcome.pages_sent
        request = self.session.request
        record: JsonObject = {
            "comment": self.comment,
            "cost": pages,
            "cost_details": {"multiplier": 1, "notification_cost": 0},
            "description": self.outcome.description,
            "direction": "outgoing",
            "duration": pages * _SECONDS_PER_PAGE,
            "file": f"{self.file_id}.tiff",
            "file_name": self.file_name,
            "from": show_number(self.source),
            "header": None,
            "id": self.id,
            "is_read": self.is_read,
            "is_spam": False,
            "last_update": format_time(self.started_at),
            "max_retry": self.session.retry.count,
            "owner_id": uid,
            "pages": pages,
            "retry_delay": self.session.retry.delay,
            "scheduled_time": format_time(request.send_time) if request.send_time else None,
            "start_time": format_time(self.started_at),
            "status": self.outcome.status,
            "submit_time": format_zoned_time(self.session.submitted_at),
            "to": show_number(self.destination),
        }
        if request.cover_page is not None:
            record["cover_page"] = request.cover_page
        return record


@dataclass(frozen=True)
class Hook:
    id: str
    target: str
    event: str

    def to_json(self) -> JsonObject:
        return {"id": self.id, "target": self.target, "event": self.event}
