"""Parsing and validation of FAX.PLUS request bodies; every violation raises an ApiError."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import TypeVar

from starlette.responses import JSONResponse

from mailfax.sandbox.records import JsonObject, RetryOptions, SendRequest, Upload

T = TypeVar("T")

# Worded like the jsonschema messages the real API answers with.
_JSON_TYPE_NAMES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
}
_DESTINATION = re.compile(r"\+[0-9]+")
_SEND_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [+][0-9]{4}")
_NO_NUMBER = ("no_number", "NO_NUMBER")
_COVER_PAGE_FLAGS = frozenset({"urgent", "for_review", "please_reply", "confidential"})
_MAX_FILES = 10
_MAX_DESTINATIONS = 4000
_MAX_RETRY_COUNT = 3
_MAX_RETRY_DELAY = 30
# concepts/fax (newer page): "150 MB" per send, answered 413 above it.
MAX_SEND_BYTES = 150 * 1024 * 1024
HOOK_EVENTS = frozenset({"fax_sent", "fax_received"})


class ApiError(Exception):
    """An error answered with the API's `{"error", "description"}` body."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "description": self.description}, status_code=self.status
        )


def bad_request(description: str) -> ApiError:
    return ApiError(400, "bad_request", description)


def too_large(size: int) -> ApiError:
    limit = MAX_SEND_BYTES // (1024 * 1024)
    return ApiError(
        413, "payload_too_large", f"{size} bytes is over the {limit} MB a send may carry"
    )


def parse_json_object(raw: bytes) -> JsonObject:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    return _expect(body, dict)


def _expect(value: object, kind: type[T]) -> T:
    # bool is an int in Python but not in JSON Schema.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad_request(f"{value!r} is not of type '{_JSON_TYPE_NAMES[kind]}'")
    return value


def optional_field(body: Mapping[str, object], key: str, kind: type[T]) -> T | None:
    value = body.get(key)
    return None if value is None else _expect(value, kind)


def required_field(body: Mapping[str, object], key: str, kind: type[T]) -> T:
    value = optional_field(body, key, kind)
    if value is None:
        raise bad_request(f"'{key}' is a required property")
    return value


def _string_list(body: Mapping[str, object], key: str, *, required: bool) -> list[str]:
    values = required_field(body, key, list) if required else optional_field(body, key, list)
    return [_expect(value, str) for value in values or []]


def parse_send_request(
    body: JsonObject, account_numbers: tuple[str, ...], uploads: Mapping[str, Upload]
) -> SendRequest:
    """Validate a `PayloadOutbox` against the account it is sent from."""
    comment = optional_field(body, "comment", dict) or {}
    options = optional_field(body, "options", dict)
    retry = _retry_options(options or {})
    enhancement = optional_field(options or {}, "enhancement", bool)
    enhancement = True if enhancement is None else enhancement
    source = required_field(body, "from", str)
    return SendRequest(
        source=source,
        sources=_sources(source, account_numbers),
        destinations=_destinations(body),
        files=_files(body, uploads),
        comment=optional_field(comment, "text", str) or "",
        tags=tuple(_string_list(comment, "tags", required=False)),
        received_options={} if options is None else options,
        options={} if options is None else {"enhancement": enhancement, "retry": retry.to_json()},
        enhancement=enhancement,
        retry=retry,
        send_time=_send_time(body),
        return_ids=optional_field(body, "return_ids", bool) or False,
        cover_page=_cover_page(body),
    )


def _sources(source: str, account_numbers: tuple[str, ...]) -> tuple[str, ...]:
    if source in _NO_NUMBER:
        return (source,)
    # send-a-fax: several of the account's numbers, comma-separated, balance the load.
    numbers = tuple(number.strip() for number in source.split(","))
    for number in numbers:
        if number not in account_numbers:
            raise bad_request(f"'from' {number!r} is not a number of this account")
    return numbers


def _destinations(body: JsonObject) -> tuple[str, ...]:
    destinations = _string_list(body, "to", required=True)
    if not destinations:
        raise bad_request("'to' must contain at least one destination")
    if len(destinations) > _MAX_DESTINATIONS:
        raise ApiError(
            400, "too_many_destinations", f"'to' accepts at most {_MAX_DESTINATIONS} destinations"
        )
    for destination in destinations:
        if not _DESTINATION.fullmatch(destination):
            raise bad_request(f"{destination!r} is not an E.164 number like '+17185554567'")
    if len(set(destinations)) != len(destinations):
        # The 201 maps destination -> fax id, so a repeated destination would lose an id.
        raise bad_request("'to' lists a destination more than once")
    return tuple(destinations)


