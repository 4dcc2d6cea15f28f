"""The `mailfax` command tree: serve, send, inspect, simulator, webhooks, doctor, jobs, users."""

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
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import Any

from mailfax import __version__, sandbox
from mailfax._http import HttpServer, ListenError, parse_hostport
from mailfax.app import (
    ROLES,
    Endpoints,
    Gateway,
    register_webhook,
    webhook_secret,
    webhook_target,
)
from mailfax.cli_examples import add_examples
from mailfax.config import ConfigError, Settings, env_variable, load_settings
from mailfax.faxplus import ApiError, FaxPlusClient
from mailfax.logs import setup_logging
from mailfax.mail.model import Extraction, extraction_options
from mailfax.operator_cli import add_operator_commands
from mailfax.policy import FaxRecipient, Refusal, recipient_ok
from mailfax.receipts_cli import add_receipts_commands
from mailfax.sandbox import DEFAULT_TOKEN
from mailfax.sandbox.variants import VARIANTS
from mailfax.smtp.admission import AdmissionPolicy
from mailfax.smtp.paths import write_path
from mailfax.store import LATEST, SchemaMismatch, StoreNotEmpty, copy_store, open_store
from mailfax.typeset import text_pdf
from mailfax.users_cli import add_users_commands


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
    serve.add_argument(
        "--role",
        default="smtp,web,worker",
        metavar="ROLES",
        help="comma-separated roles this process runs: smtp, web, worker (default: all three)",
    )
    serve.set_defaults(func=_serve)

    db = commands.add_parser("db", help="manage the store's schema and contents")
    db_commands = db.add_subparsers(title="db commands", metavar="ACTION", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply pending schema migrations")
    db_upgrade.set_defaults(func=_db_upgrade)
    db_copy = db_commands.add_parser(
        "copy", help="copy every message, job and receipt into another (empty) database"
    )
    db_copy.add_argument("--to", required=True, metavar="URL", help="e.g. postgresql://host/db")
    db_copy.set_defaults(func=_db_copy)
    for sub in (db_upgrade, db_copy):
        _config_option(sub)

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
    send.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: show how the gateway (this configuration) would read each number "
        "and, with files, what it would fax",
    )
    send.add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="documents to fax (PDF, images, ...)"
    )
    _config_option(send)
    send.set_defaults(func=_send)

    inspect = commands.add_parser(
        "inspect", help="show what the gateway would fax from a mail file, without sending"
    )
    inspect.add_argument("mail", type=Path, metavar="FILE.eml", help="the mail ('-' = stdin)")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a recipient as written in RCPT TO, or a number alone (repeatable; default: the "
        "mail's To and Cc addresses in the fax domain)",
    )
    _config_option(inspect)
    inspect.set_defaults(func=_inspect)

    sim = commands.add_parser("simulator", help="run the FAX.PLUS simulator alone")
    sim.add_argument("--listen", default="127.0.0.1:8081", metavar="HOST:PORT")
    sim.add_argument("--token", default=DEFAULT_TOKEN, help="the only Bearer token accepted")
    sim.add_argument(
        "--delay", type=float, default=2.0, metavar="SECONDS", help="send-to-result delay"
    )
    sim.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="behave as another reading of the FAX.PLUS docs allows ('all' = every one): "
        + "; ".join(f"{name}: {why}" for name, why in VARIANTS.items()),
    )
    # SUPPRESS leaves an absent flag out, so SimulatorSettings' own default applies.
    sim.add_argument(
        "--from-number",
        default=argparse.SUPPRESS,
        metavar="NUMBER[,NUMBER...]",
        help="the account's active numbers (default +16465550001)",
    )
    sim.add_argument(
        "--credit-pages",
        type=int,
        default=argparse.SUPPRESS,
        metavar="PAGES",
        help="pages sent before sends end insufficient_credit (variant 'credit'; default 100)",
    )
    _fault_options(sim)
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
    add_operator_commands(commands, _config_option)
    add_users_commands(commands, _config_option)
    add_receipts_commands(commands, _config_option)
    add_examples(parser)
    return parser


