"""The card service's standing work: the identity sweep, webhook deliveries, the daily expiry.

``jumin card worker`` runs it as its own process beside a national server; ``jumin
serve`` (every role in one process) runs it in a background thread of the server
(``jumin.loopback``). Either way each step of a round is its own unit of work on the
national database, so a failing webhook receiver or a bad row never holds back the
revocations, and a failed round is logged and tried again on the next.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine

from jumin.card import fourfacts, service
from jumin.card.domain import today_jst
from jumin.db import national_engine, unit_of_work, utcnow

__all__ = ["CardWorker", "worker_round"]

log = logging.getLogger("jumin.card.worker")


def worker_round(
    *, expired_on: dt.date | None, post: fourfacts.Poster, engine: Engine | None = None
) -> tuple[dict[str, object], bool]:
    """One round: sweep, deliver, and the expiry run once per JST day.

    ``engine`` is the national database (the deployment's by default). Returns the counts
    (with ``expired_on``, the day the expiry last ran) and whether every step succeeded.
    """
    engine = engine or national_engine()
    report: dict[str, object] = {}
    ok = True
    today = today_jst(utcnow())
    try:
        with unit_of_work(engine) as session:
            r = service.sweep_identity_changes(session)
        report["sweep"] = {
            "history_rows": r.history_rows,
            "signing_revoked": r.signing_revoked,
            "cards_revoked": r.cards_revoked,
            "provisions": r.provisions,
        }
    except Exception as exc:  # logged and retried next round; the worker must not die
        log.exception("card sweep failed", extra={"error": type(exc).__name__})
        ok = False
    try:
        with unit_of_work(engine) as session:
            d = fourfacts.deliver_webhooks(session, post=post)
        report["deliver"] = {"attempted": d.attempted, "delivered": d.delivered, "failed": d.failed}
    except Exception as exc:
        log.exception("four-facts delivery failed", extra={"error": type(exc).__name__})
        ok = False
    if expired_on != today:
        try:
            with unit_of_work(engine) as session:
                cards, certs = service.expire(session, actor=service.national_actor())
            report["expire"] = {"cards": cards, "certificates": certs}
            expired_on = today
        except Exception as exc:
            log.exception("card expiry run failed", extra={"error": type(exc).__name__})
            ok = False
    report["expired_on"] = expired_on.isoformat() if expired_on else None
    return report, ok


@dataclass
class CardWorker:
    """Rounds of ``worker_round`` until ``stop`` is set; remembers the day of the last expiry run."""

    post: fourfacts.Poster
    engine: Engine | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    expired_on: dt.date | None = None

    def run_once(self) -> tuple[dict[str, object], bool]:
        report, ok = worker_round(expired_on=self.expired_on, post=self.post, engine=self.engine)
        last = report.get("expired_on")
        self.expired_on = dt.date.fromisoformat(last) if isinstance(last, str) else None
        return report, ok

    def run_forever(self, *, interval: float) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                report, _ok = self.run_once()
                if _did_something(report):
                    log.info("card worker round", extra={"report": report})
            except Exception:  # worker_round catches per step; this is the last guard
                log.exception("card worker round failed")
            self.stop.wait(max(0.0, interval - (time.monotonic() - started)))


def _did_something(report: dict[str, object]) -> bool:
    """A round worth a log line: it read identity changes, tried a delivery or ran the expiry
    (a quiet server logs nothing every 30 seconds)."""
    sweep, deliver = report.get("sweep"), report.get("deliver")
    return (
        "expire" in report
        or (isinstance(sweep, dict) and bool(sweep.get("history_rows")))
        or (isinstance(deliver, dict) and bool(deliver.get("attempted")))
    )
