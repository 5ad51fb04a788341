"""Import and export of whole directories: the operator's use cases, one municipality per transaction.

Like ``jumin.reconcile``, this is an operator's tool that works on both sides: the
municipal register through the interchange's municipal modules (importer, exporter,
and registry's own outbox and relay functions) and the national store through
``interchange.national``, handing over nothing but the outbox's wire messages. The two
sides never import each other; only this module joins them, and only in one process.

National feeding (``national``):

- ``seed`` (default): after a municipality commits, its outbox messages are applied to
  the national store in bulk (interchange.national) and marked delivered; what cannot
  be seeded stays in the outbox for the relay.
- ``relay``: nothing more; the relay (``jumin registry relay`` or ``jumin serve``) delivers
  the outbox over HTTP through the inbox, message by message.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from jumin.audit.domain import Actor, ActorKind
from jumin.db import default_engine, make_engine, national_engine, unit_of_work, utcnow
from jumin.interchange import national
from jumin.interchange.exporter import export_municipality, exportable_municipalities
from jumin.interchange.files import InterchangeWriter, MunicipalityRows, check_directory, read_municipalities
from jumin.interchange.importer import (
    IMPORT_ACTOR_ID,
    ImportOutcome,
    import_municipality,
    reclaim_delivered_outbox,
)
from jumin.interchange.importer import refresh_statistics as importer_statistics
from jumin.interchange.layout import ALIASES, CARDS, EVENTS, FOREIGN_RESIDENTS, HOUSEHOLDS, PERSONS, RowError
from jumin.interchange.validate import validate_municipality
from jumin.registry import relay
from jumin.registry import service as registry
from jumin.request_context import current_request_id, set_request_id

__all__ = [
    "ExportReport",
    "ImportReport",
    "NationalFeed",
    "default_workers",
    "export_directory",
    "import_directory",
    "seed_national",
]

SEED_PAGE = 5_000
# Small municipalities are seeded together: per-transaction costs, not per-person ones,
# dominate below a few thousand residents.
SEED_GROUP = 20_000
# Residents imported before the first ANALYZE (then at each doubling).
STATISTICS_FROM = 2_000


class NationalFeed(StrEnum):
    SEED = "seed"
    RELAY = "relay"


@dataclass
class ImportReport:
    municipalities: list[ImportOutcome] = field(default_factory=list)
    fatal: list[RowError] = field(default_factory=list)
    seeded: int = 0
    left_for_relay: int = 0
    seconds: float = 0.0

    @property
    def errors(self) -> list[RowError]:
        return self.fatal + [e for m in self.municipalities for e in m.errors]

    @property
    def imported_persons(self) -> int:
        return sum(m.persons for m in self.municipalities if m.status == "imported")

    @property
    def ok(self) -> bool:
        return not self.errors


def _actor(lg_code: str, operator: str) -> Actor:
    return Actor(kind=ActorKind.SYSTEM, actor_id=f"{IMPORT_ACTOR_ID}:{operator}", organisation_code=lg_code)


def seed_national(
    lg_codes: Sequence[str],
    *,
    municipal_engine: Engine | None = None,
    national_db: Engine | None = None,
    now: Callable[[], dt.datetime] = utcnow,
) -> tuple[int, int]:
    """Apply these municipalities' undelivered outbox to the national store in bulk.

    Returns (messages applied or already there, messages left for the relay). Each page
    is read in one municipal transaction, applied in one national transaction and
    acknowledged in another municipal one, as the relay does: a crash in between leaves
    the messages undelivered, and the next run finds them applied ("duplicate").
    """
    municipal = municipal_engine or default_engine()
    target = national_db or national_engine()
    wanted = set(lg_codes)
    only = next(iter(wanted)) if len(wanted) == 1 else None
    applied = left = 0
    after_id = 0
    while wanted:
        with unit_of_work(municipal) as session:
            page = registry.outbox(
                session, lg_code=only, undelivered_only=True, after_id=after_id, limit=SEED_PAGE
            )
            by_sender: dict[str, list[dict[str, Any]]] = {}
            for message, payload in page:
                if message.lg_code in wanted:
                    by_sender.setdefault(message.lg_code, []).append(relay.wire_message(message, payload))
        if not page:
            break
        after_id = page[-1][0].id
        outcomes: dict[str, national.SeedOutcome] = {}
        with unit_of_work(target) as session:
            for sender, wire in by_sender.items():
                outcomes[sender] = national.seed_identities(session, sender=sender, messages=wire, now=now())
        with unit_of_work(municipal) as session:
            for sender, outcome in outcomes.items():
                if not outcome.statuses:
                    continue
                done = tuple(w for w in by_sender[sender] if w["idempotency_key"] in outcome.statuses)
                batch = relay.OutgoingBatch(sender=sender, first_id=after_id, last_id=after_id, messages=done)
                relay.acknowledge(session, batch=batch, statuses=outcome.statuses, now=now())
        for sender, wire in by_sender.items():
            applied += len(outcomes[sender].statuses)
            left += len(wire) - len(outcomes[sender].statuses)
        if len(page) < SEED_PAGE:
            break
    return applied, left


def seed_messages(
    messages: dict[str, list[dict[str, Any]]],
    *,
    municipal_engine: Engine | None = None,
    national_db: Engine | None = None,
    now: Callable[[], dt.datetime] = utcnow,
) -> tuple[int, int]:
    """Seed messages just written to the municipalities' outboxes (by sender), then mark them delivered.

    The same three steps as :func:`seed_national`, without reading back what the import
    has in hand.
    """
    outcomes: dict[str, national.SeedOutcome] = {}
    with unit_of_work(national_db or national_engine()) as session:
        for sender, wire in messages.items():
            outcomes[sender] = national.seed_identities(session, sender=sender, messages=wire, now=now())
    with unit_of_work(municipal_engine or default_engine()) as session:
        for sender, outcome in outcomes.items():
            if outcome.statuses:
                done = tuple(w for w in messages[sender] if w["idempotency_key"] in outcome.statuses)
                batch = relay.OutgoingBatch(sender=sender, first_id=0, last_id=0, messages=done)
                relay.acknowledge(session, batch=batch, statuses=outcome.statuses, now=now())
    applied = sum(len(o.statuses) for o in outcomes.values())
    return applied, sum(len(w) for w in messages.values()) - applied


class _MunicipalityImporter:
    """Imports municipalities one transaction each and seeds the national store in groups."""

    def __init__(
        self,
        *,
        engine: Engine,
        national_db: Engine | None,
        feed: NationalFeed,
        operator: str,
        check_only: bool,
        now: Callable[[], dt.datetime],
        request_id: str,
        keep_statistics: bool = True,
    ) -> None:
        self.engine = engine
        self.national_db = national_db
        self.seeding = feed is NationalFeed.SEED and not check_only
        # None in a worker process: the parent counts the whole import and refreshes the
        # statistics itself (each chunk's importer would start counting from zero again).
        self.statistics = (
            _Statistics(engine, (national_db or national_engine()) if self.seeding else None)
            if keep_statistics and not check_only
            else None
        )
        self.operator = operator
        self.check_only = check_only
        self.now = now
        self.request_id = request_id
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.pending_count = 0
        self.seeded = 0
        self.left = 0
        self.imported = 0

    def one(self, batch: MunicipalityRows) -> ImportOutcome:
        started = time.monotonic()
        valid, errors = validate_municipality(batch)
        if valid is None:
            outcome = ImportOutcome(batch.lg_code, "refused", persons=batch.count(PERSONS), errors=errors)
        else:
            with unit_of_work(self.engine) as session:
                outcome = import_municipality(
                    session,
                    valid,
                    actor=_actor(batch.lg_code, self.operator),
                    now=self.now(),
                    request_id=self.request_id,
                    keep_messages=self.seeding,
                )
                if self.check_only or outcome.status != "imported":
                    session.rollback()
            if self.check_only and outcome.status == "imported":
                outcome.status = "checked"
            if outcome.status == "refused":
                outcome.persons = batch.count(PERSONS)
        outcome.seconds = time.monotonic() - started
        if outcome.status == "imported":
            self.imported += outcome.persons
        if self.seeding and outcome.status == "imported":
            self.pending[outcome.lg_code] = outcome.messages
            self.pending_count += len(outcome.messages)
            outcome.messages = []
            if self.pending_count >= SEED_GROUP:
                self.flush()
        elif self.seeding and outcome.status == "skipped":
            # A re-run finishes what an interrupted one left in the outbox.
            applied, left = seed_national(
                [outcome.lg_code], municipal_engine=self.engine, national_db=self.national_db, now=self.now
            )
            self.seeded += applied
            self.left += left
        if self.statistics is not None and self.statistics.due(self.imported):
            self.flush()  # the national tables hold this share too before they are analysed
            self.statistics.refresh(self.imported)
        return outcome

    def flush(self) -> None:
        if not self.pending:
            return
        applied, left = seed_messages(
            self.pending, municipal_engine=self.engine, national_db=self.national_db, now=self.now
        )
        self.seeded += applied
        self.left += left
        self.pending, self.pending_count = {}, 0
        reclaim_delivered_outbox(self.engine)


def refresh_statistics(municipal_engine: Engine, national_db: Engine | None) -> None:
    """ANALYZE the register's tables, and the national store's unless ``national_db`` is None."""
    with unit_of_work(municipal_engine) as session:
        importer_statistics(session)
    if national_db is not None:
        with unit_of_work(national_db) as session:
            national.refresh_statistics(session)


@dataclass
class _Statistics:
    """When to refresh the statistics: each time the import has doubled, a handful of times
    for a whole country, so that no plan outlives its table's growth by much.

    Counted over the whole import, never per worker or per chunk: at 10,000,000 residents
    in chunks of 20,000, a count restarting with each chunk made 2,000 rounds of ANALYZE
    over tables of several GB each (each samples up to 30,000 pages), most of the server's
    work late in an import.
    """

    municipal: Engine
    national: Engine | None  # None: the national store is not being seeded
    analyzed_at: int = 0

    def due(self, imported: int) -> bool:
        return imported >= max(2 * self.analyzed_at, STATISTICS_FROM)

    def refresh(self, imported: int) -> None:
        refresh_statistics(self.municipal, self.national)
        self.analyzed_at = imported


# Engines of a worker process, made once per process from the URLs it is given.
_worker_engines: dict[str, Engine] = {}


def _worker_engine(url: str) -> Engine:
    if url not in _worker_engines:
        _worker_engines[url] = make_engine(url)
    return _worker_engines[url]


@dataclass(frozen=True)
class _Chunk:
    batches: list[MunicipalityRows]
    municipal_url: str
    national_url: str
    feed: NationalFeed
    operator: str
    check_only: bool
    request_id: str


def _import_chunk(chunk: _Chunk) -> tuple[list[ImportOutcome], int, int]:
    """A worker process's share: these municipalities, then their national seed."""
    set_request_id(chunk.request_id)
    importer = _MunicipalityImporter(
        engine=_worker_engine(chunk.municipal_url),
        national_db=_worker_engine(chunk.national_url),
        feed=chunk.feed,
        operator=chunk.operator,
        check_only=chunk.check_only,
        now=utcnow,
        request_id=chunk.request_id,
        keep_statistics=False,
    )
    outcomes = [importer.one(batch) for batch in chunk.batches]
    importer.flush()
    return outcomes, importer.seeded, importer.left


