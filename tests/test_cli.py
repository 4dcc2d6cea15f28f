"""The command line as a user runs it: serve, send, simulator and webhooks, in subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailfax.cli import _parser
from mailfax.cli_examples import EXAMPLES, commands
from tests.conftest import eventually, fresh_pg_database
from tests.gateway import gateway_env, receipts_in, start_gateway
from tests.pdfs import pdf_with_pages

MAILFAX = [sys.executable, "-m", "mailfax"]


async def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *MAILFAX,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, str]]:
    """`mailfax serve` in a subprocess; yields (process, smtp host:port, banner)."""
    process = await asyncio.create_subprocess_exec(
        *MAILFAX,
        "serve",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **gateway_env(tmp_path)},
    )
    assert process.stdout is not None
    banner = ""
    while "Stop with Ctrl-C." not in banner:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, f"mailfax serve exited early: {banner}"
        banner += line.decode()
    match = re.search(r"SMTP\s+(\S+:\d+)", banner)
    assert match, banner
    yield process, match.group(1), banner
    if process.returncode is None:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_serve_prints_where_it_listens_and_a_working_send_command(
    served: tuple[asyncio.subprocess.Process, str, str], tmp_path: Path
) -> None:
    process, _, banner = served
    assert "(the built-in FAX.PLUS simulator)" in banner
    assert f"receipts  {tmp_path / 'receipts' / 'new'}" in banner
    assert "/webhooks/faxplus/<secret>" in banner
    secret = (tmp_path / "webhook-secret").read_text().strip()
    assert secret and secret not in banner
    # The ready-to-paste command works as printed.
    command = next(line for line in banner.splitlines() if " send " in line).split()
    send_args = command[command.index("send") :]
    code, out, _ = await run(*send_args, "--from", "bob@example.com")
    assert code == 0, out
    assert "DATA: 250 2.0.0 Ok: queued as" in out

    async def receipt() -> list[EmailMessage] | None:
        return receipts_in(tmp_path) or None

    [message] = await eventually(receipt, what="the receipt")
    assert message["To"] == "bob@example.com"
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_send_reports_refusals_with_a_non_zero_exit_and_sends_numbers_as_typed(
    served: tuple[asyncio.subprocess.Process, str, str], tmp_path: Path
) -> None:
    _, smtp, _ = served
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(pdf_with_pages(1))
    code, out, _ = await run("send", "--server", smtp, "--to", "sales", str(pdf))
    assert code == 1
    assert "RCPT TO sales@fax.local: 550 5.1.1" in out
    archive = tmp_path / "scans.zip"
    archive.write_bytes(b"PK\x03\x04 not a pdf")
    code, out, _ = await run("send", "--server", smtp, "--to", "17185554567", str(archive))
    assert code == 1
    assert "DATA: 550 5.6.0 scans.zip is an archive: attach the documents themselves" in out
    # The number goes as typed: smtplib's own quoting drops "(212)" as a comment (+15550199).
    code, out, _ = await run("send", "--server", smtp, "--to", "(212) 555-0199", str(pdf))
    assert code == 0, out
    assert "RCPT TO (212) 555-0199@fax.local: 250 2.1.5 Recipient ok: fax to +12125550199" in out


async def test_send_dry_run_reads_each_number_and_sends_nothing(tmp_path: Path) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(pdf_with_pages(2))
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens: a connection attempt would fail
    numbers = ["--to", "212.555.0100", "--to", "4930123456"]
    env = gateway_env(tmp_path)
    code, out, err = await run("send", "--dry-run", "--server", nowhere, *numbers, env=env)
    assert (code, err) == (1, "")
    assert out == (
        "Recipients:\n"
        "  +12125550100   212.555.0100@fax.local\n"
        "                 250 2.1.5 Recipient ok: fax to +12125550100\n"
        "  refused        4930123456@fax.local\n"
        "                 550 5.1.1 The fax number 4930123456 read as a US number "
        "(+1 493-012-3456) cannot be dialled: +1 493 is not an area code in use; did you mean "
        "+4930123456?\n"
    )
    code, out, _ = await run("send", "--dry-run", "--to", "212.555.0100", str(pdf), env=env)
    assert code == 0, out
    assert "Reply:    250 2.0.0 Ok: would queue 1 document, 2 pages" in out
    assert "faxed      doc.pdf" in out
    code, _, err = await run("send", "--to", "212.555.0100", env=env)
    assert (code, err) == (2, "mailfax send: name at least one FILE to fax\n")


async def test_invalid_configuration_stops_start_up(tmp_path: Path) -> None:
    code, _, err = await run(
        "serve", env={"MAILFAX_SMTP_LISTEN": "nowhere", "MAILFAX_STATE_DIR": str(tmp_path)}
    )
    assert code == 2
    assert "[smtp] listen = 'nowhere'" in err
    config = tmp_path / "bad.toml"
    config.write_text('[faxplus]\napi_url = "https://restapi.fax.plus/v3"\n')
    code, _, err = await run("serve", "--config", str(config))
    assert code == 2 and "[faxplus] token" in err


@pytest.mark.parametrize("setting", ["smtp_listen", "http_listen", "sandbox_listen"])
async def test_a_taken_port_names_the_setting_that_moves_it(tmp_path: Path, setting: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = gateway_env(tmp_path, **{setting: f"127.0.0.1:{port}"})
        code, out, err = await run("serve", env=env)
    section, key = setting.split("_", 1)
    assert code == 1 and "is running" not in out
    assert f"127.0.0.1:{port} ([{section}] {key}) is not free" in err, err
    assert f"MAILFAX_{setting.upper()}=127.0.0.1:{port + 1} make run" in err, err
    # It never started: no "stopped" line, and no library chatter.
    assert "gateway.stopped" not in err and "pikepdf" not in err, err


def test_every_command_has_a_working_example_in_its_help() -> None:
    parser = _parser()
    paths = dict(commands(parser))
    assert set(EXAMPLES) == set(paths)
    for path, command in paths.items():
        assert "example" in command.format_help().split("options:")[-1], path
        for line in EXAMPLES[path]:
            words = shlex.split(line.split(" < ")[0], comments=True)
            assert words[0] == "mailfax" and words[1 : 1 + len(path.split())] == path.split()
            if path:  # each example parses as written
                assert parser.parse_args(words[1:]).func is not None, line


async def test_help_everywhere() -> None:
    for args in (
        ["--help"],
        ["serve", "--help"],
        ["send", "--help"],
        ["simulator", "--help"],
        ["webhooks", "--help"],
    ):
        code, out, _ = await run(*args)
        assert code == 0 and "usage: mailfax" in out and "example" in out


async def test_gateway_against_a_standalone_simulator(tmp_path: Path) -> None:
    """`mailfax simulator` is used exactly like the real API: configuration only."""
    port = free_port()
    simulator = await asyncio.create_subprocess_exec(
        *MAILFAX,
        "simulator",
        "--listen",
        f"127.0.0.1:{port}",
        "--token",
        "tok-123",
        "--delay",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert simulator.stdout is not None
        ready = await asyncio.wait_for(simulator.stdout.readline(), 30)
        assert f"127.0.0.1:{port}/v3" in ready.decode()
        api = {
            "faxplus_api_url": f"http://127.0.0.1:{port}/v3",
            "faxplus_token": "tok-123",
        }
        gateway = await start_gateway(tmp_path, gateway_env(tmp_path, **api))
        try:
            assert gateway.endpoints is not None
            assert gateway.endpoints.http_url and gateway.endpoints.smtp
            cli_env = gateway_env(tmp_path, http_public_url=gateway.endpoints.http_url, **api)
            code, out, _ = await run("webhooks", "register", env=cli_env)
            assert code == 0 and "fax_sent webhook registered" in out
            code, out, _ = await run("webhooks", "list", "--json", env=cli_env)
            [hook] = json.loads(out)
            assert hook["target"] == gateway.endpoints.webhook_url

            pdf = tmp_path / "doc.pdf"
            pdf.write_bytes(pdf_with_pages(3))
            host, smtp_port = gateway.endpoints.smtp
            code, out, _ = await run(
                "send",
                "--server",
                f"{host}:{smtp_port}",
                "--to",
                "17185554567",
                "--from",
                "c@example.com",
                str(pdf),
            )
            assert code == 0, out

            async def receipt() -> list[EmailMessage] | None:
                return receipts_in(tmp_path) or None

            [message] = await eventually(receipt, what="the receipt")
            assert "delivered" in str(message["Subject"])

            code, out, _ = await run("webhooks", "delete", hook["id"], env=cli_env)
            assert code == 0
            code, out, _ = await run("webhooks", "list", env=cli_env)
            assert "no fax_sent webhooks registered" in out
            # A wrong token is refused by the simulator, and the CLI says so.
            code, _, err = await run(
                "webhooks", "list", env={**cli_env, "MAILFAX_FAXPLUS_TOKEN": "wrong"}
            )
            assert code == 1 and "401" in err and "wrong" not in err
        finally:
            await gateway.stop()
    finally:
        simulator.terminate()
        await asyncio.wait_for(simulator.wait(), 30)


async def test_postgresql_needs_db_upgrade_before_serve(tmp_path: Path) -> None:
    async with fresh_pg_database() as url:
        env = {**gateway_env(tmp_path), "MAILFAX_STORE_URL": url}
        code, _, err = await run("serve", env=env)
        assert code == 2 and "run `mailfax db upgrade`" in err
        code, out, _ = await run("db", "upgrade", env=env)
        assert code == 0 and "applied 1: initial schema" in out
        code, out, _ = await run("db", "upgrade", env=env)
        assert code == 0 and "applied" not in out
