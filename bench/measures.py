"""Each benchmark of issue 8: its figure, its raw baseline in the same run, and details.

Every function returns a plain dict (figure, unit, baseline, details) that report.py
turns into JSON, markdown and charts. HTTP benchmarks talk to the running server with
the tokens of :class:`bench.actors.Actors`; baselines talk to PostgreSQL directly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import time
import urllib.parse
from collections import defaultdict
from contextlib import ExitStack
from typing import Any

import httpx
import numpy as np
from psycopg import sql

from bench import load
from bench.actors import Actors
from bench.config import RunConfig
from bench.databases import connect, libpq
from bench.server import free_port, start_relay, start_server
from bench.ui import UI
from jumin.db import expand_text

EXTRACTION_DATE = dt.date(2022, 4, 1)


def _today() -> dt.date:
    # The register's dates are Japanese calendar dates (JST).
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=9))).date()


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "max": round(float(a.max()), 2),
    }


def largest_municipality(cfg: RunConfig) -> tuple[str, int]:
    with connect(cfg.municipal_url) as conn:
        row = conn.execute(
            "SELECT lg_code, count(*) FROM persons WHERE lifecycle = 'live' "
            "GROUP BY lg_code ORDER BY 2 DESC, 1 LIMIT 1"
        ).fetchone()
    if row is None:
        raise RuntimeError("the bench database holds no residents")
    return str(row[0]), int(row[1])


def largest_prefecture(cfg: RunConfig) -> tuple[str, int]:
    with connect(cfg.national_url) as conn:
        row = conn.execute(
            "SELECT prefecture_code, count(*) FROM national_identities WHERE status = 'live' "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
        ).fetchone()
    if row is None:
        raise RuntimeError("the national store holds no identities")
    return str(row[0]), int(row[1])


# --- identity lookup ----------------------------------------------------------------------------


def lookup(cfg: RunConfig, actors: Actors, port: int, ui: UI) -> dict[str, Any]:
    with connect(cfg.national_url) as conn:
        sample = conn.execute(
            "SELECT id, resident_code FROM national_identities WHERE status = 'live' "
            "ORDER BY random() LIMIT 20000"
        ).fetchall()
    codes = [str(r[1]) for r in sample]
    ids = [(int(r[0]),) for r in sample]
    path = "/network/v1/lookups/by-resident-code"

    def request(i: int) -> load.Request:
        return load.Request.json(
            "POST", path, {"task": actors.task, "resident_code": codes[i % len(codes)]}, actors.agency_token
        )

    ui.say(f"照会: HTTP {cfg.concurrency} 並列 × {cfg.duration:.0f} 秒")
    http = load.run(
        load.http_load(
            "127.0.0.1", port, request, concurrency=cfg.concurrency, duration=cfg.duration, warmup=cfg.warmup
        )
    )
    ui.say(f"照会の基準: psycopg 主キー SELECT {cfg.concurrency} 並列 × {cfg.duration:.0f} 秒")
    raw = load.run(
        load.psycopg_load(
            libpq(cfg.national_url),
            "SELECT * FROM national_identities WHERE id = %s",
            ids,
            concurrency=cfg.concurrency,
            duration=cfg.duration,
            warmup=min(cfg.warmup, 1.0),
        )
    )
    return {
        "figure": http.rate,
        "second": http.percentile(99),
        "baseline": raw.rate,
        "details": {
            "http": http.summary(),
            "baseline": raw.summary(),
            "endpoint": f"POST {path}",
            "task": actors.task,
        },
        "latencies": {"HTTP 照会": http.latencies_ms, "psycopg 主キー SELECT": raw.latencies_ms},
    }


# --- kana search --------------------------------------------------------------------------------


def search(cfg: RunConfig, actors: Actors, port: int, ui: UI) -> dict[str, Any]:
    with connect(cfg.municipal_url) as conn:
        rows = conn.execute(
            "SELECT v.record_json FROM person_versions v "
            "JOIN persons p ON p.id = v.person_id "
            "WHERE p.lg_code = %s AND p.lifecycle = 'live' "
            "AND v.valid_to IS NULL AND v.superseded_at IS NULL "
            "ORDER BY random() LIMIT 2000",
            (actors.lg_code,),
        ).fetchall()
    # The record is stored deflated (jumin.db.CompressedText): read it as the register does.
    names = [str(n) for (stored,) in rows if (n := json.loads(expand_text(stored)).get("family_name_kana"))]
    if not names:
        return {"figure": None, "details": {"skipped": "no names with kana in the municipality"}}

    def request(i: int) -> load.Request:
        kana = urllib.parse.quote(names[i % len(names)])
        return load.Request(
            "GET",
            f"/registry/persons?kana={kana}&limit=50",
            b"",
            (("Authorization", f"Bearer {actors.clerk_token}"),),
        )

    ui.say(f"カナ氏名検索: {cfg.search_concurrency} 並列 × {cfg.duration:.0f} 秒 ({actors.lg_code})")
    http = load.run(
        load.http_load(
            "127.0.0.1",
            port,
            request,
            concurrency=cfg.search_concurrency,
            duration=cfg.duration,
            warmup=cfg.warmup,
        )
    )
    return {
        "figure": http.percentile(95),
        "details": {
            "http": http.summary(),
            "lg_code": actors.lg_code,
            "query": "family-name kana (full), limit 50",
        },
        "latencies": {"カナ氏名検索": http.latencies_ms},
    }


# --- 異動 events, outbox and relay ----------------------------------------------------------------


def _households(cfg: RunConfig, lg_code: str) -> list[list[tuple[int, int]]]:
    with connect(cfg.municipal_url) as conn:
        rows = conn.execute(
            "SELECT p.id, p.version, v.household_id FROM persons p "
            "JOIN person_versions v ON v.person_id = p.id AND v.valid_to IS NULL AND v.superseded_at IS NULL "
            "WHERE p.lg_code = %s AND p.lifecycle = 'live' AND v.status = 'live'",
            (lg_code,),
        ).fetchall()
    grouped: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for pid, version, household in rows:
        grouped[int(household)].append((int(pid), int(version)))
    households = list(grouped.values())
    random.Random(0).shuffle(households)
    return households


def _register_key(lg_code: str, national_url: str) -> None:
    from jumin.core.replication import municipality_key_name
    from jumin.db import make_engine, unit_of_work
    from jumin.keys import load_or_create_ed25519
    from jumin.network.identity import service as national

    engine = make_engine(national_url)
    try:
        with unit_of_work(engine) as session:
            key = load_or_create_ed25519(municipality_key_name(lg_code))
            national.register_key(session, lg_code=lg_code, public_key_pem=key.public_pem())
    finally:
        engine.dispose()


def events(cfg: RunConfig, actors: Actors, port: int, ui: UI, env: dict[str, str]) -> dict[str, Any]:
    lg = actors.lg_code
    households = _households(cfg, lg)
    if not households:
        return {"figure": None, "details": {"skipped": "no live households"}}
    _register_key(lg, cfg.national_url)
    today = _today().isoformat()
    path = "/registry/events/move-within"

    def request(i: int) -> load.Request:
        members = households[i % len(households)]
        body = {
            "effective_on": today,
            "persons": [{"person_id": p, "version": v} for p, v in members],
            "address": {"line": f"ベンチ町{i % 9 + 1}丁目{i % 30 + 1}番{i % 25 + 1}号", "katagaki": ""},
        }
        return load.Request.json("POST", path, body, actors.clerk_token)

    # Stopped in reverse: the relay first, then the national server it delivers to.
    with ExitStack() as processes:
        relay_port = port
        if cfg.national_server:
            relay_port = free_port(port + 1)
            national = start_server(
                env=env, port=relay_port, workers=1, log=cfg.var_dir / "logs" / "national-server.log"
            )
            processes.callback(national.stop)
        relay = start_relay(
            env=env,
            port=relay_port,
            lg_code=lg,
            interval=cfg.relay_interval,
            log=cfg.var_dir / "logs" / "relay.log",
        )
        processes.callback(relay.stop)
        started_at = dt.datetime.now(dt.UTC)
        ui.say(
            f"異動 (転居): {cfg.events_concurrency} 並列 × {cfg.duration:.0f} 秒, "
            f"中継 {cfg.relay_interval} 秒間隔 ({lg})"
        )
        http = load.run(
            load.http_load(
                "127.0.0.1",
                port,
                request,
                concurrency=cfg.events_concurrency,
                duration=cfg.duration,
                warmup=cfg.warmup,
                max_requests=len(households),
            )
        )
        load_ended = time.monotonic()
        pending = -1
        with ui.bar("中継の送り切り待ち", None) as bar, connect(cfg.municipal_url) as conn:
            deadline = time.monotonic() + max(120.0, cfg.duration * 4)
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM registry_outbox WHERE lg_code = %s AND delivered_at IS NULL", (lg,)
                ).fetchone()
                pending = int(row[0]) if row else 0
                bar.update(note=f"未送信 {pending}")
                if pending == 0 or not relay.alive():
                    break
                time.sleep(0.25)
        drained_seconds = time.monotonic() - load_ended
    with connect(cfg.municipal_url) as conn:
        sent = conn.execute(
            "SELECT idempotency_key, created_at, delivered_at FROM registry_outbox "
            "WHERE lg_code = %s AND created_at >= %s",
            (lg, started_at),
        ).fetchall()
    keys = [str(r[0]) for r in sent]
    with connect(cfg.national_url) as conn:
        applied = dict(
            conn.execute(
                "SELECT idempotency_key, applied_at FROM national_inbox WHERE idempotency_key = ANY(%s)",
                (keys,),
            ).fetchall()
        )
    lags = [
        (applied[k] - created).total_seconds() * 1000
        for k, created, _delivered in sent
        if applied.get(k) is not None
    ]
    lag = _percentiles(lags)
    return {
        "figure": http.rate,
        "second": lag["p99"],
        "details": {
            "http": http.summary(),
            "lg_code": lg,
            "event": "move_within (転居) of a whole household",
            "households_available": len(households),
            "outbox_messages": len(sent),
            "applied_nationally": len(lags),
            "undelivered_at_end": pending,
            "seconds_to_drain_after_load": round(drained_seconds, 2),
            "relay_interval_seconds": cfg.relay_interval,
            "relay_delivers_to": (
                "its own national server" if cfg.national_server else "the server under load"
            ),
            "replication_lag_ms": lag,
            "relay_log_tail": relay.tail(5) if pending != 0 else "",
        },
        "latencies": {"異動 API": http.latencies_ms, "複製遅延 (outbox→全国反映)": lags},
    }


# --- batch verification ---------------------------------------------------------------------------


def batch(cfg: RunConfig, actors: Actors, port: int, ui: UI) -> dict[str, Any]:
    from jumin.network.agencies.service import full_address

    with connect(cfg.national_url) as conn:
        rows = conn.execute(
            "SELECT name_kana, birth_date, sex, address_lg_code, address FROM national_identities "
            "WHERE status = 'live' AND name_kana IS NOT NULL ORDER BY random() LIMIT %s",
            (cfg.batch_rows,),
        ).fetchall()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ref", "name_kana", "birth_date", "sex", "address"])
    for i, (kana, birth, sex, lg, line) in enumerate(rows, start=1):
        writer.writerow([f"B{i:07d}", kana, birth.isoformat(), sex, full_address(lg, line)])
    body = out.getvalue().encode("utf-8")
    auth = {"Authorization": f"Bearer {actors.agency_token}"}
    ui.say(f"一括照合 (4情報): {len(rows):,} 行")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
        t0 = time.monotonic()
        response = http.post(
            "/network/v1/batches",
            params={"task": actors.task, "kind": "four_facts", "on_error": "skip_bad"},
            content=body,
            headers={**auth, "Content-Type": "text/csv"},
        )
        response.raise_for_status()
        job = response.json()
        view = job
        with ui.bar("一括照合", len(rows)) as bar:
            while view["status"] not in ("done", "rejected", "failed"):
                time.sleep(0.5)
                view = http.get(
                    f"/network/v1/batches/{job['id']}", params={"task": actors.task}, headers=auth
                ).json()
                bar.update(completed=view.get("processed_rows", 0), note=view["status"])
        wall = time.monotonic() - t0
    started = dt.datetime.fromisoformat(view["started_at"]) if view.get("started_at") else None
    finished = dt.datetime.fromisoformat(view["finished_at"]) if view.get("finished_at") else None
    seconds = (finished - started).total_seconds() if started and finished else wall
    figure = view["total_rows"] / seconds if view["status"] == "done" and seconds > 0 else None
    return {
        "figure": figure,
        "details": {
            "rows": view["total_rows"],
            "status": view["status"],
            "seconds_job": round(seconds, 3),
            "seconds_upload_to_done": round(wall, 3),
            "matched": view.get("matched"),
            "ambiguous": view.get("ambiguous"),
            "partial": view.get("partial"),
            "not_found": view.get("not_found"),
            "bad_rows": view.get("bad_rows"),
            "failure": view.get("failure"),
            "upload_bytes": len(body),
        },
    }


# --- prefecture extraction ------------------------------------------------------------------------

_EXTRACTION_SQL = """
SELECT h.identity_id, h.prefecture_code, h.lg_code, h.resident_code, h.name, h.name_kana, h.birth_date, h.sex,
       h.address_lg_code, h.address
