"""The `mailfax` command tree: serve, send, simulator, webhooks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.policy
import getpass
import json
import mimetypes
import signal
import smtplib
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from mailfax import __version__
from mailfax._http import HttpServer, parse_hostport
from mailfax.app import Endpoints, Gateway, register_webhook, webhook_secret
from mailfax.config import ConfigError, Settings, load_settings
from mailfax.documents import text_pdf
from mailfax.faxplus import ApiError, FaxPlusClient
from mailfax.logs import setup_logging
from mailfax.sandbox import DEFAULT_TOKEN, Simulator, SimulatorSettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"mailfax: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailfax", description="Email-to-fax gateway for FAX.PLUS."
    )
    parser.add_argument("--version", action="version", version=f"mailfax {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the gateway (SMTP, webhooks, dispatcher, receipts)"
    )
    _config_option(serve)
    serve.set_defaults(func=_serve)

    send = commands.add_parser(
        "send", help="fax files by composing a mail and submitting it by SMTP"
    )
    send.add_argument(
        "--to", action="append", required=True, metavar="NUMBER", help="fax number (repeatable)"
    )
    send.add_argument(
        "--from", dest="sender", metavar="ADDRESS", help="sender address (default: you@hostname)"
    )
    send.add_argument(
        "--server", metavar="HOST:PORT", help="SMTP server (default: the configured listen address)"
    )
    send.add_argument("--comment", default="", help="fax comment (the mail body)")
    send.add_argument("--subject", default="", help="mail subject")
    send.add_argument("files", nargs="+", type=Path, metavar="FILE", help="documents to fax (PDF)")
    _config_option(send)
    send.set_defaults(func=_send)

    sim = commands.add_parser("simulator", help="run the FAX.PLUS simulator alone")
    sim.add_argument("--listen", default="127.0.0.1:8081", metavar="HOST:PORT")
    sim.add_argument("--token", default=DEFAULT_TOKEN, help="the only Bearer token accepted")
    sim.add_argument(
        "--delay", type=float, default=2.0, metavar="SECONDS", help="send-to-result delay"
    )
    sim.set_defaults(func=_simulator)

    hooks = commands.add_parser("webhooks", help="manage the FAX.PLUS fax_sent webhook")
    hook_commands = hooks.add_subparsers(title="webhook commands", metavar="ACTION", required=True)
    register = hook_commands.add_parser(
        "register", help="register <public_url>/webhooks/faxplus/<secret>"
    )
    register.set_defaults(func=_webhooks_register)
    listing = hook_commands.add_parser("list", help="list registered fax_sent webhooks")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_webhooks_list)
    delete = hook_commands.add_parser("delete", help="delete a webhook by id")
    delete.add_argument("hook_id")
    delete.set_defaults(func=_webhooks_delete)
    for sub in (register, listing, delete):
        _config_option(sub)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="TOML configuration (default: $MAILFAX_CONFIG)"
    )


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


# --- serve -------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging(settings.log.level, settings.log.format)
    return asyncio.run(_serve_async(settings))


async def _serve_async(settings: Settings) -> int:
    gateway = Gateway(settings)
    try:
        endpoints = await gateway.start()
    except OSError as exc:
        print(
            f"mailfax: cannot start: {exc.strerror or exc} ({exc.__class__.__name__})",
            file=sys.stderr,
        )
        return 1
    except ApiError as exc:
        print(f"mailfax: cannot start: FAX.PLUS: {exc}", file=sys.stderr)
        return 1
    print(_banner(settings, endpoints), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gateway.stop()
    return 0


def _banner(settings: Settings, endpoints: Endpoints) -> str:
    host, port = endpoints.smtp
    sample = settings.state_path / "sample.pdf"
    if not sample.exists():
        sample.write_bytes(
            text_pdf(["mailfax test page", "If you can read this, the fax went through."])
        )
    api = "the built-in FAX.PLUS simulator" if settings.uses_sandbox else "FAX.PLUS"
    webhook = endpoints.webhook_url.rsplit("/", 1)[0] + "/<secret>"
    return "\n".join(
        [
            f"mailfax {__version__} is running",
            f"  SMTP      {host}:{port}  (mail to <fax number>@{settings.smtp.domain})",
            f"  webhooks  {webhook}",
            f"  FAX.PLUS  {endpoints.api_url}  ({api})",
            f"  receipts  {endpoints.receipts}",
            "Send a test fax (in another terminal):",
            f"  {_self_command()} send --server {host}:{port} --to 15551234567 {sample.resolve()}",
            "Stop with Ctrl-C.",
        ]
    )


def _self_command() -> str:
    exe = Path(sys.argv[0])
    return (
        str(exe.resolve())
        if exe.name == "mailfax" and exe.exists()
        else f"{sys.executable} -m mailfax"
    )


# --- send --------------------------------------------------------------------


def compose_fax_mail(
    sender: str, recipients: Sequence[str], files: Sequence[Path], comment: str, subject: str
) -> EmailMessage:
    """A standard MIME mail: comment as text body, each file as an attachment."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject or "Fax: " + ", ".join(f.name for f in files)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid("mailfax-send")
    message.set_content(comment + "\n" if comment else "")
    for path in files:
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = mime.split("/", 1)
        message.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return message


