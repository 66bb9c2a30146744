"""The load client of ``yibao bench serve``: paced runs keep their rate and charge late sends to the server."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from yibao.service.bench import PATH, drive


async def _run_against(delay: float, clients: int, seconds: float, rate: float, client: str) -> dict:
    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        assert body["infno"] == "2207" and request.headers["X-API-Key"] == "k"
        await asyncio.sleep(delay)
        return web.Response(text=json.dumps({"infcode": 0, "output": {}}), content_type="application/json")

    app = web.Application()
    app.router.add_post(PATH, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        work = [(f"M{i}", f"P{i}") for i in range(10_000)]
        return await drive(port, "k", work, clients, seconds, client, rate)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("client", ["httpx", "aiohttp"])
def test_paced_run_holds_its_rate(client):
    r = asyncio.run(_run_against(0.001, clients=4, seconds=1.0, rate=200, client=client))
    assert not r["errors"]
    assert 190 <= r["ok"] <= 200  # request j is due at j / rate; none is sent after the run ends
    assert r["latencies"][len(r["latencies"]) // 2] < 0.05


def test_late_sends_count_as_latency():
    # 2 clients × 50 ms answers can carry 40/s; offered 100/s, requests fall ever further behind their due time
    r = asyncio.run(_run_against(0.05, clients=2, seconds=1.0, rate=100, client="aiohttp"))
    assert 30 <= r["ok"] <= 45
    assert r["latencies"][-1] > 0.3  # measured from when it was due, not from when a client got to it


def test_closed_loop_counts_from_send():
    r = asyncio.run(_run_against(0.05, clients=2, seconds=1.0, rate=0, client="aiohttp"))
    assert 30 <= r["ok"] <= 45
    assert max(r["latencies"]) < 0.2