FROM national_identity_history h
WHERE h.prefecture_code = {pref} AND h.valid_from <= {on} AND (h.valid_to IS NULL OR h.valid_to > {on})
  AND h.status = 'live'
  AND NOT EXISTS (
    SELECT 1 FROM national_identity_history n
    WHERE n.identity_id = h.identity_id AND n.id > h.id AND n.valid_from <= {on}
      AND (n.valid_to IS NULL OR n.valid_to > {on}))
ORDER BY h.lg_code, h.resident_code
"""


def extraction(cfg: RunConfig, actors: Actors, port: int, ui: UI) -> dict[str, Any]:
    pref = actors.prefecture_code
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
        pref_auth = {"Authorization": f"Bearer {actors.prefecture_token}"}
        ops_auth = {"Authorization": f"Bearer {actors.operator_token}"}
        response = http.post(
            "/network/v1/extractions",
            json={
                "reference_date": EXTRACTION_DATE.isoformat(),
                "purpose": "ベンチマーク: 基準日抽出の性能測定",
            },
            headers=pref_auth,
        )
        response.raise_for_status()
        extraction_id = response.json()["id"]
        t0 = time.monotonic()
        http.post(
            f"/network/v1/extractions/{extraction_id}/approve", json={"note": "性能測定"}, headers=ops_auth
        ).raise_for_status()
        view = http.get(f"/network/v1/extractions/{extraction_id}", headers=pref_auth).json()
        with ui.bar(f"基準日抽出 (都道府県 {pref})", None) as bar:
            while view["status"] not in ("ready", "failed"):
                time.sleep(0.25)
                view = http.get(f"/network/v1/extractions/{extraction_id}", headers=pref_auth).json()
                bar.update(note=view["status"])
        wall = time.monotonic() - t0
    decided = dt.datetime.fromisoformat(view["decided_at"]) if view.get("decided_at") else None
    finished = dt.datetime.fromisoformat(view["finished_at"]) if view.get("finished_at") else None
    seconds = (finished - decided).total_seconds() if decided and finished else wall
    rows = view.get("row_count") or 0
    figure = rows / seconds if view["status"] == "ready" and seconds > 0 else None
    ui.say("抽出の基準: COPY (SELECT ...) TO STDOUT")
    copied_rows = 0
    query = sql.SQL(_EXTRACTION_SQL).format(pref=sql.Literal(pref), on=sql.Literal(EXTRACTION_DATE))
    with connect(cfg.national_url) as conn, conn.cursor() as cur:
        b0 = time.monotonic()
        with cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy:
            for chunk in copy:
                copied_rows += bytes(chunk).count(b"\n")
        baseline_seconds = time.monotonic() - b0
    return {
        "figure": figure,
        "baseline": copied_rows / baseline_seconds if baseline_seconds > 0 else None,
        "details": {
            "prefecture_code": pref,
            "reference_date": EXTRACTION_DATE.isoformat(),
            "rows": rows,
            "status": view["status"],
            "seconds_production": round(seconds, 3),
            "seconds_approve_to_ready": round(wall, 3),
            "baseline_rows": copied_rows,
            "baseline_seconds": round(baseline_seconds, 3),
            "formats": "CSV + Parquet, sealed (AES-GCM), access log per person",
        },
    }


# --- signed record copies ---------------------------------------------------------------------------


def _unsigned_pages(cfg: RunConfig, lg: str, person_ids: list[int]) -> list[Any]:
    """The same pages the window issues, built by the certificate service's own steps, never stored."""
    from jumin.audit.domain import Actor, ActorKind
    from jumin.certificates import service as certificates
    from jumin.certificates.domain import issue_number
    from jumin.certificates.schemas import WindowIssueRequest
    from jumin.db import make_engine, unit_of_work
    from jumin.network_client import default_network_client

    engine = make_engine(cfg.municipal_url)
    contents = []
    try:
        with unit_of_work(engine) as session:
            ctx = certificates.context(
                actor=Actor(kind=ActorKind.STAFF, actor_id="bench-baseline", organisation_code=lg),
                lg_code=lg,
                network=default_network_client(),
            )
            for n, pid in enumerate(person_ids, start=1):
                request = WindowIssueRequest.model_validate(
                    {"kind": "record_copy", "form": "individual", "person_ids": [pid],
                     "requester": {"kind": "self", "person_id": pid}}
                )  # fmt: skip
                prepared = certificates._prepare_window(session, ctx, request)
                contents.append(
                    certificates._content(
                        session,
                        prepared,
                        issuer=certificates._issuer(lg),
                        number=issue_number(lg, ctx.today.year, n),
                        code=certificates._new_code(),
                        url="http://127.0.0.1/certificates/verify",
                        issue_date=ctx.today,
                    )
                )
            session.rollback()  # the reads' audit entries belong to no real issuance
    finally:
        engine.dispose()
    return contents


