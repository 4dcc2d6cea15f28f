"""Issue 16 §1 through the real SMTP listener: every way of writing a number is read as the
number meant, or refused with a reply that says how to write it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.conftest import eventually
from tests.gateway import smtp_transaction
from tests.pdfs import fax_mail
from tests.test_smtp_data import raw_client, running_gateway

E164 = "+12125550199"
ACCEPTED = f"250 2.1.5 Recipient ok: fax to {E164}"

# RCPT TO's argument as a client writes it, and the reply.
FORMS = {
    # A path has no comments: (212) is the area code, not a remark to drop.
    "<(212)555-0199@fax.local>": ACCEPTED,
    '<"(212) 555-0199"@fax.local>': ACCEPTED,
    "<212.555.0199@fax.local>": ACCEPTED,
    '<"+1 (212) 555-0199"@fax.local>': ACCEPTED,
    "<1-212-555-0199@fax.local>": ACCEPTED,
    "<+12125550199@fax.local>": ACCEPTED,
    "<12125550199@fax.local>": ACCEPTED,
    "<2125550199@fax.local>": ACCEPTED,
    "<0012125550199@fax.local>": ACCEPTED,
    # RFC 3192 minimal fax addresses.
    "<FAX=+12125550199@fax.local>": ACCEPTED,
    "</FAX=+12125550199/@fax.local>": ACCEPTED,
    "<fax=+12125550199@fax.local>": ACCEPTED,
    "</FAX=+12125550199/T33S=6789/@fax.local>": ACCEPTED,
    # Observed in issue 16: each was faxed to a number nobody wrote.
    "<1234567@fax.local>": (
        "550 5.1.1 The fax number 1234567 is missing its area code; write it with its area "
        "code, e.g. +12015550123"
    ),
    "<555-0199@fax.local>": (
        "550 5.1.1 The fax number 555-0199 is missing its area code; write it with its area "
        "code, e.g. +12015550123"
    ),
    "<4930123456@fax.local>": (
        "550 5.1.1 The fax number 4930123456 read as a US number (+1 493-012-3456) cannot be "
        "dialled: +1 493 is not an area code in use; did you mean +4930123456?"
    ),
    "<9995550199@fax.local>": (
        "550 5.1.1 The fax number 9995550199 read as a US number (+1 999-555-0199) cannot be "
        "dialled: +1 999 is not an area code in use; write the number with its country code, "
        "e.g. +4930123456"
    ),
    "<+14930123456@fax.local>": (
        "550 5.1.1 The fax number +14930123456 cannot be dialled: +1 493 is not an area code in use"
    ),
    "<sales@fax.local>": (
        "550 5.1.1 <sales@fax.local> is not a fax number: write the number as the local part, "
        "e.g. +12125550199@fax.local"
    ),
    # The number rules' refusals name no configuration key.
    "<+19005550100@fax.local>": (
        "550 5.7.1 Fax to +19005550100 refused: it is a premium-rate number"
    ),
    # Unchanged: other domains, and postmaster (no fax number).
    "<12125550199@example.com>": "550 5.7.1 Relaying denied",
    "<postmaster>": "550 5.7.1 Relaying denied",
}


async def test_every_written_form_is_read_as_meant_or_refused_saying_how_to_write_it(
    tmp_path: Path,
) -> None:
    async with running_gateway(tmp_path) as gateway, raw_client(gateway) as client:
        replies = {}
        for path in FORMS:
            assert (await client.command("MAIL FROM:<alice@example.com>")).startswith("250 ")
            replies[path] = await client.command(f"RCPT TO:{path}")
            assert (await client.command("RSET")).startswith("250 ")
    assert replies == FORMS


async def test_the_fax_goes_to_the_number_written(tmp_path: Path) -> None:
    recipients = ['"(212) 555-0100"@fax.local', "FAX=+16465550101@fax.local"]
    async with running_gateway(tmp_path) as gateway:
        assert gateway.endpoints is not None and gateway.simulator is not None
        simulator = gateway.simulator
        outcome = await smtp_transaction(gateway.endpoints, fax_mail(), recipients)
        assert outcome.data is not None and outcome.data[0] == 250, outcome

        async def faxed() -> list[str]:
            sent = sorted(str(fax["to"]) for fax in simulator.ledger())
            return sent if len(sent) == len(recipients) else []

        assert await eventually(faxed, what="both faxes") == ["+12125550100", "+16465550101"]


async def test_possible_lets_a_number_of_an_unused_area_code_through(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, policy_number_check="possible") as gateway,
        raw_client(gateway) as client,
    ):
        assert (await client.command("MAIL FROM:<alice@example.com>")).startswith("250 ")
        assert await client.command("RCPT TO:<+14930123456@fax.local>") == (
            "250 2.1.5 Recipient ok: fax to +14930123456"
        )
        # Digits without + are still read as a US number only.
        assert await client.command("RCPT TO:<4930123456@fax.local>") == (
            "250 2.1.5 Recipient ok: fax to +14930123456"
        )
        # A local number has no area code, possible or not.
        refused = await client.command("RCPT TO:<5550199@fax.local>")
        assert refused.startswith("550 5.1.1 The fax number 5550199 is missing its area code")


async def test_the_operator_log_has_the_ignored_sub_address_and_the_refusing_rule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailfax.smtp")
    async with running_gateway(tmp_path) as gateway, raw_client(gateway) as client:
        assert (await client.command("MAIL FROM:<alice@example.com>")).startswith("250 ")
        accepted = await client.command("RCPT TO:</FAX=+12125550199/T33S=6789/@fax.local>")
        refused = await client.command("RCPT TO:<+19005550100@fax.local>")
    assert accepted == ACCEPTED
    assert refused.startswith("550 5.7.1 ") and "[policy]" not in refused
    events = {r.getMessage(): r.__dict__ for r in caplog.records}
    ignored = events["smtp.subaddress_ignored"]
    assert (ignored["number"], ignored["subaddress"]) == (E164, "6789")
    assert events["smtp.rcpt_refused"]["rule"] == "[policy] refused_types"
