"""A small TCP forwarder: ``python forward.py LISTEN_HOST:PORT=TARGET_HOST:PORT …``.

The scale test's nodes live in their own network namespaces and reach the shared PostgreSQL and
Redis through the bridge address; both services listen on 127.0.0.1 only, so this process (in the
host namespace) accepts on the bridge address and connects to 127.0.0.1 — the services see
ordinary loopback clients (pg_hba unchanged). One asyncio process, no dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(target_host: str, target_port: int):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def main(specs: list[str]) -> None:
    servers = []
    for spec in specs:
        listen, target = spec.split("=")
        lhost, lport = listen.rsplit(":", 1)
        thost, tport = target.rsplit(":", 1)
        servers.append(
            await asyncio.start_server(_handler(thost, int(tport)), lhost, int(lport), backlog=512)
        )
    print("forwarding " + " ".join(specs), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
