"""In-memory state of one simulated FAX.PLUS account: uploads, outbox, sessions, faxes, hooks."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime

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
from mailfax.sandbox.records import (
    FaxRecord,
    Hook,
    JsonObject,
    OutboxEntry,
    RetryOptions,
    SendRequest,
    Session,
    Upload,
    format_time,
    utc_now,
)

# settings.send_fax.retry of an account that redials by itself (provider-retries): the most
# RetryOptions allows, so a gateway that also redials dials a number four times over.
_PROVIDER_RETRY_COUNT = 3
_PROVIDER_RETRY_DELAY = 1


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
        redial = self.has("provider-retries") and self._dials[destination] > 0
        outcome = outcome_for(destination, request.page_count, redial_answered=redial)
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
