"""Crash and fault harness: gateway subprocesses under load, SIGKILLed and restarted, against a
fault-injecting simulator; then "nothing lost, nothing faxed twice" is checked."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import random
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx

from mailfax._http import HttpServer
from mailfax.jobs import JobState
from mailfax.sandbox import DEFAULT_TOKEN, Simulator, SimulatorSettings
from mailfax.store import Store, open_store
from tests.pdfs import pdf_with_pages

SECRET = "chaos-webhook-secret"
FROM_NUMBER = "+16465550001"


@dataclass(frozen=True)
class ChaosPlan:
    mails: int
    clients: int = 8
    kills: int = 0
    seed: int = 1
    faults: dict[str, float] = field(default_factory=dict)
    deadline: float = 240.0  # seconds for everything to settle after the last mail
    instances: int = 1  # gateway processes sharing one store (PostgreSQL when more than one)
    store_url: str = ""
    same_number: str = ""  # every mail to this one number (an ERP faxing one supplier)
    variants: tuple[str, ...] = ()  # the simulator's readings of FAX.PLUS (variants.py)
    poison: int = 0  # poison mails (POISON, in turn) among the ordinary ones


@dataclass
class ChaosReport:
    accepted: dict[int, list[str]] = field(default_factory=dict)  # mail -> numbers, got a 250
    unconfirmed: dict[int, list[str]] = field(default_factory=dict)  # no 250 seen
    refused: int = 0
    kills: int = 0
    sends: Counter[tuple[int, str]] = field(default_factory=Counter)
    dials: Counter[tuple[int, str]] = field(default_factory=Counter)  # FAX.PLUS's own redials too
    receipts: Counter[tuple[int, str]] = field(default_factory=Counter)
    receipt_results: Counter[str] = field(default_factory=Counter)
    delivered: set[tuple[int, str]] = field(default_factory=set)  # receipts saying delivered
    sent_ok: set[tuple[int, str]] = field(default_factory=set)  # ledger faxes with success
    undecided: set[tuple[int, str]] = field(default_factory=set)  # lost sends left unknown
    poison: dict[int, tuple[str, str]] = field(default_factory=dict)  # mail -> (kind, outcome)

    def summary(self) -> str:
        accepted = sum(len(n) for n in self.accepted.values())
        unconfirmed = sum(len(n) for n in self.unconfirmed.values())
        return (
            f"mails accepted={len(self.accepted)} ({accepted} faxes), "
            f"unconfirmed={len(self.unconfirmed)} ({unconfirmed} faxes), refused={self.refused}, "
            f"kills={self.kills}, faxes sent={sum(self.sends.values())}, "
            f"receipts={sum(self.receipts.values())} {dict(self.receipt_results)}, "
            f"undecided={len(self.undecided)}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def numbers_for(mail: int, rng: random.Random, same_number: str = "") -> list[str]:
    """One or two distinct destinations per mail, none in the redial range (0013/0014):
    there a second send is the intended redial, not a duplicate."""
    if same_number:
        return [same_number]
    count = 1 + (rng.random() < 0.3)
    numbers = []
    for k in range(count):
        serial = mail * 2 + k
        if serial % 10_000 in (13, 14):
            serial += 100
        numbers.append(f"+1212555{serial:04d}")
    return numbers


@dataclass(frozen=True)
class Poison:
    """A mail (or greeting) that once jammed the gateway for everyone (issue 15), and the
    defined outcome it must have: "accepted" (then faxed with one receipt, like any mail) or
    "refused"."""

    name: str
    expected: str
    ehlo: bytes = b"EHLO client.example"
    mail_from: str = ""  # "" for the mail's usual sender
    headers: tuple[tuple[bytes, bytes], ...] = ()  # header lines replaced (b"" drops one)


POISON = (
    # A German office's invoice: raw UTF-8 in the header block, from a host with a UTF-8 name.
    Poison(
        "utf8-subject",
        "accepted",
        "EHLO hôte.example".encode(),
        headers=((b"Subject", "Subject: Rechnung für März".encode()),),
    ),
    Poison("latin1-subject", "accepted", headers=((b"Subject", b"Subject: R\xe9sum\xe9"),)),
    Poison(
        "crlf-message-id",
        "accepted",
        headers=((b"Message-ID", b"Message-ID: =?utf-8?q?<a@b>=0D=0ABcc:_x@y?="),),
    ),
    Poison(
        "crlf-subject", "accepted", headers=((b"Subject", b"Subject: =?utf-8?q?a=0D=0ABcc:_x@y?="),)
    ),
    Poison(
        "utf8-sender",
        "accepted",
        mail_from="jürgen@example.com",
        headers=((b"From", "From: Jürgen <jürgen@example.com>".encode()),),
    ),
    Poison("bare-cr-ehlo", "refused", b"EHLO evil.example\rX-Injected: yes"),
    Poison("escape-helo", "refused", b"HELO evil\x1b[2J.example"),
    Poison(
        "two-from", "refused", headers=((b"From", b"From: a@example.com\r\nFrom: b@example.org"),)
    ),
    Poison("group-from", "refused", headers=((b"From", b"From: undisclosed-recipients:;"),)),
    Poison("no-from", "refused", headers=((b"From", b""),)),
)


def poison_mail(poison: Poison, mail: int, numbers: list[str], pdf: bytes) -> bytes:
    """The chaos mail `mail`, with the poison's header lines in place of its own."""
    lines = chaos_mail(mail, numbers, pdf).as_bytes().replace(b"\n", b"\r\n").split(b"\r\n")
    replaced = dict(poison.headers)
    head_end = lines.index(b"")
    for n in range(head_end):
        name = lines[n].split(b":", 1)[0]
        if name in replaced:
            lines[n] = replaced[name]
    return b"\r\n".join(line for n, line in enumerate(lines) if n >= head_end or line)


