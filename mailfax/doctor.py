"""`mailfax doctor`: checks the FAX.PLUS account, webhook, store and smarthost, each with a fix."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiosmtplib
from sqlalchemy.engine import make_url

from mailfax.app import webhook_secret, webhook_target
from mailfax.config import Settings
from mailfax.convert import converter_for
from mailfax.documents import ConversionError
from mailfax.faxplus import ApiError, FaxPlusClient, PermanentApiError, sending_numbers
from mailfax.jobs import JobState
from mailfax.mail.model import extraction_options
from mailfax.store import LATEST, SQLITE_FILE, SchemaMismatch, SqlStore, check_version, open_store

T = TypeVar("T")

OK, FAIL, SKIP = "ok", "FAIL", "skip"
MINIMAL_RECEIPTS_WINDOW = 7 * 86400.0
SMTP_TIMEOUT = 10.0
# A lost send still unknown this long after reconciliation began is waiting for the operator.
UNDECIDED_GRACE = 60.0
CREDIT_SCAN = 1000  # newest queued jobs looked at for a credit problem


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str  # ok | FAIL | skip
    detail: str
    fix: str = ""

    def line(self, width: int = 12) -> str:
        # A detail that ends a sentence itself ("did you mean 'x'?") gets no second full stop.
        stop = "" if self.detail.endswith((".", "?", "!")) else "."
        fix = f"{stop} Fix: {self.fix}" if self.fix else ""
        return f"{self.status:<4}  {self.check:<{width}} {self.detail}{fix}"


class CheckFailed(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


class CheckSkipped(Exception):
    """The check does not apply, or needs another check that failed."""


@dataclass
class Context:
    """What the checks share: the settings, the API client, and what earlier checks learnt."""

    settings: Settings
    api: FaxPlusClient | None  # None: the embedded simulator, nothing to check
    token_works: bool = False
    learnt: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    what: str  # what it checks, for --help and the manual
    run: Callable[[Context], Awaitable[str]]  # the detail when it passes; raises otherwise


def config_result(source: str | None, error: Exception | None) -> CheckResult:
    """The first line: whether the configuration loaded, as a check result."""
    if error is None:
        where = source or "the embedded default (no --config, no $MAILFAX_CONFIG)"
        return CheckResult("config", OK, f"{where} is valid")
    problem, _, fix = str(error).partition(". Fix: ")
    return CheckResult("config", FAIL, problem, fix or "correct the configuration file")


async def run_checks(context: Context) -> list[CheckResult]:
    results = []
    for check in CHECKS:
        try:
            detail = await check.run(context)
        except CheckFailed as failure:
            results.append(CheckResult(check.name, FAIL, str(failure), failure.fix))
        except CheckSkipped as skipped:
            results.append(CheckResult(check.name, SKIP, str(skipped)))
        else:
            results.append(CheckResult(check.name, OK, detail))
    return results


def _api(context: Context) -> FaxPlusClient:
    if context.api is None:
        raise CheckSkipped('api_url = "sandbox": the embedded simulator, nothing to check')
    return context.api


def _needs_token(context: Context) -> FaxPlusClient:
    api = _api(context)
    if not context.token_works:
        raise CheckSkipped("needs a working token (see the token check)")
    return api


def _api_failure(context: Context, exc: ApiError) -> CheckFailed:
    url = context.settings.faxplus.api_url
    if isinstance(exc, PermanentApiError) and exc.status_code in (401, 403):
        return CheckFailed(
            f"FAX.PLUS refused the token ({exc})",
            "create a Personal Access Token with the fax:all:read and fax:all:edit scopes and "
            "set [faxplus] token (or MAILFAX_FAXPLUS_TOKEN)",
        )
    if isinstance(exc, PermanentApiError):
        return CheckFailed(f"FAX.PLUS answered {exc}", "check [faxplus] api_url and user_id")
    return CheckFailed(
        f"cannot reach {url}: {exc}",
        "check [faxplus] api_url and that this host can reach it (DNS, proxy, firewall)",
    )


async def _check_token(context: Context) -> str:
    api = _api(context)
    try:
        account = await api.get_account()
    except ApiError as exc:
        raise _api_failure(context, exc) from exc
    status = str(account.get("status") or "")
    who = account.get("email") or account.get("uid") or "?"
    if status and status != "active":
        raise CheckFailed(
            f"the FAX.PLUS account {who} is {status}", "see the account's status in FAX.PLUS"
        )
    context.token_works = True
    return f"FAX.PLUS account {who} is active ({context.settings.faxplus.api_url})"


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


async def _check_from_number(context: Context) -> str:
    api = _needs_token(context)
    try:
        numbers = await api.list_numbers()
    except ApiError as exc:
        raise _api_failure(context, exc) from exc
    active = [
        str(n.get("number"))
        for n in numbers
        if n.get("status") == "active" and not n.get("is_canceled")
    ]
    configured = context.settings.faxplus.from_number
    if not configured:
        if not active:
            raise CheckFailed(
                "the account has no active fax number", "buy or renew a number in FAX.PLUS"
            )
        return f"{active[0]} (the account's first active number; [faxplus] from_number is empty)"
    others = ", ".join(active) or "none"
    # FAX.PLUS load-balances over a comma-separated `from`: every number in it must work.
    for wanted in sending_numbers(configured):
        match = next((n for n in numbers if _digits(str(n.get("number"))) == _digits(wanted)), None)
        if match is None:
            raise CheckFailed(
                f"{wanted} is not a number of this account (active: {others})",
                'set [faxplus] from_number to active numbers, or "" for the first one',
            )
        if str(match.get("number")) not in active:
            raise CheckFailed(
                f"{wanted} is {match.get('status') or 'not active'}"
                f"{' (cancelled)' if match.get('is_canceled') else ''}",
                f"renew it in FAX.PLUS, or set [faxplus] from_number to others (active: {others})",
            )
    several = len(sending_numbers(configured)) > 1
    return f"{configured} {'are' if several else 'is'} active on the account"


async def _check_webhook(context: Context) -> str:
    api = _needs_token(context)
    settings = context.settings
    base = settings.http.public_url or f"http://{settings.http.listen}"
    shown = webhook_target(base, "<secret>")
    secret = webhook_secret(settings, create=False)
    if not secret:
        raise CheckFailed(
            f"no webhook secret yet in {settings.state_path / 'webhook-secret'}",
            "run `mailfax webhooks register` (it creates the secret and registers the webhook)",
        )
    try:
        hooks = await api.list_hooks("fax_sent")
    except ApiError as exc:
        raise _api_failure(context, exc) from exc
    expected = webhook_target(base, secret)
    for hook in hooks:
        if hook.get("target") == expected:
            return f"fax_sent webhook {hook.get('id')} targets {shown}"
    stale = [h for h in hooks if str(h.get("target", "")).startswith(webhook_target(base, ""))]
    problem = (
        f"the fax_sent webhook for {base} has another secret"
        if stale
        else f"no fax_sent webhook targets {shown} ({len(hooks)} other fax_sent webhooks)"
    )
    fix = "run `mailfax webhooks register`" + (
        "; then delete the old one with `mailfax webhooks delete ID`" if stale else ""
    )
    raise CheckFailed(problem, fix)


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


async def _check_store(context: Context) -> str:
    settings = context.settings
    url = settings.store.url
    if not url:
        path = settings.state_path / SQLITE_FILE
        if not path.exists():
            _check_writable(settings.state_path, "[state_dir]")
            return f"no database yet: {path} is created on first start"
        shown = str(path)
    else:
        shown = make_url(url).render_as_string(hide_password=True)
    try:
        store = await open_store(url, settings.state_path, check_schema=False)
    except Exception as exc:  # a bad URL or a missing driver fails here already
        raise CheckFailed(f"cannot open {shown}: {_root_cause(exc)}", "check [store] url") from exc
    try:
        await store.ping()
        version = await store.schema_version()
        check_version(version)
    except SchemaMismatch as exc:
        problem, _, fix = str(exc).partition(". Fix: ")
        raise CheckFailed(f"{shown}: {problem}", fix) from exc
    except Exception as exc:  # how a database fails to answer varies by driver
        raise CheckFailed(
            f"cannot reach {shown}: {_root_cause(exc)}",
            "check [store] url, and that the database server runs and accepts this host",
        ) from exc
    finally:
        await store.close()
    context.learnt["store"] = True
    return f"{shown} answers; schema version {version} (current: {LATEST})"


async def _read_store(context: Context, query: Callable[[SqlStore], Awaitable[T]]) -> T:
    """`query`'s answer from the store, for the checks that look into it."""
    if not context.learnt.get("store"):
        raise CheckSkipped("needs the store (see the store check)")
    settings = context.settings
    store = await open_store(settings.store.url, settings.state_path, check_schema=False)
    try:
        return await query(store)
    finally:
        await store.close()


