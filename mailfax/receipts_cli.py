"""`mailfax receipts preview JOB_ID`: prints the receipt a job would get, sending nothing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable

from mailfax.config import Settings, load_settings
from mailfax.finish import JobFinisher
from mailfax.jobs import TERMINAL, Job, JobState
from mailfax.operator_cli import api_client
from mailfax.receipts.fields import KINDS
from mailfax.receipts.policy import ReceiptPolicy, why_no_receipt
from mailfax.receipts.setup import receipt_composer
from mailfax.store import MessageRecord, SchemaMismatch, StoreUnavailable, open_store
from mailfax.worker import Wakeup

ConfigOption = Callable[[argparse.ArgumentParser], None]


def add_receipts_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], config_option: ConfigOption
) -> None:
    """Add `receipts preview` to the command tree."""
    receipts = commands.add_parser("receipts", help="preview the receipts mailfax mails back")
    actions = receipts.add_subparsers(title="receipt commands", metavar="ACTION", required=True)
    preview = actions.add_parser(
        "preview",
        help="print the receipt a job would get (nothing is sent)",
        description=(
            "Composes the receipt as the gateway would, with the configured templates and "
            "settings (the confirmation report is fetched from FAX.PLUS), and prints it. "
            "Standard error says whether mailfax would send it, and if not, why."
        ),
    )
    preview.add_argument("job_id", metavar="JOB_ID")
    preview.add_argument(
        "--kind",
        choices=("auto", *KINDS),
        default="auto",
        help="which receipt (auto: the result for a final job, in group mode the mail's "
        "summary; the accepted notice for one still in progress)",
    )
    preview.add_argument(
        "--part",
        choices=("all", "text", "html"),
        default="all",
        help="print the whole message (all), or only its text or HTML part",
    )
    config_option(preview)
    preview.set_defaults(func=_preview)


def default_kind(job: Job, policy: ReceiptPolicy) -> str:
    if job.state not in TERMINAL:
        return "accepted"
    return "group" if policy.group else "final"


def why_not_sent(kind: str, job: Job, message: MessageRecord, policy: ReceiptPolicy) -> str:
    """Why the gateway would not send this receipt ("" if it would)."""
    never = why_no_receipt(message)
    if never:
        return never
    if kind in ("accepted", "delayed") and policy.notify != "all":
        return '[receipts] notify = "final" sends no such notice'
    if kind == "group" and not policy.group:
        return "[receipts] group = false: each recipient gets its own receipt"
    if kind == "final" and policy.group:
        return "[receipts] group = true: the mail's summary is sent instead"
    good_news = kind == "accepted" or (kind == "final" and job.state is JobState.DELIVERED)
    if good_news and not policy.wants_success_receipts(message):
        return "the sender gets no receipt for good news ([receipts] no_success_receipts)"
    return ""


def _preview(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    try:
        return asyncio.run(_preview_async(settings, args.job_id, args.kind, args.part))
    except (StoreUnavailable, SchemaMismatch) as exc:
        print(f"mailfax receipts preview: the store: {exc}", file=sys.stderr)
        return 1


async def _preview_async(settings: Settings, job_id: str, kind: str, part: str) -> int:
    store = await open_store(settings.store.url, settings.state_path)
    api = api_client(settings)
    async with contextlib.aclosing(api):
        try:
            job = await store.get_job(job_id)
            message = await store.message(job.message_id) if job is not None else None
            if job is None or message is None:
                print(f"mailfax receipts preview: no job {job_id}", file=sys.stderr)
                return 1
            composer = receipt_composer(settings)
            kind = default_kind(job, composer.policy) if kind == "auto" else kind
            finisher = JobFinisher(store, composer, Wakeup(), api)
            try:
                receipt = await finisher.preview(job, message, kind, await store.db_now())
            except ValueError as exc:
                print(f"mailfax receipts preview: {exc}", file=sys.stderr)
                return 1
        finally:
            await store.close()
    if part == "all":
        print(receipt.as_string())
    else:
        body = receipt.get_body(preferencelist=("plain" if part == "text" else "html",))
        print(body.get_content() if body is not None else "", end="")
    why = why_not_sent(kind, job, message, composer.policy)
    verdict = f"would not be sent: {why}" if why else f"would be sent to <{message.mail_from}>"
    print(f"mailfax receipts preview: this {kind} receipt {verdict}", file=sys.stderr)
    return 0
