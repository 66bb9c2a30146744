"""``yibao bench serve``: settlements per second through ``yibao serve``, against the engine alone.

For each backend (SQLite file; a throwaway PostgreSQL) it migrates a fresh store, loads a sample
registry and pre-registers visits with their fee items (bulk inserts, not timed), starts
``yibao serve`` on loopback, and drives 2207 from concurrent async clients (httpx, or aiohttp,
which leaves more of a small machine's cores to the server) in two rounds: a closed loop, each
client sending as soon as it is answered (capacity), then an open loop at a fixed offered rate
(default 300/s, the issue's goal), with latency counted from when each request was due. It prints
settlements/s, p50/p99 latency and errors, then checks the ledger: every person's balance equals
the sum of their ledger rows and the number of settlements equals the successes. Two references
in the same run: the no-op health endpoint through the same server and client (what the HTTP
stack alone allows on this machine) and the in-process engine settling the same visits (no HTTP,
no database).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from yibao.service import ledger, sample
from yibao.service.auth import key_hash, new_key
from yibao.store import keys as store_keys
from yibao.store.database import make_engine
from yibao.store.migrate import upgrade
from yibao.store.models import AccumulatorBalance, FeeItem, Settlement, Visit
from yibao.store.throwaway import free_port

PATH = "/fsi/api/rsfComIfsService/callService"
AT = datetime(2024, 6, 3, 10, 0, 0)
PERSONS = 2000
GOAL_RATE, GOAL_P99_MS = 300, 50  # the goal on PostgreSQL


def prepare(url: str, visits: int, n_items: int) -> list[tuple[str, str]]:
    """Migrate, seed, and insert ``visits`` registered visits with fee items; [(mdtrt_id, psn_no)]."""
    upgrade(url)
    engine = make_engine(url)
    lines = sample.items(n_items)
    out = []
    with Session(engine) as s, s.begin():
        psns = sample.seed(s, PERSONS)
        vrows, irows = [], []
        for k in range(visits):
            psn_no = psns[k % len(psns)]
            mdtrt_id = f"B{k:011d}"
            out.append((mdtrt_id, psn_no))
            vrows.append({"mdtrt_id": mdtrt_id, "psn_no": psn_no, "fixmedins_code": sample.HOSPITAL,
                          "insutype": "310" if int(psn_no[1:]) % 2 == 0 else "390", "insuplc_admdvs": sample.ADMDVS,
                          "med_type": "11", "begntime": AT, "dise_codg": "", "ipt_otp_no": mdtrt_id,
                          "status": "registered", "created_at": AT})
            for line in lines:
                irows.append({"mdtrt_id": mdtrt_id, "feedetl_sn": line["feedetl_sn"],
                              "med_list_codg": line["med_list_codg"], "chrgitm_lv": line["chrgitm_lv"],
                              "pric_fen": int(Decimal(line["pric"]) * 100), "cnt": Decimal(line["cnt"]),
                              "det_item_fee_sumamt_fen": int(Decimal(line["det_item_fee_sumamt"]) * 100)})
        for chunk in range(0, len(vrows), 5000):
            s.execute(insert(Visit), vrows[chunk:chunk + 5000])
        for chunk in range(0, len(irows), 20000):
            s.execute(insert(FeeItem), irows[chunk:chunk + 20000])
    engine.dispose()
    return out


def yibao_executable() -> str:
    """The ``yibao`` command of this environment, found even when its bin directory is not on PATH."""
    return shutil.which("yibao") or str(Path(sys.executable).with_name("yibao"))


def start_server(url: str, port: int, workers: int, key: str, online_audit: bool = True,
                 threads: int = 1) -> subprocess.Popen:
    env = {**os.environ, "YIBAO_DATABASE_URL": url, "YIBAO_PACKS": "shandong-2024",
           "YIBAO_API_KEYS": f"bench:institution:{sample.HOSPITAL}=sha256:{key_hash(key)}",
           "YIBAO_ONLINE_AUDIT": "on" if online_audit else "off",
           "YIBAO_SETTLE_RATE": "0"}  # one institution drives the whole load: its settlement rate is not limited
    env.pop("YIBAO_FAULT", None)
    proc = subprocess.Popen([yibao_executable(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                             "--threads", str(threads)],
                            env=env, stdout=subprocess.DEVNULL)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("yibao serve exited at start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                time.sleep(0.5 * workers)  # let every worker finish starting
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("yibao serve did not answer within 60 s")


class _HttpxClient:
    """httpx, the client the issue names: ~2 ms of CPU per request on this machine."""

    def __init__(self, port: int, headers: dict[str, str], clients: int):
        import httpx

        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30,
                                      limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients))

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        r = await self.http.post(path, content=body, headers={"Content-Type": "application/json"})
        return r.status_code, r.content

    async def get(self, path: str) -> int:
        return (await self.http.get(path)).status_code

    async def close(self) -> None:
        await self.http.aclose()


class _AiohttpClient:
    """aiohttp: the same keep-alive HTTP/1.1 load for a fraction of httpx's CPU, so that on a 2-core machine the
    load generator takes less of the cores the server under test needs."""

    def __init__(self, port: int, headers: dict[str, str], clients: int):
        import aiohttp

        self.base = f"http://127.0.0.1:{port}"
        self.http = aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=clients),
                                          timeout=aiohttp.ClientTimeout(total=30))

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        async with self.http.post(self.base + path, data=body, headers={"Content-Type": "application/json"}) as r:
            return r.status, await r.read()

    async def get(self, path: str) -> int:
        async with self.http.get(self.base + path) as r:
            await r.read()
            return r.status

    async def close(self) -> None:
        await self.http.close()


CLIENTS = {"httpx": _HttpxClient, "aiohttp": _AiohttpClient}


async def drive(port: int, key: str, work: list[tuple[str, str]], clients: int, seconds: float,
                client: str = "aiohttp", rate: float = 0.0) -> dict:
    """2207 from ``clients`` concurrent clients for ``seconds``.

    ``rate`` 0: closed loop, each client sends its next request as soon as the last is answered (the
    server's capacity; latency is then mostly queueing: mean latency = clients / throughput).
    ``rate`` > 0: open loop, request j is due at start + j / rate and the next free client sends it;
    latency counts from when it was due, so a late send (every client busy) is charged to the server.
    """
    import json

    queue = list(reversed(work))
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    stop = start + seconds
    due = [0]  # the next request's sequence number (rate > 0)
    http = CLIENTS[client](port, {"X-API-Key": key}, clients)

    async def one_client(k: int) -> None:
        n = 0
        while queue and time.perf_counter() < stop:
            if rate > 0:
                t_due = start + due[0] / rate
                due[0] += 1
                if t_due >= stop:
                    break
                delay = t_due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            mdtrt_id, psn_no = queue.pop()
            n += 1
            env = {"infno": "2207", "msgid": f"{sample.HOSPITAL}{k:04d}{n:08d}{mdtrt_id}", "mdtrtarea_admvs": "370102",
                   "insuplc_admdvs": "370102", "recer_sys_code": "YBXT", "opter": "bench",
                   "fixmedins_code": sample.HOSPITAL, "inf_time": AT.strftime("%Y-%m-%d %H:%M:%S"),
                   "input": {"data": {"psn_no": psn_no, "mdtrt_id": mdtrt_id}}}
            t0 = t_due if rate > 0 else time.perf_counter()
            try:
                status, raw = await http.post(PATH, json.dumps(env).encode())
                body = json.loads(raw)
                if status != 200 or body.get("infcode") != 0:
                    errors.append(str(body.get("err_msg"))[:200])
                    continue
            except Exception as exc:  # noqa: BLE001 - counted and shown
                errors.append(f"{exc.__class__.__name__}: {exc}"[:200])
                continue
            latencies.append(time.perf_counter() - t0)

    try:
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    finally:
        await http.close()
    return {"ok": len(latencies), "errors": errors, "elapsed": elapsed, "latencies": sorted(latencies)}


async def ceiling(port: int, clients: int, seconds: float, client: str = "aiohttp") -> float:
    """Requests/s of the no-op health endpoint through the same server and client: the HTTP stack's limit."""
    done = 0
    stop = time.perf_counter() + seconds
    http = CLIENTS[client](port, {}, clients)

    async def one_client() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await http.get("/api/v1/health")
            done += 1

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return done / (time.perf_counter() - t0)
    finally:
        await http.close()


def child_pids(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except (OSError, ValueError):
        return []


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants (Linux /proc; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            todo += child_pids(p)
        except (OSError, IndexError, ValueError):
            continue
    return total


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (zeros elsewhere)."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v) - idle) / tick, sum(v) / tick


class CpuShare:
    """Cores used during a run by the load client (this process), the server tree, and the whole machine."""

    def __init__(self, server_pid: int):
        self.pid = server_pid

    def __enter__(self) -> "CpuShare":
        self.t0, self.c0, self.s0 = time.perf_counter(), time.process_time(), _tree_cpu(self.pid)
        self.m0 = _machine_busy()[0]
        self.w0 = {w: _tree_cpu(w) for w in child_pids(self.pid)}  # uvicorn's worker processes
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self.t0
        self.client = (time.process_time() - self.c0) / wall
        self.server = (_tree_cpu(self.pid) - self.s0) / wall
        self.machine = (_machine_busy()[0] - self.m0) / wall
        self.workers = [(_tree_cpu(w) - c) / wall for w, c in self.w0.items()]

    def text(self) -> str:
        per = " + ".join(f"{w:.2f}" for w in self.workers)
        return (f"客户端 client {self.client:.2f} · 服务 server {self.server:.2f} (各工作进程 per worker {per}) · "
                f"整机 machine {self.machine:.2f} 核 cores")


def check_ledger(url: str, ok: int) -> str:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            n = s.scalar(select(func.count()).select_from(Settlement))
            bad = 0
            for bal in s.scalars(select(AccumulatorBalance)):
                if ledger.ledger_sum(s, bal.psn_no, bal.year) != {k: v for k, v in bal.acc_values.items() if v}:
                    bad += 1
            count = s.scalar(select(func.coalesce(func.sum(AccumulatorBalance.entries), 0)))
    finally:
        engine.dispose()
    if n == ok and count == ok and bad == 0:
        return f"一致 ok {n}={count}"
    return f"不一致 BAD: setl {n}, ok {ok}, ledger {count}, persons off {bad}"


def engine_alone(visits: int, n_items: int) -> float:
    """Settlements/s of the pure engine on the same kind of visits (one core, no HTTP, no database)."""
    from yibao.policy.compiled import CompiledPack
    from yibao.policy.loader import resolve_pack
    from yibao.settlement.engine import settle
    from yibao.settlement.model import Accumulators
    from yibao.settlement.model import FeeItem as EItem
    from yibao.settlement.model import Person as EPerson
    from yibao.settlement.model import Visit as EVisit

    pack = CompiledPack(resolve_pack("shandong-2024"))
    items = tuple(EItem(x["feedetl_sn"], x["med_list_codg"], int(Decimal(x["det_item_fee_sumamt"]) * 100),
                        Decimal(x["cnt"]), int(Decimal(x["pric"]) * 100), x["chrgitm_lv"])
                  for x in sample.items(n_items))
    accs: dict[str, Accumulators] = {}
    t0 = time.perf_counter()
    for k in range(visits):
        psn = f"P{k % PERSONS + 1:09d}"
        person = EPerson(psn, "390" if (k % PERSONS + 1) % 2 else "310")
        visit = EVisit(f"B{k}", "11", "1", AT.date(), sample.HOSPITAL, items=items)
        accs[psn] = settle(pack, person, visit, accs.get(psn, Accumulators(2024))).accumulators_after
    return visits / (time.perf_counter() - t0)


def stats(result: dict) -> tuple[float, float, float]:
    """(settlements/s, p50 ms, p99 ms) of a :func:`drive` result."""
    lat = result["latencies"]
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
    return result["ok"] / result["elapsed"], p50, p99


def _row(label: str, result: dict, ledger_text: str) -> list[str]:
    rate, p50, p99 = stats(result)
    return [label, f"{rate:,.0f}", f"{p50:.1f}", f"{p99:.1f}", f"{result['ok']:,}",
            f"{len(result['errors']):,}", ledger_text]


def run(seconds: float = 10.0, clients: int = 16, items: int = 30, workers: int = 2, threads: int = 1,
        backends: list[str] | None = None, online_audit: bool = True, client: str = "aiohttp",
        rate: float = 300.0) -> None:
    """Per backend: the HTTP ceiling, the closed-loop capacity, then (``rate`` > 0) latency at ``rate``/s offered."""
    console = Console(highlight=False, width=max(120, Console().width))
    backends = backends or ["sqlite", "postgresql"]
    per_run = max(2000, int(seconds * 800))
    audit = "事中审核开 online audit on" if online_audit else "事中审核关 online audit off"
    table = Table(title=f"yibao bench serve · 2207 × {items} 条明细 · {clients} 并发客户端 · "
                        f"{workers} 工作进程 × {threads} 线程 · {seconds:g} 秒/轮 · {audit} · 客户端 {client}")
    for col in ("后端 backend · 负载 load", "笔/秒 settlements/s", "p50 ms", "p99 ms", "成功 ok", "错误 errors",
                "台账 ledger"):
        table.add_column(col, justify="left" if col.startswith(("后端", "台账")) else "right")
    first_errors: list[str] = []
    cpu_lines: list[str] = []
    verdicts: list[str] = []
    for backend in backends:
        with ExitStack() as stack:
            stack.enter_context(store_keys.throwaway())  # a throwaway store's keys: never left in ./yibao-data
            if backend == "postgresql":
                from yibao.store.throwaway import throwaway_postgres

                url = stack.enter_context(throwaway_postgres())
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="yibao-bench-"))
                url = f"sqlite:///{tmp}/yibao.db"
            runs = 2 if rate > 0 else 1
            console.print(f"[dim]{backend}: 准备 {per_run * runs:,} 次就诊 × {items} 条明细 …[/]")
            work = prepare(url, per_run * runs, items)
            key = new_key()
            port = free_port()
            server = start_server(url, port, workers, key, online_audit, threads)
            results = []
            try:
                noop = asyncio.run(ceiling(port, clients, min(3.0, seconds), client))
                with CpuShare(server.pid) as cpu:
                    closed = asyncio.run(drive(port, key, work[:per_run], clients, seconds, client))
                results.append(("闭环满载 closed loop (capacity)", closed, cpu))
                if rate > 0:
                    with CpuShare(server.pid) as cpu_paced:
                        paced = asyncio.run(drive(port, key, work[per_run:], clients, seconds, client, rate))
                    results.append((f"定速 paced {rate:g}/s", paced, cpu_paced))
            finally:
                server.terminate()
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            ok_total = sum(r["ok"] for _, r, _ in results)
            ledger_text = check_ledger(url, ok_total)
            for label, result, used in results:
                table.add_row(*_row(f"{backend} · {label}", result, ledger_text))
                first_errors += result["errors"][:3]
                cpu_lines.append(f"{backend} · {label}: CPU {used.text()}")
            table.add_row(f"  {backend}: no-op GET (HTTP 上限)", f"{noop:,.0f}", "—", "—", "—", "—", "—")
            if rate > 0:
                got, _, p99 = stats(paced)
                line = f"{backend}: {rate:g}/s 定速下 p99 {p99:.1f} ms, 实得 {got:,.0f}/s, 错误 {len(paced['errors'])}"
                if rate >= GOAL_RATE:
                    met = (got >= 0.98 * GOAL_RATE and p99 <= GOAL_P99_MS and not paced["errors"]
                           and not closed["errors"] and ledger_text.startswith("一致"))
                    line += f" → 目标(≥{GOAL_RATE}/s, p99≤{GOAL_P99_MS} ms){'达到 met' if met else '未达到 NOT met'}"
                verdicts.append(line)
    engine_rate = engine_alone(min(per_run, 20000), items)
    table.add_row("engine alone 引擎(1核)", f"{engine_rate:,.0f}", "—", "—", "—", "—", "—")
    console.print(table)
    for line in cpu_lines:
        console.print(line + " (其余为数据库与本机其他任务 / the rest: database, other jobs)")
    for line in verdicts:
        console.print(line)
    for e in first_errors:
        console.print(f"[red]错误示例[/] {e}")