async def _check_credit(context: Context) -> str:
    """Faxes FAX.PLUS refused for want of credit wait in the queue (none is failed for it)."""
    queued = await _read_store(
        context, lambda store: store.list_jobs(JobState.QUEUED, None, "", CREDIT_SCAN)
    )
    waiting = [s.job for s in queued if s.job.fax_status == "insufficient_credit"]
    if not waiting:
        return "no fax waits for credit"
    raise CheckFailed(
        f"FAX.PLUS refused {len(waiting)} queued fax(es) for insufficient credit; they wait "
        f"and are retried with backoff (e.g. job {waiting[0].id})",
        "top up the FAX.PLUS account; then `mailfax jobs retry ID` sends one at once",
    )


async def _check_lost_sends(context: Context) -> str:
    """Lost sends the reconciler could not settle by proof (it tries every second): they
    wait for the operator, and their senders for a receipt."""
    cutoff = time.time() - context.settings.queue.reconcile_after - UNDECIDED_GRACE
    stuck = await _read_store(
        context, lambda store: store.jobs_in_state(JobState.UNKNOWN, cutoff, 20)
    )
    if not stuck:
        return "no lost send waits for a decision"
    shown = "; ".join(f"job {job.id} to {job.number}: {job.error or 'unknown'}" for job in stuck)
    raise CheckFailed(
        f"{len(stuck)} lost send(s) could not be matched to a fax by proof: {shown}",
        "look each up with `mailfax jobs show ID` and in FAX.PLUS's sent faxes, then run "
        "`mailfax jobs retry ID --adopt FAX_ID` (it was sent as that fax) or "
        "`mailfax jobs retry ID --resend` (it was not sent)",
    )


