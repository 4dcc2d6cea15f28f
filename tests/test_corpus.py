"""Every mail of the real-world corpus through extraction, and through the live SMTP listener."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailfax.app import Gateway
from mailfax.mail.extract import extract_documents
from mailfax.mail.model import Extraction
from tests.conftest import CORPUS, eventually
from tests.corpus_expectations import EXPECTED, Expected
from tests.gateway import faxed_comment, faxed_documents, smtp_transaction, start_gateway

pytestmark = pytest.mark.corpus
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def corpus_files() -> list[str]:
    return sorted(
        str(path.relative_to(CORPUS))
        for path in CORPUS.rglob("*")
        if path.is_file() and path.name != "SOURCES.md"
    )


def corpus_mail(name: str) -> bytes:
    """The file as a mail: raw TNEF blobs and Outlook .msg files are attached to a minimal one."""
    data = (CORPUS / name).read_bytes()
    if data.startswith(OLE):
        subtype = "vnd.ms-outlook"
    elif name.endswith((".dat", ".tnef")):
        subtype = "ms-tnef"
    else:
        return data
    mail = EmailMessage()
    mail["From"] = "Outlook User <outlook@example.com>"
    mail["Subject"] = f"Wrapped {Path(name).name}"
    mail.set_content("See the attachment.")
    mail.add_attachment(data, maintype="application", subtype=subtype, filename=Path(name).name)
    return mail.as_bytes()


def check_faxed(expected: Expected, faxed: list[tuple[str, int]]) -> None:
    """Names and pages in order; where the table has no name, the pages only."""
    assert len(faxed) == len(expected.faxed), faxed
    for (name, pages), want in zip(faxed, expected.faxed, strict=True):
        assert pages == want.pages, faxed
        if want.name is not None:
            assert name == want.name, faxed


def test_every_corpus_file_has_an_expectation() -> None:
    assert corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_extraction_of_corpus_mail(name: str) -> None:
    expected = EXPECTED[name]
    result: Extraction = extract_documents(corpus_mail(name))
    if expected.faxed:
        assert result.refusal is None, result.refusal
        check_faxed(expected, [(d.name, d.pages) for d in result.documents])
        assert all(d.data.startswith(b"%PDF-") for d in result.documents)
    else:
        assert result.refusal is not None, result.documents
        assert result.refusal.enhanced == expected.refusal
        assert expected.reason in result.refusal.text
        assert result.documents == ()
    assert expected.comment_contains in result.comment
    # Every part is explained: faxed parts carry pages, the others a reason.
    for part in result.parts:
        assert part.reason
        assert (part.pages is not None) == (part.action in ("faxed", "converted"))


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    running = await start_gateway(tmp_path)
    yield running
    await running.stop()


async def test_corpus_through_the_live_smtp_listener(gateway: Gateway) -> None:
    """One gateway for the whole table: each mail answered at DATA, each fax checked."""
    assert gateway.endpoints is not None and gateway.simulator is not None
    simulator = gateway.simulator
    for name in sorted(EXPECTED):
        expected = EXPECTED[name]
        sent_before = len(simulator.ledger())
        outcome = await smtp_transaction(
            gateway.endpoints, corpus_mail(name), ["15551234567@fax.local"]
        )
        code, text = outcome.final
        if not expected.faxed:
            assert code == 550, (name, outcome.final)
            assert text.startswith(f"{expected.refusal} "), (name, text)
            assert expected.reason in text, (name, text)
            continue
        assert code == 250, (name, outcome.final)

        async def sent(count: int = sent_before) -> dict[str, Any] | None:
            ledger = simulator.ledger()
            return ledger[count] if len(ledger) > count else None

        fax = await eventually(sent, what=f"the fax of {name}")
        check_faxed(expected, faxed_documents(fax))
        assert expected.comment_contains in faxed_comment(fax)