def pdf(cfg: RunConfig, actors: Actors, port: int, ui: UI) -> dict[str, Any]:
    from jumin.certificates.fonts import load_fonts
    from jumin.certificates.pdf import render_pdf
    from jumin.certificates.settings import load_settings
    from jumin.certificates.signing import sign_pdf, signer_for

    lg = actors.lg_code
    with connect(cfg.municipal_url) as conn:
        ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM persons WHERE lg_code = %s AND lifecycle = 'live' "
                "ORDER BY random() LIMIT 2000",
                (lg,),
            ).fetchall()
        ]
    path = "/certificates/window"

    def request(i: int) -> load.Request:
        pid = ids[i % len(ids)]
        body = {
            "kind": "record_copy",
            "form": "individual",
            "person_ids": [pid],
            "requester": {"kind": "self", "person_id": pid},
        }
        return load.Request.json("POST", path, body, actors.clerk_token)

    ui.say(f"住民票の写し (署名つきPDF): {cfg.pdf_concurrency} 並列 × {cfg.duration:.0f} 秒")
    http = load.run(
        load.http_load(
            "127.0.0.1",
            port,
            request,
            concurrency=cfg.pdf_concurrency,
            duration=cfg.duration,
            warmup=cfg.warmup,
        )
    )
    ui.say("PDFの基準: 同じページを署名なしで作成 (このプロセス、1コア)")
    contents = _unsigned_pages(cfg, lg, ids[:5])
    fonts = load_fonts()
    rendered: list[bytes] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < max(cfg.duration / 2, 1.0) or not rendered:
        data, _pages = render_pdf(fonts, contents[len(rendered) % len(contents)])
        rendered.append(data)
    render_seconds = time.monotonic() - t0
    municipality = load_settings().municipality(lg)
    signer = signer_for(
        lg_code=lg,
        municipality=municipality.name,
        mayor_title=municipality.mayor_title,
        now=dt.datetime.now(dt.UTC),
    )
    signed = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < max(cfg.duration / 4, 1.0) or signed == 0:
        sign_pdf(rendered[signed % len(rendered)], signer, reason="性能測定", location=municipality.name)
        signed += 1
    sign_seconds = time.monotonic() - t0
    return {
        "figure": http.rate,
        "baseline": len(rendered) / render_seconds,
        "details": {
            "http": http.summary(),
            "lg_code": lg,
            "document": "住民票の写し, individual form, one person",
            "unsigned_render_per_second": round(len(rendered) / render_seconds, 1),
            "signing_only_per_second": round(signed / sign_seconds, 1),
            "average_pdf_bytes": int(sum(len(r) for r in rendered) / len(rendered)),
        },
        "latencies": {"署名つきPDF (HTTP)": http.latencies_ms},
    }
