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


# Only bounds that a slower machine cannot break: a loaded CI machine makes every request later, never
# earlier. How fast the client actually is, is what `yibao bench serve` prints, not what a test asserts.


@pytest.mark.parametrize("client", ["httpx", "aiohttp"])
def test_paced_run_keeps_to_its_schedule(client):
    r = asyncio.run(_run_against(0.001, clients=4, seconds=1.0, rate=200, client=client))
    assert not r["errors"]
    assert 0 < r["ok"] <= 200  # request j is due at j / rate; none is sent after the run ends
    assert len(r["latencies"]) == r["ok"] and min(r["latencies"]) >= 0.001  # each waited for its answer


def test_late_sends_count_as_latency():
    # 2 clients × 50 ms answers can carry at most 40/s; offered 100/s, requests fall ever further behind their
    # due time: the n-th answer comes ≥ (n // 2 + 1) × 50 ms after the start but was due at n / 100 s
    r = asyncio.run(_run_against(0.05, clients=2, seconds=1.0, rate=100, client="aiohttp"))
    n = r["ok"]
    assert 0 < n <= 2 * 1.0 / 0.05 + 2
    assert max(r["latencies"]) >= ((n - 1) // 2 + 1) * 0.05 - (n - 1) / 100  # measured from when it was due


def test_closed_loop_counts_from_send():
    r = asyncio.run(_run_against(0.05, clients=2, seconds=1.0, rate=0, client="aiohttp"))
    assert 0 < r["ok"] <= 2 * 1.0 / 0.05 + 2
    assert min(r["latencies"]) >= 0.05  # from its own send: never less than the server's answer time