def _fault_options(sim: argparse.ArgumentParser) -> None:
    # SUPPRESS leaves an absent flag out, so SimulatorSettings' own default applies.
    faults = sim.add_argument_group(
        "fault injection",
        "all off by default; rates are fractions from 0 to 1",
        argument_default=argparse.SUPPRESS,
    )
    faults.add_argument("--seed", type=int, help="seed of every fault decision")
    rates = [
        ("--error-rate", "API requests answered 503 or 500 before being processed"),
        ("--rate-limit-rate", "API requests answered 429 (Retry-After: 1) before being processed"),
        ("--timeout-rate", "API requests processed, then their answer withheld for --hang"),
        ("--drop-rate", "API requests processed, then their connection broken mid-answer"),
        ("--webhook-duplicate-rate", "webhooks delivered two or three times"),
        ("--webhook-reorder-rate", "webhooks preceded by a stale contradicting copy, delayed"),
        ("--webhook-early-rate", "sends whose webhooks arrive before their 201 answer"),
        ("--webhook-drop-rate", "webhooks never sent"),
        ("--webhook-wrong-path-rate", "webhooks sent to the target with its last segment altered"),
    ]
    for flag, what in rates:
        faults.add_argument(flag, type=float, metavar="FRACTION", help=what)
    faults.add_argument(
        "--latency", type=float, metavar="SECONDS", help="random delay (0..SECONDS) per request"
    )
    faults.add_argument(
        "--hang", type=float, metavar="SECONDS", help="how long a timed-out answer is withheld"
    )
    faults.add_argument("--state-file", metavar="FILE", help="keep the ledger in FILE")


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="TOML configuration (default: $MAILFAX_CONFIG)"
    )


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


# --- serve -------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    roles = frozenset(role.strip() for role in args.role.split(",") if role.strip())
    if not roles or roles - ROLES:
        print(f"mailfax serve: --role takes {', '.join(sorted(ROLES))}", file=sys.stderr)
        return 2
    setup_logging(settings.log.level, settings.log.format)
    return asyncio.run(_serve_async(settings, roles))