def _files(body: JsonObject, uploads: Mapping[str, Upload]) -> tuple[Upload, ...]:
    paths = _string_list(body, "files", required=True)
    if not paths:
        raise bad_request("'files' must contain at least one uploaded file path")
    if len(paths) > _MAX_FILES:
        raise ApiError(400, "too_many_files", f"'files' accepts at most {_MAX_FILES} files")
    unknown = [path for path in paths if path not in uploads]
    if unknown:
        raise bad_request(f"unknown file path(s): {', '.join(unknown)}")
    files = tuple(uploads[path] for path in paths)
    size = sum(len(upload.content) for upload in files)
    if size > MAX_SEND_BYTES:
        raise too_large(size)
    return files


def _retry_options(options: JsonObject) -> RetryOptions:
    retry = optional_field(options, "retry", dict) or {}
    count = optional_field(retry, "count", int) or 0
    delay = optional_field(retry, "delay", int) or 0
    if not 0 <= count <= _MAX_RETRY_COUNT:
        raise bad_request(f"retry count {count} is outside 0..{_MAX_RETRY_COUNT}")
    if not 0 <= delay <= _MAX_RETRY_DELAY:
        raise bad_request(f"retry delay {delay} is outside 0..{_MAX_RETRY_DELAY}")
    return RetryOptions(count, delay)


def _send_time(body: JsonObject) -> datetime | None:
    send_time = optional_field(body, "send_time", str)
    if send_time is None:
        return None
    if not _SEND_TIME.fullmatch(send_time):
        raise bad_request(f"'send_time' {send_time!r} is not 'YYYY-MM-DD HH:mm:ss +HHMM'")
    try:
        return datetime.strptime(send_time, "%Y-%m-%d %H:%M:%S %z")
    except ValueError as exc:
        raise bad_request(f"'send_time' {send_time!r}: {exc}") from None


def _cover_page(body: JsonObject) -> JsonObject | None:
    cover_page = optional_field(body, "cover_page", dict)
    if cover_page is None:
        return None
    parsed: JsonObject = {
        key: required_field(cover_page, key, str) for key in ("name_to", "name_from", "subject")
    }
    message = optional_field(cover_page, "message", str)
    if message is not None:
        parsed["message"] = message
    flags = _string_list(cover_page, "flags", required=False)
    unknown_flags = set(flags) - _COVER_PAGE_FLAGS
    if unknown_flags:
        raise bad_request(f"unknown cover page flag(s): {', '.join(sorted(unknown_flags))}")
    parsed["flags"] = flags
    return parsed


def parse_hook(body: JsonObject) -> tuple[str, str]:
    """Validate a webhook registration into (target, event)."""
    target = required_field(body, "target", str)
    event = required_field(body, "event", str)
    if not target.startswith(("http://", "https://")):
        raise bad_request(f"'target' {target!r} is not an http(s) URL")
    if event not in HOOK_EVENTS:
        raise bad_request(f"'event' {event!r} is not one of {sorted(HOOK_EVENTS)}")
    return target, event


@dataclass(frozen=True)
class FilePart:
    file_name: str
    media_type: str  # "" when the part declares no Content-Type
    content: bytes


def parse_fax_file(content_type: str, body: bytes) -> FilePart:
    """Extract the `fax_file` part of a multipart/form-data upload."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise bad_request("the upload must be multipart/form-data")
    # The stdlib MIME parser reads form-data fine and spares a python-multipart dependency.
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    assert isinstance(message, EmailMessage)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != "fax_file":
            continue
        file_name = part.get_filename()
        if not file_name:
            raise bad_request("the 'fax_file' part needs a filename")
        content = part.get_payload(decode=True)
        media_type = part.get_content_type() if "content-type" in part else ""
        return FilePart(file_name, media_type, content if isinstance(content, bytes) else b"")
    raise bad_request("missing multipart part 'fax_file'")
