"""A throw-away deployment: fresh municipal and national databases, and `jumin` processes on them.

SQLite files under the test's tmp folder, or (with JUMIN_TEST_DATABASE_URL) sibling
PostgreSQL databases named after this process, dropped at the end, so that two test
runs on one server never share one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from jumin.db import make_engine
from tests.conftest import PG_URL, fresh_database_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Deployment:
    root: Path
    municipal_url: str
    national_url: str
    env: dict[str, str]
    engines: list[Engine] = field(default_factory=list)

    def engine(self, which: str) -> Engine:
        engine = make_engine(self.municipal_url if which == "municipal" else self.national_url)
        self.engines.append(engine)
        return engine

    def jumin(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jumin", *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=timeout,
        )

    def spawn(self, *args: str, log: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = (self.root / log).open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "jumin", *args],
            env={**self.env, **(extra_env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _drop_pg(url: str) -> None:
    base, _, name = url.rpartition("/")
    admin = make_engine(f"{base}/postgres").execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def deployment(backend: str, root: Path, tag: str) -> Iterator[Deployment]:
    suffix = f"{tag}_{os.getpid()}"
    municipal_url = fresh_database_url(backend, root, f"m_{suffix}")
    national_url = fresh_database_url(backend, root, f"n_{suffix}")
    env = {
        **os.environ,
        "JUMIN_DATABASE_URL": municipal_url,
        "JUMIN_NATIONAL_DATABASE_URL": national_url,
        "JUMIN_VAR_DIR": str(root / "var"),
        "JUMIN_RELAY_INTERVAL_SECONDS": "0",
        "JUMIN_LOG_LEVEL": "WARNING",
    }
    d = Deployment(root=root, municipal_url=municipal_url, national_url=national_url, env=env)
    try:
        yield d
    finally:
        for engine in d.engines:
            engine.dispose()
        if backend == "postgresql" and PG_URL is not None:
            _drop_pg(municipal_url)
            _drop_pg(national_url)


class Server:
    """`jumin serve` in its own process: all roles, as an operator would start it."""

    def __init__(self, d: Deployment, *, relay_interval: float = 0.0, port: int | None = None) -> None:
        self.deployment = d
        self.port = port or free_port()
        self.relay_interval = relay_interval
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        self.process = self.deployment.spawn(
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            log="server.log",
            extra_env={"JUMIN_RELAY_INTERVAL_SECONDS": str(self.relay_interval)},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.deployment.root / "server.log").read_text()[-3000:])
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("jumin serve did not come up")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a power cut would end it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
