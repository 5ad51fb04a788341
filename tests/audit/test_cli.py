"""`jumin audit verify` against a real database file, in a separate process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def _jumin(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jumin", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_verify_exits_zero_then_names_the_tampered_entry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jumin.db'}"
    env = {
        **os.environ,
        "JUMIN_DATABASE_URL": url,
        "JUMIN_VAR_DIR": str(tmp_path),
        "JUMIN_KEY_DIR": str(tmp_path / "keys"),
    }
    assert _jumin(["db", "upgrade"], env).returncode == 0
    seeded = _jumin(["demo", "seed"], env)
    assert seeded.returncode == 0, seeded.stderr
    ok = _jumin(["audit", "verify"], env)
    assert ok.returncode == 0, ok.stderr
    assert '"intact": true' in ok.stdout

    with sqlite3.connect(tmp_path / "jumin.db") as conn:
        conn.execute("UPDATE audit_entries SET actor_id = 'mallory' WHERE chain = '131016' AND seq = 2")
    bad = _jumin(["audit", "verify"], env)
    assert bad.returncode == 1
    assert "131016 の 2 番目" in bad.stderr
