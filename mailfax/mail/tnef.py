"""Unpacks Outlook's winmail.dat (application/ms-tnef): the files inside it and its plain text."""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

from tnefparse import TNEF

from mailfax.mail.parse import decode_text

# tnefparse logs every oddity of a damaged blob as a warning; extraction reports them itself.
logging.getLogger("tnefparse").setLevel(logging.ERROR)

_SIGNATURE = b'x\x9f>"'
# tnefparse copies the rest of the blob for every object it reads: a blob of millions of
# tiny objects would take quadratic time, so such a blob is refused before decoding.
_MAX_OBJECTS = 20_000
_MAX_DEPTH = 5  # Outlook items attached to Outlook items


@dataclass(frozen=True)
class TnefFile:
    name: str
    data: bytes


@dataclass(frozen=True)
class TnefContent:
    """The files of a TNEF blob in order (embedded Outlook items flattened) and its text body."""

    files: tuple[TnefFile, ...]
    body: str


class TnefError(Exception):
    """The blob is not TNEF or is damaged beyond reading."""


def unpack_tnef(data: bytes) -> TnefContent:
    """Decode a winmail.dat; raises TnefError (never anything else) when it cannot."""
    if not data.startswith(_SIGNATURE):
        raise TnefError("it is not a TNEF file")
    if _object_count(data) > _MAX_OBJECTS:
        raise TnefError("it holds too many TNEF objects")
    try:
        tnef = TNEF(data, do_checksum=False)
        files = tuple(_files(tnef, 0))
        body = _text(tnef.body)
    except Exception as exc:  # tnefparse raises anything (IndexError, struct.error, ...)
        raise TnefError("it is damaged") from exc
    return TnefContent(files, body)


def _object_count(data: bytes) -> int:
    """Walk the object headers (level u8, id u32, length u32, data, checksum u16) cheaply."""
    offset, count = 6, 0
    while offset + 9 <= len(data) and count <= _MAX_OBJECTS:
        (length,) = struct.unpack_from("<I", data, offset + 5)
        offset += 9 + length + 2
        count += 1
    return count


def _files(tnef: Any, depth: int) -> list[TnefFile]:
    files: list[TnefFile] = []
    for attachment in tnef.attachments:
        embedded = getattr(attachment, "embed", None)
        if embedded is not None and depth < _MAX_DEPTH:
            files.extend(_files(embedded, depth + 1))
            continue
        name = attachment.long_filename() or attachment.name
        if isinstance(name, bytes):
            name = decode_text(name, None)
        files.append(TnefFile(str(name).strip("\x00"), bytes(attachment.data)))
    return files


def _text(body: object) -> str:
    if isinstance(body, bytes):
        return decode_text(body.rstrip(b"\x00"), None)
    return str(body or "").rstrip("\x00")
