"""SMTP load generator, run as its own process so it does not share the server's event loop.

Closed loop (`--sessions N`): N sessions send as fast as they are answered.
Open loop (`--rate R`): mails start at a fixed rate whether or not earlier ones finished.
Prints one JSON object: counts, elapsed seconds, and per-mail timings (epoch seconds of the
250 reply, and end-of-DATA to reply latency)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiosmtplib


async def _session(
    host: str, port: int, mails: asyncio.Queue[int], message: bytes, results: list[dict[str, float]]
) -> None:
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=120)
    await client.connect()
    try:
        await client.ehlo()
        while True:
            try:
                i = mails.get_nowait()
            except asyncio.QueueEmpty:
                return
            results.append(await _send(client, i, message))
    finally:
        client.close()


async def _send(client: aiosmtplib.SMTP, i: int, message: bytes) -> dict[str, float]:
    await client.mail("bench@example.com")
    # Numbers ending in 00: never the simulator's failure suffixes (0013-0016), whose redials
    # would measure mailfax's backoff instead of its speed.
    await client.rcpt(f"+1212555{i % 100:02d}00@fax.local")
    body = message.replace(b"BENCH-ID", f"bench-{i}".encode())
    started = time.time()
    try:
        response = await client.data(body)
        code = response.code
    except aiosmtplib.SMTPResponseException as exc:
        code = exc.code
    done = time.time()
    return {"i": i, "code": code, "latency": done - started, "replied_at": done}


async def _open_loop(
    host: str,
    port: int,
    first: int,
    count: int,
    rate: float,
    message: bytes,
    results: list[dict[str, float]],
) -> None:
    async def one(i: int) -> None:
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=120)
        try:
            await client.connect()
        except aiosmtplib.SMTPConnectResponseError as exc:
            # Refused at the greeting (421: too many connections): counted, not fatal.
            results.append({"i": i, "code": exc.code, "latency": 0.0, "replied_at": time.time()})
            return
        try:
            await client.ehlo()
            results.append(await _send(client, i, message))
        finally:
            client.close()

    start = time.monotonic()
    tasks = []
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule itself: open-loop arrivals
        tasks.append(asyncio.create_task(one(first + n)))
    await asyncio.gather(*tasks)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--message", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--first", type=int, default=0, help="index of the first mail")
    args = parser.parse_args()
    host, port = args.server.rsplit(":", 1)
    message = args.message.read_bytes()
    results: list[dict[str, float]] = []
    started = time.monotonic()
    if args.rate:
        await _open_loop(host, int(port), args.first, args.count, args.rate, message, results)
    else:
        mails: asyncio.Queue[int] = asyncio.Queue()
        for i in range(args.first, args.first + args.count):
            mails.put_nowait(i)
        await asyncio.gather(
            *(_session(host, int(port), mails, message, results) for _ in range(args.sessions))
        )
    elapsed = time.monotonic() - started
    json.dump({"elapsed": elapsed, "results": results}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