async def _check_receipts(context: Context) -> str:
    """Receipts that fell back to the minimal one: a composing problem for the operator."""
    since = time.time() - MINIMAL_RECEIPTS_WINDOW
    minimal = await _read_store(context, lambda store: store.minimal_receipts(since))
    if not minimal:
        return "every receipt of the last 7 days was composed in full"
    was = (
        "receipt in the last 7 days was a minimal one"
        if minimal == 1
        else "receipts in the last 7 days were minimal ones"
    )
    raise CheckFailed(
        f"{minimal} {was}: the full receipt could not be composed (its job is final, and "
        "its sender was told the result in a short plain receipt)",
        "find receipt.compose_failed in the log (it names the mail and the error) and "
        "report it; a receipt template changed lately is the likeliest cause",
    )


def _check_writable(directory: Path, key: str) -> None:
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CheckFailed(
            f"{directory} cannot be created or written by this user",
            f"make {existing} writable for the user mailfax runs as, or change {key}",
        )


async def _check_smarthost(context: Context) -> str:
    settings = context.settings
    if not settings.receipts.smarthost:
        maildir = settings.state_path / "receipts"
        _check_writable(maildir, "[state_dir]")
        return f"receipts go to the Maildir {maildir} ([receipts] smarthost is empty)"
    parts = urlsplit(settings.receipts.smarthost)
    # As receipts are delivered: smtps:// speaks TLS from the first byte (port 465).
    implicit_tls = parts.scheme == "smtps"
    host, port = parts.hostname or "127.0.0.1", parts.port or (465 if implicit_tls else 25)
    client = aiosmtplib.SMTP(
        hostname=host, port=port, timeout=SMTP_TIMEOUT, use_tls=implicit_tls, start_tls=False
    )
    try:
        greeting = await client.connect()
        await client.ehlo()
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        client.close()
        raise CheckFailed(
            f"{parts.scheme}://{host}:{port} did not take a connection: {exc}",
            "check [receipts] smarthost, and that the mail server accepts SMTP from this host",
        ) from exc
    first_line = greeting.message.splitlines()[0] if greeting.message else ""
    return f"{parts.scheme}://{host}:{port} answered: {greeting.code} {first_line}"


async def _check_office(context: Context) -> str:
    """A real conversion: a LibreOffice that is installed but broken refuses every Office mail
    (and the profile it sets up makes the first mail's conversion the fast kind)."""
    options = extraction_options(context.settings)
    if context.settings.convert.office == "off":
        raise CheckSkipped('[convert] office = "off": Office and text attachments are not faxed')
    converter = converter_for(options)
    if converter is None:
        raise CheckSkipped(
            "LibreOffice (soffice) is not on PATH: Office and text attachments are not faxed; "
            "install libreoffice-writer-nogui, -calc-nogui and -impress-nogui to convert them"
        )
    started = time.monotonic()
    try:
        await asyncio.to_thread(converter.to_pdf, b"mailfax doctor\n", "document.txt")
    except ConversionError as exc:
        raise CheckFailed(
            f"LibreOffice at {options.soffice} could not convert a text file: {exc}",
            "run `soffice --headless --convert-to pdf` on a file by hand to see why, or set "
            '[convert] office = "off"',
        ) from None
    seconds = time.monotonic() - started
    return f"LibreOffice at {options.soffice} converted a text file in {seconds:.1f} s"


CHECKS: tuple[Check, ...] = (
    Check("token", "the token works: GET /accounts/self", _check_token),
    Check("from-number", "the sending number is active on the account", _check_from_number),
    Check("webhook", "the fax_sent webhook is registered to <public_url>", _check_webhook),
    Check("store", "the store answers and its schema is current", _check_store),
    Check("smarthost", "the receipts smarthost accepts a connection", _check_smarthost),
    Check("lost-sends", "no lost send waits for the operator's decision", _check_lost_sends),
    Check("credit", "no fax waits for the FAX.PLUS account to have credit", _check_credit),
    Check(
        "receipts",
        "no receipt of the last 7 days had to fall back to the minimal one",
        _check_receipts,
    ),
    Check("office", "LibreOffice converts a text file to PDF", _check_office),
)