async def _serve_async(settings: Settings, roles: frozenset[str]) -> int:
    gateway = Gateway(settings, roles)
    try:
        endpoints = await gateway.start()
    except SchemaMismatch as exc:
        print(f"mailfax: cannot start: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"mailfax: cannot start: {_listen_problem(settings, exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"mailfax: cannot start: {exc.strerror or exc} ({exc.__class__.__name__})",
            file=sys.stderr,
        )
        return 1
    except ApiError as exc:
        print(f"mailfax: cannot start: FAX.PLUS: {exc}", file=sys.stderr)
        return 1
    print(_banner(settings, endpoints, gateway.roles), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Renewed certificates (certbot, ...) are picked up without dropping connections.
    loop.add_signal_handler(signal.SIGHUP, gateway.reload_tls)
    await stop.wait()
    await gateway.stop()
    return 0


def _listen_problem(settings: Settings, exc: ListenError) -> str:
    """Which listener could not bind, and the setting (and environment variable) that moves it."""
    address = f"{exc.host}:{exc.port}"
    listeners = {
        ("smtp", "listen"): settings.smtp.listen,
        ("smtp", "tls_listen"): settings.smtp.tls_listen,
        ("http", "listen"): settings.http.listen,
        ("sandbox", "listen"): settings.sandbox.listen,
    }
    taken = {parse_hostport(value)[1] for value in listeners.values() if value}
    for (section, key), value in listeners.items():
        if value and parse_hostport(value) == (exc.host, exc.port):
            other = next(port for port in range(exc.port + 1, 65536) if port not in taken)
            return (
                f"{address} ([{section}] {key}) is not free: {exc.strerror}. Fix: stop the "
                f"program that uses it, or move mailfax's listener with [{section}] {key} in "
                f"the configuration file or the environment, e.g. "
                f"{env_variable(section, key)}={exc.host}:{other} make run"
            )
    return f"cannot listen on {address}: {exc.strerror}"


def _banner(settings: Settings, endpoints: Endpoints, roles: frozenset[str]) -> str:
    api = "the built-in FAX.PLUS simulator" if settings.uses_sandbox else "FAX.PLUS"
    lines = [f"mailfax {__version__} is running ({', '.join(sorted(roles))})"]
    if endpoints.smtp:
        host, port = endpoints.smtp
        lines.append(f"  SMTP      {host}:{port}  (mail to <fax number>@{settings.smtp.domain})")
    if endpoints.webhook_url:
        lines.append(f"  webhooks  {endpoints.webhook_url.rsplit('/', 1)[0]}/<secret>")
    lines.append(f"  FAX.PLUS  {endpoints.api_url}  ({api})")
    if "worker" in roles:
        lines.append(f"  receipts  {endpoints.receipts}")
    if endpoints.smtp:
        sample = settings.state_path / "sample.pdf"
        if not sample.exists():
            sample.write_bytes(
                text_pdf(["mailfax test page", "If you can read this, the fax went through."])
            )
        lines += [
            "Send a test fax (in another terminal):",
            f"  {_self_command()} send --server {host}:{port} --to 17185554567 {sample.resolve()}",
        ]
    lines.append("Stop with Ctrl-C.")
    return "\n".join(lines)


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
    recipients = [_fax_address(to, settings) for to in args.to]
    sender = args.sender or f"{getpass.getuser()}@{socket.getfqdn()}"
    if not args.files and not args.dry_run:
        print("mailfax send: name at least one FILE to fax", file=sys.stderr)
        return 2
    for path in args.files:
        if not path.is_file():
            print(f"mailfax send: {path}: no such file", file=sys.stderr)
            return 2
    message = compose_fax_mail(sender, recipients, args.files, args.comment, args.subject)
    if args.dry_run:
        raw = message.as_bytes(policy=email.policy.SMTP) if args.files else None
        return _report(settings, raw, recipients, as_json=False)
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
            # The path as written: smtplib's own quoting reads it as an RFC 5322 address and
            # drops "(212)" as a comment.
            code, reply = smtp.docmd("RCPT", f"TO:{write_path(rcpt)}")
            print(f"RCPT TO {rcpt}: {code} {reply.decode(errors='replace')}")
            accepted += code < 400
            refused += code >= 400
        if not accepted:
            return 1
        code, reply = smtp.data(data)
        print(f"DATA: {code} {reply.decode(errors='replace')}")
        return 0 if code < 400 and not refused else 1


# --- inspect -----------------------------------------------------------------


def _inspect(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        raw = sys.stdin.buffer.read() if str(args.mail) == "-" else args.mail.read_bytes()
    except OSError as exc:
        print(f"mailfax inspect: {args.mail}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.to:
        recipients = [_fax_address(to, settings) for to in args.to]
    else:
        recipients = _header_recipients(raw, settings.smtp.domain)
    return _report(settings, raw, recipients, as_json=args.json)


def _fax_address(to: str, settings: Settings) -> str:
    """A recipient as given on the command line: a number alone goes to the fax domain."""
    return to if "@" in to else f"{to}@{settings.smtp.domain}"


def _header_recipients(raw: bytes, domain: str) -> list[str]:
    """The mail's To and Cc addresses in the fax domain, as a mail program reads them."""
    headers = email.message_from_bytes(raw, policy=email.policy.compat32)
    found = getaddresses([str(v) for v in headers.get_all("To", []) + headers.get_all("Cc", [])])
    return [a for _, a in found if a.rpartition("@")[2].lower().rstrip(".") == domain.lower()]


def _report(settings: Settings, raw: bytes | None, addresses: Sequence[str], as_json: bool) -> int:
    """Print how the listener would answer each recipient and (given the mail) its DATA, as
    `mailfax inspect` does; 1 if it would refuse any of them."""
    admission = AdmissionPolicy(settings.smtp, settings.policy, settings.limits)
    recipients = [(address, admission.recipient(address)) for address in addresses]
    extraction = None
    if raw is not None:
        # Imported here: `mailfax serve` loads this module and needs none of the PDF libraries.
        from mailfax.mail.extract import extract_documents

        # The SMTP listener's own extraction with the same options: what it would answer.
        extraction = extract_documents(raw, extraction_options(settings))
    if as_json:
        print(json.dumps(inspect_report(extraction, recipients), indent=2, ensure_ascii=False))
    else:
        print(_inspect_text(extraction, recipients))
    refused = any(isinstance(verdict, Refusal) for _, verdict in recipients)
    return 1 if refused or (extraction is not None and extraction.refusal is not None) else 0


Recipients = Sequence[tuple[str, FaxRecipient | Refusal]]


def _recipient_report(address: str, verdict: FaxRecipient | Refusal) -> dict[str, str]:
    """How RCPT TO would answer `address`: the number faxed (and a sub-address written but not
    dialled), or the refusal and, for the operator only, the setting behind it."""
    if isinstance(verdict, Refusal):
        reply, rule, number, subaddress = verdict.smtp_reply, verdict.rule, "", ""
    else:
        reply, rule, number = recipient_ok(verdict), "", verdict.number
        subaddress = verdict.subaddress
    return {
        "address": address,
        "number": number,
        "subaddress": subaddress,
        "smtp_reply": reply,
        "rule": rule,
    }


def inspect_report(extraction: Extraction | None, recipients: Recipients = ()) -> dict[str, Any]:
    """The `mailfax inspect --json` object; without a mail (None), the recipients only."""
    report: dict[str, Any] = {
        "recipients": [_recipient_report(address, verdict) for address, verdict in recipients]
    }
    if extraction is None:
        return report
    return report | {
        "outcome": "accept" if extraction.refusal is None else "refuse",
        "smtp_reply": _would_reply(extraction),
        "from": _from_line(extraction),
        "comment": extraction.comment,
        "parts": [
            {
                "name": part.name,
                "content_type": part.content_type,
                "size": part.size,
                "pages": part.pages,
                "action": part.action,
                "reason": part.reason,
                "left_out": part.left_out,
            }
            for part in extraction.parts
        ],
    }


def _from_line(extraction: Extraction) -> str:
    """ "Alice Example <alice@example.com>", or the part that is there, or "-"."""
    name, address = extraction.sender_name, extraction.sender_address
    if name and address:
        return f"{name} <{address}>"
    return name or address or "-"


def _would_reply(extraction: Extraction) -> str:
    if extraction.refusal is not None:
        return extraction.refusal.smtp_reply
    count = len(extraction.documents)
    pages = extraction.pages
    return (
        f"250 2.0.0 Ok: would queue {count} document{'s' if count != 1 else ''}, "
        f"{pages} page{'s' if pages != 1 else ''}, as one fax per recipient"
    )


def _inspect_text(extraction: Extraction | None, recipients: Recipients) -> str:
    lines = _extraction_lines(extraction) if extraction is not None else []
    lines.append("Recipients:")
    for address, verdict in recipients:
        shown = _recipient_report(address, verdict)
        lines.append(f"  {shown['number'] or 'refused':<14} {address}")
        lines.append(f"  {'':<14} {shown['smtp_reply']}")
        if shown["rule"]:
            lines.append(f"  {'':<14} (rule: {shown['rule']})")
        if shown["subaddress"]:
            lines.append(f"  {'':<14} (T.33 sub-address {shown['subaddress']} is not dialled)")
    if not recipients:
        lines.append("  (none in the fax domain: name them with --to)")
    return "\n".join(lines)


def _extraction_lines(extraction: Extraction) -> list[str]:
    lines = [
        f"Outcome:  {'accept' if extraction.refusal is None else 'refuse'}",
        f"Reply:    {_would_reply(extraction)}",
        f"From:     {_from_line(extraction)}",
        f"Subject:  {extraction.subject or '-'}",
        f"Comment:  {_one_line(extraction.comment) or '-'}",
        "Parts:",
    ]
    for part in extraction.parts:
        pages = f"{part.pages} p." if part.pages is not None else "-"
        # With [smtp] unfaxable = fax-the-rest, what the fax goes without.
        action = "left out" if part.left_out else part.action
        lines.append(
            f"  {action:<10} {part.name}  ({part.content_type}, {part.size} bytes, {pages})"
        )
        lines.append(f"  {'':<10} {part.reason}")
    if not extraction.parts:
        lines.append("  (none: the mail is only text)")
    return lines


def _one_line(text: str, limit: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --- db ----------------------------------------------------------------------


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        store = await open_store(settings.store.url, settings.state_path, check_schema=False)
        try:
            applied = await store.upgrade()
        finally:
            await store.close()
        for migration in applied:
            print(f"applied {migration.version}: {migration.description}")
        print(f"schema is at version {LATEST}")
        return 0

    return asyncio.run(run())


def _db_copy(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        source = await open_store(settings.store.url, settings.state_path)
        target = await open_store(args.to, settings.state_path, check_schema=False)
        try:
            await target.upgrade()
            counts = await copy_store(source, target)
        except StoreNotEmpty as exc:
            print(f"mailfax db copy: {exc}", file=sys.stderr)
            return 1
        finally:
            await source.close()
            await target.close()
        print("copied " + ", ".join(f"{n} {table}" for table, n in counts.items()))
        print(f"Fix next: set [store] url = {args.to!r} and start the gateway again.")
        return 0

    return asyncio.run(run())


# --- simulator ---------------------------------------------------------------


def _simulator(args: argparse.Namespace) -> int:
    setup_logging()
    try:
        options = {**vars(args), "variants": tuple(args.variants)}
        settings = sandbox.SimulatorSettings.from_options(options)
    except ValueError as exc:
        print(f"mailfax simulator: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_simulator_async(args.listen, settings))


async def _simulator_async(listen: str, settings: sandbox.SimulatorSettings) -> int:
    simulator = sandbox.Simulator(settings)
    server = HttpServer(simulator.app, *parse_hostport(listen))
    await server.start()
    print(
        f"FAX.PLUS simulator listening on {server.url}/v3 (Bearer token: {settings.token})",
        flush=True,
    )
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
            base = settings.http.public_url
            hook_id = await register_webhook(api, webhook_target(base, webhook_secret(settings)))
        shown = webhook_target(base, "<secret>")
        print(f"fax_sent webhook registered: id {hook_id}, target {shown}")
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
