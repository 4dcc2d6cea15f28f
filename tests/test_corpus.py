"""Every mail of the real-world corpus through extraction, and through the live SMTP listener."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailfax.app import Gateway
from mailfax.mail.extract import extract_documents
from tests.conftest import CORPUS
from tests.corpus_expectations import EXPECTED
from tests.gateway import gateway_env, start_gateway
from tests.verdicts import check_extraction, check_through_listener

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


def test_every_corpus_file_has_an_expectation() -> None:
    assert corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_extraction_of_corpus_mail(name: str) -> None:
    check_extraction(EXPECTED[name], extract_documents(corpus_mail(name)))


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    # Without LibreOffice, as the extraction test above: Office conversion has its own tests.
    running = await start_gateway(tmp_path, gateway_env(tmp_path, convert_office="off"))
    yield running
    await running.stop()


async def test_corpus_through_the_live_smtp_listener(gateway: Gateway) -> None:
    await check_through_listener(
        gateway, [(name, corpus_mail(name), EXPECTED[name]) for name in sorted(EXPECTED)]
    )
