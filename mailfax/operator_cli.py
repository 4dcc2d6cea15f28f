"""The operator's commands, `mailfax doctor` and `mailfax jobs ...`: arguments and output."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from mailfax.app import DatabaseClock
from mailfax.config import ConfigError, Settings, load_settings
from mailfax.doctor import FAIL, CheckResult, Context, config_result, run_checks
from mailfax.faxplus import ApiError, FaxPlusClient, choose_from_number
from mailfax.finish import JobFinisher
from mailfax.jobs import JobState
from mailfax.live_test import live_test
from mailfax.logs import one_shot_level, setup_logging
from mailfax.operations import (
    JobOperator,
    OperationRefused,
    detail_json,
    detail_lines,
    job_detail,
    job_lines,
    parse_since,
    summary_json,
)
from mailfax.receipts.setup import receipt_composer
from mailfax.reconcile import Reconciler
from mailfax.sandbox import DEFAULT_TOKEN
from mailfax.store import SchemaMismatch, SqlStore, StoreUnavailable, open_store
from mailfax.worker import Wakeup

ConfigOption = Callable[[argparse.ArgumentParser], None]


def add_operator_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], config_option: ConfigOption
) -> None:
    """Add `doctor` and `jobs` to the command tree."""
    doctor = commands.add_parser(
        "doctor",
        help="check the configuration, FAX.PLUS account, webhook, store and smarthost",
        description="One line per check, with a fix for each failure; exits 1 on any failure.",
    )
    doctor.add_argument("--json", action="store_true", help="print a JSON list of the checks")
    doctor.add_argument(
        "--live-test",
        metavar="NUMBER",
        help="send ONE single-page test fax to NUMBER (E.164) through the account, wait for its "
        "result and report what the account does (ids, listing order, retries); stored for the "
        "gateway",
    )
    doctor.add_argument("--yes", action="store_true", help="do not ask before the test fax")
    doctor.add_argument(
        "--timeout", type=float, default=600.0, metavar="SECONDS", help="wait for its result"
    )
    config_option(doctor)
    doctor.set_defaults(func=_doctor)

    jobs = commands.add_parser("jobs", help="list, show, retry and cancel fax jobs")
    actions = jobs.add_subparsers(title="job commands", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    listing.add_argument(
        "--since", metavar="WHEN", help="accepted since: 30m, 2h, 7d ago, or 2024-05-01[T08:00]"
    )
    listing.add_argument(
        "--sender", default="", metavar="ADDRESS", help="envelope sender contains this (any case)"
    )
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (50)")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(func=_jobs_list)

    show = actions.add_parser(
        "show", help="a job's history, FAX.PLUS ids, extraction report and receipt"
    )
    show.add_argument("job_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=_jobs_show)

    retry = actions.add_parser(
        "retry",
        help="move a job on now",
        description=(
            "queued: try now instead of after its backoff. submitted: ask FAX.PLUS for the "
            "result now. unknown: look the fax up at FAX.PLUS now (adopted if a fax proves to "
            "be its own, sent again only if none could be; otherwise it stays undecided: settle "
            "it with --adopt FAX_ID or --resend). failed or cancelled: a NEW job faxes the same "
            "mail to the same number, with its own receipt; the old job stays as it ended."
        ),
    )
    retry.add_argument("job_id", metavar="ID")
    retry.add_argument(
        "--resend-delivered", action="store_true", help="also fax a delivered job again"
    )
    lost = retry.add_mutually_exclusive_group()
    lost.add_argument(
        "--adopt",
        metavar="FAX_ID",
        help="an unknown (lost) send was sent as this FAX.PLUS fax: take its result",
    )
    lost.add_argument(
        "--resend", action="store_true", help="an unknown (lost) send was not sent: send it again"
    )
    retry.set_defaults(func=_jobs_retry)

    cancel = actions.add_parser(
        "cancel",
        help="cancel a job not yet sent (deleted from the FAX.PLUS outbox if it is there)",
        description="The sender gets a receipt saying the fax was cancelled.",
    )
    cancel.add_argument("job_id", metavar="ID")
    cancel.add_argument("--reason", default="", help="told to the sender in the receipt")
    cancel.set_defaults(func=_jobs_cancel)
    for sub in (listing, show, retry, cancel):
        config_option(sub)


def api_client(settings: Settings) -> FaxPlusClient:
    """The configured API; for the embedded simulator, the one a running gateway serves."""
    if settings.uses_sandbox:
        url, token = f"http://{settings.sandbox.listen}/v3", DEFAULT_TOKEN
    else:
        url, token = settings.faxplus.api_url, settings.faxplus.token
    return FaxPlusClient(url, token, settings.faxplus.user_id, settings.faxplus.request_timeout)


# --- doctor ------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        results = [config_result(args.config, exc)]
    else:
        if args.live_test:
            return _live_test(settings, args.live_test, args.yes, args.timeout)
        results = [config_result(args.config, None), *asyncio.run(_doctor_checks(settings))]
    if args.json:
        print(json.dumps([asdict(result) for result in results], indent=2))
    else:
        width = max(len(result.check) for result in results) + 1
        for result in results:
            print(result.line(width))
    return 1 if any(result.status == FAIL for result in results) else 0


def _live_test(settings: Settings, number: str, yes: bool, timeout: float) -> int:
    if not re.fullmatch(r"\+[0-9]{8,15}", number):
        print(
            f"mailfax doctor: {number!r} is not an E.164 number (e.g. +12125550100)",
            file=sys.stderr,
        )
        return 2
    if not yes:
        if not sys.stdin.isatty():
            print("mailfax doctor: --live-test sends a real fax; add --yes", file=sys.stderr)
            return 2
        answer = input(f"Send one test fax to {number} through {settings.faxplus.api_url}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing sent")
            return 1

    async def run() -> int:
        api = api_client(settings)
        async with contextlib.aclosing(api), _opened_store(settings) as store:
            from_number = await choose_from_number(api, settings.faxplus.from_number)
            report = await live_test(api, store, from_number, number, timeout)
        for line in report.lines:
            print(line)
        return 0 if report.ok else 1

    try:
        return asyncio.run(run())
    except ApiError as exc:
        print(
            f"mailfax doctor: FAX.PLUS answered {exc}. Fix: run `mailfax doctor`", file=sys.stderr
        )
        return 1


async def _doctor_checks(settings: Settings) -> list[CheckResult]:
    api = None if settings.uses_sandbox else api_client(settings)
    try:
        return await run_checks(Context(settings, api))
    finally:
        if api is not None:
            await api.aclose()


# --- jobs --------------------------------------------------------------------


def _jobs_command(name: str, run: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run one `jobs` action; a refusal or an unreachable store is a message and exit 1."""
    try:
        return asyncio.run(run())
    except OperationRefused as exc:
        print(f"mailfax jobs {name}: {exc}", file=sys.stderr)
    except SchemaMismatch as exc:
        print(f"mailfax jobs {name}: {exc}", file=sys.stderr)
    except StoreUnavailable as exc:
        print(
            f"mailfax jobs {name}: the store does not answer ({exc}). Fix: see `mailfax doctor`",
            file=sys.stderr,
        )
    return 1


