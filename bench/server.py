"""The processes the HTTP benchmarks talk to, and the memory they use while they do.

With one worker the server is `jumin serve` itself (every role in one process, as it is
deployed on one machine), its loopback relay off: the run starts its own relay process
for the municipality it records events in (`jumin relay --lg CODE`), as a municipality's
record system would run it. With more workers, uvicorn runs the same app factory in that
many processes (`python -m bench.server`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.config import REPO_DIR

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return 0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


@dataclass
class MemorySampler:
    """RSS of a process and its children, every ``interval`` seconds, in a thread."""

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, float, float]] = field(
        default_factory=list
    )  # t, largest process MiB, total MiB
    marks: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = field(default_factory=time.monotonic)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()

    def mark(self, label: str) -> None:
        self.marks.append((time.monotonic() - self._t0, label))

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = [self.pid, *children(self.pid)]
            sizes = [rss_kib(p) / 1024 for p in pids]
            self.samples.append((time.monotonic() - self._t0, max(sizes), sum(sizes)))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def peak(self) -> tuple[float, float]:
        if not self.samples:
            return 0.0, 0.0
        return max(s[1] for s in self.samples), max(s[2] for s in self.samples)


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO_DIR,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log_file.close()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def start_server(*, env: dict[str, str], port: int, workers: int, log: Path) -> Process:
    if workers <= 1:
        argv = [sys.executable, "-m", "jumin", "serve", "--host", "127.0.0.1", "--port", str(port)]
    else:
        argv = [sys.executable, "-m", "bench.server", "--port", str(port), "--workers", str(workers)]
    process = Process("server", argv, env, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"server exited:\n{process.tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.stop()
    raise RuntimeError(f"server did not answer /healthz in 120 s:\n{process.tail()}")


def start_relay(*, env: dict[str, str], port: int, lg_code: str, interval: float, log: Path) -> Process:
    argv = [
        sys.executable, "-m", "jumin", "relay",
        "--url", f"http://127.0.0.1:{port}", "--lg", lg_code, "--interval", str(interval), "--batch", "500",
    ]  # fmt: skip
    relay = Process("relay", argv, env, log)
    # The relay announces itself once its imports are done; load before that would count
    # the interpreter's start-up as replication lag.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and relay.alive():
        if "送信します" in relay.tail(5):
            return relay
        time.sleep(0.1)
    if not relay.alive():
        raise RuntimeError(f"relay exited:\n{relay.tail()}")
    return relay


def factory() -> Any:
    """The app `jumin serve` runs, for uvicorn's multi-process mode (no loopback relay)."""
    from jumin.app import create_app
    from jumin.config import get_settings
    from jumin.logging import configure

    configure(get_settings().log_level)
    return create_app()


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="bench server: jumin's app in several uvicorn workers")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    uvicorn.run(
        "bench.server:factory",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
