"""`make bench`: mailfax's figures measured side by side in one run, printed and saved as JSON.

Every server and the load generator run as separate processes on loopback; every run is bounded
in mails and time. See docs/benchmarks.md for what each figure means."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pikepdf
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailfax._http import HttpServer
from mailfax.sandbox import DEFAULT_TOKEN, Simulator, SimulatorSettings
from mailfax.typeset import text_pdf
from tests.office import SOFFICE, office_documents
from tests.postfix import DISCARD_TRANSPORT, POSTFIX, Postfix

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
# Postfix's SMTP load client (the reference figures were taken with it): a C program,
# so on two cores it leaves the servers the CPU the Python client would take.
SMTP_SOURCE = shutil.which("smtp-source", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pdf_of_size(pages: int, size: int) -> bytes:
    """A valid PDF of `pages` pages padded (with an uncompressed stream) to about `size` bytes."""
    pdf = pikepdf.new()
    for number in range(pages):
        pdf.pages.extend(pikepdf.open(io.BytesIO(text_pdf([f"benchmark page {number + 1}"]))).pages)
    padding = max(0, size - 2000 * pages)
    pdf.Root.BenchPadding = pdf.make_stream(os.urandom(padding))
    out = io.BytesIO()
    pdf.save(out, compress_streams=False)
    return out.getvalue()


def fax_mail(document: bytes, name: str = "invoice.pdf") -> bytes:
    """A realistic fax mail; BENCH-ID in the body is replaced per mail by the load generator."""
    message = EmailMessage()
    message["From"] = "bench@example.com"
    message["To"] = "17185554567@fax.local"
    message["Subject"] = "Invoice"
    message.set_content("BENCH-ID\nPlease find the invoice attached.\n")
    subtype = "pdf" if name.endswith(".pdf") else "octet-stream"
    message.add_attachment(document, maintype="application", subtype=subtype, filename=name)
    return message.as_bytes()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class OutboxClock:
    """ASGI wrapper around the simulator: when each send (by its comment) reached FAX.PLUS."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.arrivals: dict[str, float] = {}
        self._arrived = asyncio.Condition()

    async def wait_for(self, comments: set[str], timeout: float) -> None:
        """Until every one of `comments` has been sent (or `timeout` seconds passed)."""
        async with self._arrived:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: comments <= self.arrivals.keys()), timeout
                )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].endswith("/outbox")
        ):
            await self._app(scope, receive, send)
            return
        arrived = time.time()
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        with contextlib.suppress(ValueError, AttributeError, KeyError):
            self.arrivals[json.loads(body)["comment"]["text"].split("\n")[0]] = arrived
        async with self._arrived:
            self._arrived.notify_all()
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay)

        await self._app(scope, replayed, send)


@dataclass(frozen=True)
class GatewayRun:
    smtp_port: int
    pid: int
    state: Path
    webhook_url: str
    startup_seconds: float