def _chunks_of(batches: Iterable[MunicipalityRows], residents: int) -> Iterator[list[MunicipalityRows]]:
    """Consecutive municipalities grouped up to about ``residents`` (a large one goes alone)."""
    chunk: list[MunicipalityRows] = []
    size = 0
    for batch in batches:
        chunk.append(batch)
        size += batch.count(PERSONS)
        if size >= residents:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def default_workers(engine: Engine) -> int:
    """One process per core on PostgreSQL; SQLite has one writer at a time."""
    if engine.dialect.name != "postgresql":
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def import_directory(
    directory: Path,
    *,
    municipal_engine: Engine | None = None,
    national_db: Engine | None = None,
    feed: NationalFeed = NationalFeed.SEED,
    operator: str = "cli",
    check_only: bool = False,
    workers: int = 1,
    on_start: Callable[[int], None] | None = None,
    on_municipality: Callable[[ImportOutcome], None] | None = None,
    now: Callable[[], dt.datetime] = utcnow,
) -> ImportReport:
    """Validate every row, then import each municipality whole or not at all.

    ``on_start`` gets the number of residents in the files, ``on_municipality`` each
    municipality's outcome as it finishes (progress bars). With ``check_only`` nothing is
    written: every row is checked, including against the register's live records.

    With ``workers`` > 1 (PostgreSQL only), municipalities are imported by that many
    processes at once, each its own municipalities and their national seed; the report
    lists them in the files' order all the same.
    """
    started = time.monotonic()
    report = ImportReport()
    summary = check_directory(directory)
    report.fatal = summary.errors
    if summary.errors:
        report.seconds = time.monotonic() - started
        return report
    if on_start is not None:
        on_start(summary.total_residents)
    engine = municipal_engine or default_engine()
    target = national_db or national_engine()
    parallel = workers > 1 and engine.dialect.name == "postgresql" and target.dialect.name == "postgresql"

    def finished(outcome: ImportOutcome) -> None:
        report.municipalities.append(outcome)
        if on_municipality is not None:
            on_municipality(outcome)

    if not parallel:
        importer = _MunicipalityImporter(
            engine=engine,
            national_db=target,
            feed=feed,
            operator=operator,
            check_only=check_only,
            now=now,
            request_id=current_request_id(),
        )
        try:
            for batch in read_municipalities(directory):
                finished(importer.one(batch))
        finally:
            importer.flush()
            report.seeded += importer.seeded
            report.left_for_relay += importer.left
        report.seconds = time.monotonic() - started
        return report

    def chunk(batches: list[MunicipalityRows]) -> _Chunk:
        return _Chunk(
            batches=batches,
            municipal_url=engine.url.render_as_string(hide_password=False),
            national_url=target.url.render_as_string(hide_password=False),
            feed=feed,
            operator=operator,
            check_only=check_only,
            request_id=current_request_id(),
        )

    # Spawned, not forked: a fork would copy this process's connection pools and threads.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        in_flight: deque[Future[tuple[list[ImportOutcome], int, int]]] = deque()
        statistics = (
            None if check_only else _Statistics(engine, target if feed is NationalFeed.SEED else None)
        )

        def collect_oldest() -> None:
            outcomes, seeded, left = in_flight.popleft().result()
            report.seeded += seeded
            report.left_for_relay += left
            for outcome in outcomes:
                finished(outcome)
            imported = report.imported_persons
            if statistics is not None and statistics.due(imported):
                # The workers go on meanwhile: ANALYZE does not block their COPY.
                statistics.refresh(imported)

        # A few chunks per worker in flight: enough to keep every worker busy, and the
        # files are read no further ahead than that (memory stays flat).
        # Chunks small enough that the workers finish close together, large enough that
        # small municipalities still share their national seed.
        size = min(SEED_GROUP, max(1_000, summary.total_residents // (workers * 8)))
        for batches in _chunks_of(read_municipalities(directory), size):
            in_flight.append(pool.submit(_import_chunk, chunk(batches)))
            while len(in_flight) >= 2 * workers:
                collect_oldest()
        while in_flight:
            collect_oldest()
    report.seconds = time.monotonic() - started
    return report


@dataclass
class ExportReport:
    municipalities: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def export_directory(
    directory: Path,
    *,
    lg_codes: Sequence[str] | None = None,
    municipal_engine: Engine | None = None,
    operator: str = "cli",
    on_municipality: Callable[[str, int], None] | None = None,
    now: Callable[[], dt.datetime] = utcnow,
) -> ExportReport:
    """Write the register (or the named municipalities) in the interchange layout."""
    started = time.monotonic()
    engine = municipal_engine or default_engine()
    report = ExportReport()
    with unit_of_work(engine) as session:
        codes = sorted(lg_codes) if lg_codes else exportable_municipalities(session)
    meta: dict[str, Any] = {"exported_at": now().isoformat(), "municipalities": codes}
    with InterchangeWriter(directory, meta=meta) as writer:
        for lg in codes:
            with unit_of_work(engine) as session:
                out = export_municipality(session, lg_code=lg, actor=_actor(lg, operator), now=now())
            writer.write(HOUSEHOLDS, out.households)
            writer.write(PERSONS, out.persons)
            writer.write(FOREIGN_RESIDENTS, out.foreign)
            writer.write(ALIASES, out.aliases)
            writer.write(EVENTS, out.events)
            writer.write(CARDS, out.cards)
            report.municipalities.append(lg)
            if on_municipality is not None:
                on_municipality(lg, len(out.persons))
        report.counts = dict(writer.counts)
    report.seconds = time.monotonic() - started
    return report
