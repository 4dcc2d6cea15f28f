"""Checks that a mail's extraction, or the live listener's reply and fax, match its Expected."""

from __future__ import annotations

from typing import Any

from mailfax.app import Gateway
from mailfax.mail.model import Extraction
from tests.conftest import eventually
from tests.corpus_expectations import Expected
from tests.gateway import faxed_comment, faxed_documents, smtp_transaction


def check_faxed(expected: Expected, faxed: list[tuple[str, int]]) -> None:
    """Names and pages in order; where the table has no name, the pages only."""
    assert len(faxed) == len(expected.faxed), faxed
    for (name, pages), want in zip(faxed, expected.faxed, strict=True):
        assert pages == want.pages, faxed
        if want.name is not None:
            assert name == want.name, faxed


def check_extraction(expected: Expected, result: Extraction) -> None:
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


async def check_through_listener(
    gateway: Gateway, mails: list[tuple[str, bytes, Expected]]
) -> None:
    """One gateway for a whole table: each mail answered at DATA, each fax checked."""
    assert gateway.endpoints is not None and gateway.simulator is not None
    simulator = gateway.simulator
    for name, raw, expected in mails:
        sent_before = len(simulator.ledger())
        outcome = await smtp_transaction(gateway.endpoints, raw, ["17185554567@fax.local"])
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
        assert expected.comment_contains in faxed_comment(fax), name
