"""Properties of extraction on random MIME trees and damaged corpus mails: no crash, a verdict,
bounded time and memory."""

from __future__ import annotations

import base64
import functools
import os
import quopri
import time
import tracemalloc
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailfax.mail.extract import extract_documents
from tests.conftest import CORPUS
from tests.pdfs import encrypted_pdf, pdf_with_pages
from tests.test_corpus import corpus_files, corpus_mail

# Per message: far above what a real mail needs (the corpus's largest takes ~0.1 s).
MAX_SECONDS = 5.0
MAX_PYTHON_BYTES = 64 * 1024 * 1024

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgAB4iG8MwAAAABJRU5ErkJggg=="
)
SAMPLES = [
    b"",
    b"hello world\n",
    pdf_with_pages(1),
    pdf_with_pages(3),
    encrypted_pdf(),
    b"%PDF-1.4 truncated",
    PNG_1X1,
    b"\xff\xd8\xff\xe0 not really a jpeg",
    b"II*\x00 not really a tiff",
    b'x\x9f>"\x01\x06\x90\x08\x00\x04\x00\x00\x00\x00\x00\x01\x00\x01\x00',
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
    "Grüße, 日本語".encode(),
    "Grüße".encode("latin-1"),
]
TYPES = [
    "text/plain",
    "text/html",
    "application/pdf",
    "application/x-pdf",
    "application/octet-stream",
    "image/png",
    "image/jpeg",
    "image/tiff",
    "image/gif",
    "application/ms-tnef",
    "application/msword",
    "message/rfc822",
    "application/pdf name=x.pdf",
    "garbage",
    "",
]
ENCODINGS = ["base64", "quoted-printable", "8bit", "7bit", "binary", "x-uuencode", "base9000", ""]
CHARSETS = ["utf-8", "iso-8859-1", "gb2312", "x-unknown", "ks_c_5601-1987", ""]
DISPOSITIONS = ["attachment", "inline", "", ";"]

header_text = st.text(alphabet=st.characters(codec="utf-8", max_codepoint=0x2FFF), max_size=30)


@dataclass
class Leaf:
    content_type: str
    payload: bytes
    encoding: str
    charset: str
    disposition: str
    filename: str | None
    content_id: str | None
    corrupt: bool


@dataclass
class Multi:
    subtype: str
    children: list[Leaf | Multi]
    boundary: str


leaves = st.builds(
    Leaf,
    content_type=st.sampled_from(TYPES),
    payload=st.one_of(st.sampled_from(SAMPLES), st.binary(max_size=300)),
    encoding=st.sampled_from(ENCODINGS),
    charset=st.sampled_from(CHARSETS),
    disposition=st.sampled_from(DISPOSITIONS),
    filename=st.one_of(st.none(), header_text, st.sampled_from(["a.pdf", "../x.png", "=?x?"])),
    content_id=st.one_of(st.none(), st.just("logo@x")),
    corrupt=st.booleans(),
)
trees: st.SearchStrategy[Leaf | Multi] = st.recursive(
    leaves,
    lambda children: st.builds(
        Multi,
        subtype=st.sampled_from(["mixed", "alternative", "related", "report", "digest"]),
        children=st.lists(children, max_size=4),
        # Boundaries that need quoting, that prefix each other, or that are missing.
        boundary=st.sampled_from(["b1", "b1=x", "b", "", "----=_Part"]),
    ),
    max_leaves=12,
)


def serialise(node: Leaf | Multi, depth: int = 0) -> bytes:
    """The tree as mail bytes, written by hand so that it can be as wrong as real mail is."""
    if isinstance(node, Multi):
        boundary = f"{node.boundary}{depth}" if node.boundary else ""
        head = f"Content-Type: multipart/{node.subtype}; boundary={boundary}\r\n\r\n"
        body = b"".join(
            f"--{boundary}\r\n".encode() + serialise(child, depth + 1) + b"\r\n"
            for child in node.children
        )
        return head.encode() + b"preamble\r\n" + body + f"--{boundary}--\r\n".encode()
    headers = [f"Content-Type: {node.content_type}"]
    if node.charset:
        headers[0] += f"; charset={node.charset}"
    if node.disposition or node.filename is not None:
        name = f'; filename="{node.filename}"' if node.filename is not None else ""
        headers.append(f"Content-Disposition: {node.disposition}{name}")
    if node.content_id:
        headers.append(f"Content-ID: <{node.content_id}>")
    if node.encoding:
        headers.append(f"Content-Transfer-Encoding: {node.encoding}")
    if node.encoding == "base64":
        payload = base64.encodebytes(node.payload)
        if node.corrupt:
            payload = payload[: len(payload) // 2] + b"!!*" + payload[len(payload) // 2 + 1 :]
    elif node.encoding == "quoted-printable":
        payload = quopri.encodestring(node.payload)
    else:
        payload = node.payload
    return "\r\n".join(headers).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + payload


def check_verdict(raw: bytes) -> None:
    """Never raises, always decides, within bounded time and Python memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = extract_documents(raw)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.refusal is None) == bool(result.documents)
    assert all(doc.data.startswith(b"%PDF-") and doc.pages > 0 for doc in result.documents)
    assert elapsed < MAX_SECONDS, f"{elapsed:.1f}s"
    assert peak < MAX_PYTHON_BYTES + 20 * len(raw), f"{peak} bytes"


PROPERTY_SETTINGS = settings(
    max_examples=400,
    # The same examples on every run, so CI's verdict does not depend on luck;
    # MAILFAX_PROPERTY_SEED=random explores new ones (what found the leading-junk PDF case).
    derandomize=os.environ.get("MAILFAX_PROPERTY_SEED") != "random",
    deadline=None,  # time is asserted per example, with tracing on, in check_verdict
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY_SETTINGS
@given(tree=trees, subject=header_text, sender=header_text)
def test_random_mime_trees_get_a_verdict(tree: Leaf | Multi, subject: str, sender: str) -> None:
    top = f"From: {sender} <a@example.com>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
    check_verdict(top.encode("utf-8", "surrogateescape") + serialise(tree))


@functools.cache
def mutable_corpus() -> dict[str, bytes]:
    """Small enough that a mutated copy is quick to parse; they cover every client in the corpus.
    Wrapped once here: wrapping draws a random MIME boundary, which strategies must not do."""
    return {
        name: corpus_mail(name)
        for name in corpus_files()
        if (CORPUS / name).stat().st_size < 120_000
    }


@st.composite
def mutated_corpus_mail(draw: st.DrawFn) -> bytes:
    mutable = mutable_corpus()
    data = bytearray(mutable[draw(st.sampled_from(sorted(mutable)))])
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.integers(0, max(0, len(data) - 1)))
        operation = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate"]))
        if operation == "flip" and data:
            data[where] = draw(st.integers(0, 255))
        elif operation == "delete":
            del data[where : where + draw(st.integers(1, 64))]
        elif operation == "insert":
            data[where:where] = draw(
                st.one_of(
                    st.binary(max_size=32), st.sampled_from([b"\r\n--", b"=?utf-8?b?", b"\n"])
                )
            )
        elif operation == "duplicate":
            data[where:where] = data[where : where + draw(st.integers(1, 512))]
        else:
            del data[where:]
    return bytes(data)


@pytest.mark.corpus
@PROPERTY_SETTINGS
@given(raw=mutated_corpus_mail())
def test_damaged_corpus_mails_get_a_verdict(raw: bytes) -> None:
    check_verdict(raw)
