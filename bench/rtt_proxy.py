"""A TCP proxy that delays every chunk by half a round trip each way, order kept: a mailbox server across a network,
for benchmarks on one machine. Usage: python bench/rtt_proxy.py LISTEN_PORT UPSTREAM_PORT RTT_MS"""

from __future__ import annotations

import asyncio
import sys
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                writer.close()
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    while data := await reader.read(65536):
        queue.put_nowait((time.monotonic() + delay, data))
    queue.put_nowait((0.0, b""))
    await sender


async def serve(listen: int, upstream: int, rtt_ms: float) -> None:
    delay = rtt_ms / 2000

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(_pump(client_r, server_w, delay), _pump(server_r, client_w, delay), return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