async def send_poison(
    port: int, poison: Poison, sender: str, numbers: list[str], data: bytes
) -> str:
    """Like send_one, over a raw connection (SMTP clients refuse to send some poisons)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "unconfirmed"

    async def say(line: bytes) -> int:
        writer.write(line + b"\r\n")
        reply = b""
        while reply[3:4] != b" ":
            reply = await asyncio.wait_for(reader.readline(), 30)
            if not reply:
                raise ConnectionError("closed")
        return int(reply[:3])

    try:
        await asyncio.wait_for(reader.readline(), 30)  # the greeting
        if await say(poison.ehlo) >= 400:
            return "refused"
        mail_from = poison.mail_from or sender
        utf8 = b" SMTPUTF8 BODY=8BITMIME" if not mail_from.isascii() else b""
        for line in (
            b"MAIL FROM:<" + mail_from.encode() + b">" + utf8,
            *(f"RCPT TO:<{number}@fax.local>".encode() for number in numbers),
        ):
            code = await say(line)
            if code >= 400:
                return "refused" if code >= 500 else "unconfirmed"
        if await say(b"DATA") != 354:
            return "unconfirmed"
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        code = await say(stuffed + b"\r\n.")
        with contextlib.suppress(OSError, ConnectionError, TimeoutError):
            await say(b"QUIT")
        return "accepted" if code == 250 else "refused" if code >= 500 else "unconfirmed"
    except (OSError, ConnectionError, TimeoutError):
        return "unconfirmed"
    finally:
        writer.close()


def chaos_mail(mail: int, numbers: list[str], pdf: bytes) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"sender{mail}@example.com"
    message["To"] = ", ".join(f"{n}@fax.local" for n in numbers)
    message["Subject"] = f"chaos {mail}"
    message["Message-ID"] = f"<chaos-{mail}@example.com>"
    message.set_content(f"chaos-mail-{mail}")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"doc{mail}.pdf")
    return message


class GatewayProcess:
    """`mailfax serve` in a subprocess that can be killed and started again."""

    def __init__(self, env: dict[str, str], log_path: Path, smtp_port: int) -> None:
        self._env = env
        self._log_path = log_path
        self.smtp_port = smtp_port
        self.public_url = env["MAILFAX_HTTP_PUBLIC_URL"]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = os.open(self._log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mailfax",
            "serve",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, **self._env},
        )
        os.close(log)
        deadline = time.monotonic() + 30
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.smtp_port)
                writer.close()
                return
            except OSError:
                if self.process.returncode is not None or time.monotonic() > deadline:
                    raise AssertionError(f"gateway did not start; see {self._log_path}") from None
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self, grace: float) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), grace)


async def send_one(port: int, message: EmailMessage, numbers: list[str]) -> str:
    """'accepted', 'refused' or 'unconfirmed' (the outcome was not seen)."""
    deadline = time.monotonic() + 60
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=15)
    while True:  # the gateway may be restarting: nothing was sent yet, so waiting is safe
        try:
            await client.connect()
            break
        except (OSError, aiosmtplib.SMTPException):
            if time.monotonic() > deadline:
                return "unconfirmed"
            await asyncio.sleep(0.05)
    try:
        await client.ehlo()
        await client.mail(str(message["From"]))
        for number in numbers:
            await client.rcpt(f"{number}@fax.local")
        response = await client.data(message.as_bytes())
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.quit()
        return "accepted" if response.code == 250 else "refused"
    except aiosmtplib.SMTPResponseException as exc:
        client.close()
        return "refused" if exc.code >= 500 else "unconfirmed"
    except (OSError, aiosmtplib.SMTPException):
        client.close()
        return "unconfirmed"


def read_receipts(maildir: Path, skip: Container[str] = ()) -> dict[str, EmailMessage]:
    """The receipts delivered to the Maildir, by file name, except those named in `skip`."""
    new = maildir / "new"
    found = {}
    for path in new.iterdir() if new.exists() else []:
        if path.name in skip:
            continue
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if isinstance(parsed, EmailMessage):
            found[path.name] = parsed
    return found


def receipt_key(receipt: EmailMessage) -> tuple[tuple[int, str], str]:
    # The mail's text, which every receipt shows (a poison mail's Message-ID is not kept).
    body = receipt.get_body(preferencelist=("plain",))
    mail = int(re.search(r"chaos-mail-(\d+)", str(body.get_content())).group(1))  # type: ignore[union-attr]
    status = next(
        p for p in receipt.iter_parts() if p.get_content_type() == "message/delivery-status"
    )
    text = status.as_string()
    number = re.search(r"Final-Recipient: rfc822; (\+\d+)@", text).group(1)  # type: ignore[union-attr]
    action = re.search(r"Action: (\w+)", text).group(1)  # type: ignore[union-attr]
    return (mail, number), action


async def run_chaos(tmp_path: Path, plan: ChaosPlan) -> ChaosReport:
    rng = random.Random(plan.seed)
    report = ChaosReport()
    # Credit is not what the chaos runs are about (a fax waiting for it gets no receipt yet):
    # with the `credit` variant the account has plenty.
    options = {
        "delay": 0.3,
        "seed": plan.seed,
        "variants": plan.variants,
        "credit_pages": 1_000_000,
        **plan.faults,
    }
    simulator = Simulator(SimulatorSettings.from_options(options))
    sim_server = HttpServer(simulator.app, "127.0.0.1", 0)
    await sim_server.start()
    common = {
        "MAILFAX_STATE_DIR": str(tmp_path / "state"),
        "MAILFAX_STORE_URL": plan.store_url,
        "MAILFAX_HTTP_WEBHOOK_SECRET": SECRET,
        "MAILFAX_FAXPLUS_API_URL": f"{sim_server.url}/v3",
        "MAILFAX_FAXPLUS_TOKEN": DEFAULT_TOKEN,
        "MAILFAX_FAXPLUS_FROM_NUMBER": FROM_NUMBER,
        "MAILFAX_FAXPLUS_REQUEST_TIMEOUT": "2",
        "MAILFAX_FAXPLUS_WEBHOOK_GRACE": "3",
        "MAILFAX_QUEUE_LEASE": "5",
        "MAILFAX_QUEUE_RECONCILE_AFTER": "1",
        "MAILFAX_QUEUE_MIN_BACKOFF": "0.2",
        "MAILFAX_QUEUE_MAX_BACKOFF": "2",
        "MAILFAX_QUEUE_SHUTDOWN_GRACE": "2",
        "MAILFAX_LOG_LEVEL": "warning",
        # Sender binding, so that a From header RFC 5322 forbids is refused (the poison mix).
        "MAILFAX_SMTP_ALLOWED_SENDERS": "@example.com" if plan.poison else "",
    }
    gateways = []
    for n in range(plan.instances):
        smtp_port, http_port = free_port(), free_port()
        env = {
            **common,
            "MAILFAX_SMTP_LISTEN": f"127.0.0.1:{smtp_port}",
            "MAILFAX_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "MAILFAX_HTTP_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
        }
        gateways.append(GatewayProcess(env, tmp_path / f"gateway{n}.log", smtp_port))
    # Webhooks go to the last instance only: with several, mostly not the one that sent.
    public_url = gateways[-1].public_url
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as http:
            # Registering may itself meet an injected fault (an error, or an answer broken off
            # after the hook was made: a second hook only duplicates webhooks): try until it
            # takes.
            registered = False
            for _ in range(50):
                with contextlib.suppress(httpx.TransportError):
                    hook = await http.post(
                        f"{sim_server.url}/v3/hooks",
                        json={
                            "target": f"{public_url}/webhooks/faxplus/{SECRET}",
                            "event": "fax_sent",
                        },
                    )
                    registered = hook.status_code == 200
                if registered:
                    break
            assert registered, "the webhook could not be registered in 50 tries"
        await asyncio.gather(*(gateway.start() for gateway in gateways))
        pdf = pdf_with_pages(1)
        plans = {i: numbers_for(i, rng, plan.same_number) for i in range(plan.mails + plan.poison)}
        # The poison mails spread evenly among the ordinary ones.
        poisoned = {
            round((k + 1) * (plan.mails + plan.poison) / (plan.poison + 1)): POISON[k % len(POISON)]
            for k in range(plan.poison)
        }
        pending: asyncio.Queue[int] = asyncio.Queue()
        for i in plans:
            pending.put_nowait(i)

        progress = asyncio.Condition()
        finished = 0

        async def client() -> None:
            nonlocal finished
            while not pending.empty():
                i = pending.get_nowait()
                port = gateways[i % len(gateways)].smtp_port  # round-robin
                poison = poisoned.get(i)
                if poison is None:
                    outcome = await send_one(port, chaos_mail(i, plans[i], pdf), plans[i])
                else:
                    data = poison_mail(poison, i, plans[i], pdf)
                    sender = f"sender{i}@example.com"
                    outcome = await send_poison(port, poison, sender, plans[i], data)
                    report.poison[i] = (poison.name, outcome)
                if outcome == "accepted":
                    report.accepted[i] = plans[i]
                elif outcome == "unconfirmed":
                    report.unconfirmed[i] = plans[i]
                else:
                    report.refused += 1
                async with progress:
                    finished += 1
                    progress.notify_all()

        async def killer() -> None:
            for k in range(plan.kills):
                # Kill at a random moment, but spread over the run: after a share of the mail.
                target = min((k + 1) * plan.mails // (plan.kills + 1), plan.mails - 1)
                async with progress:
                    await progress.wait_for(lambda t=target: finished >= t)  # type: ignore[misc]
                await asyncio.sleep(rng.uniform(0.0, 0.5))  # the random moment
                victim = gateways[k % len(gateways)]
                await victim.kill()
                report.kills += 1
                await victim.start()

        await asyncio.gather(killer(), *(client() for _ in range(plan.clients)))

        expected = {(i, n) for i, numbers in report.accepted.items() for n in numbers}
        maildir = tmp_path / "state" / "receipts"
        deadline = time.monotonic() + plan.deadline
        # Each receipt parsed once: this loop shares its event loop with the simulator, and
        # parsing all of them every turn kept the simulator from answering within the
        # gateway's request timeout (its sends then timed out, over and over, at the end).
        keys: dict[str, tuple[int, str]] = {}
        store = await open_store(plan.store_url, tmp_path / "state", check_schema=False)
        try:
            while True:
                for name, receipt in read_receipts(maildir, skip=keys).items():
                    keys[name] = receipt_key(receipt)[0]
                seen = set(keys.values())
                if expected <= seen:
                    break
                # A lost send the reconciler could not prove its own waits for the operator.
                if expected <= seen | await undecided_sends(store):
                    break
                if time.monotonic() > deadline:
                    missing = sorted(expected - seen)[:10]
                    raise AssertionError(
                        f"no receipt for {len(expected - seen)} faxes, e.g. {missing}"
                    )
                await asyncio.sleep(0.5)
            report.undecided = await undecided_sends(store)
        finally:
            await store.close()
        # Stopped (gracefully) before counting: a duplicate in flight would be counted too.
        for gateway in gateways:
            assert await gateway.terminate(10) == 0
        for entry in simulator.ledger():
            if entry["status"] == "cancelled":
                continue
            key = (mail_of(str(entry["comment"])), str(entry["to"]))
            report.sends[key] += 1
            report.dials[key] += int(str(entry.get("attempts", 1)))
            if entry["status"] == "success":
                report.sent_ok.add(key)
        for receipt in read_receipts(maildir).values():
            key, action = receipt_key(receipt)
            report.receipts[key] += 1
            report.receipt_results[action] += 1
            if action == "delivered":
                report.delivered.add(key)
        return report
    finally:
        for gateway in gateways:
            if gateway.process is not None and gateway.process.returncode is None:
                await gateway.kill()
        await sim_server.stop()
        await simulator.aclose()


def mail_of(comment: str) -> int:
    """The chaos mail whose text a fax's comment carries (above the job marker)."""
    match = re.match(r"chaos-mail-(\d+)\b", comment)
    assert match, f"a fax nobody sent: comment {comment!r}"
    return int(match.group(1))


