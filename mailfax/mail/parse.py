"""Lenient MIME parsing and decoding: structure, transfer encodings, charsets, headers, names."""

from __future__ import annotations

import binascii
import codecs
import quopri
import re
import unicodedata
from dataclasses import dataclass
from email import errors, policy
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value, parseaddr

from mailfax.mail.headers import MAIL_POLICY, header_safe
from mailfax.mail.split import split_message

# Defects that mean the parser gave up on a multipart and kept its body as one blob.
_LOST_STRUCTURE = (
    errors.StartBoundaryNotFoundDefect,
    errors.NoBoundaryInMultipartDefect,
    errors.MultipartInvariantViolationDefect,
)

# "Content-Type: multipart/mixed<whitespace>boundary=..." (a ";" forgotten, often before a fold).
_MISSING_SEMICOLON = re.compile(
    rb"(?im)^(content-(?:type|disposition):[ \t]*[\w.+-]+(?:/[\w.+-]+)?)"
    rb"(?=[ \t]*\r?\n?[ \t]+[\w*-]+[ \t]*=)"
)


def parse_message(raw: bytes) -> Message:
    """Parse with the strict modern policy; when it loses a multipart, take a lenient parse."""
    strict = split_message(raw) or BytesParser(policy=MAIL_POLICY).parsebytes(raw)
    if not _lost_structure(strict):
        return strict
    repaired = _MISSING_SEMICOLON.sub(rb"\1;", raw)
    candidates = [
        strict,
        # compat32 keeps an unquoted boundary containing "=" whole (Outlook Express, JavaMail).
        BytesParser(policy=policy.compat32).parsebytes(raw),
        BytesParser(policy=MAIL_POLICY).parsebytes(repaired),
    ]
    return max(candidates, key=_structure_score)


def _lost_structure(message: Message) -> bool:
    return any(
        isinstance(defect, _LOST_STRUCTURE) for part in message.walk() for defect in part.defects
    )


def _structure_score(message: Message) -> tuple[int, int]:
    """Better = more parts recovered, then fewer structural defects (first candidate wins ties)."""
    parts = list(message.walk())
    lost = sum(isinstance(defect, _LOST_STRUCTURE) for part in parts for defect in part.defects)
    return (len(parts), -lost)


# --- headers -------------------------------------------------------------------------


def raw_header(part: Message, name: str) -> str | None:
    """The header's value as it was sent (unfolded), or None; never raises."""
    wanted = name.lower()
    for key, value in part.raw_items():
        if key.lower() == wanted:
            return re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()
    return None


def repair_8bit(text: str, charset: str | None = None) -> str:
    """Raw 8-bit header bytes (kept as surrogate escapes by the parser) read as text."""
    if not any("\udc80" <= char <= "\udcff" for char in text):
        return text
    return decode_text(text.encode("utf-8", "surrogateescape"), charset)


def decode_words(text: str, charset: str | None = None) -> str:
    """Decode RFC 2047 encoded-words wherever they are (also inside quotes), never raising."""
    text = repair_8bit(text, charset)
    if "=?" not in text:
        return text
    try:
        chunks = decode_header(text)
    except (errors.HeaderParseError, ValueError, IndexError):
        return text
    return "".join(
        chunk if isinstance(chunk, str) else decode_text(chunk, charset)
        for chunk, charset in chunks
    )


def header_text(part: Message, name: str) -> str:
    """A header as readable text on one line: unfolded, encoded-words decoded, raw 8-bit bytes
    read in the part's own charset when they are not UTF-8, control characters (an encoded
    CR LF) made spaces."""
    value = raw_header(part, name)
    return header_safe(decode_words(value, part_charset(part))) if value else ""


def sender(message: Message) -> tuple[str, str]:
    """The From header's display name, decoded, and its address ("" for what is missing)."""
    value = raw_header(message, "From")
    if not value:
        return "", ""
    name, address = parseaddr(repair_8bit(value, part_charset(message)))
    return _without_controls(decode_words(name)).strip(), _without_controls(address).strip()


# --- content type and parameters -----------------------------------------------------

_MEDIA_TYPE = re.compile(r"^\s*([A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+)")


def content_type(part: Message) -> str | None:
    """The declared media type (lower case), read leniently; None when absent or unreadable."""
    value = raw_header(part, "Content-Type")
    if value is None:
        return None
    match = _MEDIA_TYPE.match(value)
    return match.group(1).lower() if match else None


def header_param(part: Message, header: str, param: str) -> str | None:
    """A parameter of a structured header (RFC 2231 continuations and charsets, RFC 2047 words)."""
    value = raw_header(part, header)
    if value is None:
        return None
    holder = Message()  # compat32: parameter parsing without the modern parser's strictness
    holder[header] = repair_8bit(value)
    try:
        found = holder.get_param(param, header=header)
        if found is None or found == "":
            return None
        text = collapse_rfc2231_value(found) if isinstance(found, tuple) else found
    except (LookupError, ValueError, TypeError, IndexError):
        return None
    return decode_words(text)


def part_filename(part: Message) -> str | None:
    """The file name a client gave a part: Content-Disposition filename, else Content-Type name."""
    for header, param in (("Content-Disposition", "filename"), ("Content-Type", "name")):
        name = header_param(part, header, param)
        if name and name.strip():
            return name
    return None


def disposition(part: Message) -> str | None:
    value = raw_header(part, "Content-Disposition")
    if not value:
        return None
    token = value.split(";", 1)[0].strip().lower()
    return token or None


def content_id(part: Message) -> str | None:
    value = raw_header(part, "Content-ID")
    if not value:
        return None
    return value.strip().strip("<>").strip().lower() or None


