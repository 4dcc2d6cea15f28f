"""Wires the stages for `mailfax serve`: starts them in dependency order, stops them in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailfax._http import HttpServer, bind_listener, parse_hostport
from mailfax.config import Settings
from mailfax.dispatch import Dispatcher
from mailfax.faxplus import FaxPlusClient, choose_from_number
from mailfax.finish import JobFinisher
from mailfax.logs import log_event
from mailfax.receipts.compose import ReceiptComposer
from mailfax.receipts.deliver import MaildirSender, receipt_sender
from mailfax.receipts.queue import ReceiptWorker
from mailfax.sandbox import Simulator, SimulatorSettings
from mailfax.smtp.intake import FaxIntakeHandler, start_smtp_server
from mailfax.store import SqlStore, open_store
from mailfax.webhooks import FaxStatusConfirmer, webhook_app
from mailfax.worker import Wakeup, run_loop

log = logging.getLogger("mailfax.app")

Clock = Callable[[], float]


def webhook_secret(settings: Settings) -> str:
    """The configured secret, or one generated on first start and kept in state_dir (0600)."""
    if settings.http.webhook_secret:
        return settings.http.webhook_secret
    path = settings.state_path / "webhook-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    settings.state_path.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


@dataclass(frozen=True)
class Endpoints:
    """Where a running gateway listens (actual ports, also when configured as 0)."""

    smtp: tuple[str, int]
    http_url: str
    webhook_url: str
    api_url: str
    receipts: str


class Gateway:
    """One mailfax process: SMTP intake, webhook HTTP, dispatcher and receipt workers."""

    def __init__(self, settings: Settings, clock: Clock = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._stack: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._smtp: asyncio.Server | None = None
        self.store: SqlStore | None = None
        self.simulator: Simulator | None = None
        self.dispatcher: Dispatcher | None = None
        self.endpoints: Endpoints | None = None

    async def start(self) -> Endpoints:
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> Endpoints:
        s = self.settings
        store = self.store = await open_store(s.store.url, s.state_path)
        self._stack.append(store.close)

        api_url, token = s.faxplus.api_url, s.faxplus.token
        if s.uses_sandbox:
            self.simulator = Simulator(SimulatorSettings(delay=s.sandbox.delay))
            sim_server = HttpServer(self.simulator.app, *parse_hostport(s.sandbox.listen))
            await sim_server.start()
            self._stack.append(self.simulator.aclose)
            self._stack.append(sim_server.stop)
            api_url, token = f"{sim_server.url}/v3", SimulatorSettings().token
        api = FaxPlusClient(api_url, token, s.faxplus.user_id, s.faxplus.request_timeout)
        self._stack.append(api.aclose)

        receipts_wakeup, webhook_wakeup, jobs_wakeup = Wakeup(), Wakeup(), Wakeup()
        secret = webhook_secret(s)
        http = HttpServer(
            webhook_app(secret, store, webhook_wakeup, self._clock), *parse_hostport(s.http.listen)
        )
        await http.start()
        self._stack.append(http.stop)
        public_url = (s.http.public_url or http.url).rstrip("/")
        webhook_url = f"{public_url}/webhooks/faxplus/{secret}"
        if s.uses_sandbox:
            await register_webhook(api, webhook_url)

        from_number = await choose_from_number(api, s.faxplus.from_number)
        composer = ReceiptComposer(
            s.receipts.from_address or f"mailfax@{socket.getfqdn()}",
            socket.getfqdn(),
            s.smtp.domain,
        )
        finisher = JobFinisher(store, composer, receipts_wakeup)
        sender = receipt_sender(s.receipts.smarthost, s.state_path)
        self.dispatcher = Dispatcher(
            store, api, finisher, from_number, s.queue, self._clock, webhook_wakeup
        )
        confirmer = FaxStatusConfirmer(store, api, finisher, self._clock)
        receipt_worker = ReceiptWorker(store, sender, self._clock)
        self._tasks = [
            asyncio.create_task(run_loop("dispatch", self.dispatcher.step, jobs_wakeup)),
            asyncio.create_task(run_loop("webhooks", confirmer.step, webhook_wakeup)),
            asyncio.create_task(run_loop("receipts", receipt_worker.step, receipts_wakeup)),
        ]

        handler = FaxIntakeHandler(store, s.smtp, jobs_wakeup, self._clock)
        smtp_sock = bind_listener(*parse_hostport(s.smtp.listen))
        self._smtp = await start_smtp_server(handler, s.smtp, smtp_sock)
        host, port = smtp_sock.getsockname()[:2]
        receipts = (
            str(sender.directory / "new")
            if isinstance(sender, MaildirSender)
            else s.receipts.smarthost
        )
        self.endpoints = Endpoints((host, port), http.url, webhook_url, api_url, receipts)
        log_event(log, "gateway.started", smtp=f"{host}:{port}", http=http.url, api=api_url)
        return self.endpoints

    async def stop(self) -> None:
        """Stop taking mail, let in-flight jobs finish (bounded), then close everything."""
        if self._smtp is not None:
            self._smtp.close()
            await self._smtp.wait_closed()
            self._smtp = None
        if self.dispatcher is not None:
            await self.dispatcher.drain(self.settings.queue.shutdown_grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while self._stack:
            await self._stack.pop()()
        log_event(log, "gateway.stopped")


async def register_webhook(api: FaxPlusClient, target: str) -> str:
    """Register `target` for fax_sent unless it already is; returns the hook id."""
    for hook in await api.list_hooks("fax_sent"):
        if hook.get("target") == target:
            return str(hook.get("id", ""))
    return await api.create_hook(target, "fax_sent")
