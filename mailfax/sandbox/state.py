"""In-memory state of one simulated FAX.PLUS account: uploads, outbox, faxes, hooks, ledger."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

JsonObject = dict[str, object]

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Destination suffix -> FAX.PLUS status, so callers can provoke every outcome on demand.
_STATUS_BY_SUFFIX = {
    "0013": "failed_user_busy",
    "0014": "failed_no_answer",
    "0015": "failed_unallocated_number",
    "0016": "partially_sent",
}
_DESCRIPTIONS = {
    "success": "OK",
    "partially_sent": "Partially sent",
    "failed_user_busy": "User busy",
    "failed_no_answer": "No answer",
    "failed_unallocated_number": "Unallocated number",
}
_SECONDS_PER_PAGE = 30


def utc_now() -> datetime:
    """The current UTC time at the one-second resolution the API exposes."""
    return datetime.now(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def format_zoned_time(moment: datetime) -> str:
    """The `send_time`/`submit_time` flavour, which carries an explicit offset."""
    return f"{format_time(moment)} +0000"


def new_fax_id() -> str:
    # Fax (CDR) and webhook ids are 24 hex digits in every published example.
    return secrets.token_hex(12)


@dataclass(frozen=True)
class Outcome:
    status: str
    description: str
    pages_sent: int


def outcome_for(destination: str, pages: int) -> Outcome:
    """The deterministic result of faxing `pages` pages to `destination`."""
    status = _STATUS_BY_SUFFIX.get(destination[-4:], "success")
    if status == "success":
        pages_sent = pages
    elif status == "partially_sent":
        pages_sent = pages // 2
    else:
        pages_sent = 0
    return Outcome(status, _DESCRIPTIONS[status], pages_sent)


@dataclass(frozen=True)
class Upload:
    path: str
    file_name: str
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

    source: str
    destinations: tuple[str, ...]
    files: tuple[Upload, ...]
    comment: str
    tags: tuple[str, ...]
    options: JsonObject
    enhancement: bool
    retry: RetryOptions
    send_time: datetime | None
    return_ids: bool
    cover_page: JsonObject | None

    @property
    def page_count(self) -> int:
        return sum(upload.pages for upload in self.files)


@dataclass
class OutboxEntry:
    """One accepted send request, waiting in the outbox until it is transmitted."""

    id: str
    request: SendRequest
    fax_ids: dict[str, str]
    submitted_at: datetime
    ip: str
    comment: str
    status: str = "submitted"
    status_changes: list[tuple[datetime, str]] = field(default_factory=list)

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
    """The CDR of one transmission to one destination."""

    id: str
    file_id: str
    source: str
    destination: str
    comment: str
    outcome: Outcome
    files: tuple[Upload, ...]
    retry: RetryOptions
    submitted_at: datetime
    started_at: datetime
    scheduled_time: datetime | None
    cover_page: JsonObject | None
    file_name: str
    is_read: bool = False

    def to_json(self, uid: str) -> JsonObject:
        pages = self.outcome.pages_sent
        record: JsonObject = {
            "comment": self.comment,
            "cost": pages,
            "cost_details": {"multiplier": 1, "notification_cost": 0},
            "description": self.outcome.description,
            "direction": "outgoing",
            "duration": pages * _SECONDS_PER_PAGE,
            "file": f"{self.file_id}.tiff",
            "file_name": self.file_name,
            "from": self.source,
            "header": None,
            "id": self.id,
            "is_read": self.is_read,
            "is_spam": False,
            "last_update": format_time(self.started_at),
            "max_retry": self.retry.count,
            "owner_id": uid,
            "pages": pages,
            "retry_delay": self.retry.delay,
            "scheduled_time": format_time(self.scheduled_time) if self.scheduled_time else None,
            "start_time": format_time(self.started_at),
            "status": self.outcome.status,
            "submit_time": format_zoned_time(self.submitted_at),
            "to": self.destination,
        }
        if self.cover_page is not None:
            record["cover_page"] = self.cover_page
        return record

    def webhook_payload(self, hook: Hook, uid: str, event_time: datetime) -> JsonObject:
        # Layout of the documented fax_sent callback; on a first attempt hook.id == data.id.
        return {
            "hook": {
                "id": self.id,
                "event": hook.event,
                "event_time": format_time(event_time),
                "target": hook.target,
            },
            "data": {
                "id": self.id,
                "uid": uid,
                "pages": self.outcome.pages_sent,
                "from": self.source,
                "to": self.destination,
                "start_time": format_time(self.started_at),
                "file": f"{self.file_id}.tiff",
                "file_name": self.file_name,
                "status": self.outcome.status,
                "cost": self.outcome.pages_sent,
            },
        }


@dataclass(frozen=True)
class Hook:
    id: str
    target: str
    event: str

    def to_json(self) -> JsonObject:
        return {"id": self.id, "target": self.target, "event": self.event}


@dataclass
class LedgerEntry:
    """What the sandbox was asked to fax to one destination, and what became of it."""

    fax_id: str
    destination: str
    source: str
    comment: str
    tags: tuple[str, ...]
    files: tuple[Upload, ...]
    submitted_at: datetime
    status: str = "queued"

    def to_json(self) -> JsonObject:
        return {
            "id": self.fax_id,
            "to": self.destination,
            "from": self.source,
            "comment": self.comment,
            "tags": list(self.tags),
            "files": [
                {"path": upload.path, "name": upload.file_name, "pages": upload.pages}
                for upload in self.files
            ],
            "status": self.status,
            "submitted_at": format_time(self.submitted_at),
        }


class AccountState:
    """An individual FAX.PLUS account with one active number."""

    def __init__(
        self,
        number: str,
        on_ledger_change: Callable[[], None],
        variants: frozenset[str] = frozenset(),
    ) -> None:
        self._variants = variants
        self.uid = uuid.uuid4().hex
        self.number = number
        self._number_id = uuid.uuid4().hex
        self._created_at = utc_now()
        self.uploads: dict[str, Upload] = {}
        self.outbox: dict[str, OutboxEntry] = {}
        self.faxes: dict[str, FaxRecord] = {}
        self.hooks: dict[str, Hook] = {}
        self._ledger: dict[str, LedgerEntry] = {}
        self._on_ledger_change = on_ledger_change

    def add_upload(self, file_name: str, content: bytes, pages: int) -> Upload:
        upload = Upload(f"/transient-{uuid.uuid4()}", file_name, content, pages)
        self.uploads[upload.path] = upload
        return upload

    def submit(self, request: SendRequest, ip: str) -> OutboxEntry:
        now = utc_now()
        entry = OutboxEntry(
            id=uuid.uuid4().hex,
            request=request,
            fax_ids={destination: new_fax_id() for destination in request.destinations},
            submitted_at=now,
            ip=ip,
            comment=request.comment,
        )
        entry.change_status("submitted", now)
        self.outbox[entry.id] = entry
        for destination, fax_id in entry.fax_ids.items():
            self._ledger[fax_id] = LedgerEntry(
                fax_id=fax_id,
                destination=destination,
                source=request.source,
                comment=request.comment,
                tags=request.tags,
                files=request.files,
                submitted_at=now,
            )
        self._on_ledger_change()
        return entry

    def update_outbox_comment(self, entry: OutboxEntry, comment: str) -> None:
        entry.comment = comment
        for fax_id in entry.fax_ids.values():
            self._ledger[fax_id].comment = comment
        self._on_ledger_change()

    def cancel(self, entry: OutboxEntry) -> None:
        del self.outbox[entry.id]
        for fax_id in entry.fax_ids.values():
            self._ledger[fax_id].status = "cancelled"
        self._on_ledger_change()

    def complete(self, entry: OutboxEntry) -> list[FaxRecord]:
        """Transmit an outbox entry: it leaves the outbox and yields one record per destination."""
        del self.outbox[entry.id]
        request = entry.request
        now = utc_now()
        records = []
        for destination, fax_id in entry.fax_ids.items():
            record = FaxRecord(
                id=fax_id,
                file_id=uuid.uuid4().hex,
                source=request.source,
                destination=destination,
                comment="" if "no-comment" in self._variants else entry.comment,
                outcome=outcome_for(destination, request.page_count),
                files=request.files,
                retry=request.retry,
                submitted_at=entry.submitted_at,
                started_at=now,
                scheduled_time=request.send_time,
                cover_page=request.cover_page,
                file_name=self._record_file_name(request, destination),
            )
            self.faxes[fax_id] = record
            self._ledger[fax_id].status = record.outcome.status
            records.append(record)
        self._on_ledger_change()
        return records

    def _record_file_name(self, request: SendRequest, destination: str) -> str:
        if "upload-names" in self._variants and request.files:
            return request.files[0].file_name
        return f"fax-to-{destination.lstrip('+')}"

    def find_fax(self, fax_or_file_id: str) -> FaxRecord | None:
        """Look a fax up by its id, or by the `file` handle its record advertises."""
        if fax_or_file_id in self.faxes:
            return self.faxes[fax_or_file_id]
        file_id = fax_or_file_id.removesuffix(".tiff")
        return next((fax for fax in self.faxes.values() if fax.file_id == file_id), None)

    def add_hook(self, target: str, event: str) -> Hook:
        hook = Hook(secrets.token_hex(12), target, event)
        self.hooks[hook.id] = hook
        return hook

    def hooks_for(self, event: str) -> list[Hook]:
        return [hook for hook in self.hooks.values() if hook.event == event]

    def ledger(self) -> list[JsonObject]:
        return [entry.to_json() for entry in self._ledger.values()]

    def account_json(self) -> JsonObject:
        return {
            "uid": self.uid,
            "account_type": "individual",
            "status": "active",
            "email": "sandbox@example.com",
            "name": "Sandbox",
            "lastname": "User",
            "phone": self.number,
            "profile_image": "",
            "member_of": [],
            "creation_date": format_time(self._created_at),
            "last_password_modification_date": format_time(self._created_at),
            "account_data": {
                "company_name": "",
                "company_logo": "",
                "default_file_type": "pdf",
                "role": "",
                "save_history": True,
                "deactivation_reason": "",
            },
            "notifications": _NOTIFICATIONS,
            "settings": {
                "caller_id_name": "",
                "send_fax": {"retry": RetryOptions().to_json()},
                "should_enhance": True,
                "options": {},
            },
        }

    def number_json(self) -> JsonObject:
        return {
            "id": self._number_id,
            "number": self.number,
            "owner_id": self.uid,
            "status": "active",
            "assigned_to": [self.uid],
            "acquired_date": format_time(self._created_at),
            "expiration_date": None,
            "is_canceled": False,
            "notifications": [{"type": "receive_fax", "email": True, "push_notification": True}],
        }


def _event_switches(**extra: object) -> JsonObject:
    return {
        "low_credit": True,
        "new_feature": False,
        "receive_fax": True,
        "send_fax": True,
        "voicemail": False,
        **extra,
    }


_NOTIFICATIONS: JsonObject = {
    "black_list": {"uids": []},
    "settings": {
        "language": "en",
        "email": _event_switches(
            addresses=["sandbox@example.com"],
            attachments={"confirmation_page": True, "receive_fax": True, "send_fax": True},
        ),
        "push_notifications": _event_switches(),
        "sms": _event_switches(numbers=[]),
    },
}
