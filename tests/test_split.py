"""The boundary splitter builds the stdlib parser's tree, or declines: never a different tree."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from typing import Any

import pytest
from hypothesis import given

from mailfax.mail.headers import MAIL_POLICY
from mailfax.mail.split import split_message
from tests.pdfs import fax_mail, pdf_with_pages
from tests.test_corpus import corpus_files, corpus_mail
from tests.test_extract_properties import (
    PROPERTY_SETTINGS,
    Leaf,
    Multi,
    mutated_corpus_mail,
    serialise,
    trees,
)


def tree(message: Message | str) -> Any:
    """Everything extraction can see of a parsed message."""
    assert isinstance(message, Message)
    payload = message.get_payload()
    return (
        # Raw: the same stdlib code parses a header's value from it on access, in both trees
        # (and may raise on a damaged one).
        list(message.raw_items()),
        message.get_default_type(),
        message.get_unixfrom(),
        message.preamble,
        message.epilogue,
        [type(defect).__name__ for defect in message.defects],
        [tree(part) for part in payload] if isinstance(payload, list) else payload,
    )


def assert_same_or_declined(raw: bytes) -> bool:
    """True when the splitter took the mail (and built the same tree)."""
    split = split_message(raw)
    if split is not None:
        assert tree(split) == tree(BytesParser(policy=MAIL_POLICY).parsebytes(raw))
    return split is not None


@pytest.mark.corpus
def test_every_corpus_mail_gives_the_same_tree_or_is_declined() -> None:
    taken = [name for name in corpus_files() if assert_same_or_declined(corpus_mail(name))]
    # Most real mail is well formed: the fast path must actually be the usual one.
    assert len(taken) >= len(corpus_files()) // 2


def test_a_typical_fax_mail_is_split() -> None:
    mail = fax_mail(attachments=[("a.pdf", pdf_with_pages(3), "application/pdf")]).as_bytes()
    assert assert_same_or_declined(mail)
    assert assert_same_or_declined(mail.replace(b"\n", b"\r\n"))


M = b"From: a@example.com\nMIME-Version: 1.0\n"


@pytest.mark.parametrize(
    ("raw", "taken"),
    [
        # preamble and epilogue, whitespace after a boundary, boundary-like lines in a body
        (
            M + b'Content-Type: multipart/mixed; boundary="B"\n\npreamble\n\n--B  \n'
            b"Content-Type: text/plain\n\nhello\n--B-x\n--Bx\n\n--B\n\nno headers\n--B--\n"
            b"epilogue\n",
            True,
        ),
        # nested multipart with text between its closing boundary and the outer boundary
        (
            M + b'Content-Type: multipart/mixed; boundary="O"\n\n--O\n'
            b'Content-Type: multipart/alternative; boundary="I"\n\n--I\n\nplain\n--I\n'
            b"Content-Type: text/html\n\n<p>x</p>\n--I--\ninner epilogue\n\n--O\n\nlast\n--O--",
            True,
        ),
        # a nested closing boundary followed at once by the outer one
        (
            M + b'Content-Type: multipart/mixed; boundary="O"\n\n--O\n'
            b'Content-Type: multipart/alternative; boundary="I"\n\n--I\n\nplain\n--I--\n--O--\n',
            True,
        ),
        # a nested multipart whose epilogue is a single empty line
        (
            M + b'Content-Type: multipart/mixed; boundary="O"\n\n--O\n'
            b'Content-Type: multipart/alternative; boundary="I"\n\n--I\n\nx\n--I--\n\n--O--\n',
            True,
        ),
        # 8-bit bytes in a body, CRLF line ends
        (
            (
                M + b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
                b"Content-Type: text/plain; charset=latin-1\n\ncaf\xe9\n--B--\n"
            ).replace(b"\n", b"\r\n"),
            True,
        ),
        (M + b"Content-Type: text/plain\n\nnot multipart\n", True),
        (b"\nno headers at all\n", True),
        (b"\r\nno headers at all, CRLF\r\n", True),
        # an empty line before the first boundary: an empty preamble
        (M + b'Content-Type: multipart/mixed; boundary="B"\n\n\n--B\n\nx\n--B--\n', True),
        # a multipart's own transfer encoding may only be an identity one
        *[
            (
                M + b'Content-Type: multipart/mixed; boundary="B"\n'
                b"Content-Transfer-Encoding: " + encoding + b"\n\n--B\n\nx\n--B--\n",
                taken,
            )
            for encoding, taken in [
                (b"7bit", True),
                (b"8BIT", True),
                (b"binary", True),
                (b"base64", False),
                (b"quoted-printable", False),
            ]
        ],
        # declined: no closing boundary, an empty part, no start boundary, a part without a
        # blank line, an embedded message, a digest, a bare CR, a Unix From line
        (M + b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n\nx\n', False),
        (M + b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n--B\n\nx\n--B--\n', False),
        (M + b'Content-Type: multipart/mixed; boundary="B"\n\nno parts\n', False),
        (M + b'Content-Type: multipart/mixed; boundary="B"\n\n--B\nX: y\n--B--\n', False),
        (
            M + b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
            b"Content-Type: message/rfc822\n\nSubject: inner\n\nbody\n--B--\n",
            False,
        ),
        (M + b'Content-Type: multipart/digest; boundary="B"\n\n--B\n\nx\n--B--\n', False),
        (M + b"Content-Type: text/plain\n\nold\rMac\n", False),
        (b"From someone Mon Jan 1 00:00:00 2024\n" + M + b"\nbody\n", False),
        (M + b'Content-Type: multipart/mixed; boundary="B"\nbroken header\n\n--B--\n', False),
    ],
)
def test_edge_cases(raw: bytes, taken: bool) -> None:
    assert assert_same_or_declined(raw) is taken


@PROPERTY_SETTINGS
@given(tree=trees)
def test_random_mime_trees_give_the_same_tree_or_are_declined(tree: Leaf | Multi) -> None:
    assert_same_or_declined(b"MIME-Version: 1.0\r\n" + serialise(tree))


@pytest.mark.corpus
@PROPERTY_SETTINGS
@given(raw=mutated_corpus_mail())
def test_damaged_corpus_mails_give_the_same_tree_or_are_declined(raw: bytes) -> None:
    assert_same_or_declined(raw)