async def undecided_sends(store: Store) -> set[tuple[int, str]]:
    """(mail, number) of the lost sends the reconciler left for the operator."""
    found = set()
    for job in await store.jobs_in_state(JobState.UNKNOWN, float("inf"), 100_000):
        message = await store.message(job.message_id)
        if job.error and job.error.startswith("undecided") and message is not None:
            found.add((mail_of(message.comment), job.number))
    return found


def check_invariants(report: ChaosReport, undecided_allowed: bool = False) -> list[str]:
    """The promises, as assertions; returns what was checked (for `make chaos`)."""
    accepted = {(i, n) for i, numbers in report.accepted.items() for n in numbers}
    unconfirmed = {(i, n) for i, numbers in report.unconfirmed.items() for n in numbers}
    twice = {key: count for key, count in report.sends.items() if count > 1}
    assert not twice, f"faxed more than once: {twice}"
    redialled = {key: count for key, count in report.dials.items() if count > 1}
    assert not redialled, f"dialled more than once (by FAX.PLUS itself): {redialled}"
    # Where FAX.PLUS's records carry the proof (the default), every lost send is decided.
    assert undecided_allowed or not report.undecided, f"undecided: {sorted(report.undecided)}"
    not_sent = sorted(key for key in accepted if report.sends[key] == 0)
    # An accepted fax is sent, explained by a failure receipt (e.g. quarantine), or left
    # undecided for the operator (no receipt yet).
    unexplained = [
        key for key in not_sent if report.receipts[key] == 0 and key not in report.undecided
    ]
    assert not unexplained, f"accepted but neither faxed nor reported: {unexplained[:10]}"
    strangers = set(report.sends) - accepted - unconfirmed
    assert not strangers, f"faxes nobody sent: {sorted(strangers)[:10]}"
    false = sorted(report.delivered - report.sent_ok)
    assert not false, f"reported delivered without its own fax in the ledger: {false[:10]}"
    for key in (set(report.sends) | accepted) - report.undecided:
        assert report.receipts[key] == 1, f"{key}: {report.receipts[key]} receipts"
    told = sorted(key for key in report.undecided if report.receipts[key])
    assert not told, f"undecided, yet the sender was told: {told[:10]}"
    return [
        f"no receipt says delivered without the mail's own fax sent ({len(report.delivered)})",
        f"lost sends left undecided for the operator: {len(report.undecided)}, none reported",
        f"every accepted fax ({len(accepted)}) was faxed exactly once or reported as failed",
        f"no fax was sent twice ({sum(report.sends.values())} sends, "
        f"{sum(report.dials.values())} dials)",
        f"unconfirmed mails ({len(unconfirmed)} faxes) were faxed at most once",
        f"every faxed or accepted recipient has exactly one receipt "
        f"({sum(report.receipts.values())})",
    ]


def check_poison(report: ChaosReport) -> list[str]:
    """Each poison mail had its defined outcome (check_invariants holds for them too: one
    refused is never faxed, one accepted is faxed once with one receipt)."""
    expected = {poison.name: poison.expected for poison in POISON}
    wrong = {i: got for i, got in report.poison.items() if got[1] != expected[got[0]]}
    assert not wrong, f"poison mails without their defined outcome: {wrong}"
    kinds = Counter(f"{name} {outcome}" for name, outcome in report.poison.values())
    return [f"every poison mail ({len(report.poison)}) had its outcome: {dict(kinds)}"]