class Bench:
    def __init__(self, work: Path, quick: bool) -> None:
        self.work = work
        self.quick = quick
        self.results: dict[str, Any] = {}
        self.next_id = 0

    async def process(
        self, *args: str, env: dict[str, str] | None = None, stderr: int | None = None
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL if stderr is None else stderr,
            env={**os.environ, **(env or {})},
        )

    async def wait_port(self, port: int, process: asyncio.subprocess.Process | None) -> float:
        started = time.monotonic()
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return time.monotonic() - started
            except OSError:
                exited = process is not None and process.returncode is not None
                if exited or time.monotonic() - started > 60:
                    raise RuntimeError(f"server on port {port} did not start") from None
                await asyncio.sleep(0.01)

    async def load(
        self, port: int, message: Path, count: int, rate: float = 0, sessions: int = 16
    ) -> dict[str, Any]:
        first, self.next_id = self.next_id, self.next_id + count
        args = [sys.executable, "-m", "benchmarks.loadgen", "--server", f"127.0.0.1:{port}"]
        args += ["--message", str(message), "--count", str(count), "--first", str(first)]
        args += ["--sessions", str(sessions)] + (["--rate", str(rate)] if rate else [])
        process = await self.process(*args, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 600)
        if process.returncode != 0:
            raise RuntimeError(f"the load generator failed:\n{err.decode(errors='replace')}")
        data: dict[str, Any] = json.loads(out)
        data["accepted"] = sum(1 for r in data["results"] if r["code"] == 250)
        data["first"] = first
        return data

    async def settle(self) -> None:
        """Write out what earlier runs left in the page cache before the next one is timed: a
        server that fsyncs would pay for their writeback (with 600 MB dirty, small mails during
        the large ones took 300 ms at p99 instead of 120 ms)."""
        await asyncio.to_thread(os.sync)

    async def ingest(self, port: int, message: Path, count: int) -> float:
        """Mails per second accepted by the server on `port`, 16 sessions as fast as it answers:
        with smtp-source when Postfix is installed (one recipient, connections reused), else
        with the Python load generator."""
        await self.settle()
        if SMTP_SOURCE is None:
            data = await self.load(port, message, count)
            return float(data["accepted"] / data["elapsed"])
        args = ["-d", "-s", "16", "-m", str(count), "-f", "bench@example.com"]
        args += ["-t", "+17185554500@fax.local", "-F", str(message), f"127.0.0.1:{port}"]
        started = time.monotonic()
        process = await self.process(SMTP_SOURCE, *args, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(process.communicate(), 600)
        elapsed = time.monotonic() - started
        # smtp-source stops at the first reply that is not a success.
        if process.returncode != 0 or err:
            raise RuntimeError(f"smtp-source failed:\n{err.decode(errors='replace')}")
        return count / elapsed

    @contextlib.asynccontextmanager
    async def gateway(self, roles: str, api_url: str = "") -> AsyncIterator[GatewayRun]:
        """A `mailfax serve` process."""
        state = Path(tempfile.mkdtemp(dir=self.work))
        port, http = free_port(), free_port()
        env = {
            "MAILFAX_STATE_DIR": str(state),
            "MAILFAX_SMTP_LISTEN": f"127.0.0.1:{port}",
            "MAILFAX_HTTP_LISTEN": f"127.0.0.1:{http}",
            "MAILFAX_HTTP_PUBLIC_URL": f"http://127.0.0.1:{http}",
            "MAILFAX_HTTP_WEBHOOK_SECRET": "bench",
            "MAILFAX_SANDBOX_LISTEN": "127.0.0.1:0",
            "MAILFAX_SANDBOX_DELAY": "0",
            "MAILFAX_LOG_LEVEL": "warning",
            # One sender sends all the load: the per-sender quotas would refuse most of it.
            "MAILFAX_LIMITS_FAXES_PER_HOUR": "0",
            "MAILFAX_LIMITS_PAGES_PER_DAY": "0",
        }
        if api_url:
            env |= {
                "MAILFAX_FAXPLUS_API_URL": api_url,
                "MAILFAX_FAXPLUS_TOKEN": DEFAULT_TOKEN,
                "MAILFAX_FAXPLUS_FROM_NUMBER": "+16465550001",
            }
        process = await self.process(
            sys.executable, "-m", "mailfax", "serve", "--role", roles, env=env
        )
        try:
            startup = await self.wait_port(port, process)
            webhook = f"http://127.0.0.1:{http}/webhooks/faxplus/bench"
            yield GatewayRun(port, process.pid, state, webhook, startup)
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 60)

    @contextlib.asynccontextmanager
    async def sink(self) -> AsyncIterator[int]:
        port = free_port()
        process = await self.process(sys.executable, "-m", "benchmarks.sink", f"127.0.0.1:{port}")
        try:
            await self.wait_port(port, process)
            yield port
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 60)

    @contextlib.asynccontextmanager
    async def postfix(self) -> AsyncIterator[int | None]:
        """Postfix taking fax.local into its own queue (then discarding it), configured as
        deploy/postfix documents; None when Postfix is not installed or we are not root."""
        if POSTFIX is None or os.geteuid() != 0:
            yield None
            return
        # Not under self.work: Postfix's daemons run as other users and must reach it.
        base = Path(tempfile.mkdtemp(prefix="mailfax-bench-postfix-"))
        base.chmod(0o755)
        instance = Postfix(base, free_port())
        try:
            instance.configure(DISCARD_TRANSPORT)
            started = await asyncio.to_thread(instance.postfix, "start")
            if started.returncode != 0:
                raise RuntimeError(f"Postfix did not start: {started.stderr}{instance.log()}")
            await self.wait_port(instance.port, None)
            yield instance.port
        finally:
            await asyncio.to_thread(instance.postfix, "stop")
            shutil.rmtree(base, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def simulator(self) -> AsyncIterator[tuple[str, OutboxClock]]:
        simulator = Simulator(SimulatorSettings(delay=0.0))
        clock = OutboxClock(simulator.app)
        server = HttpServer(clock, "127.0.0.1", 0)
        await server.start()
        try:
            yield f"{server.url}/v3", clock
        finally:
            await server.stop()
            await simulator.aclose()


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (the gateway's extraction workers and their forkserver)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The command name may hold spaces and parentheses: fields follow the last ")".
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (the workers share their forkserver's) counted once."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


async def peak_tree_pss(pid: int, until: asyncio.Future[Any]) -> int:
    """The largest PSS of `pid` and its descendants together, sampled until `until` is done."""
    peak = 0
    while not until.done():
        peak = max(peak, sum(pss_kib(p) for p in [pid, *descendants(pid)]))
        # Processes in another address space: sampling is the only way to see their sum.
        await asyncio.wait([until], timeout=0.05)
    return peak


async def register_hook(api_url: str, target: str) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as http:
        response = await http.post(f"{api_url}/hooks", json={"target": target, "event": "fax_sent"})
        response.raise_for_status()


async def run(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench = Bench(work, quick)
        mail_100k = work / "100k.eml"
        mail_100k.write_bytes(fax_mail(pdf_of_size(3, 72_000)))
        mail_10k = work / "10k.eml"
        mail_10k.write_bytes(fax_mail(pdf_of_size(1, 5_000)))
        mail_25m = work / "25m.eml"
        mail_25m.write_bytes(fax_mail(pdf_of_size(5, 18_500_000)))
        # Enough mails for a steady state: the first ones also pay for cold caches.
        count = 1000 if quick else 2000
        r = bench.results
        r["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        }
        r["mail_bytes"] = {
            "100k": mail_100k.stat().st_size,
            "10k": mail_10k.stat().st_size,
            "25m": mail_25m.stat().st_size,
        }

        # 1. Ingest: the same client and mails against a discarding aiosmtpd and the gateway.
        async with bench.sink() as port:
            sink_rate = await bench.ingest(port, mail_100k, count)
        async with bench.postfix() as postfix_port:
            postfix_rate = await bench.ingest(postfix_port, mail_100k, count) if postfix_port else 0
        async with bench.gateway("smtp") as gateway:
            port = gateway.smtp_port
            ingest_rate = await bench.ingest(port, mail_100k, count)
            small_rate = await bench.ingest(port, mail_10k, count)
            # 2. Acceptance latency at half the maximum rate, open loop.
            half = max(1.0, ingest_rate / 2)
            seconds = 5 if quick else 15
            await bench.settle()
            open_loop = await bench.load(port, mail_100k, int(half * seconds), rate=half)
        r["ingest"] = {
            "client": "smtp-source" if SMTP_SOURCE else "benchmarks.loadgen",
            "sink_mails_per_s": round(sink_rate, 1),
            "gateway_mails_per_s": round(ingest_rate, 1),
            "ratio_gateway_to_sink": round(ingest_rate / sink_rate, 3),
            "gateway_10k_mails_per_s": round(small_rate, 1),
        }
        if postfix_rate:
            r["ingest"]["postfix_mails_per_s"] = round(postfix_rate, 1)
            r["ingest"]["ratio_gateway_to_postfix"] = round(ingest_rate / postfix_rate, 3)
        latencies = [x["latency"] * 1000 for x in open_loop["results"] if x["code"] == 250]
        r["acceptance_latency_ms"] = {
            "rate_per_s": round(half, 1),
            "p50": round(percentile(latencies, 0.5), 1),
            "p99": round(percentile(latencies, 0.99), 1),
        }

        # 3 and 4. The whole pipeline, then dispatch latency at half its rate, against the
        # simulator. Half the *pipeline's* maximum: at half the ingest rate mails arrive faster
        # than they are sent, and the figure would only measure how long the queue has grown.
        async with (
            bench.simulator() as (api_url, clock),
            bench.gateway("smtp,web,worker", api_url) as gateway,
        ):
            port, state = gateway.smtp_port, gateway.state
            # 6. Idle: the gateway as deployed, every role, FAX.PLUS in another process.
            r["idle"] = {
                "rss_mib": round(rss_kib(gateway.pid) / 1024, 1),
                "startup_seconds": round(gateway.startup_seconds, 3),
            }
            await register_hook(api_url, gateway.webhook_url)
            receipts = state / "receipts" / "new"

            def receipts_written() -> int:
                return len(list(receipts.glob("*"))) if receipts.exists() else 0

            pipeline_count = 200 if quick else 1000
            started = time.monotonic()
            await bench.ingest(port, mail_100k, pipeline_count)
            deadline = time.monotonic() + 300
            # Receipts are files another process writes: polling the directory is the only way.
            while time.monotonic() < deadline:
                if (done := receipts_written()) >= pipeline_count:
                    break
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            pipeline_rate = done / elapsed
            r["pipeline"] = {
                "mails_per_s": round(pipeline_rate, 1),
                "ratio_to_ingest": round(pipeline_rate / ingest_rate, 3),
                "receipts": done,
            }
            dispatch_rate = max(1.0, pipeline_rate / 2)
            await bench.settle()
            dispatch = await bench.load(
                port, mail_100k, int(dispatch_rate * (10 if quick else 30)), rate=dispatch_rate
            )
            ids = {
                f"bench-{x['i']}": x["replied_at"] for x in dispatch["results"] if x["code"] == 250
            }
            await clock.wait_for(set(ids), timeout=120)
            waits = [(clock.arrivals[k] - v) * 1000 for k, v in ids.items() if k in clock.arrivals]
            r["dispatch_latency_ms"] = {
                "rate_per_s": round(dispatch_rate, 1),
                "p50": round(percentile(waits, 0.5), 1),
                "p99": round(percentile(waits, 0.99), 1),
                "sent": len(waits),
            }

        # And as `make run` starts it: the simulator embedded in the gateway's process.
        async with bench.gateway("smtp,web,worker") as gateway:
            r["idle"]["embedded_simulator_rss_mib"] = round(rss_kib(gateway.pid) / 1024, 1)

        # 5. Large mails: 4 x 25 MB while small mails arrive at a fixed rate.
        async with bench.gateway("smtp") as gateway:
            rate = 10.0
            port = gateway.smtp_port
            # Once the extraction workers are up: this figure is about large mails, not about
            # the first mails after start-up, which wait for the workers to load.
            await bench.load(port, mail_10k, 2, sessions=2)
            await bench.settle()
            large = asyncio.create_task(bench.load(port, mail_25m, 4, sessions=4))
            tree = asyncio.create_task(peak_tree_pss(gateway.pid, large))
            small_during = await bench.load(
                port, mail_10k, int(rate * (6 if quick else 12)), rate=rate
            )
            await large
            peak = rss_kib(gateway.pid, "VmHWM")
            tree_peak = await tree
        small_latencies = [x["latency"] * 1000 for x in small_during["results"] if x["code"] == 250]
        r["large_mails"] = {
            "small_p99_ms": round(percentile(small_latencies, 0.99), 1),
            "small_p50_ms": round(percentile(small_latencies, 0.5), 1),
            "peak_rss_mib": round(peak / 1024, 1),
            "with_workers_peak_pss_mib": round(tree_peak / 1024, 1),
            "bytes_in_flight_mib": round(4 * mail_25m.stat().st_size / 2**20, 1),
        }
        r["conversion"] = await conversion(bench)
        return r


async def conversion(bench: Bench) -> dict[str, Any]:
    """7. What converting an Office document before 250 costs: the acceptance latency of a mail
    with a one-page PDF and of one with a one-page DOCX, one session after the other."""
    if SOFFICE is None:
        return {}
    count = 5 if bench.quick else 20
    mails = {}
    for label, name, document in (
        ("pdf", "invoice.pdf", pdf_of_size(1, 5_000)),
        ("docx", "terms.docx", office_documents()["terms.docx"]),
    ):
        mails[label] = bench.work / f"conversion-{label}.eml"
        mails[label].write_bytes(fax_mail(document, name))
    figures: dict[str, Any] = {}
    async with bench.gateway("smtp") as gateway:
        # The first mail of each kind pays for starting workers and LibreOffice's profile.
        for mail in mails.values():
            await bench.load(gateway.smtp_port, mail, 1, sessions=1)
        for label, mail in mails.items():
            data = await bench.load(gateway.smtp_port, mail, count, sessions=1)
            latencies = [x["latency"] * 1000 for x in data["results"] if x["code"] == 250]
            figures[f"{label}_p50_ms"] = round(percentile(latencies, 0.5), 1)
            figures[f"{label}_p99_ms"] = round(percentile(latencies, 0.99), 1)
            figures[f"{label}_accepted"] = len(latencies)
        # Two sessions of DOCX mails at once (each conversion has its own LibreOffice), and
        # meanwhile PDF mails in a third: conversions hold extraction workers.
        converting = asyncio.create_task(
            bench.load(gateway.smtp_port, mails["docx"], count, sessions=2)
        )
        during = await bench.load(gateway.smtp_port, mails["pdf"], count, sessions=1)
        data = await converting
        figures["docx_two_sessions_mails_per_s"] = round(data["accepted"] / data["elapsed"], 2)
        latencies = [x["latency"] * 1000 for x in during["results"] if x["code"] == 250]
        figures["pdf_during_docx_p50_ms"] = round(percentile(latencies, 0.5), 1)
        figures["pdf_during_docx_p99_ms"] = round(percentile(latencies, 0.99), 1)
    return figures


def conversion_rows(c: dict[str, Any]) -> list[tuple[str, str]]:
    if not c:
        return [("Office conversion", "n/a (LibreOffice is not installed)")]
    return [
        (
            "accept latency, 1-page PDF mail (p50 / p99)",
            f"{c['pdf_p50_ms']} / {c['pdf_p99_ms']} ms",
        ),
        (
            "accept latency, 1-page DOCX mail, converted (p50 / p99)",
            f"{c['docx_p50_ms']} / {c['docx_p99_ms']} ms",
        ),
        ("  DOCX mails, 2 sessions at once", f"{c['docx_two_sessions_mails_per_s']} mails/s"),
        (
            "  meanwhile PDF mails (p50 / p99)",
            f"{c['pdf_during_docx_p50_ms']} / {c['pdf_during_docx_p99_ms']} ms",
        ),
    ]


async def only_conversion(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return await conversion(Bench(Path(tmp), quick))


def table(results: dict[str, Any]) -> str:
    i, a, d, p, lg, idle = (
        results[k]
        for k in (
            "ingest",
            "acceptance_latency_ms",
            "dispatch_latency_ms",
            "pipeline",
            "large_mails",
            "idle",
        )
    )
    rows = [
        (
            f"ingest: bare aiosmtpd sink (100 KB mails, 16 sessions of {i['client']})",
            f"{i['sink_mails_per_s']} mails/s",
        ),
        ("ingest: mailfax, durable (100 KB)", f"{i['gateway_mails_per_s']} mails/s"),
        ("  ratio mailfax / sink", f"{i['ratio_gateway_to_sink']}x"),
        (
            "ingest: Postfix, into its queue (100 KB)",
            f"{i['postfix_mails_per_s']} mails/s" if "postfix_mails_per_s" in i else "n/a",
        ),
        (
            "  ratio mailfax / Postfix",
            f"{i['ratio_gateway_to_postfix']}x" if "postfix_mails_per_s" in i else "n/a",
        ),
        ("ingest: mailfax, durable (10 KB)", f"{i['gateway_10k_mails_per_s']} mails/s"),
        (f"acceptance latency at {a['rate_per_s']}/s (p50 / p99)", f"{a['p50']} / {a['p99']} ms"),
        ("pipeline: accept to receipt written", f"{p['mails_per_s']} mails/s"),
        ("  ratio pipeline / ingest", f"{p['ratio_to_ingest']}x"),
        (
            f"dispatch latency at {d['rate_per_s']}/s, 250 to outbox POST (p50 / p99)",
            f"{d['p50']} / {d['p99']} ms",
        ),
        (
            "small mails during 4 x 25 MB (p50 / p99)",
            f"{lg['small_p50_ms']} / {lg['small_p99_ms']} ms",
        ),
        (
            "peak RSS during 4 x 25 MB",
            f"{lg['peak_rss_mib']} MiB ({lg['bytes_in_flight_mib']} MiB in flight)",
        ),
        ("  with the extraction workers (PSS, sampled)", f"{lg['with_workers_peak_pss_mib']} MiB"),
        ("idle RSS after start (all roles, FAX.PLUS elsewhere)", f"{idle['rss_mib']} MiB"),
        ("  with the simulator embedded (`make run`)", f"{idle['embedded_simulator_rss_mib']} MiB"),
        ("start-up to listening", f"{idle['startup_seconds']} s"),
        *conversion_rows(results.get("conversion", {})),
    ]
    return aligned(rows)


def aligned(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts: under two minutes")
    parser.add_argument(
        "--only-conversion", action="store_true", help="only the Office conversion figures"
    )
    args = parser.parse_args()
    if args.only_conversion:
        figures = asyncio.run(only_conversion(args.quick))
        print(json.dumps(figures, indent=2))
        print(aligned(conversion_rows(figures)))
        return
    results = asyncio.run(run(args.quick))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\n(saved to {RESULTS.relative_to(HERE.parent)})")


if __name__ == "__main__":
    main()
