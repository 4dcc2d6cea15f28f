"""Wires the stages for `mailfax serve`: starts them in dependency order, stops them in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailfax import sandbox
from mailfax._http import HttpServer, parse_hostport
from mailfax.config import Settings, private_dir, without_password
from mailfax.dispatch import Dispatcher
from mailfax.faxplus import FaxPlusClient, choose_from_number
from mailfax.finish import JobFinisher
from mailfax.http_app import http_app
from mailfax.logs import log_event
from mailfax.mail.model import extraction_options
from mailfax.networks import Networks
from mailfax.receipts.deliver import MaildirSender, receipt_sender
from mailfax.receipts.notices import DelayNotices
from mailfax.receipts.queue import ReceiptWorker
from mailfax.receipts.setup import receipt_composer as receipt_composer  # also for the CLI
from mailfax.reconcile import Reconciler
from mailfax.smtp.server import SmtpServer
from mailfax.store import CHANNEL_FAX_EVENTS, CHANNEL_JOBS, CHANNEL_RECEIPTS, SqlStore, open_store
from mailfax.webhook_guard import WebhookGuard
from mailfax.webhooks import FaxStatusConfirmer, webhook_app
from mailfax.worker import Heartbeat, Wakeup, run_loop

log = logging.getLogger("mailfax.app")

Clock = Callable[[], float]


def webhook_secret(settings: Settings, create: bool = True) -> str:
    """The configured secret, or one generated on first start and kept in state_dir (0600);
    "" if there is none yet and `create` is false."""
    if settings.http.webhook_secret:
        return settings.http.webhook_secret
    path = settings.state_path / "webhook-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return ""
    private_dir(settings.state_path)
    secret = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def webhook_target(base_url: str, secret: str) -> str:
    """The URL FAX.PLUS posts fax_sent webhooks to: <base>/webhooks/faxplus/<secret>."""
    return f"{base_url.rstrip('/')}/webhooks/faxplus/{secret}"


@dataclass(frozen=True)
class Endpoints:
    """Where a running gateway listens (actual ports, also when configured as 0).

    A role that is not run has no endpoint (None)."""

    smtp: tuple[str, int] | None
    http_url: str | None
    webhook_url: str | None
    api_url: str
    receipts: str
    smtp_tls: tuple[str, int] | None = None  # the implicit-TLS listener ([smtp] tls_listen)


ROLES = frozenset({"smtp", "web", "worker"})


class DatabaseClock:
    """time.time() corrected to the store's clock, so leases mean the same on every instance."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._offset = 0.0

    def __call__(self) -> float:
        return time.time() + self._offset

    async def sync(self) -> float:
        self._offset = await self._store.db_now() - time.time()
        return CLOCK_SYNC_INTERVAL


CLOCK_SYNC_INTERVAL = 60.0


