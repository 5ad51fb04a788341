"""A small in-memory token bucket per client address, for the public verification routes.

Verification needs no login, so it is what an enumerator or a flood would hit. Each
client address gets a bucket of ``capacity`` requests, refilled at ``rate`` per second;
an empty bucket answers 429 with Retry-After.

It lives in the process: with several worker processes or servers, each keeps its own
buckets and a client gets ``capacity`` per process. A deployment with more than one
process needs a shared limiter instead (the reverse proxy's rate limiting, or a counter
in Redis/PostgreSQL keyed the same way). The client address is the TCP peer; behind a
reverse proxy that must be configured to pass the real address (uvicorn
--proxy-headers with --forwarded-allow-ips), never taken from a header anyone can set.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    def __init__(
        self,
        *,
        capacity: int = 30,
        rate: float = 0.5,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.rate = rate
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> float | None:
        """None if the request may go ahead; else the seconds until a token is back."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.pop(client, None)
            if bucket is None:
                bucket = _Bucket(tokens=float(self.capacity), updated=now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            # Most recently used last: the oldest idle clients are forgotten first, which
            # bounds memory under a flood of spoofed addresses (a forgotten one restarts full).
            self._buckets[client] = bucket
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return math.ceil((1 - bucket.tokens) / self.rate)
