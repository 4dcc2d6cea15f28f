"""What senders are told, end to end on loopback: mail in through the real SMTP listener, faxed
by the simulator (its last four digits choose the result), cancelled with `mailfax jobs cancel`,
each receipt parsed back from the Maildir; and the SMTP refusals of size, pages, quota and
sender, none naming a configuration key."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailfax.cli import main
from mailfax.config import Settings
from mailfax.jobs import JobState
from tests.conftest import eventually
from tests.gateway import (
    banner,
    gateway_env,
    receipts_in,
    smtp_transaction,
    start_gateway,
    subject,
    text_part,
)
from tests.pdfs import fax_mail, pdf_with_pages

# invoice.pdf is the fax's pages 1-3, terms.pdf its pages 4-5.
DOCUMENTS = [
    ("invoice.pdf", pdf_with_pages(3), "application/pdf"),
    ("terms.pdf", pdf_with_pages(2), "application/pdf"),
]
CONFIG_KEY = re.compile(r"\[[a-z_]+\]")


def setting_names() -> set[str]:
    """Every configuration key made of several words (max_pages, allowed_senders, ...)."""
    names: set[str] = set()
    for section in dataclasses.fields(Settings):
        if dataclasses.is_dataclass(section.default_factory):
            for key in dataclasses.fields(section.default_factory):
                names.add(key.metadata.get("key", key.name))
    return {name for name in names if "_" in name}


def check_sender_facing(receipt: EmailMessage, host: str) -> str:
    """The text part, after checking what every receipt to a sender must (not) say."""
    text = text_part(receipt)
    assert not CONFIG_KEY.search(text + subject(receipt)), text
    assert "localhost" not in text + str(receipt["Message-ID"])
    assert str(receipt["Message-ID"]).endswith(f"@{host}>")
    assert f"mailfax email-to-fax gateway at {host}\n" in text
    return text


async def receipts_for(state_dir: Path, count: int) -> dict[str, EmailMessage]:
    """The receipts once `count` have come, by the last four digits of their number."""

    async def probe() -> dict[str, EmailMessage] | None:
        found = receipts_in(state_dir)
        if len(found) < count:
            return None
        return {re.findall(r"\d{4}", subject(r))[-1]: r for r in found}

    return await eventually(probe, timeout=60, what=f"{count} receipts")


async def test_failed_and_partial_receipts_say_why_and_which_pages(tmp_path: Path) -> None:
    env = gateway_env(tmp_path, faxplus_retries="0", receipts_hostname="fax.example.com")
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.endpoints is not None
        for last_four in ("0013", "0014", "0015", "0016"):
            mail = fax_mail(attachments=DOCUMENTS)
            outcome = await smtp_transaction(
                gateway.endpoints, mail, [f"212555{last_four}@fax.local"]
            )
            assert outcome.final[0] == 250, outcome
        receipts = await receipts_for(tmp_path, 4)
    finally:
        await gateway.stop()

    for last_four, why in [
        ("0013", "line busy"),
        ("0014", "no answer"),
        ("0015", "number does not exist"),
    ]:
        receipt = receipts[last_four]
        text = check_sender_facing(receipt, "fax.example.com")
        said = f"Fax to +1 212-555-{last_four} not delivered: {why}"
        assert subject(receipt) == said
        assert banner(receipt) == f"Your fax to +1 212-555-{last_four} was not delivered: {why}."
        assert text.startswith(banner(receipt) + "\n")
        assert "  Pages:    0 of 5 sent\n" in text
        assert "  - invoice.pdf: not sent, 3 pages\n  - terms.pdf: not sent, 2 pages\n" in text
        assert "faxed" not in text.partition("Documents in your mail:")[2]

    # The simulator sends half the pages of a partial fax (2 of 5): invoice.pdf's first two.
    partial = receipts["0016"]
    text = check_sender_facing(partial, "fax.example.com")
    assert subject(partial) == "Fax to +1 212-555-0016 partly delivered: pages 1-2 of 5 sent"
    assert banner(partial) == (
        "Your fax to +1 212-555-0016 was only partly delivered: pages 1-2 of 5 sent."
    )
    assert text.startswith(banner(partial) + "\n")
    assert "  Result:   partly delivered (FAX.PLUS status: partially_sent)\n" in text
    assert "  Pages:    2 of 5 sent: pages 1-2 went through, pages 3-5 did not\n" in text
    assert (
        "  - invoice.pdf: partly sent: pages 1-2 of its 3 went through\n"
        "  - terms.pdf: not sent, 2 pages\n"
    ) in text


async def test_a_cancelled_fax_says_who_cancelled_it_and_why_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulator holds each fax for a minute: time for the operator to cancel it.
    env = gateway_env(tmp_path, sandbox_delay="60", receipts_from="fax@gw.example.org")
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.endpoints is not None and gateway.store is not None
        store = gateway.store
        mail = fax_mail(attachments=DOCUMENTS)
        outcome = await smtp_transaction(gateway.endpoints, mail, ["+12125550199@fax.local"])
        assert outcome.final[0] == 250

        async def submitted() -> str | None:
            [summary] = await store.list_jobs(None, None, "", 5)
            return summary.job.id if summary.job.state is JobState.SUBMITTED else None

        job_id = await eventually(submitted, what="the fax to be in the outbox")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sandbox = gateway.endpoints.api_url.removeprefix("http://").removesuffix("/v3")
        monkeypatch.setenv("MAILFAX_SANDBOX_LISTEN", sandbox)
        out = io.StringIO()

        def cancel() -> int:
            with contextlib.redirect_stdout(out):
                return main(["jobs", "cancel", job_id, "--reason", "sent to the wrong clinic"])

        assert await asyncio.to_thread(cancel) == 0, out.getvalue()
        [receipt] = (await receipts_for(tmp_path, 1)).values()
    finally:
        await gateway.stop()

    text = check_sender_facing(receipt, "gw.example.org")
    said = "Fax to +1 212-555-0199 not sent: cancelled by the fax administrator"
    assert subject(receipt) == said
    assert banner(receipt) == (
        "Your fax to +1 212-555-0199 was not sent: cancelled by the fax administrator."
    )
    assert text.startswith(banner(receipt) + "\n")
    assert "  Result:   cancelled\n" in text and "FAX.PLUS status" not in text
    assert "Reason given:\n  sent to the wrong clinic\n" in text
    assert text.count("wrong clinic") == 1
    assert "  - invoice.pdf: not sent, 3 pages\n  - terms.pdf: not sent, 2 pages\n" in text


async def test_refusals_say_what_is_wrong_without_configuration_keys(tmp_path: Path) -> None:
    env = gateway_env(
        tmp_path,
        smtp_allowed_senders="@example.com",
        smtp_max_recipients="1",
        smtp_max_pages="3",
        limits_pages_per_day="2",
    )
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.endpoints is not None
        endpoints = gateway.endpoints

        def mail(pages: int) -> EmailMessage:
            return fax_mail(attachments=[("a.pdf", pdf_with_pages(pages), "application/pdf")])

        one = ["+12125550199@fax.local"]
        replies = {
            "sender": (await smtp_transaction(endpoints, mail(1), one, "eve@example.net")).final,
            "recipients": (
                await smtp_transaction(endpoints, mail(1), [*one, "+12125550198@fax.local"])
            ).rcpts[1],
            "pages": (await smtp_transaction(endpoints, mail(4), one)).final,
            "quota alone": (await smtp_transaction(endpoints, mail(3), one)).final,
            # The first recipient of "recipients" was taken (1 page): this is the day's second.
            "first": (await smtp_transaction(endpoints, mail(1), one)).final,
            "quota": (await smtp_transaction(endpoints, mail(1), one)).final,
        }
    finally:
        await gateway.stop()
    codes = {what: (code, text.split()[0]) for what, (code, text) in replies.items()}
    assert codes == {
        "sender": (553, "5.7.1"),
        "recipients": (452, "4.5.3"),
        "pages": (552, "5.3.4"),
        "quota alone": (552, "5.3.4"),
        "first": (250, "2.0.0"),
        "quota": (450, "4.7.1"),
    }
    keys = setting_names()
    assert {"max_pages", "allowed_senders", "pages_per_day"} <= keys
    for what, (_, text) in replies.items():
        assert not CONFIG_KEY.search(text), (what, text)
        assert not keys & set(re.findall(r"[a-z]+(?:_[a-z]+)+", text)), (what, text)
