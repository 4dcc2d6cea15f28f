"""In-memory stand-ins for the I/O interfaces, for tests of the parts that use them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailfax.documents import ConversionError
from mailfax.faxplus import FaxRecord, NotFoundApiError, OutboxRecord, SentListing
from tests.pdfs import pdf_with_pages


@dataclass
class FakeConverter:
    """Converter in memory: a PDF of `pages` pages for every document, or ConversionError
    with `problem`; `converted` records the names it was asked to convert under, `given` the
    bytes it was given."""

    pages: int = 1
    problem: str = ""
    converted: list[str] = field(default_factory=list)
    given: list[bytes] = field(default_factory=list)

    def to_pdf(self, data: bytes, name: str) -> bytes:
        self.converted.append(name)
        self.given.append(data)
        if self.problem:
            raise ConversionError(self.problem)
        return pdf_with_pages(self.pages)


@dataclass
class FakeFaxApi:
    """FaxApi in memory: tests put outbox records and faxes in, and read the sends out."""

    outbox: list[OutboxRecord] = field(default_factory=list)
    faxes: dict[str, FaxRecord] = field(default_factory=dict)
    sends: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    reports: dict[str, bytes] = field(default_factory=dict)  # confirmation reports by fax id
    # Faxes GET /faxes/{id} knows that no listing shows (beyond a crowded second's page).
    unlisted: dict[str, FaxRecord] = field(default_factory=dict)
    # Seconds of which the listing says it could not list every fax.
    unlisted_seconds: set[float] = field(default_factory=set)

    async def upload_file(self, name: str, data: bytes, file_format: str = "pdf") -> str:
        self.uploads.append(name)
        return f"/transient-{len(self.uploads)}"

    async def send_fax(
        self,
        from_number: str,
        to: Sequence[str],
        files: Sequence[str],
        comment: str,
        tags: Sequence[str],
        cover_page: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        self.sends.append(
            {
                "from": from_number,
                "to": list(to),
                "files": list(files),
                "comment": comment,
                "tags": list(tags),
                "cover_page": cover_page,
            }
        )
        return {number: f"fax{len(self.sends)}-{i}" for i, number in enumerate(to)}

    async def get_fax(self, fax_id: str) -> FaxRecord:
        record = self.faxes.get(fax_id) or self.unlisted.get(fax_id)
        if record is None:
            raise NotFoundApiError("HTTP 404: not_found", 404)
        return record

    async def list_outbox(self) -> list[OutboxRecord]:
        return list(self.outbox)

    async def list_sent_faxes(self, after: float) -> SentListing:
        return SentListing(list(self.faxes.values()), frozenset(self.unlisted_seconds))

    async def list_numbers(self) -> list[dict[str, Any]]:
        return [{"number": "+16465550001", "status": "active", "is_canceled": False}]

    async def create_hook(self, target: str, event: str = "fax_sent") -> str:
        return "hook1"

    async def list_hooks(self, event: str = "fax_sent") -> list[dict[str, Any]]:
        return []

    async def delete_hook(self, hook_id: str) -> None:
        return None

    async def delete_outbox(self, outbox_id: str) -> None:
        if not any(record.id == outbox_id for record in self.outbox):
            raise NotFoundApiError("HTTP 404: not_found", 404)
        self.outbox = [record for record in self.outbox if record.id != outbox_id]

    async def get_report(self, fax_id: str) -> bytes:
        if fax_id not in self.reports:
            raise NotFoundApiError("HTTP 404: not_found", 404)
        return self.reports[fax_id]


def fax_record(
    fax_id: str,
    to: str,
    status: str,
    submit_time: str,
    pages: int = 1,
    comment: str = "",
    file_name: str = "",
) -> FaxRecord:
    return FaxRecord(
        fax_id, status, to, pages, 1.0, submit_time, submit_time, 30.0, comment, file_name
    )
