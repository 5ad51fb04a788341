"""Sampling profiles of a running process with py-spy, summarised as the functions that cost most.

Optional (`--profile`): py-spy is found on PATH or in $BENCH_PY_SPY; without it the run
goes on unprofiled and says so. BENCH_PROFILE_IDLE=1 samples idle threads too (wall time:
waits on PostgreSQL and on row locks show up; the server's idle worker threads as well).
Profiles are collapsed stacks (one line per distinct stack and its sample count); the
summary counts, for each function, the share of samples
in which it is on the stack (inclusive) and at the top (self).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    return os.environ.get("BENCH_PY_SPY") or shutil.which("py-spy")


class Profile:
    """py-spy attached to ``pid`` until :meth:`stop`; writes collapsed stacks to ``out``."""

    def __init__(self, pid: int, out: Path, *, rate: int = 97, subprocesses: bool = True) -> None:
        self.out = out
        self.process: subprocess.Popen[bytes] | None = None
        exe = py_spy()
        if exe is None:
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
        ]
        if subprocesses:
            argv.append("--subprocesses")
        if os.environ.get("BENCH_PROFILE_IDLE") == "1":
            # Wall time rather than CPU time: waits on the database and on locks count too.
            argv.append("--idle")
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> dict[str, Any] | None:
        if self.process is None:
            return None
        self.process.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None
        return summarise(self.out) if self.out.exists() else None


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file})"


def summarise(path: Path, top: int = 25) -> dict[str, Any]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [
            _short(f)
            for f in stack.split(";")
            if f and not f.startswith("process ") and not f.startswith("thread ")
        ]
        if not frames:
            continue
        total += n
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    if total == 0:
        return {"samples": 0, "inclusive": [], "self": []}
    return {
        "samples": total,
        "file": str(path),
        "inclusive": [[f, round(n / total * 100, 1)] for f, n in inclusive.most_common(top)],
        "self": [[f, round(n / total * 100, 1)] for f, n in own.most_common(top)],
        "jumin": [[f, round(n / total * 100, 1)] for f, n in inclusive.most_common() if "(jumin/" in f][:top],
    }