def _send(args: argparse.Namespace) -> int:
    settings = _settings(args)
    host, port = parse_hostport(args.server or settings.smtp.listen)
    domain = settings.smtp.domain
    recipients = [to if "@" in to else f"{to}@{domain}" for to in args.to]
    sender = args.sender or f"{getpass.getuser()}@{socket.getfqdn()}"
    for path in args.files:
        if not path.is_file():
            print(f"mailfax send: {path}: no such file", file=sys.stderr)
            return 2
    message = compose_fax_mail(sender, recipients, args.files, args.comment, args.subject)
    try:
        # smtplib sends bytes as they are: they must already have CRLF line ends.
        return _submit(host, port, sender, recipients, message.as_bytes(policy=email.policy.SMTP))
    except (OSError, smtplib.SMTPException) as exc:
        print(f"mailfax send: cannot talk to {host}:{port}: {exc}", file=sys.stderr)
        return 1


def _submit(host: str, port: int, sender: str, recipients: list[str], data: bytes) -> int:
    """One SMTP transaction, printing every reply; non-zero exit if any recipient is refused."""
    with smtplib.SMTP(host, port, timeout=60) as smtp:
        smtp.ehlo()
        code, reply = smtp.mail(sender)
        print(f"MAIL FROM: {code} {reply.decode(errors='replace')}")
        if code >= 400:
            return 1
        accepted = 0
        refused = 0
        for rcpt in recipients:
            code, reply = smtp.rcpt(rcpt)
            print(f"RCPT TO {rcpt}: {code} {reply.decode(errors='replace')}")
            accepted += code < 400
            refused += code >= 400
        if not accepted:
            return 1
        code, reply = smtp.data(data)
        print(f"DATA: {code} {reply.decode(errors='replace')}")
        return 0 if code < 400 and not refused else 1


# --- simulator ---------------------------------------------------------------


def _simulator(args: argparse.Namespace) -> int:
    setup_logging()
    return asyncio.run(_simulator_async(args.listen, args.token, args.delay))


async def _simulator_async(listen: str, token: str, delay: float) -> int:
    simulator = Simulator(SimulatorSettings(token=token, delay=delay))
    server = HttpServer(simulator.app, *parse_hostport(listen))
    await server.start()
    print(f"FAX.PLUS simulator listening on {server.url}/v3 (Bearer token: {token})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    await simulator.aclose()
    return 0


# --- webhooks ----------------------------------------------------------------


def _api(settings: Settings) -> FaxPlusClient:
    if settings.uses_sandbox:
        raise ConfigError(
            '[faxplus] api_url = "sandbox": the embedded simulator registers its webhook itself. '
            "Fix: set api_url to the real API (or a running `mailfax simulator`) to manage webhooks"
        )
    return FaxPlusClient(
        settings.faxplus.api_url,
        settings.faxplus.token,
        settings.faxplus.user_id,
        settings.faxplus.request_timeout,
    )


def _webhooks_register(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.http.public_url:
        raise ConfigError("[http] public_url is empty. Fix: set it to the URL FAX.PLUS can reach")

    async def run() -> int:
        api = _api(settings)
        async with contextlib.aclosing(api):
            base = f"{settings.http.public_url.rstrip('/')}/webhooks/faxplus"
            hook_id = await register_webhook(api, f"{base}/{webhook_secret(settings)}")
        print(f"fax_sent webhook registered: id {hook_id}, target {base}/<secret>")
        return 0

    return _api_call(run)


def _webhooks_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        api = _api(settings)
        async with contextlib.aclosing(api):
            hooks = await api.list_hooks("fax_sent")
        if args.json:
            print(json.dumps(hooks, indent=2))
        else:
            for hook in hooks:
                print(f"{hook.get('id')}  {hook.get('event')}  {hook.get('target')}")
            if not hooks:
                print("no fax_sent webhooks registered")
        return 0

    return _api_call(run)


def _webhooks_delete(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        api = _api(settings)
        async with contextlib.aclosing(api):
            await api.delete_hook(args.hook_id)
        print(f"webhook {args.hook_id} deleted")
        return 0

    return _api_call(run)


def _api_call(run: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return int(asyncio.run(run()))
    except ApiError as exc:
        print(f"mailfax webhooks: FAX.PLUS: {exc}", file=sys.stderr)
        return 1