class Gateway:
    """One mailfax process running some or all roles: SMTP intake ("smtp"), webhook HTTP
    ("web"), and the dispatcher, confirmer, reconciler and receipt workers ("worker")."""

    def __init__(
        self, settings: Settings, roles: frozenset[str] = ROLES, clock: Clock | None = None
    ) -> None:
        unknown = roles - ROLES
        if unknown or not roles:
            raise ValueError(f"roles must be among {sorted(ROLES)}, got {sorted(roles)}")
        self.settings = settings
        self.roles = roles
        self._injected_clock = clock
        self._stack: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._heartbeats: dict[str, Heartbeat] = {}
        self._smtp: SmtpServer | None = None
        self.store: SqlStore | None = None
        self.simulator: sandbox.Simulator | None = None
        self.dispatcher: Dispatcher | None = None
        self.endpoints: Endpoints | None = None
        self._started = False  # only a gateway that started logs gateway.stopped

    async def start(self) -> Endpoints:
        try:
            return await self._start()
        except BaseException:
            await self._close()
            raise

    def _spawn(
        self,
        name: str,
        step: Callable[[], Awaitable[float | None]],
        wakeup: Wakeup,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        heartbeat = self._heartbeats[name] = heartbeat or Heartbeat()
        self._tasks.append(asyncio.create_task(run_loop(name, step, wakeup, heartbeat)))

    async def _start(self) -> Endpoints:
        s = self.settings
        store = self.store = await open_store(s.store.url, s.state_path)
        self._stack.append(store.close)
        if self._injected_clock is not None:
            clock: Clock = self._injected_clock
        else:
            database_clock = DatabaseClock(store)
            await database_clock.sync()
            clock = database_clock
            if store.dialect != "sqlite":
                self._spawn("clock", database_clock.sync, Wakeup())

        api_url, token = s.faxplus.api_url, s.faxplus.token
        if s.uses_sandbox:
            self.simulator = sandbox.Simulator(
                sandbox.SimulatorSettings.from_options(vars(s.sandbox))
            )
            sim_server = HttpServer(self.simulator.app, *parse_hostport(s.sandbox.listen))
            await sim_server.start()
            self._stack.append(self.simulator.aclose)
            self._stack.append(sim_server.stop)
            api_url, token = f"{sim_server.url}/v3", sandbox.DEFAULT_TOKEN
        api = FaxPlusClient(api_url, token, s.faxplus.user_id, s.faxplus.request_timeout)
        self._stack.append(api.aclose)

        receipts_wakeup, webhook_wakeup, jobs_wakeup = Wakeup(), Wakeup(), Wakeup()
        # Other instances' commits wake this one (PostgreSQL); polling is the fallback.
        listener = await store.listen(
            {
                CHANNEL_JOBS: jobs_wakeup,
                CHANNEL_FAX_EVENTS: webhook_wakeup,
                CHANNEL_RECEIPTS: receipts_wakeup,
            }
        )
        self._stack.append(listener.aclose)

        http_url = webhook_url = None
        if "web" in self.roles:
            secret = webhook_secret(s)
            app = http_app(
                webhook_app(
                    secret,
                    store,
                    webhook_wakeup,
                    clock,
                    WebhookGuard(
                        Networks(s.http.webhook_allowed_networks), s.http.webhook_rate_limit
                    ),
                ),
                store,
                self._readiness,
                s.http.admin_token,
            )
            http = HttpServer(app, *parse_hostport(s.http.listen))
            await http.start()
            self._stack.append(http.stop)
            http_url = http.url
            webhook_url = webhook_target(s.http.public_url or http.url, secret)
            if s.uses_sandbox:
                await register_webhook(api, webhook_url)

        sender = receipt_sender(s.receipts, s.state_path)
        if "worker" in self.roles:
            from_number = await choose_from_number(api, s.faxplus.from_number)
            composer = receipt_composer(s)
            finisher = JobFinisher(store, composer, receipts_wakeup, api)
            self.dispatcher = Dispatcher(
                store,
                api,
                finisher,
                from_number,
                s.queue,
                clock,
                webhook_wakeup,
                cover_page=s.faxplus.cover_page == "always",
            )
            facts = await store.faxplus_facts()
            if facts:
                learnt = {k: str(v) for k, v in sorted(facts.items())}
                log_event(log, "faxplus.facts", logging.INFO, **learnt)
            confirmer = FaxStatusConfirmer(
                store,
                api,
                finisher,
                clock,
                s.queue,
                s.faxplus.retries,
                ids_agree=facts.get("ids_agree") is True,
            )
            reconciler = Reconciler(
                store,
                api,
                finisher,
                s.queue,
                s.faxplus,
                clock,
                jobs_wakeup,
                webhook_wakeup,
                delay_notices=DelayNotices(store, composer, receipts_wakeup),
            )
            self._spawn("dispatch", self.dispatcher.step, jobs_wakeup, self.dispatcher.heartbeat)
            self._spawn("webhooks", confirmer.step, webhook_wakeup)
            self._spawn("reconcile", reconciler.step, Wakeup())
            receipt_worker = ReceiptWorker(store, sender, clock, s.queue.lease)
            self._spawn("receipts", receipt_worker.step, receipts_wakeup, receipt_worker.heartbeat)

        smtp = smtp_tls = None
        if "smtp" in self.roles:
            self._smtp = SmtpServer(s, store, jobs_wakeup, clock, extraction_options(s))
            smtp, smtp_tls = await self._smtp.start()
        receipts = (
            str(sender.directory / "new")
            if isinstance(sender, MaildirSender)
            else without_password(s.receipts.smarthost)
        )
        self.endpoints = Endpoints(smtp, http_url, webhook_url, api_url, receipts, smtp_tls)
        self._started = True
        log_event(
            log,
            "gateway.started",
            roles=",".join(sorted(self.roles)),
            smtp=f"{smtp[0]}:{smtp[1]}" if smtp else "-",
            http=http_url or "-",
            api=api_url,
        )
        return self.endpoints

    def _readiness(self) -> dict[str, bool]:
        """For /readyz: the SMTP listener of an smtp role (HTTP is up: it is answering), and
        each worker loop of this process, down when it has stopped making progress."""
        ready = {name: not heartbeat.stalled() for name, heartbeat in self._heartbeats.items()}
        if "smtp" in self.roles:
            ready["smtp"] = self._smtp is not None and self._smtp.is_serving()
        return ready

    def reload_tls(self) -> bool:
        """SIGHUP: the SMTP listeners load their certificate files again."""
        return self._smtp.reload_tls() if self._smtp is not None else False

    async def stop(self) -> None:
        """Stop taking mail, let in-flight jobs finish (bounded), then close everything."""
        started, self._started = self._started, False
        await self._close()
        if started:
            log_event(log, "gateway.stopped")

    async def _close(self) -> None:
        """Close what was started, in reverse order (also what a failed start left open)."""
        if self._smtp is not None:
            await self._smtp.close()
            self._smtp = None
        if self.dispatcher is not None:
            await self.dispatcher.drain(self.settings.queue.shutdown_grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.dispatcher is not None:
            # Jobs its loop claimed while draining are cancelled too; then uploads go back.
            await self.dispatcher.drain(0.0)
            await self.dispatcher.release_uploads()
        while self._stack:
            await self._stack.pop()()


async def register_webhook(api: FaxPlusClient, target: str) -> str:
    """Register `target` for fax_sent unless it already is; returns the hook id."""
    for hook in await api.list_hooks("fax_sent"):
        if hook.get("target") == target:
            return str(hook.get("id", ""))
    return await api.create_hook(target, "fax_sent")