@asynccontextmanager
async def _opened_store(settings: Settings) -> AsyncIterator[SqlStore]:
    store = await open_store(settings.store.url, settings.state_path)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _operator(settings: Settings) -> AsyncIterator[JobOperator]:
    """A JobOperator on the configured store and API; its wake-ups reach no worker here, so
    running gateways pick its changes up by polling (or PostgreSQL's NOTIFY)."""
    setup_logging(one_shot_level(settings.log.level), settings.log.format)
    async with _opened_store(settings) as store:
        api = api_client(settings)
        async with contextlib.aclosing(api):
            clock = DatabaseClock(store)
            await clock.sync()
            finisher = JobFinisher(store, receipt_composer(settings), Wakeup())
            reconciler = Reconciler(
                store, api, finisher, settings.queue, settings.faxplus, clock, Wakeup(), Wakeup()
            )
            yield JobOperator(store, api, finisher, reconciler, clock)


def _jobs_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.limit < 1:
        print("mailfax jobs list: --limit must be at least 1", file=sys.stderr)
        return 2

    async def run() -> int:
        async with _opened_store(settings) as store:
            now = await store.db_now()
            try:
                since = parse_since(args.since, now) if args.since else None
            except ValueError as exc:
                print(f"mailfax jobs list: --since {exc}", file=sys.stderr)
                return 2
            state = JobState(args.state) if args.state else None
            summaries = await store.list_jobs(state, since, args.sender, args.limit)
        if args.json:
            print(json.dumps([summary_json(s, now) for s in summaries], indent=2))
        elif summaries:
            print("\n".join(job_lines(summaries, now)))
        else:
            print("no jobs")
        return 0

    return _jobs_command("list", run)


def _jobs_show(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)

    async def run() -> int:
        async with _opened_store(settings) as store:
            detail = await job_detail(store, args.job_id)
        if detail is None:
            raise OperationRefused(
                f"no job {args.job_id}. Fix: `mailfax jobs list` shows the job ids"
            )
        if args.json:
            print(json.dumps(detail_json(detail), indent=2, ensure_ascii=False))
        else:
            print("\n".join(detail_lines(detail)))
        return 0

    return _jobs_command("show", run)


def _jobs_retry(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)

    async def run() -> int:
        async with _operator(settings) as operator:
            if args.adopt or args.resend:
                print(await operator.decide_lost_send(args.job_id, args.adopt, args.resend))
            else:
                print(await operator.retry(args.job_id, args.resend_delivered))
        return 0

    return _jobs_command("retry", run)


def _jobs_cancel(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)

    async def run() -> int:
        async with _operator(settings) as operator:
            print(await operator.cancel(args.job_id, args.reason))
        return 0

    return _jobs_command("cancel", run)
