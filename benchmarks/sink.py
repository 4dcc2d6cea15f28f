"""The baseline: a bare aiosmtpd server that accepts every mail and discards it."""

from __future__ import annotations

import asyncio
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session


class DiscardHandler:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 Ok: discarded"


async def main(listen: str) -> None:
    host, port = listen.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(DiscardHandler(), data_size_limit=50_000_000, loop=loop), host, int(port)
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
