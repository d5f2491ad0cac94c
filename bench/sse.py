"""SSE fan-out: plait's event stream against a bare in-memory broadcaster, side by side.

    python -m bench.sse [--subscribers 1,100,500] [--rate 10] [--events 100] [--runs 3]
                        [--no-record]
    python -m bench.sse --profile-server FILE   # plait's server under pyinstrument

Each server runs under uvicorn in its own subprocess (`python -m bench.sse --serve KIND`);
the subscribers are raw asyncio sockets in this process, all on 127.0.0.1.

- plait: `plait.http.app.create_app(plait=...)` on a fresh SQLite store, with the service
  (and its projector) running; a project with a run. The subscribers follow
  `GET /api/projects/{id}/events?after=<head>`. The server appends `--events` TaskOutput
  events to that run's stream at `--rate` per second (one event per append, from the server
  process, as a run driven by `plait serve` does), each carrying its send time.
- bare: a Starlette endpoint (below) that broadcasts the same envelope from memory: one
  JSON encoding per event, put on every subscriber's queue. No store.

Measured per (server, subscriber count): delivery latency from the send time to receipt,
p50/p99 over every delivered event; the server's CPU (utime+stime from /proc/<pid>/stat over
the window, as a fraction of one core) and peak RSS (VmHWM from /proc/<pid>/status); for
plait, the store reads the live feed made (`LiveFeed.reads`) per append (the store hands the
feed what it appended, so these are only its fallback polls) and each append's p99 as the
sender saw it. Each server runs
`--runs` times per count, alternating which goes first. A small ASGI wrapper adds
`/bench/start` and `/bench/stats` to both servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp as ASGI
from starlette.types import Receive, Scope, Send

from bench.machine import describe
from bench.results import append_section

TARGET = 1.5  # plait p99 at most 1.5x the bare endpoint's
MARK = "@@"
TOKEN = "bench-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the servers (run in the subprocess) ---------------------------------------------------


class Control:
    """What the wrapper serves at /bench/*: start the appender, report counters."""

    def __init__(self, append: Callable[[int], Awaitable[None]]) -> None:
        self.append = append
        self.appended = 0
        self.append_ms: list[float] = []  # each append (or broadcast) call, as the sender saw it
        self.task: asyncio.Task[None] | None = None
        self.extra: Callable[[], dict[str, Any]] = dict

    async def run(self, rate: float, count: int) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            began = time.perf_counter()
            await self.append(i)
            self.append_ms.append((time.perf_counter() - began) * 1000)
            self.appended += 1

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.append_ms) or [0.0]
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return {"appended": self.appended, "append_p99_ms": p99, **self.extra()}


def wrap(app: ASGI, control: Control) -> ASGI:
    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/bench/"):
            await app(scope, receive, send)
            return
        if path == "/bench/start":
            query = dict(
                part.split("=", 1) for part in scope["query_string"].decode().split("&") if part
            )
            control.task = asyncio.create_task(
                control.run(float(query["rate"]), int(query["count"]))
            )
            body = b"{}"
        else:
            body = json.dumps(control.stats()).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapper


def envelope(position: int, text: str, run_id: str) -> dict[str, Any]:
    """The shape plait's stream sends for a TaskOutput event."""
    data = {
        "run_id": run_id,
        "batch_id": 1,
        "task_id": "t10",
        "worktree_id": "wt-t10",
        "attempt": 1,
        "stream": "stdout",
        "text": text,
    }
    return {
        "position": position,
        "type": "TaskOutput",
        "stream_id": f"run-{run_id}",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        **{k: data[k] for k in ("run_id", "batch_id", "task_id", "worktree_id", "attempt")},
        "data": data,
    }


def bare_app() -> tuple[ASGI, Control]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    queues: set[asyncio.Queue[str]] = set()

    async def broadcast(i: int) -> None:
        body = json.dumps(
            envelope(i + 1, f"{MARK}{time.time():.6f}{MARK}", "bench"), separators=(",", ":")
        )
        frame = f"id: {i + 1}\nevent: TaskOutput\ndata: {body}\n\n"
        for queue in queues:
            queue.put_nowait(frame)

    async def stream() -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        queues.add(queue)
        try:
            yield "retry: 1000\n\n"
            while True:
                yield await queue.get()
        finally:
            queues.discard(queue)

    async def events(request: Request) -> StreamingResponse:
        return StreamingResponse(stream(), media_type="text/event-stream")

    control = Control(broadcast)
    control.extra = lambda: {"subscribers": len(queues), "head": 0, "path": "/events"}
    app = Starlette(routes=[Route("/events", events)])
    return app, control


async def plait_server(work: Path) -> tuple[ASGI, Control, Callable[[], Awaitable[None]]]:
    from plait.domain.events import TaskOutput, TaskSucceeded
    from plait.eventstore import SqlEventStore
    from plait.eventstore.subscription import feed_for
    from plait.execution.service import Plait
    from plait.execution.settings import Settings
    from plait.http.app import create_app
    from plait.projections.codec import encode, project_stream, run_stream
    from tests.gitrepo import make_repo
    from tests.histories import project_run_start, run_events

    repo = make_repo(work / "repo")  # registration needs a first commit
    store = await asyncio.to_thread(SqlEventStore, f"sqlite:///{work / 'sse.db'}")
    service = Plait(store, Settings(worktree_root=work / "wt", log_root=work / "logs"))
    await service.start()
    project = await service.register_project(str(repo))
    run_id = "benchrun"
    # A run that has started its task t10: RunCreated ... TaskStarted.
    history = run_events(project, run_id, [["t10"]], outputs=0)
    started = next(i for i, e in enumerate(history) if isinstance(e, TaskSucceeded))
    prefix = [encode(e) for e in history[:started]]
    # The project records the run's start, as every run's start does (RunStarted).
    await asyncio.to_thread(
        store.append, project_stream(project), [encode(project_run_start(project, run_id))], None
    )
    await asyncio.to_thread(store.append, run_stream(run_id), prefix, 0)
    await service.wait_until_projected()

    async def append(i: int) -> None:
        event = TaskOutput(
            run_id=run_id,
            batch_id=1,
            task_id="t10",
            worktree_id="wt-t10",
            attempt=1,
            stream="stdout",
            text=f"{MARK}{time.time():.6f}{MARK}",
        )
        # As a run's recorder appends: on the store's writer thread (eventstore/writer.py).
        await store.writer.run(
            functools.partial(store.append, run_stream(run_id), [encode(event)], None)
        )

    control = Control(append)
    feed = feed_for(store)
    control.extra = lambda: {
        "reads": feed.reads,
        "subscribers": feed.subscriber_count,
        "head": store.last_position(),
        "path": f"/api/projects/{project}/events",
    }
    app = create_app(token=TOKEN, plait=service, heartbeat=15.0)

    async def close() -> None:
        await service.close()
        store.close()

    return app, control, close


async def serve(kind: str, port: int) -> None:
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="plait-sse-") as tmp:
        close: Callable[[], Awaitable[None]] | None = None
        if kind == "plait":
            app, control, close = await plait_server(Path(tmp))
        else:
            app, control = bare_app()
        config = uvicorn.Config(
            wrap(app, control),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        try:
            await uvicorn.Server(config).serve()
        finally:
            if close is not None:
                await close()


# -- the subscribers (this process) --------------------------------------------------------


@dataclass
class Subscriber:
    latencies: list[float] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


async def subscribe(port: int, path: str, sub: Subscriber, want: int, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        while not stop.is_set() and len(sub.latencies) < want:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"retry:"):
                sub.ready.set()
                continue
            at = line.find(MARK.encode())
            if at >= 0:
                received = time.time()
                end = line.find(MARK.encode(), at + 2)
                sub.latencies.append((received - float(line[at + 2 : end])) * 1000)
    finally:
        sub.ready.set()
        writer.close()


def get_json(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Result:
    latencies: list[float]
    delivered: int
    expected: int
    cpu: float  # fraction of one core over the window
    rss_mb: float
    reads: int | None
    appended: int
    append_p99: float


async def one(
    kind: str, subscribers: int, rate: float, events: int, profile: str | None = None
) -> Result:
    port = free_port()
    argv = [sys.executable, "-m", "bench.sse", "--serve", kind, "--port", str(port)]
    if profile:  # the server under pyinstrument, its text report written to `profile`
        argv[1:1] = ["-m", "pyinstrument", "-r", "text", "-o", profile]
    server = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                stats = await asyncio.to_thread(get_json, port, "/bench/stats")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{kind} server did not start") from None
                await asyncio.sleep(0.2)
        path = f"{stats['path']}?after={stats['head']}"
        stop = asyncio.Event()
        subs = [Subscriber() for _ in range(subscribers)]
        tasks = []
        for sub in subs:
            tasks.append(asyncio.create_task(subscribe(port, path, sub, events, stop)))
            await asyncio.sleep(0)  # no SYN storm beyond the listen backlog
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 60)
        await asyncio.sleep(1.0)  # every generator has joined the feed
        before = await asyncio.to_thread(get_json, port, "/bench/stats")
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.to_thread(get_json, port, f"/bench/start?rate={rate}&count={events}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks), events / rate + 30)
        cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
        stop.set()
        after = await asyncio.to_thread(get_json, port, "/bench/stats")
        rss = peak_rss_mb(server.pid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    latencies = [v for s in subs for v in s.latencies]
    reads = after["reads"] - before["reads"] if "reads" in after else None
    return Result(
        latencies,
        len(latencies),
        subscribers * events,
        cpu,
        rss,
        reads,
        after["appended"],
        after["append_p99_ms"],
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def spread(values: list[float], digits: int = 1) -> str:
    return (
        f"{statistics.median(values):,.{digits}f} "
        f"({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--serve", choices=["plait", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", default="1,100,500")
    parser.add_argument("--rate", type=float, default=10.0, help="appends per second")
    parser.add_argument("--events", type=int, default=100, help="appends per measurement")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument(
        "--profile-server",
        metavar="FILE",
        help="instead: one plait run at the largest count, the server under pyinstrument",
    )
    args = parser.parse_args()
    if args.profile_server:
        count = max(int(c) for c in args.subscribers.split(","))
        r = asyncio.run(one("plait", count, args.rate, args.events, args.profile_server))
        print(
            f"plait, {count} subscribers: p50 {pct(r.latencies, 0.5):.1f} ms, p99 "
            f"{pct(r.latencies, 0.99):.1f} ms; profile in {args.profile_server}"
        )
        return
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):  # how the parent stops the server
            asyncio.run(serve(args.serve, args.port))
        return
    print(describe(), flush=True)
    table = [
        "| subscribers | server | p50 ms | p99 ms | p99 vs bare | delivered | CPU (1 core) "
        "| peak RSS MB | store reads per append | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count in (int(c) for c in args.subscribers.split(",")):
        results: dict[str, list[Result]] = {"bare": [], "plait": []}
        for run in range(args.runs):
            for kind in ("bare", "plait") if run % 2 == 0 else ("plait", "bare"):
                r = asyncio.run(one(kind, count, args.rate, args.events))
                results[kind].append(r)
                print(
                    f"{count} subscribers, run {run + 1}, {kind}: p50 "
                    f"{pct(r.latencies, 0.5):.1f} ms p99 {pct(r.latencies, 0.99):.1f} ms, "
                    f"{r.delivered}/{r.expected} delivered, cpu {r.cpu:.2f}, "
                    f"rss {r.rss_mb:.0f} MB, reads {r.reads} for {r.appended} appends, "
                    f"append p99 {r.append_p99:.1f} ms",
                    flush=True,
                )
        bare99 = [pct(r.latencies, 0.99) for r in results["bare"]]
        for kind in ("bare", "plait"):
            rs = results[kind]
            p50 = [pct(r.latencies, 0.5) for r in rs]
            p99 = [pct(r.latencies, 0.99) for r in rs]
            delivered = sum(r.delivered for r in rs), sum(r.expected for r in rs)
            cells = [
                str(count),
                kind,
                spread(p50),
                spread(p99),
                "1" if kind == "bare" else "",
                f"{delivered[0]:,}/{delivered[1]:,}",
                spread([r.cpu for r in rs], 2),
                spread([r.rss_mb for r in rs], 0),
            ]
            if kind == "plait":
                ratios = [p / b for p, b in zip(p99, bare99, strict=True)]
                ratio = statistics.median(ratios)
                cells[4] = f"{ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
                per = [(r.reads or 0) / max(1, r.appended) for r in rs]
                cells.append(spread(per, 2))
                verdict = "met" if ratio <= TARGET else "MISSED"
                cells.append(f"p99 <= {TARGET}x bare ({verdict}); no read per append")
            else:
                cells += ["", ""]
            table.append("| " + " | ".join(cells) + " |")
            print(table[-1], flush=True)
    notes = [
        f"{args.events} appends at {args.rate:g}/s per measurement (one event each), "
        f"{args.runs} runs per count, servers alternating; median (min-max) over runs of each "
        "run's p50/p99 over every delivered event. Latency: send time (taken just before the "
        "append, or the broadcast) to receipt by the subscriber's socket reader; the "
        "subscribers run in one Python process on the same 2 cores as the server. CPU: "
        "server utime+stime over the window / wall time. plait: SQLite store, service and "
        "projector running (the projector is one more subscriber of the same feed). Not equal "
        "guarantees: plait's latency includes the append (a SQLite commit, on the store's "
        "writer thread, as a run's recorder makes it) and every event is durable before it is "
        "sent; the bare broadcaster stores nothing. Store reads per append: reads the live "
        "feed made while the appends ran (the store hands its events to the feed, so only "
        "the feed's fallback poll reads).",
    ]
    command = (
        f"python -m bench.sse --subscribers {args.subscribers} --rate {args.rate:g} "
        f"--events {args.events} --runs {args.runs}"
    )
    if args.no_record:
        print("\n".join([*table, "", *notes]))
    else:
        print(append_section("SSE fan-out: plait vs a bare broadcaster", command, table, notes))


if __name__ == "__main__":
    main()
