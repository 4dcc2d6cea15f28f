"""Pure message extraction: the faxable documents, the fax comment and a report of every part."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from email.message import Message
from urllib.parse import unquote

from mailfax.convert import Converter, converter_for
from mailfax.documents import (
    ConversionError,
    ImageTooLarge,
    PdfCheck,
    check_image_budget,
    check_pdf,
    image_size,
    image_to_pdf,
)
from mailfax.mail.headers import message_id_token
from mailfax.mail.html import html_to_text
from mailfax.mail.identify import FAXABLE_IMAGES, NOT_DOCUMENTS, Kind, extension, identify
from mailfax.mail.model import (
    Action,
    Document,
    Extraction,
    ExtractionOptions,
    NeedsConversion,
    NeedsLargeSlot,
    PartReport,
)
from mailfax.mail.parse import (
    content_id,
    content_type,
    decode_payload,
    decode_text,
    disposition,
    header_text,
    parse_message,
    part_charset,
    part_filename,
    raw_header,
    sanitise_filename,
    sender,
)
from mailfax.mail.tnef import TnefError, unpack_tnef
from mailfax.policy import Refusal
from mailfax.typeset import body_pdf

# Images this small that are not attachments are logos, signatures and spacers.
INLINE_IMAGE_BYTES = 10_000
# Deeper nesting is an attack on the parser, not a mail a person wrote.
MAX_DEPTH = 30


# Parts nested hundreds deep exhaust the recursion of the stdlib's parser and of the walk.
TOO_DEEP = Refusal(
    554,
    "5.6.0",
    "The message's parts are nested too deeply to read (more than 30 levels of parts or "
    "attached mails); send the documents attached to one ordinary mail.",
)


def extract_documents(
    raw: bytes, options: ExtractionOptions | None = None, converter: Converter | None = None
) -> Extraction:
    """Parse a raw RFC 5322 message and decide what would be faxed; Office and text documents
    go through `converter` (by default LibreOffice as `options` configure it)."""
    opts = options or ExtractionOptions()
    try:
        return _extract(raw, opts, converter or converter_for(opts))
    except RecursionError:
        return Extraction((), (), "", "", "", "", TOO_DEEP)


def _extract(raw: bytes, opts: ExtractionOptions, converter: Converter | None) -> Extraction:
    message = parse_message(raw)
    walker = _Walker(opts, converter, _cid_references(message))
    bodies = walker.walk(message, _Context())
    comment = _comment(bodies) or walker.fallback_body.strip()
    documents = walker.documents
    refusal = walker.refusal
    if refusal is None and walker.unfaxable:
        if documents and opts.unfaxable == "fax-the-rest":
            walker.mark_left_out()
        else:
            refusal = Refusal(550, "5.6.0", _unfaxable_text(walker.unfaxable, bool(documents)))
    if refusal is None and not documents:
        refusal, documents = _body_only(comment, walker, opts)
    total = sum(doc.pages for doc in documents)
    if refusal is None and total > opts.max_pages:
        refusal = Refusal(
            552,
            "5.3.4",
            f"Too many pages: the documents have {total} pages, "
            f"this gateway faxes at most {opts.max_pages} per message.",
        )
    sender_name, sender_address = sender(message)
    return Extraction(
        documents=tuple(documents) if refusal is None else (),
        parts=tuple(walker.reports),
        comment=comment[: opts.max_comment_chars].strip(),
        subject=header_text(message, "Subject"),
        # A msg-id is never encoded (RFC 2047 5): one that is not well-formed is not kept.
        message_id=message_id_token(raw_header(message, "Message-ID") or ""),
        auto_submitted=header_text(message, "Auto-Submitted").lower(),
        refusal=refusal,
        sender_name=sender_name,
        sender_address=sender_address,
    )


def _body_only(
    comment: str, walker: _Walker, opts: ExtractionOptions
) -> tuple[Refusal | None, list[Document]]:
    """A mail without a faxable document: refused, or its text typeset when so configured."""
    reports = walker.reports
    # Rendering a mail whose attachment could not be faxed would fax it without the document.
    only_text = len(reports) == walker.inline_images
    if opts.body_only == "render" and comment and only_text:
        rendered = body_pdf(comment)
        pages = check_pdf(rendered).pages
        reports.append(
            PartReport("mail-text.pdf", "text/plain", len(comment), pages, "converted", _RENDERED)
        )
        return None, [Document("mail-text.pdf", rendered, pages)]
    if reports:
        return Refusal(550, "5.6.0", _nothing_faxable(reports)), []
    if comment:
        text = "No document to fax: the message has only a text body. Attach a PDF."
    else:
        text = "No document to fax: the message is empty. Attach a PDF."
    return Refusal(550, "5.6.0", text), []


def _unfaxable_text(unfaxable: list[tuple[int, str]], others_faxable: bool) -> str:
    """The refusal of a mail with an attachment that cannot be faxed: the first one's name and
    reason (nothing is faxed rather than a fax without a document the sender chose)."""
    count = len(unfaxable) - 1
    more = f" ({count} more attachment{'s' if count != 1 else ''} cannot be faxed)" if count else ""
    return f"{unfaxable[0][1]}{more}.{' Nothing was faxed.' if others_faxable else ''}"


_RENDERED = "no document attached: the mail's text typeset as the fax ([smtp] body_only)"


def _nothing_faxable(reports: list[PartReport]) -> str:
    found = ", ".join(f"{r.name} ({r.content_type})" for r in reports[:5])
    more = f" and {len(reports) - 5} more" if len(reports) > 5 else ""
    return f"No document to fax: attach a PDF. Found only {found}{more}."


# --- the walk ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    depth: int = 0
    in_related: bool = False
    # Inside an attached mail (message/rfc822): its text is not the fax comment.
    in_attached_mail: bool = False

    def inner(self, **changes: bool) -> _Context:
        return replace(self, depth=self.depth + 1, **changes)


@dataclass(frozen=True)
class _Body:
    text: str
    html: bool


@dataclass(frozen=True)
class _Leaf:
    """A part that is not a multipart, as extraction sees it."""

    name: str
    content_type: str
    data: bytes
    kind: Kind
    inline: bool
    # Attached by the sender as a document (not a picture shown in the mail's text).
    chosen: bool = True
    charset: str | None = None  # a text part's declared charset


_REASONS: dict[Kind, str] = {
    "image": "this image format is not faxed; send PDF, JPEG, PNG or TIFF",
    "outlook-item": "an Outlook item (.msg) is not faxed; attach the document itself",
    "office": "Office documents need LibreOffice, which is off or not installed; send a PDF",
    "archive": "archives are not unpacked; attach the documents themselves",
    "calendar": "calendar entries are not faxed",
    "contact": "contact cards are not faxed",
    "signature": "digital signature, not a document",
    "text": "text attachments are not faxed; the mail's own text is the fax comment",
    "other": "not a document mailfax faxes; send PDF, JPEG, PNG or TIFF",
}
# Why a file the sender attached is not faxed, in the sender's words (after its name).
_UNFAXABLE: dict[Kind, str] = {
    "image": "is an image format that is not faxed: send PDF, JPEG, PNG or TIFF",
    "outlook-item": "is an Outlook item: attach the document itself",
    "archive": "is an archive: attach the documents themselves",
}
_NOT_FAXED = "is not a document this gateway faxes: send PDF, JPEG, PNG or TIFF"
# The same for a file that is converted when LibreOffice is there, and it is not.
_NOT_CONVERTED = "could not be converted: this gateway does not convert {what}; send a PDF"
_KIND_NAMES: dict[Kind, str] = {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}
_FALLBACK_EXTENSIONS: dict[Kind, str] = {
    "pdf": ".pdf",
    "jpeg": ".jpg",
    "png": ".png",
    "tiff": ".tif",
    "message": ".eml",
    "tnef": ".dat",
}


@dataclass
class _Walker:
    options: ExtractionOptions
    converter: Converter | None
    cid_references: frozenset[str]
    documents: list[Document] = field(default_factory=list)
    reports: list[PartReport] = field(default_factory=list)
    refusal: Refusal | None = None
    # Text found only inside winmail.dat: the comment when the mail has no other text.
    fallback_body: str = ""
    inline_images: int = 0
    pages: int = 0
    # Attachments the sender chose that cannot be faxed: their report's index, and why.
    unfaxable: list[tuple[int, str]] = field(default_factory=list)

    def mark_left_out(self) -> None:
        """The unfaxable attachments' reports say they were left out of the fax."""
        for index, _ in self.unfaxable:
            self.reports[index] = replace(self.reports[index], left_out=True)

    def walk(self, part: Message, ctx: _Context) -> list[_Body]:
        """Handle `part` and its descendants; return the body texts found, in order."""
        payload = part.get_payload()
        media = part.get_content_type()
        if ctx.depth > MAX_DEPTH:
            self._report(self._fallback_name("other"), media, 0, "unreadable", "nested too deeply")
            return []
        if isinstance(payload, list):
            children = [child for child in payload if isinstance(child, Message)]
            if media in ("message/rfc822", "message/global") and children:
                self._attached_mail(part, children[0], ctx)
                return []
            if not media.startswith("multipart/"):  # delivery and read reports: header blocks
                name = sanitise_filename(part_filename(part), self._fallback_name("other"))
                self._report(name, media, _size(part), "ignored", _REASONS["other"])
                return []
            if media == "multipart/alternative":
                return _preferred([self.walk(child, ctx.inner()) for child in children])
            inner = ctx.inner(in_related=ctx.in_related or media == "multipart/related")
            return [body for child in children for body in self.walk(child, inner)]
        if media.startswith("multipart/"):
            if not str(payload).strip():
                return []  # a multipart with no parts at all: nothing was lost
            self._report(
                self._fallback_name("other"),
                media,
                len(str(payload)),
                "unreadable",
                "its multipart structure is broken (no boundary found)",
            )
            return []
        return self._leaf(part, ctx)

    def _leaf(self, part: Message, ctx: _Context) -> list[_Body]:
        declared = content_type(part)
        header = raw_header(part, "Content-Type")
        # Without a Content-Type a part is text/plain (RFC 2045); with an unreadable one, unknown.
        shown = declared or ("text/plain" if header is None else "application/octet-stream")
        raw_name = part_filename(part)
        how = disposition(part)
        decoded = decode_payload(part)
        if shown in ("text/plain", "text/html") and raw_name is None and how != "attachment":
            if ctx.in_attached_mail:
                return []  # the attached mail's text: its report row covers it
            text = decode_text(decoded.data, part_charset(part))
            return [_Body(text, shown == "text/html")]
        kind = identify(declared if header is not None else None, raw_name, decoded.data)
        name = sanitise_filename(raw_name, self._fallback_name(kind))
        embedded = self._is_embedded(part, ctx)
        inline = embedded or (len(decoded.data) < INLINE_IMAGE_BYTES and how != "attachment")
        # A small picture without "attachment" is a logo; any other file is the sender's.
        chosen = not inline if kind in FAXABLE_IMAGES or kind == "image" else not embedded
        leaf = _Leaf(name, shown, decoded.data, kind, inline, chosen, part_charset(part))
        if decoded.problem is None:
            self._handle(leaf, ctx)
            return []
        self._report_leaf(leaf, None, "unreadable", decoded.problem)
        problem = f"The file {name!r} cannot be read: {decoded.problem}"
        if kind not in NOT_DOCUMENTS and chosen:
            self._unfaxable(problem)
        return []

    def _handle(self, leaf: _Leaf, ctx: _Context) -> None:
        kind = leaf.kind
        if self.pages > self.options.max_pages:
            # Refused for its page count already: a winmail.dat or mail of thousands of PDFs
            # costs no more than the first max_pages pages.
            self._report_leaf(leaf, None, "ignored", "not read: the page limit is exceeded")
        elif kind == "pdf":
            self._pdf(leaf)
        elif kind in FAXABLE_IMAGES:
            self._image(leaf)
        elif kind == "tnef":
            self._tnef(leaf, ctx)
        elif kind == "message":
            self._attached_mail_bytes(leaf, ctx)
        elif kind == "text" and not leaf.data.strip():
            self._report_leaf(leaf, None, "ignored", "an empty text file")
        elif (as_name := conversion_name(leaf.kind, leaf.name, leaf.content_type)) is None:
            self._report_leaf(leaf, None, "ignored", _REASONS[kind])
            if leaf.chosen and kind not in NOT_DOCUMENTS:
                self._unfaxable(f"{leaf.name} {_UNFAXABLE.get(kind, _NOT_FAXED)}")
        elif self.converter is not None:
            if self.options.defer_conversion:
                raise NeedsConversion
            self._convert(leaf, self.converter, as_name)
        else:
            self._report_leaf(leaf, None, "ignored", _REASONS[kind])
            what = "Office documents" if kind == "office" else "text files"
            self._unfaxable(f"{leaf.name} {_NOT_CONVERTED.format(what=what)}")

    def _unfaxable(self, sentence: str) -> None:
        """The part just reported cannot be faxed, and the sender attached it."""
        self.unfaxable.append((len(self.reports) - 1, sentence))

    def _pdf(self, leaf: _Leaf) -> None:
        check = check_pdf(leaf.data)
        if check.problem is not None:
            self._report_leaf(leaf, None, "unreadable", f"the PDF {check.problem}")
            self._unfaxable(f"The PDF {leaf.name!r} {check.problem}")
            return
        reason = "PDF, repaired (it was damaged)" if check.repaired else "PDF"
        self._accept(leaf, check, check.repaired or leaf.data, "faxed", reason)

    def _image(self, leaf: _Leaf) -> None:
        label = _KIND_NAMES[leaf.kind]
        if leaf.inline:
            self.inline_images += 1
            self._report_leaf(leaf, None, "ignored", f"{label} image shown in the mail's text")
            return
        opts = self.options
        try:
            size = image_size(leaf.data, opts.max_pages)
            check_image_budget(size, opts.image_frame_bytes, opts.image_total_bytes)
            if opts.large_decoded_bytes and size.largest_frame_bytes > opts.large_decoded_bytes:
                raise NeedsLargeSlot
            pdf = image_to_pdf(leaf.data)
        except ConversionError as exc:
            if isinstance(exc, ImageTooLarge) and self.refusal is None:
                # Refused with its reason even when it is the mail's only document.
                self.refusal = Refusal(552, "5.3.4", f"The image {leaf.name!r} {exc}.")
            self._report_leaf(leaf, None, "unreadable", f"the {label} image {exc}")
            self._unfaxable(f"The image {leaf.name!r} {exc}")
            return
        self._accept(leaf, check_pdf(pdf), pdf, "converted", f"{label} image converted to PDF")

    def _convert(self, leaf: _Leaf, converter: Converter, as_name: str) -> None:
        data = leaf.data
        if leaf.kind == "text":
            # LibreOffice reads a text file as UTF-8 when it starts with a byte-order mark,
            # else in a guessed charset: the part's own charset is decoded here instead.
            data = decode_text(data, leaf.charset).encode("utf-8-sig")
        try:
            pdf = converter.to_pdf(data, as_name)
        except ConversionError as exc:
            self._report_leaf(leaf, None, "unreadable", f"could not be converted to PDF: {exc}")
            self._unfaxable(f"{leaf.name} could not be converted: {exc}")
            return
        check = check_pdf(pdf)
        if check.problem is not None:
            self._report_leaf(leaf, None, "unreadable", "LibreOffice made an unreadable PDF")
            self._unfaxable(f"{leaf.name} could not be converted: the result was not a valid PDF")
            return
        converted = check.repaired or pdf
        self._accept(leaf, check, converted, "converted", "converted to PDF by LibreOffice")

    def _accept(self, leaf: _Leaf, check: PdfCheck, pdf: bytes, action: Action, why: str) -> None:
        self.documents.append(Document(leaf.name, pdf, check.pages))
        self.pages += check.pages
        self._report_leaf(leaf, check.pages, action, why)

    def _tnef(self, leaf: _Leaf, ctx: _Context) -> None:
        if ctx.depth > MAX_DEPTH:
            self._report_leaf(leaf, None, "unreadable", "nested too deeply")
            return
        try:
            content = unpack_tnef(leaf.data)
        except TnefError as exc:
            self._report_leaf(leaf, None, "unreadable", f"Outlook winmail.dat: {exc}")
            return
        names = ", ".join(f.name or "unnamed" for f in content.files) or "no files"
        self._report_leaf(leaf, None, "ignored", f"Outlook winmail.dat, unpacked: {names}")
        if not self.fallback_body:
            self.fallback_body = content.body
        inner = ctx.inner()
        for item in content.files:
            kind = identify(None, item.name, item.data)
            name = sanitise_filename(item.name, self._fallback_name(kind))
            shown = _TNEF_TYPES.get(kind, "application/octet-stream")
            self._handle(_Leaf(name, shown, item.data, kind, inline=False), inner)

    def _attached_mail_bytes(self, leaf: _Leaf, ctx: _Context) -> None:
        """An attached mail that arrived encoded (base64 message/rfc822, a .eml file)."""
        inner = parse_message(leaf.data)
        self._report_leaf(leaf, None, "ignored", _ATTACHED_MAIL)
        self.walk(inner, ctx.inner(in_attached_mail=True))

    def _attached_mail(self, part: Message, inner: Message, ctx: _Context) -> None:
        name = sanitise_filename(part_filename(part), self._fallback_name("message"))
        self._report(name, "message/rfc822", _size(inner), "ignored", _ATTACHED_MAIL)
        self.walk(inner, ctx.inner(in_attached_mail=True))

    def _is_embedded(self, part: Message, ctx: _Context) -> bool:
        """Shown in the mail's text (a logo, a signature, an embedded picture), not attached."""
        cid = content_id(part)
        return cid is not None and (cid in self.cid_references or ctx.in_related)

    def _fallback_name(self, kind: Kind) -> str:
        stem = {"pdf": "document", "message": "attached-mail"}.get(
            kind, "image" if kind in FAXABLE_IMAGES else "part"
        )
        return f"{stem}-{len(self.reports) + 1}{_FALLBACK_EXTENSIONS.get(kind, '')}"

    def _report_leaf(self, leaf: _Leaf, pages: int | None, action: Action, reason: str) -> None:
        self._report(leaf.name, leaf.content_type, len(leaf.data), action, reason, pages)

    def _report(
        self,
        name: str,
        media: str,
        size: int,
        action: Action,
        reason: str,
        pages: int | None = None,
    ) -> None:
        self.reports.append(PartReport(name, media, size, pages, action, reason))


