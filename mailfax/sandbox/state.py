"""In-memory state of one simulated FAX.PLUS account: uploads, outbox, sessions, faxes, hooks."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailfax.sandbox.account import account_json, number_json
from mailfax.sandbox.dialling import (
    REDIALLED,
    Document,
    Outcome,
    conversion_failure,
    display_number,
    new_fax_id,
    outcome_for,
)
from mailfax.sandbox.listing import TIME_FORMAT

JsonObject = dict[str, object]

_SECONDS_PER_PAGE = 30
# settings.send_fax.retry of an account that redials by itself (provider-retries): the most
# RetryOptions allows, so a gateway that also redials dials a number four times over.
_PROVIDER_RETRY_COUNT = 3
_PROVIDER_RETRY_DELAY = 1


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


class AccountState:
    """An individual FAX.PLUS account with one or more active numbers."""

    def __init__(
        self,
        numbers: tuple[str, ...],
        on_ledger_change: Callable[[], None],
        variants: frozenset[str] = frozenset(),
        credit_pages: int = 0,
    ) -> None:
        self._variants = variants
        self.uid = uuid.uuid4().hex
        self.numbers = numbers
        self._number_ids = {number: uuid.uuid4().hex for number in numbers}
        self._created_at = utc_now()
        self._credit_left = credit_pages
        self._dials: Counter[str] = Counter()
        self.uploads: dict[str, Upload] = {}
        self.outbox: dict[str, OutboxEntry] = {}
        self.faxes: dict[str, FaxRecord] = {}
        self.hooks: dict[str, Hook] = {}
        self._sessions: dict[str, Session] = {}  # by send id, in submission order
        self._by_session_id: dict[str, Session] = {}
        self._on_ledger_change = on_ledger_change

    def has(self, variant: str) -> bool:
        return variant in self._variants

    def add_upload(self, file_name: str, media_type: str, content: bytes, pages: int) -> Upload:
        upload = Upload(f"/transient-{uuid.uuid4()}", file_name, media_type, content, pages)
        self.uploads[upload.path] = upload
        return upload

    def submit(self, request: SendRequest, ip: str) -> OutboxEntry:
        now = utc_now()
        sessions = tuple(
            self._new_session(request, destination, request.sources[index % len(request.sources)])
            for index, destination in enumerate(request.destinations)
        )
        entry = OutboxEntry(uuid.uuid4().hex, request, sessions, now, ip, request.comment)
        entry.change_status("submitted", now)
        self.outbox[entry.id] = entry
        for session in sessions:
            self._sessions[session.send_id] = session
            self._by_session_id[session.session_id] = session
        self._on_ledger_change()
        return entry

    def _new_session(self, request: SendRequest, destination: str, source: str) -> Session:
        send_id = new_fax_id()
        distinct = self.has("distinct-ids")
        retry = request.retry
        if self.has("provider-retries") and not request.asks_for_retry:
            retry = self.account_retry
        return Session(
            send_id=send_id,
            session_id=new_fax_id() if distinct else send_id,
            record_id=new_fax_id() if distinct else send_id,
            destination=destination,
            source=source,
            request=request,
            comment=request.comment,
            submitted_at=utc_now(),
            retry=retry,
        )

    @property
    def account_retry(self) -> RetryOptions:
        """The account's settings.send_fax.retry, which a send without options.retry follows."""
        if self.has("provider-retries"):
            return RetryOptions(_PROVIDER_RETRY_COUNT, _PROVIDER_RETRY_DELAY)
        return RetryOptions()

    def update_outbox_comment(self, entry: OutboxEntry, comment: str) -> None:
        entry.comment = comment
        for session in entry.sessions:
            session.comment = comment
        self._on_ledger_change()

    def cancel(self, entry: OutboxEntry) -> None:
        del self.outbox[entry.id]
        for session in entry.sessions:
            session.status = "cancelled"
        self._on_ledger_change()

    def leave_outbox(self, entry: OutboxEntry) -> tuple[Session, ...]:
        """The entry is transmitted: it leaves the outbox and each destination is dialled."""
        del self.outbox[entry.id]
        return entry.sessions

    def dial(self, session: Session) -> FaxRecord:
        """One attempt at faxing a session's destination; its fax record."""
        attempt = len(session.records) + 1
        record = FaxRecord(
            id=session.record_id if attempt == 1 else new_fax_id(),
            session=session,
            attempt=attempt,
            file_id=uuid.uuid4().hex,
            comment="" if self.has("no-comment") else session.comment,
            outcome=self._outcome(session),
            started_at=utc_now(),
            file_name=self._record_file_name(session),
        )
        session.records.append(record)
        session.status = record.outcome.status
        self.faxes[record.id] = record
        self._on_ledger_change()
        return record

    def _outcome(self, session: Session) -> Outcome:
        request = session.request
        if self.has("converter"):
            documents = [Document(u.file_name, u.media_type, u.pages) for u in request.files]
            failure = conversion_failure(documents)
            if failure is not None:
                return Outcome.failed(failure)
        if self.has("credit") and request.page_count > self._credit_left:
            return Outcome.failed("insufficient_credit")
        destination = session.destination
        outcome = outcome_for(
            destination, request.page_count, dialled_before=self._dials[destination] > 0
        )
        self._dials[destination] += 1
        session.attempts += 1
        self._credit_left -= outcome.pages_sent
        return outcome

    def redials(self, session: Session) -> bool:
        """Whether FAX.PLUS dials the session's destination once more."""
        return (
            self.has("provider-retries")
            and session.status in REDIALLED
            and len(session.records) <= session.retry.count
        )

    def _record_file_name(self, session: Session) -> str:
        if self.has("upload-names") and session.request.files:
            return session.request.files[0].file_name
        return f"fax-to-{session.destination.lstrip('+')}"

    def find_fax(self, fax_id: str) -> FaxRecord | None:
        """The fax record GET /faxes/{id} answers with."""
        if fax_id in self.faxes or self.has("distinct-ids"):
            return self.faxes.get(fax_id)
        return self._by_file(fax_id)

    def find_document(self, fax_or_file_id: str) -> FaxRecord | None:
        """The fax whose file getFile serves: by record id, session id or `file` handle."""
        session = self._by_session_id.get(fax_or_file_id)
        if session is not None and session.records:
            return session.records[-1]
        return self.faxes.get(fax_or_file_id) or self._by_file(fax_or_file_id)

    def _by_file(self, file_handle: str) -> FaxRecord | None:
        file_id = file_handle.removesuffix(".tiff")
        return next((fax for fax in self.faxes.values() if fax.file_id == file_id), None)

    def record_json(self, record: FaxRecord) -> JsonObject:
        return record.to_json(self.uid, self._show_number)

    def webhook_payload(self, record: FaxRecord, hook: Hook, event_time: datetime) -> JsonObject:
        """The documented fax_sent callback; hook.id == data.id on a session's first attempt."""
        session = record.session
        numbers_as = (
            ("from_number", "to_number") if self.has("formatted-numbers") else ("from", "to")
        )
        return {
            "hook": {
                "id": session.session_id if record.attempt == 1 else record.id,
                "event": hook.event,
                "event_time": format_time(event_time),
                "target": hook.target,
            },
            "data": {
                "id": session.session_id,
                "uid": self.uid,
                "pages": record.outcome.pages_sent,
                numbers_as[0]: self._show_number(record.source),
                numbers_as[1]: self._show_number(record.destination),
                "start_time": format_time(record.started_at),
                "file": f"{record.file_id}.tiff",
                "file_name": record.file_name,
                "status": record.outcome.status,
                "cost": record.outcome.pages_sent,
            },
        }

    def _show_number(self, number: str) -> str:
        return display_number(number) if self.has("formatted-numbers") else number

    def add_hook(self, target: str, event: str) -> Hook:
        hook = Hook(secrets.token_hex(12), target, event)
        self.hooks[hook.id] = hook
        return hook

    def hooks_for(self, event: str) -> list[Hook]:
        return [hook for hook in self.hooks.values() if hook.event == event]

    def ledger(self) -> list[JsonObject]:
        return [session.to_ledger_json() for session in self._sessions.values()]

    def account_json(self) -> JsonObject:
        return account_json(
            self.uid, self.numbers[0], self._created_at, self.account_retry.to_json()
        )

    def number_json(self, number: str) -> JsonObject:
        return number_json(self._number_ids[number], number, self.uid, self._created_at)
