"""Workers of the agency side: batch verification, prefecture extraction, webhook delivery.

Each worker is given ``units``, a factory of units of work on the national database
(``jumin.db.unit_of_work`` bound to the national engine; a test passes its own). A
worker commits its progress step by step, so the job's state is visible while it runs
(a batch's processed/total), and it never holds a transaction open while it waits on
the network (webhooks). Files of personal data are sealed (storage.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.orm import Session

from jumin.core.errors import DomainError, InvalidValue
from jumin.db import utcnow
from jumin.network.agencies import service, storage
from jumin.network.agencies.domain import (
    MAX_BATCH_ROWS,
    BatchRow,
    BatchStatus,
    RowError,
    parse_batch_header,
    parse_batch_row,
)
from jumin.request_context import set_request_id

Units = Callable[[], AbstractContextManager[Session]]
Progress = Callable[[int, int], None]

log = logging.getLogger("jumin.network.agencies")

CHUNK_ROWS = 1_000
ERROR_FLUSH = 1_000
# Files up to this many rows are parsed once: the second pass takes the first pass's rows
# (about 0.5 KB each) instead of reading and parsing the file again, which was a third of
# a batch's time. Larger files are read twice, so memory stays bounded whatever the size.
KEEP_PARSED_ROWS = 100_000


class _FileProblem(Exception):
    """The file as a whole cannot be read; the message names the line and never quotes data."""


def _rows(spec: service.BatchSpec) -> Iterator[BatchRow | RowError]:
    """Every data row of the uploaded file, parsed or refused, streamed from the sealed file."""
    path, purpose = service.batch_input(spec.id)
    with storage.open_text(path, purpose=purpose, encoding=service.ENCODINGS[spec.encoding]) as text:
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise _FileProblem(f"1行目（見出し行）: CSVの形式が正しくありません（{exc}）。") from None
        if header is None:
            raise _FileProblem("CSVが空です。見出し行とデータ行を送ってください。")
        try:
            columns = parse_batch_header(spec.kind, header)
        except InvalidValue as exc:
            raise _FileProblem(exc.detail) from None
        count = 0
        last_line = reader.line_num
        while True:
            start = last_line + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _FileProblem(f"{start}行目: CSVの形式が正しくありません（{exc}）。") from None
            last_line = reader.line_num
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # a blank line
            count += 1
            if count > MAX_BATCH_ROWS:
                raise _FileProblem(f"{start}行目: データ行が上限の{MAX_BATCH_ROWS:,}行を超えています。")
            yield parse_batch_row(spec.kind, columns, start, values)


@dataclass
class BatchOutcome:
    job_id: str
    status: BatchStatus | None = None  # None: another worker had it
    total: int = 0
    bad: int = 0


def run_batch(
    units: Units, job_id: str, *, on_progress: Progress | None = None, stale: bool = False
) -> BatchOutcome:
    """Validate the whole file, then verify its rows in chunks and write the sealed result.

    Pass 1 records every bad row (line number, column, reason). With on_error=reject_all
    and any bad row the job ends "rejected" and nothing is verified; otherwise pass 2
    verifies the valid rows chunk by chunk (one unit of work each: queries, audit,
    progress) and marks bad rows "invalid" in the result.
    """
    set_request_id(f"batch-{job_id}")
    outcome = BatchOutcome(job_id)
    with units() as session:
        spec = service.claim_batch(session, job_id=job_id, stale=stale)
    if spec is None:
        return outcome
    writer: storage.SealedWriter | None = None
    try:
        total = bad = 0
        pending: list[RowError] = []
        kept: list[BatchRow | RowError] | None = []
        for row in _rows(spec):
            total += 1
            if kept is not None:
                kept.append(row)
                if len(kept) > KEEP_PARSED_ROWS:
                    kept = None
            if isinstance(row, RowError):
                bad += 1
                pending.append(row)
                if len(pending) >= ERROR_FLUSH:
                    with units() as session:
                        service.record_row_errors(session, job_id=job_id, errors=pending)
                    pending = []
        with units() as session:
            service.record_row_errors(session, job_id=job_id, errors=pending)
            status = service.finish_validation(session, spec=spec, total=total, bad=bad)
        outcome.total, outcome.bad, outcome.status = total, bad, status
        if on_progress:
            on_progress(0, total)
        if status is BatchStatus.REJECTED:
            return outcome
        path, purpose = service.batch_result_file(job_id)
        writer = storage.SealedWriter(path, purpose=purpose)
        text = storage.text_writer(writer)
        out = csv.writer(text, lineterminator="\r\n")
        with units() as session:
            columns = service.batch_result_columns(spec.task_code)
        out.writerow(columns)
        processed = 0
        chunk: list[BatchRow | RowError] = []

        def flush(rows: list[BatchRow | RowError]) -> int:
            with units() as session:
                results = service.verify_batch_chunk(session, spec=spec, rows=rows)
            for result in results:
                out.writerow(service.result_values(columns, result))
            return len(results)

        for row in kept if kept is not None else _rows(spec):
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                processed += flush(chunk)
                chunk = []
                if on_progress:
                    on_progress(processed, total)
        if chunk:
            processed += flush(chunk)
        storage.finish_text(text)
        writer.close()
        with units() as session:
            service.finish_batch(session, job_id=job_id, result_sha256=writer.sha256)
        if on_progress:
            on_progress(processed, total)
        outcome.status = BatchStatus.DONE
        return outcome
    except (_FileProblem, DomainError) as problem:
        reason = str(problem) if isinstance(problem, _FileProblem) else problem.detail
        return _fail(units, outcome, writer, reason)
    except storage.SealedFileError:
        log.error("batch input unreadable", extra={"job_id": job_id})
        return _fail(
            units, outcome, writer, "アップロードされたファイルを読み取れません。再度送ってください。"
        )
    except Exception as exc:
        log.error("batch failed", extra={"job_id": job_id, "exc_type": type(exc).__name__})
        return _fail(units, outcome, writer, "照合中に内部エラーが発生しました。運用者に連絡してください。")


def _fail(
    units: Units, outcome: BatchOutcome, writer: storage.SealedWriter | None, reason: str
) -> BatchOutcome:
    if writer is not None:
        writer.abort()
    with units() as session:
        service.fail_batch(session, job_id=outcome.job_id, reason=reason)
    outcome.status = BatchStatus.FAILED
    return outcome


def run_pending_batches(units: Units, *, stale: bool = False) -> list[BatchOutcome]:
    with units() as session:
        ids = service.pending_batches(session, stale=stale)
    return [run_batch(units, job_id, stale=stale) for job_id in ids]


# --- prefecture extraction ------------------------------------------------------------------------


def _pyarrow() -> tuple[Any, Any] | None:
    """pyarrow and pyarrow.parquet if installed (Parquet output is optional)."""
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        return None


class _ParquetOut:
    """One row group per page of the extraction, built from its columns."""

    def __init__(self, pa: Any, pq: Any, sink: storage.SealedWriter) -> None:
        self.pa = pa
        self.schema = pa.schema(
            [
                ("prefecture_code", pa.string()),
                ("lg_code", pa.string()),
                ("municipality", pa.string()),
                ("resident_code", pa.string()),
                ("name", pa.string()),
                ("name_kana", pa.string()),
                ("birth_date", pa.date32()),
                ("sex", pa.string()),
                ("age", pa.int16()),
                ("address", pa.string()),
            ]
        )
        self.writer = pq.ParquetWriter(sink, self.schema, compression="zstd")

    def add(self, page: service.ExtractionColumns) -> None:
        arrays = [self.pa.array(page[f.name], type=f.type) for f in self.schema]
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


@dataclass
class ExtractionOutcome:
    extraction_id: str
    status: str | None = None
    rows: int = 0
    formats: list[str] = field(default_factory=list)


def produce_extraction(units: Units, extraction_id: str, *, stale: bool = False) -> ExtractionOutcome:
    """Write the approved extraction as sealed CSV (UTF-8 with BOM) and Parquet, in one snapshot.

    The read, the access-log rows and the audit entry with the row count and both file
    hashes are one transaction: either the files exist and everything is recorded, or
    neither.
    """
    set_request_id(f"extraction-{extraction_id}")
    outcome = ExtractionOutcome(extraction_id)
    with units() as session:
        spec = service.claim_extraction(session, extraction_id=extraction_id, stale=stale)
    if spec is None:
        return outcome
    csv_path, csv_purpose = service.extraction_file_path(extraction_id, "csv")
    csv_sink = storage.SealedWriter(csv_path, purpose=csv_purpose)
    arrow = _pyarrow()
    pq_sink: storage.SealedWriter | None = None
    parquet: _ParquetOut | None = None
    try:
        text = storage.text_writer(csv_sink, encoding="utf-8-sig")
        out = csv.writer(text, lineterminator="\r\n")
        out.writerow(service.EXTRACTION_COLUMNS)
        if arrow is not None:
            pq_path, pq_purpose = service.extraction_file_path(extraction_id, "parquet")
            pq_sink = storage.SealedWriter(pq_path, purpose=pq_purpose)
            parquet = _ParquetOut(arrow[0], arrow[1], pq_sink)
        count = 0
        with units() as session:
            for page in service.extraction_rows(session, spec=spec):
                out.writerows(zip(*(page[c] for c in service.EXTRACTION_COLUMNS), strict=True))
                if parquet is not None:
                    parquet.add(page)
                count += len(page["lg_code"])
            storage.finish_text(text)
            csv_sink.close()
            if parquet is not None and pq_sink is not None:
                parquet.close()
                pq_sink.close()
            service.finish_extraction(
                session,
                spec=spec,
                row_count=count,
                csv_sha256=csv_sink.sha256,
                parquet_sha256=pq_sink.sha256 if pq_sink is not None else None,
            )
        outcome.status = "ready"
        outcome.rows = count
        outcome.formats = ["csv"] + (["parquet"] if pq_sink is not None else [])
        return outcome
    except Exception as exc:
        log.error("extraction failed", extra={"extraction_id": extraction_id, "exc_type": type(exc).__name__})
        csv_sink.abort()
        if pq_sink is not None:
            pq_sink.abort()
        with units() as session:
            service.fail_extraction(
                session,
                extraction_id=extraction_id,
                reason="抽出中に内部エラーが発生しました。運用者に連絡してください。",
            )
        outcome.status = "failed"
        return outcome


def run_pending_extractions(units: Units, *, stale: bool = False) -> list[ExtractionOutcome]:
    with units() as session:
        ids = service.pending_extractions(session, stale=stale)
    return [produce_extraction(units, i, stale=stale) for i in ids]


# --- webhooks -------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    attempted: int = 0
    delivered: int = 0
    failed: int = 0
    events: int = 0


def deliver_webhooks(
    units: Units,
    *,
    http: httpx.Client,
    now: dt.datetime | None = None,
    max_pages: int = 10,
    timeout: float = 10.0,
) -> DeliveryReport:
    """Send due webhooks: each page signed (HMAC-SHA256), each attempt logged.

    A 2xx answer moves the subscription's cursor past the page; anything else (an error
    status, a timeout, a refused connection) schedules a retry with back-off and the
    same events go again. At-least-once: a receiver must ignore a delivery_id it has
    already processed. No transaction is open while waiting on the receiver.
    """
    report = DeliveryReport()
    at = now or utcnow()
    with units() as session:
        due = service.due_webhooks(session, now=at)
    for subscription_id in due:
        for _ in range(max_pages):
            set_request_id(f"webhook-{subscription_id[:16]}")
            with units() as session:
                prepared = service.prepare_webhook(session, subscription_id=subscription_id, now=at)
            if prepared is None:
                break
            report.attempted += 1
            status_code: int | None = None
            error: str | None = None
            try:
                response = http.post(
                    prepared.url, content=prepared.body, headers=prepared.headers, timeout=timeout
                )
                status_code = response.status_code
                delivered = 200 <= response.status_code < 300
                if not delivered:
                    error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                delivered = False
                error = type(exc).__name__
            with units() as session:
                service.finish_webhook(
                    session,
                    prepared=prepared,
                    delivered=delivered,
                    status_code=status_code,
                    error=error,
                    now=at,
                )
            if not delivered:
                report.failed += 1
                break
            report.delivered += 1
            report.events += prepared.events
    return report
