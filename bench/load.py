"""A small closed-loop HTTP/1.1 load generator, and the same loop over psycopg for baselines.

Each of ``concurrency`` workers keeps one connection open and sends its next request as
soon as the previous answer is read, for ``warmup`` + ``duration`` seconds; only requests
that start after the warm-up count. Raw asyncio streams rather than an HTTP client
library: on two shared cores the load generator must cost far less than the server it
measures (httpx spends more CPU per request than the endpoint being measured).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def json(method: str, path: str, payload: Any, token: str | None = None) -> Request:
        headers = [("Content-Type", "application/json")]
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        return Request(method, path, json.dumps(payload, ensure_ascii=False).encode(), tuple(headers))

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)  # a few non-2xx answers, to say why

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "requests": len(self.latencies_ms),
            "ok": self.ok,
            "per_second": round(self.rate, 1),
            "p50_ms": _r(self.percentile(50)),
            "p95_ms": _r(self.percentile(95)),
            "p99_ms": _r(self.percentile(99)),
            "max_ms": _r(max(self.latencies_ms) if self.latencies_ms else None),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "sample_failures": [b[:300].decode("utf-8", "replace") for b in self.bodies[:3]],
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one response; chunked bodies are reassembled."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


async def http_load(
    host: str,
    port: int,
    next_request: Callable[[int], Request],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.0,
    max_requests: int | None = None,
    timeout: float = 60.0,
    prime: int = 1,
) -> LoadResult:
    """Closed-loop load; ``next_request(i)`` gives the i-th request (i counts all workers).

    ``prime`` requests go first, one after the other and uncounted: the first request of
    a kind pays for imports and caches in the server, which is start-up, not throughput.
    """
    result = LoadResult(concurrency, duration)
    counter = 0
    authority = f"{host}:{port}"
    if prime:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(prime):
                writer.write(next_request(counter).encode(authority))
                counter += 1
                await asyncio.wait_for(_read_response(reader), timeout)
        finally:
            writer.close()
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    last_end = measure_from

    async def worker() -> None:
        nonlocal counter, last_end
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        measured = 0
        # Every worker goes on until one of its requests counts: a cold first request slower
        # than the whole window must not leave the window empty.
        while (now := time.perf_counter()) < stop_at or (measured == 0 and now < stop_at + timeout):
            if max_requests is not None and counter >= max_requests:
                break
            i = counter
            counter += 1
            payload = next_request(i).encode(authority)
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                t0 = time.perf_counter()
                writer.write(payload)
                status, body, keep = await asyncio.wait_for(_read_response(reader), timeout)
                t1 = time.perf_counter()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                result.errors[type(exc).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.05)
                continue
            if t0 >= measure_from:
                measured += 1
                last_end = max(last_end, t1)
                result.latencies_ms.append((t1 - t0) * 1000)
                result.statuses[status] += 1
                if not 200 <= status < 300 and len(result.bodies) < 5:
                    result.bodies.append(body)
            if not keep:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = max(min(time.perf_counter(), stop_at), last_end) - measure_from
    if max_requests is not None and counter >= max_requests:
        result.seconds = max(last_end - measure_from, 1e-9)
    return result


async def psycopg_load(
    dsn: str,
    query: str,
    params: Sequence[Sequence[Any]],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.0,
) -> LoadResult:
    """The same closed loop over ``concurrency`` psycopg connections (prepared statement)."""
    import psycopg

    result = LoadResult(concurrency, duration)
    counter = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker() -> None:
        nonlocal counter
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            while time.perf_counter() < stop_at:
                p = params[counter % len(params)]
                counter += 1
                t0 = time.perf_counter()
                cur = await conn.execute(query, p, prepare=True)
                rows = await cur.fetchall()
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    result.latencies_ms.append((t1 - t0) * 1000)
                    result.statuses[200 if rows else 404] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = min(time.perf_counter(), stop_at) - measure_from
    return result


def run(coro: Awaitable[LoadResult]) -> LoadResult:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)  # type: ignore[arg-type]
