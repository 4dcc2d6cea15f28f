"""Expected extraction outcome of every mail in ../shared/corpus/real-mail, derived by reading each file."""  # noqa: E501

# Each entry was decided by decoding the file by hand (MIME tree, magic bytes, pikepdf page counts,
# TNEF contents), not by running mailfax. Conventions:
#
# * Raw TNEF blobs (``.dat`` / ``.tnef``) and the one real Outlook compound file
#   (``apache-poi/attachment_msg_pdf.msg``) are wrapped by the test as an attachment named after the
#   file. The other ``*.msg`` files (``mime4j/``, ``mimekit/``) are ordinary RFC 5322 text and are
#   fed as they are.
# * Every refusal in this corpus is ``550 5.6.0``: either nothing faxable remains, or a document
#   that claims to be a PDF (type ``application/pdf`` or a ``.pdf`` name) does not open, or an
#   attachment the sender chose cannot be faxed (an archive, source code; Office and text files
#   too, as the corpus runs without LibreOffice): then ``reason`` is (part of) the first such
#   file's decoded name.
# * ``Faxed.name`` is the decoded, sanitised name of the attached file (an image keeps its own name,
#   e.g. ``favicon.jpg``, even though it is faxed as a converted PDF page).

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Faxed:
    """One faxed document."""

    name: str | None  # the document's (decoded, sanitised) filename; None when the part has none
    pages: int


@dataclass(frozen=True)
class Expected:
    """What extraction must do with one corpus file."""

    faxed: tuple[Faxed, ...] = ()  # in message order; empty means the mail is refused
    refusal: str | None = None  # enhanced code of the refusal, e.g. "5.6.0", when refused
    reason: str = ""  # for refusals: a word/phrase the refusal text must contain
    comment_contains: str = ""  # optional substring of the fax comment
    note: str = ""  # one line: why (what the file exercises, what was decided)


NOTHING = "5.6.0"