def conversion_name(kind: Kind, name: str, content_type: str) -> str | None:
    """The name a part is converted to PDF under (its format is told by the suffix), or None
    when it is not converted: Office documents keep theirs, plain text becomes a .txt file."""
    if kind == "office":
        return name
    if kind == "text" and (content_type == "text/plain" or extension(name) == "txt"):
        return "document.txt"
    return None


_ATTACHED_MAIL = "an attached mail: its text is not faxed, its documents are listed after it"
_TNEF_TYPES: dict[Kind, str] = {
    "pdf": "application/pdf",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tiff": "image/tiff",
}


def _size(part: Message) -> int:
    try:
        return len(part.as_bytes())
    except Exception:  # serialising a malformed mail may fail; the size is only informative
        return 0


def _preferred(alternatives: list[list[_Body]]) -> list[_Body]:
    """Of a multipart/alternative, the plain-text version when it has words, else the HTML."""
    for want_html in (False, True):
        for bodies in alternatives:
            if any(b.html == want_html and b.text.strip() for b in bodies):
                return bodies
    return []


def _comment(bodies: list[_Body]) -> str:
    texts = [html_to_text(b.text) if b.html else b.text for b in bodies]
    # An iPhone mail's text is split around each picture: the pieces join into one comment.
    pieces = [t.replace("\r\n", "\n").strip() for t in texts]
    return "\n\n".join(piece for piece in pieces if piece)


_CID = re.compile(r"""cid:([^\s"'<>()]+)""", re.IGNORECASE)


def _cid_references(message: Message) -> frozenset[str]:
    """Every Content-ID the mail's HTML shows (<img src="cid:...">)."""
    found: set[str] = set()
    for part in message.walk():
        if part.get_content_type() == "text/html" and not part.is_multipart():
            html = decode_text(decode_payload(part).data, part_charset(part))
            found.update(unquote(ref).strip("<>").lower() for ref in _CID.findall(html))
    return frozenset(found)
