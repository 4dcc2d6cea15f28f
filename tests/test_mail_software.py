"""Mail software nobody on this project wrote, talking to mailfax: Postfix in front (relaying the
fax domain to it, delivering its receipts), swaks, and s-nail building its own MIME."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pikepdf
import pytest
import trustme

from mailfax.app import Gateway
from mailfax.config import load_settings
from mailfax.sandbox import DEFAULT_TOKEN
from mailfax.users import User, hash_password, save_users
from tests.conftest import eventually
from tests.gateway import faxed_comment, faxed_documents, gateway_env, receipts_in, start_gateway
from tests.pdfs import pdf_with_pages
from tests.postfix import COMMAND_TIMEOUT, DEPLOY, POSTFIX, Postfix, mailfax_transport
from tests.test_cli import free_port

SENDMAIL = shutil.which("sendmail", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
SWAKS = shutil.which("swaks")
S_NAIL = shutil.which("s-nail")


async def command(*args: str, stdin: bytes = b"", home: Path | None = None) -> tuple[int, str]:
    """Run a program to its end (bounded); its exit code and everything it printed."""
    extra = {"HOME": str(home)} if home else {}
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "LC_ALL": "C.UTF-8", **extra},
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(stdin), COMMAND_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{args[0]} did not finish in {COMMAND_TIMEOUT}s") from None
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def faxed_document(gateway: Gateway, fax: dict[str, Any]) -> bytes:
    """The document as the simulator faxed it, fetched through the API like any client would."""
    assert gateway.endpoints is not None
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as api:
        response = await api.get(
            f"{gateway.endpoints.api_url}/accounts/self/files/{fax['id']}", params={"format": "pdf"}
        )
    assert response.status_code == 200
    return response.content


def page_texts(document: bytes) -> list[str]:
    """The text-showing operators of each page, e.g. ["(swaks 1) Tj", ...] per page."""
    with pikepdf.open(io.BytesIO(document)) as pdf:
        return [
            pikepdf.unparse_content_stream(pikepdf.parse_content_stream(page)).decode("latin-1")
            for page in pdf.pages
        ]


async def one_fax(gateway: Gateway) -> dict[str, Any]:
    async def sent() -> list[dict[str, Any]] | None:
        assert gateway.simulator is not None
        return gateway.simulator.ledger() or None

    [fax] = await eventually(sent, what="the fax at the simulator")
    return fax


async def assert_faxed(gateway: Gateway, number: str, label: str, pages: int) -> dict[str, Any]:
    """The fax reached the simulator with the document that was sent; returns its ledger entry."""
    fax = await one_fax(gateway)
    assert fax["to"] == number
    assert [f["pages"] for f in fax["files"]] == [pages]
    texts = page_texts(await faxed_document(gateway, fax))
    assert len(texts) == pages
    for number_on_page, text in enumerate(texts, 1):
        assert f"({label} {number_on_page}) Tj" in text
    return fax


# --- Postfix -----------------------------------------------------------------------------


@pytest.fixture
async def postfix() -> AsyncIterator[Postfix]:
    if POSTFIX is None or SENDMAIL is None:
        pytest.skip("Postfix is not installed (.ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("a Postfix instance of its own needs root (as in CI)")
    base = Path(tempfile.mkdtemp(prefix="mailfax-postfix-"))
    # Postfix's daemons run as other users: they must reach the directory.
    base.chmod(0o755)
    instance = Postfix(base, free_port())
    try:
        yield instance
    finally:
        await asyncio.to_thread(instance.postfix, "stop")

        async def stopped() -> bool:
            # `postfix status` fails once the master process is gone.
            return (await asyncio.to_thread(instance.postfix, "status")).returncode != 0

        await eventually(stopped, timeout=30, what="Postfix to stop")
        shutil.rmtree(base, ignore_errors=True)


async def test_postfix_relays_the_fax_domain_and_delivers_the_receipt(
    postfix: Postfix, tmp_path: Path
) -> None:
    env = gateway_env(tmp_path, receipts_smarthost=f"smtp://127.0.0.1:{postfix.port}")
    gateway = Gateway(load_settings(DEPLOY / "mailfax.toml", environ=env))
    await gateway.start()
    try:
        assert gateway.endpoints is not None and gateway.endpoints.smtp is not None
        postfix.configure(mailfax_transport(gateway.endpoints.smtp[1]))
        started = await asyncio.to_thread(postfix.postfix, "start")
        assert started.returncode == 0, f"{started.stdout}{started.stderr}\n{postfix.log()}"

        mail = EmailMessage()
        mail["From"] = "Alice <alice@example.test>"
        mail["To"] = "17185554567@fax.local"
        mail["Subject"] = "Lab results"
        mail.set_content("Results attached.")
        mail.add_attachment(
            pdf_with_pages(2, "postfix"), maintype="application", subtype="pdf", filename="r.pdf"
        )
        code, out = await command(
            str(SENDMAIL),
            "-C",
            str(postfix.config),
            "-f",
            "alice@example.test",
            "17185554567@fax.local",
            stdin=mail.as_bytes(),
        )
        assert code == 0, out

        await assert_faxed(gateway, "+17185554567", "postfix", 2)

        async def receipt() -> list[Path] | None:
            new = postfix.mailbox / "new"
            return sorted(new.iterdir()) if new.is_dir() and any(new.iterdir()) else None

        try:
            [delivered] = await eventually(receipt, timeout=30, what="the receipt in the mailbox")
        except AssertionError:
            raise AssertionError(
                f"no receipt in the mailbox; Postfix log:\n{postfix.log()}"
            ) from None
        message = email.message_from_bytes(delivered.read_bytes(), policy=email.policy.default)
        assert message["Subject"] == "Fax delivered to +1 718-555-4567 (2 pages)"
        assert message["From"] == "fax@example.com"  # deploy/postfix/mailfax.toml
        assert message["X-Mailfax-Job"]
        assert message["Return-Path"] == "<>"  # a receipt is never bounced back
        # mailfax got the mail from Postfix, not from anybody else.
        assert gateway.store is not None
        [summary] = await gateway.store.list_jobs(None, None, "", 5)
        stored = await gateway.store.message(summary.job.message_id)
        assert stored is not None
        assert b"by postfix.mailfax-test.localdomain (Postfix" in stored.raw
        assert b"Received: from postfix.mailfax-test.localdomain (127.0.0.1)" in stored.raw
        assert receipts_in(tmp_path) == []  # all receipts went through the smarthost
    finally:
        await gateway.stop()


# --- swaks and s-nail --------------------------------------------------------------------


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    running = await start_gateway(tmp_path)
    yield running
    await running.stop()


@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (.ci/run installs it)")
async def test_swaks_sends_a_fax(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None and gateway.endpoints.smtp is not None and SWAKS
    host, port = gateway.endpoints.smtp
    document = tmp_path / "quote.pdf"
    document.write_bytes(pdf_with_pages(3, "swaks"))
    code, out = await command(
        SWAKS,
        "--server",
        f"{host}:{port}",
        "--from",
        "bob@example.com",
        "--to",
        "17185554567@fax.local",
        "--header",
        "Subject: Quote",
        "--body",
        "The quote, as promised.",
        "--attach-type",
        "application/pdf",
        "--attach-name",
        "quote.pdf",
        "--attach",
        f"@{document}",
    )
    assert code == 0, out
    assert "<-  250 2.0.0 Ok: queued as" in out
    fax = await assert_faxed(gateway, "+17185554567", "swaks", 3)
    assert faxed_comment(fax) == "The quote, as promised."
    assert [name for name, _ in faxed_documents(fax)] == ["quote.pdf"]


@pytest.mark.skipif(S_NAIL is None, reason="s-nail is not installed (.ci/run installs it)")
async def test_s_nail_builds_its_own_mime_and_sends_a_fax(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.endpoints is not None and gateway.endpoints.smtp is not None and S_NAIL
    host, port = gateway.endpoints.smtp
    document = tmp_path / "contract.pdf"
    document.write_bytes(pdf_with_pages(2, "s-nail"))
    code, out = await command(
        S_NAIL,
        "-n",  # no system-wide mailrc
        "-#",  # batch mode: no questions, no ~/.mailrc
        "-S",
        "v15-compat",
        "-S",
        f"mta=smtp://{host}:{port}",
        "-S",
        "smtp-auth=none",
        "-S",
        "nosave",  # no dead.letter if it fails
        "-S",
        "from=Carol <carol@example.com>",
        "-s",
        "Contract",
        "-a",
        str(document),
        "19175554321@fax.local",
        stdin=b"Please sign and fax back.\n",
        home=tmp_path,
    )
    assert code == 0, out
    fax = await assert_faxed(gateway, "+19175554321", "s-nail", 2)
    assert faxed_comment(fax) == "Please sign and fax back."
    assert [name for name, _ in faxed_documents(fax)] == ["contract.pdf"]


@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (.ci/run installs it)")
async def test_swaks_with_starttls_and_auth(tmp_path: Path) -> None:
    assert SWAKS is not None
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    save_users(
        tmp_path / "users.toml",
        {"dana": User("dana", ("dana@example.com",), hash_password("correct horse battery"))},
    )
    env = gateway_env(
        tmp_path,
        smtp_tls_cert=str(cert),
        smtp_tls_key=str(key),
        smtp_require_auth="true",
        smtp_trusted_networks="",
    )
    gateway = await start_gateway(tmp_path, env)
    try:
        assert gateway.endpoints is not None and gateway.endpoints.smtp is not None
        host, port = gateway.endpoints.smtp
        document = tmp_path / "memo.pdf"
        document.write_bytes(pdf_with_pages(1, "tls"))
        code, out = await command(
            SWAKS,
            "--server",
            f"{host}:{port}",
            "--tls",
            "--tls-verify",
            "--tls-ca-path",
            str(ca_file),
            "--auth",
            "PLAIN",
            "--auth-user",
            "dana",
            "--auth-password",
            "correct horse battery",
            "--from",
            "dana@example.com",
            "--to",
            "17185554567@fax.local",
            "--header",
            "From: dana@example.com",
            "--attach-type",
            "application/pdf",
            "--attach",
            f"@{document}",
        )
        assert code == 0, out
        assert "<~  235" in out  # authenticated inside the TLS session
        await assert_faxed(gateway, "+17185554567", "tls", 1)
    finally:
        await gateway.stop()
