"""Several daphne processes behind one address (issue 18): a live update reaches every open browser, whichever process
its socket is on, and a browser whose process was killed gets updates again from the other one. Real daphne
processes on the test database and the Redis channel layer; sockets spoken raw (no WebSocket client library here)."""

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client

from console.live import broadcast
from tests.conftest import ROOT, _free_port, _wait_http
from tests.dlq import procs

TILE = {"type": "dashboard", "tile": "sagas"}


def _daphne(port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"],
        cwd=ROOT,
        env=procs.env(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def _open(port: int, cookie: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/dashboard/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 101 " in head.split(b"\r\n")[0], head[:200]
    return reader, writer


async def _text(reader, timeout: float = 10) -> str:
    """The next text frame (a server's frames are not masked)."""
    while True:
        b1, b2 = await asyncio.wait_for(reader.readexactly(2), timeout)
        length = b2 & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if b1 & 0x0F == 1:
            return payload.decode()


def test_it_reaches_every_browser_whichever_daphne_process_it_is_on(transactional_db, world, tmp_path):
    client = Client()
    client.force_login(world.viewer)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    ports = [_free_port(), _free_port()]
    webs = [_daphne(port, tmp_path / f"daphne-{n}.log") for n, port in enumerate(ports)]
    try:
        for port, web, n in zip(ports, webs, range(2), strict=True):
            _wait_http(f"http://127.0.0.1:{port}/healthz?probe=live", 30, web, tmp_path / f"daphne-{n}.log")

        async def scenario():
            sockets = [await _open(port, cookie) for port in ports for _ in range(2)]  # two browsers on each
            await asyncio.sleep(0.5)  # the consumers joined their groups
            await sync_to_async(broadcast)("dashboard", TILE)
            for reader, _ in sockets:
                assert "hx-swap-oob" in await _text(reader)
            # One process dies; its browsers reconnect (htmx's ws extension does) to the address, now the other.
            procs.kill(webs[0])
            reader, writer = await _open(ports[1], cookie)
            await asyncio.sleep(0.5)
            await sync_to_async(broadcast)("dashboard", TILE)
            assert "hx-swap-oob" in await _text(reader)
            for r, _ in sockets[2:]:
                assert "hx-swap-oob" in await _text(r)
            for _, w in [*sockets, (reader, writer)]:
                w.close()

        async_to_sync(scenario)()
    finally:
        for web in webs:
            procs.kill(web)