EXPECTED: dict[str, Expected] = {
    "apache-poi/attachment_msg_pdf.msg": Expected(
        refusal=NOTHING,
        reason="attachment_msg_pdf.msg",
        note="Outlook .msg (OLE compound file) is not decoded; it does hold a 1-page PDF "
        "smbprn.00009008.KdcPjl.pdf, but .msg support is out of scope, so nothing is faxable",
    ),
    "apache-poi/bug52400-winmail-simple.dat": Expected(
        refusal=NOTHING,
        note="winmail.dat with a body only and no attachments: nothing to fax",
    ),
    "apache-poi/quick-winmail.dat": Expected(
        refusal=NOTHING,
        reason="quick.doc could not be converted",
        note="TNEF decoded: quick.pdf (1 page) is faxable, but quick.doc, quick.html, quick.txt "
        "and quick.xml are attachments that cannot be faxed (no LibreOffice; HTML and XML are "
        "never converted): refused naming the first, rather than a fax without them",
    ),
    "enmime/low-quality/bad-final-boundary.raw": Expected(
        refusal=NOTHING,
        comment_contains="A text section",
        note="malformed closing boundary adds an empty junk part; only a .zip attachment "
        "(ignored) besides the text",
    ),
    "enmime/low-quality/unk-charset-part.raw": Expected(
        refusal=NOTHING,
        comment_contains="A text section",
        note="unknown charset 'fakescii' on the body decodes with fallback; the .zip is ignored",
    ),
    "enmime/low-quality/unk-encoding-part.raw": Expected(
        refusal=NOTHING,
        note="Content-Transfer-Encoding base9000 makes the .zip unreadable; rest of the mail "
        "parses; nothing faxable",
    ),
    "enmime/mail/attachment-only.raw": Expected(
        faxed=(Faxed("favicon.jpg", 1),),
        note="single-part image/jpeg whose bytes are really PNG (16x16); Content-Disposition: "
        "attachment, so faxed despite its size; converted by content, not by label",
    ),
    "enmime/mail/html-mime-bad-unknown-charset-inline.raw": Expected(
        refusal=NOTHING,
        comment_contains="Test of text section",
        note="bogus charset 'charset=us-askey' decodes with fallback; the PNG is an inline "
        "multipart/related image with Content-ID, so not faxed",
    ),
    "enmime/mail/html-only-inline.raw": Expected(
        refusal=NOTHING,
        comment_contains="Test of HTML section",
        note="HTML-only body turned into text; inline cid PNG inside multipart/related not faxed",
    ),
    "enmime/mail/inlinemultipart.raw": Expected(
        refusal=NOTHING,
        reason="test.pdf",
        note="test.pdf is a truncated PDF (header + xref only, no trailer) that qpdf cannot "
        "repair: the mail is refused naming it",
    ),
    "enmime/mail/mime-bad-8bit-filename.raw": Expected(
        refusal=NOTHING,
        note="raw 8-bit UTF-8 filename 管理.doc must not crash; a Word document is ignored",
    ),
    "enmime/mail/mime-bad-content-type.raw": Expected(
        refusal=NOTHING,
        reason="Invoice_302232133150612.pdf",
        note="garbage Content-Type ('application/pdf name=...'): identified as PDF by filename "
        "and %PDF- magic, but the payload is truncated and unrepairable, so refused naming it",
    ),
    "enmime/mail/mime-blank-media-name.raw": Expected(
        refusal=NOTHING,
        reason="Invoice_302232133150612.pdf",
        note="empty name= in Content-Type, filename only in Content-Disposition; same truncated "
        "unrepairable PDF as mime-bad-content-type: refused naming it",
    ),
    "enmime/mail/multipart-wo-boundary.raw": Expected(
        refusal=NOTHING,
        note="multipart/report without boundary= (neither parser recovers parts): body only",
    ),
    "enmime/mail/non-mime-html.raw": Expected(
        refusal=NOTHING,
        comment_contains="mailing",
        note="no MIME-Version, raw HTML body: HTML turned into the comment, nothing to fax",
    ),
    "mailgun-flanker/8bitmime.eml": Expected(
        refusal=NOTHING,
        comment_contains="Превел",
        note="8bit UTF-8 text/plain preferred over HTML; body only",
    ),
    "mailgun-flanker/attached-pdf.eml": Expected(
        faxed=(Faxed("test.pdf", 1),),
        note="plain multipart/mixed > alternative + application/pdf test.pdf (1 page)",
    ),
    "mailgun-flanker/bilingual-simple.eml": Expected(
        refusal=NOTHING,
        comment_contains="по-русски",
        note="UTF-8 quoted-printable English + Russian body; body only",
    ),
    "mailgun-flanker/enclosed.eml": Expected(
        refusal=NOTHING,
        note="file starts with a whitespace line (first header is a continuation); forwarded "
        "message/rfc822 holds only text, nothing to fax",
    ),
    "mailgun-flanker/mailformed-headers.eml": Expected(
        refusal=NOTHING,
        note="raw 8-bit Cyrillic From/Subject must not crash; boundary mismatch, no parts found "
        "by either parser; nothing to fax",
    ),
    "mailgun-flanker/missing-boundaries.eml": Expected(
        refusal=NOTHING,
        note="text/plain with stray part headers in the body; body only",
    ),
    "mailgun-flanker/missing-final-boundary.eml": Expected(
        refusal=NOTHING,
        comment_contains="Some body",
        note="multipart/alternative without closing boundary: the text part still parses",
    ),
    "mailgun-flanker/office365.eml": Expected(
        refusal=NOTHING,
        note="Office 365 NDR (multipart/report + returned text message): nothing to fax",
    ),
    "mailgun-flanker/outlook-express.eml": Expected(
        refusal=NOTHING,
        note="single-part octet-stream with raw 8-bit GBK filename '新建 文本文档.txt': a text "
        "file (UTF-8 Russian content), ignored; must not crash",
    ),
    "mailgun-talon/android.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="Android Gmail reply, body only"
    ),
    "mailgun-talon/aol.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="AOL webmail reply, body only"
    ),
    "mailgun-talon/apple_mail.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="Apple Mail plain reply, body only"
    ),
    "mailgun-talon/apple_mail_2.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="Apple Mail plain reply, body only"
    ),
    "mailgun-talon/comcast.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="Zimbra web reply, body only"
    ),
    "mailgun-talon/gmail.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="Gmail web reply, body only"
    ),
    "mailgun-talon/hotmail.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="Outlook.com web reply, body only"
    ),
    "mailgun-talon/iphone.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="iPhone QP plain reply, body only"
    ),
    "mailgun-talon/sparrow.eml": Expected(
        refusal=NOTHING,
        comment_contains="Hello",
        note="Sparrow: text parts with Content-Disposition: inline are body, not attachments",
    ),
    "mailgun-talon/thunderbird.eml": Expected(
        refusal=NOTHING, note="Thunderbird plain reply, body only"
    ),
    "mailgun-talon/yahoo.eml": Expected(
        refusal=NOTHING, comment_contains="Hello", note="Yahoo plain reply, body only"
    ),
    "mikel-mail/attachment_emails/attachment_message_rfc822.eml": Expected(
        refusal=NOTHING,
        reason="broken.pdf",
        note="the forwarded message/rfc822 carries broken.pdf, a truncated unrepairable PDF: "
        "found through the forward, then refused naming it",
    ),
    "mikel-mail/attachment_emails/attachment_message_rfc822_inline_image.eml": Expected(
        refusal=NOTHING,
        note="img.png is inline (cid: from the HTML, in multipart/related); the attached "
        "Testmail.eml is headers only (its multipart has no parts): nothing to fax",
    ),
    "mikel-mail/attachment_emails/attachment_nonascii_filename.eml": Expected(
        refusal=NOTHING,
        note="raw 8-bit filename ciële.txt must not crash; a text attachment is ignored",
    ),
    "mikel-mail/attachment_emails/attachment_only_email.eml": Expected(
        refusal=NOTHING,
        note="single-part application/x-gzip attachment: ignored, nothing to fax",
    ),
    "mikel-mail/attachment_emails/attachment_pdf.eml": Expected(
        refusal=NOTHING,
        reason="broken.pdf",
        note="broken.pdf is a truncated PDF (no xref/trailer) qpdf cannot repair: refused "
        "naming it",
    ),
    "mikel-mail/attachment_emails/attachment_pdf_non_ascii.eml": Expected(
        refusal=NOTHING,
        reason="broken.pdf",
        note="same truncated broken.pdf with non-ASCII bytes in headers/body: refused naming it",
    ),
    "mikel-mail/attachment_emails/attachment_with_base64_encoded_name.eml": Expected(
        refusal=NOTHING,
        reason="This is a test.pdf",
        note="unquoted RFC 2047 name decodes to 'This is a test.pdf'; declared application/pdf "
        "but the payload is a PKCS#7 blob, so the claimed PDF does not open: refused naming it",
    ),
    "mikel-mail/attachment_emails/attachment_with_encoded_name.eml": Expected(
        refusal=NOTHING,
        note="RFC 2231 name with wrong charset (mojibake, must not crash); an octet-stream .mp3 "
        "holding a PKCS#7 blob is ignored",
    ),
    "mikel-mail/attachment_emails/attachment_with_quoted_filename.eml": Expected(
        refusal=NOTHING,
        note="JUDGEMENT: the only part is a 50x50 px, 1952-byte JPEG with Content-Disposition: "
        "inline; the small-inline-image rule (<10 KB, not attachment) makes it a logo: not faxed",
    ),
    "mikel-mail/error_emails/bad_date_header.eml": Expected(
        refusal=NOTHING,
        note="the broken Date: header swallows the HTML into the header block; empty body, "
        "nothing to fax, no crash",
    ),
    "mikel-mail/error_emails/content_transfer_encoding_empty.eml": Expected(
        refusal=NOTHING,
        comment_contains="toolbar.yahoo.com.hk",
        note="HTML-only, charset big5 whose bytes are not valid big5 (fallback decode), empty "
        "CTE header treated as 7bit",
    ),
    "mikel-mail/error_emails/content_transfer_encoding_with_8bits.eml": Expected(
        refusal=NOTHING,
        comment_contains="PROVANTAGE",
        note="HTML-only newsletter, invalid CTE '8bits' treated as 8bit identity",
    ),
    "mikel-mail/error_emails/content_transfer_encoding_with_semi_colon.eml": Expected(
        refusal=NOTHING,
        comment_contains="Dear Homeowner",
        note="CTE 'quoted-printable;' on the HTML part; text/plain preferred; body only",
    ),
    "mikel-mail/error_emails/content_transfer_encoding_x_uuencode.eml": Expected(
        refusal=NOTHING,
        comment_contains="Attached are",
        note="Word .doc with CTE x-uuencode: unreadable (and Office is not converted anyway); "
        "nothing faxable",
    ),
    "mikel-mail/error_emails/missing_body.eml": Expected(
        refusal=NOTHING,
        note="multipart/mixed header but the body is empty: nothing to fax",
    ),
    "mikel-mail/error_emails/must_supply_encoding.eml": Expected(
        refusal=NOTHING,
        note="multipart/alternative with CTE binary and an empty body: nothing to fax",
    ),
    "mikel-mail/mime_emails/email_with_similar_boundaries.eml": Expected(
        refusal=NOTHING,
        reason="LOGO.png",
        note="'application/octetstream' LOGO.png attachment whose payload is 'SNIP' (3 bytes, "
        "not an image): unreadable; nested prefix boundaries must still give text+html",
    ),
    "mikel-mail/mime_emails/raw_email7.eml": Expected(
        refusal=NOTHING,
        reason="test.rb is not a document",
        note="S/MIME signed: the Ruby source test.rb cannot be faxed, and application/pdf test.pdf "
        "is 'blah blah blah' (not a PDF): refused naming the first; smime.p7s ignored",
    ),
    "mikel-mail/mime_emails/raw_email_with_illegal_boundary.eml": Expected(
        refusal=NOTHING,
        comment_contains="This is an outlook test",
        note="unquoted boundary with '=': the default parser loses the parts, compat32 "
        "recovers text+html; body only",
    ),
    "mikel-mail/multi_charset/japanese_attachment_long_name.eml": Expected(
        refusal=NOTHING,
        note="RFC 2231 continuation filename (Japanese .txt) decodes; a text attachment is ignored",
    ),
    "mikel-mail/multi_charset/japanese_iso_2022.eml": Expected(
        refusal=NOTHING, comment_contains="すみません", note="ISO-2022-JP body, body only"
    ),
    "mikel-mail/multi_charset/japanese_shift_jis.eml": Expected(
        refusal=NOTHING, comment_contains="あいうえお", note="Shift_JIS 8bit body, body only"
    ),
    "mikel-mail/multi_charset/ks_c_5601-1987.eml": Expected(
        refusal=NOTHING,
        comment_contains="스티해",
        note="ks_c_5601-1987 (cp949 alias) body decodes; body only",
    ),
    "mikel-mail/plain_emails/raw_email_reply.eml": Expected(
        refusal=NOTHING, comment_contains="Message body", note="Thunderbird plain reply"
    ),
    "mime4j/ending-boundaries.msg": Expected(
        refusal=NOTHING,
        note="RFC 5322 text despite .msg; boundary lines with trailing junk: no faxable part "
        "however it is split",
    ),
    "mime4j/example.msg": Expected(
        refusal=NOTHING,
        reason="rhubarb.txt could not be converted",
        note="two attached 10x10 PNGs with the same name, each one page (attachment disposition "
        "beats the small-image rule), and the text file rhubarb.txt: without LibreOffice it "
        "cannot be faxed, so the mail is refused rather than faxed without it",
    ),
    "mime4j/missing-boundary.msg": Expected(
        refusal=NOTHING, note="multipart whose boundary never appears: body only"
    ),
    "mime4j/missing-inner-boundary.msg": Expected(
        refusal=NOTHING,
        note="inner multipart/alternative never shows its boundary; outer text parses; nothing "
        "to fax",
    ),
    "mimekit/bounce.txt": Expected(
        refusal=NOTHING,
        note="Postfix DSN (multipart/report, returned message/rfc822 text+html): nothing to fax",
    ),
    "mimekit/disposition-notification.txt": Expected(
        refusal=NOTHING, note="read receipt (MDN): nothing to fax"
    ),
    "mimekit/empty-multipart.txt": Expected(
        refusal=NOTHING,
        comment_contains="This part should be on the same level",
        note="empty multipart/alternative next to a text/plain part: body only",
    ),
    "mimekit/gmail.msg": Expected(
        refusal=NOTHING,
        comment_contains="This is the",
        note="RFC 5322 text despite .msg: Gmail text+html, body only",
    ),
    "mimekit/japanese.txt": Expected(
        refusal=NOTHING, comment_contains="日本語", note="ISO-2022-JP body, body only"
    ),
    "mimekit/missing-subtype.txt": Expected(
        refusal=NOTHING,
        note="Content-Type 'application-x-gzip' (no subtype) with name document.xml.gz: a named "
        "part, so an (ignored) attachment, not body text",
    ),
    "mimekit/multipart-no-end-boundary.msg": Expected(
        refusal=NOTHING,
        comment_contains="Multipart me",
        note="RFC 5322 text despite .msg; alternative without closing boundary: body only",
    ),
    "mimekit/multipart-related-mhtml.txt": Expected(
        refusal=NOTHING,
        note="MHTML: the PNG (no Content-ID, no name) is referenced from the HTML by "
        "Content-Location 'image1' and is a small inline image: part of the body, not faxed",
    ),
    "mimekit/simple-embedded-message.eml": Expected(
        refusal=NOTHING, note="embedded message/rfc822 with only text: nothing to fax"
    ),
    "mimekit/simple-multipart.eml": Expected(
        refusal=NOTHING,
        note="octet-stream attachment.txt (text content, not PDF/image magic): ignored",
    ),
    "mimekit/ukr.eml": Expected(
        refusal=NOTHING,
        comment_contains="шостий",
        note="koi8-r QP body; winmail.dat decoded but holds no attachments: nothing to fax",
    ),
    "mimekit/winmail.tnef": Expected(
        refusal=NOTHING,
        note="raw TNEF whose two 'Untitled Attachment' entries are OLE objects (ATTACH_METHOD 6) "
        "wrapping BMP pictures embedded in the RTF body: not faxable",
    ),
    "php-mime-mail-parser/issue158a": Expected(
        refusal=NOTHING,
        note="Zimbra forward: HTML body + message/rfc822 with only text: nothing to fax",
    ),
    "php-mime-mail-parser/issue163": Expected(
        faxed=(Faxed("image1.jpeg", 1),),
        comment_contains="Then we have more text",
        note="iPhone: text / inline 37 KB 640x480 JPEG without Content-ID / text; over 10 KB, "
        "so an attachment, faxed; both text parts are body",
    ),
    "php-mime-mail-parser/issue230": Expected(
        refusal=NOTHING,
        comment_contains="ACADEMIC NEWSLETTER",
        note="charset x-mac-cyrillic (unknown to Python by that label) on text that is really "
        "UTF-8: decodes with fallback, body only",
    ),
    "php-mime-mail-parser/issue250": Expected(
        refusal=NOTHING,
        reason="Bedriftskonto.pdf",
        note="image/png labelled, quoted RFC 2047 filename ending .pdf that decodes with a "
        "newline (removed when sanitised); empty payload: neither PDF nor image, refused",
    ),
    "php-mime-mail-parser/m0013": Expected(
        refusal=NOTHING,
        reason="ATT N° 1467829.pdf",
        comment_contains="préserver",
        note="quoted pair of iso-8859-1 encoded-words split mid-name decodes to '50032266 CAR "
        "11_MNPA00A01_9PTX_H00 ATT N° 1467829.pdf'; payload 'underscore' is not a PDF: refused",
    ),
    "php-mime-mail-parser/m0019": Expected(
        refusal=NOTHING,
        comment_contains="Det här är",
        note="alternative with a single UTF-8 QP text part: body only",
    ),
    "spamscope-mail-parser/mail_malformed_3": Expected(
        refusal=NOTHING,
        note="spam: multipart/alternative boundary never matches the body: no parts, nothing "
        "to fax",
    ),
    "spamscope-mail-parser/mail_test_12": Expected(
        refusal=NOTHING,
        comment_contains="你好",
        note="declares GB2312 but the 8bit body is UTF-8 (not valid GB2312/GBK): the UTF-8 "
        "fallback must win",
    ),
    "spamscope-mail-parser/mail_test_2": Expected(
        faxed=(Faxed("Bollettino.pdf", 2),),
        note="1.1 MB Bollettino.pdf sent as application/octet-stream, found by name and %PDF- "
        "(2 pages); intestazione.jpg and logometeo.jpg are cid images in multipart/related",
    ),
    "spamscope-mail-parser/mail_test_3": Expected(
        refusal=NOTHING,
        comment_contains="I am sending you the bills",
        note="named inline text part message.txt is an attachment, ignored; nothing to fax",
    ),
    "spamscope-mail-parser/mail_test_9": Expected(
        refusal=NOTHING,
        comment_contains="镜头",
        note="HTML-only gb2312 base64 with one byte valid only in GBK: the Chinese text must "
        "survive (GBK superset or replace), not fall to latin-1 mojibake",
    ),
    "stalwart-mail-parser/malformed/001.eml": Expected(
        refusal=NOTHING,
        note="inner boundary 'a' is a prefix of outer 'ab': no faxable part however it is split",
    ),
    "stalwart-mail-parser/malformed/002.eml": Expected(
        refusal=NOTHING, note="multipart/mixed with no boundary in the body: nothing to fax"
    ),
    "stalwart-mail-parser/malformed/017.eml": Expected(
        refusal=NOTHING,
        note="Content-Type lacks ';' so the boundary is lost; even if recovered, the only part "
        "is a cid image/png whose payload is 'hello world' text: nothing to fax",
    ),
    "stalwart-mail-parser/malformed/018.eml": Expected(
        refusal=NOTHING,
        comment_contains="BlackBerry®",
        note="windows-1252 QP body with a stray plist, mixed CRLF/LF: body only",
    ),
    "stalwart-mail-parser/thirdparty/004.eml": Expected(
        refusal=NOTHING,
        comment_contains="♚",
        note="invalid CTEs (6bit, 7bits, '8 bit', 7-bit, 8-bit, empty) treated as identity; "
        "all inline text parts are body",
    ),
    "stalwart-mail-parser/thirdparty/011.eml": Expected(
        refusal=NOTHING,
        note="Thunderbird HTML with an inline cid PNG in multipart/related: not faxed",
    ),
    "stalwart-mail-parser/thirdparty/019.eml": Expected(
        faxed=(Faxed("attach2.png", 1),),
        comment_contains="Search for hähä",
        note="windows-1252 body; inline cid PNG not faxed; attach2.png (14x14, disposition "
        "attachment) faxed as one page",
    ),
}
