"""Receipts end to end on loopback: SMTP in, the simulator's fax and confirmation report,
receipts in the Maildir; and `mailfax receipts preview` against the same store."""

from __future__ import annotations

import asyncio
import contextlib
import io
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailfax.cli import main
from tests.conftest import eventually
from tests.gateway import gateway_env, receipts_in, smtp_transaction, start_gateway, text_part
from tests.pdfs import fax_mail


def by_kind(receipts: list[EmailMessage]) -> dict[str, list[EmailMessage]]:
    kinds: dict[str, list[EmailMessage]] = {}
    for receipt in receipts:
        kinds.setdefault(str(receipt["X-Mailfax-Receipt"]), []).append(receipt)
    return kinds


async def wait_for_kinds(state_dir: Path, wanted: dict[str, int]) -> dict[str, list[EmailMessage]]:
    async def probe() -> dict[str, list[EmailMessage]] | None:
        kinds = by_kind(receipts_in(state_dir))
        return kinds if {k: len(v) for k, v in kinds.items()} == wanted else None

    return await eventually(probe, what=f"receipts {wanted}")


def attached(receipt: EmailMessage) -> list[tuple[str, str | None]]:
    human = next(receipt.iter_parts())
    return [(part.get_content_type(), part.get_filename()) for part in human.iter_attachments()]


async def test_all_notices_with_report_and_thumbnail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = gateway_env(tmp_path, receipts_notify="all", receipts_attach_thumbnail="true")
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.endpoints is not None and gateway.store is not None
        outcome = await smtp_transaction(gateway.endpoints, fax_mail(), ["17185554567@fax.local"])
        assert outcome.final[0] == 250
        kinds = await wait_for_kinds(tmp_path, {"accepted": 1, "final": 1})
        [notice], [result] = kinds["accepted"], kinds["final"]
        assert notice["Subject"] == "Fax to +1 718-555-4567 accepted (2 pages)"
        assert attached(notice) == []
        assert result["Subject"] == "Fax delivered to +1 718-555-4567 (2 pages)"
        job_id = str(result["X-Mailfax-Job"])
        job = await gateway.store.get_job(job_id)
        assert job is not None and job.fax_id
        assert attached(result) == [
            ("application/pdf", f"fax-report-{job.fax_id}.pdf"),
            ("image/png", "first-page.png"),
        ]
        report = next(next(result.iter_parts()).iter_attachments()).get_content()
        assert report.startswith(b"%PDF-")
        assert f"FAX.PLUS's confirmation report for fax {job.fax_id} is attached." in (
            text_part(result)
        )

        # The preview composes the same receipt from the store (and the running simulator).
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sandbox = gateway.endpoints.api_url.removeprefix("http://").removesuffix("/v3")
        monkeypatch.setenv("MAILFAX_SANDBOX_LISTEN", sandbox)
        out, err = io.StringIO(), io.StringIO()

        def preview() -> int:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                return main(["receipts", "preview", job_id, "--part", "text"])

        assert await asyncio.to_thread(preview) == 0
        assert out.getvalue() == text_part(result)
        assert "this final receipt would be sent to <alice@example.com>" in err.getvalue()
    finally:
        await gateway.stop()


async def test_group_mode_sends_one_summary_per_mail(tmp_path: Path) -> None:
    gateway = await start_gateway(tmp_path, gateway_env(tmp_path, receipts_group="true"))
    try:
        assert gateway.endpoints is not None and gateway.store is not None
        recipients = ["17185554567@fax.local", "+1-646-555-0015@fax.local"]
        outcome = await smtp_transaction(gateway.endpoints, fax_mail(), recipients)
        assert outcome.final[0] == 250
        [summary] = (await wait_for_kinds(tmp_path, {"group": 1}))["group"]
        assert summary["Subject"] == "Fax to 2 numbers: 1 delivered, 1 not (2 pages)"
        text = text_part(summary)
        assert "1. Your fax to +1 718-555-4567 was delivered" in text
        assert "2. Your fax to +1 646-555-0015 was not delivered: number does not exist" in text
        jobs = await gateway.store.jobs_of_message(str(summary["X-Mailfax-Queue-ID"]))
        records = [await gateway.store.receipt_of(job.id) for job in jobs]
        assert len(records) == 2 and {r.kind for r in records if r} == {"group"}
        assert len({r.id for r in records if r}) == 1
    finally:
        await gateway.stop()