def sanitise_filename(name: str | None, fallback: str) -> str:
    """Keep the last path component, drop control and format characters, bound the length."""
    if not name:
        return fallback
    base = re.split(r"[/\\]", name)[-1]
    base = _without_controls(base).strip().strip(".").strip() or fallback
    return base[:150]


def _without_controls(text: str) -> str:
    # Cc: control characters; Cf: format characters such as the right-to-left override
    # that can disguise "fdp.exe" as "exe.pdf".
    return "".join(char for char in text if unicodedata.category(char) not in ("Cc", "Cf"))


# --- transfer encodings --------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """A part's decoded bytes, and why they cannot be trusted (None when they can)."""

    data: bytes
    problem: str | None = None


_IDENTITY = {"", "7bit", "8bit", "binary", "7bits", "8bits", "7-bit", "8-bit"}
_UUENCODE = {"x-uuencode", "uuencode", "x-uue", "uue"}


def decode_payload(part: Message) -> Payload:
    """Undo the Content-Transfer-Encoding; unknown or corrupt encodings are reported, not raised."""
    # The payload as received: get_payload() would re-decode 8-bit text lossily with the declared
    # charset, and the parser keeps the received bytes only in this attribute.
    body = part.__dict__.get("_payload")
    if not isinstance(body, str):
        return Payload(b"", "it has no content")
    data = body.encode("utf-8", "surrogateescape")
    encoding = _transfer_encoding(part)
    if encoding in _IDENTITY:
        return Payload(data)
    if encoding == "quoted-printable":
        return Payload(quopri.decodestring(data))
    if encoding == "base64":
        return _decode_base64(data)
    if encoding in _UUENCODE:
        return _decode_uuencode(data)
    return Payload(data, f"its transfer encoding {encoding!r} is unknown")


def _transfer_encoding(part: Message) -> str:
    value = raw_header(part, "Content-Transfer-Encoding") or ""
    # Seen in the wild: "quoted-printable;", "8 bit", '"base64"'.
    return value.split(";", 1)[0].strip().strip("\"'").lower().replace(" ", "")


_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]")
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what rb"\s" matches


def _decode_base64(data: bytes) -> Payload:
    # bytes.translate deletes in one C pass: regular expressions took a third of the
    # extraction of a typical fax mail (a 100 KB PDF in base64), line break by line break.
    cleaned = data.translate(None, _WHITESPACE)
    corrupt = bool(cleaned.translate(None, _BASE64_ALPHABET))
    if corrupt:
        cleaned = _BASE64_JUNK.sub(b"", cleaned)
    cleaned = cleaned.rstrip(b"=")
    if len(cleaned) % 4 == 1:  # a lone sextet cannot encode a byte: the data was cut
        cleaned, corrupt = cleaned[:-1], True
    try:
        decoded = binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
    except binascii.Error:
        return Payload(b"", "its base64 encoding is corrupt")
    return Payload(decoded, "its base64 encoding is corrupt" if corrupt else None)


def _decode_uuencode(data: bytes) -> Payload:
    lines = data.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(b"begin ")), None)
    if start is None:
        return Payload(b"", "its uuencoded content is missing")
    out: list[bytes] = []
    for line in lines[start + 1 :]:
        if line.strip() in (b"end", b"`", b""):
            break
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            # Some encoders pad lines with garbage; decode only the declared length.
            length = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out.append(binascii.a2b_uu(line[:length]))
            except binascii.Error:
                return Payload(b"".join(out), "its uuencoded content is corrupt")
    return Payload(b"".join(out))


# --- charsets ------------------------------------------------------------------------

# Labels mail clients write for a superset (WHATWG Encoding Standard practice) or misspell.
_CHARSET_SUPERSETS = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "iso-8859-8-i": "iso-8859-8",
}


def decode_text(data: bytes, charset: str | None) -> str:
    """Text of a body or header, surviving unknown or lying charsets; never raises."""
    declared = [codec for codec in _codecs_for(charset) if _known_codec(codec)]
    # Non-ASCII bytes that form valid UTF-8 are UTF-8 whatever the label says: legacy text
    # almost never validates by accident. ASCII bytes may still be a 7-bit charset (ISO-2022-JP).
    for codec in ["utf-8", *declared] if not data.isascii() else [*declared, "ascii"]:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    damaged = data.decode("utf-8", "replace").count("\ufffd")
    utf8_label = bool(declared) and codecs.lookup(declared[0]).name == "utf-8"
    if not declared or utf8_label or damaged * 20 <= len(data):
        # Mostly UTF-8 with some legacy bytes (a client pasting Latin-1 into UTF-8 text).
        return data.decode("utf-8", _LEGACY_BYTES)
    return data.decode(declared[0], "replace")


_LEGACY_BYTES = "mailfax-cp1252"


def _cp1252_bytes(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each undecodable byte read as Windows-1252 (Latin-1 where undefined)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    text = "".join(_legacy_char(byte) for byte in error.object[error.start : error.end])
    return text, error.end


def _legacy_char(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)  # the five bytes Windows-1252 leaves undefined: Latin-1


codecs.register_error(_LEGACY_BYTES, _cp1252_bytes)


def _known_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _codecs_for(charset: str | None) -> list[str]:
    """Python codecs to try for a charset label, best first (none for a missing label)."""
    label = (charset or "").strip().strip("\"'").lower()
    if not label:
        return []
    # "x-mac-cyrillic" is Python's "maccyrillic"; unknown labels yield only failing lookups.
    stripped = label.removeprefix("x-")
    return [_CHARSET_SUPERSETS.get(label, label), label, stripped, stripped.replace("-", "")]


def part_charset(part: Message) -> str | None:
    return header_param(part, "Content-Type", "charset")
