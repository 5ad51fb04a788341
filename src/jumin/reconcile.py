"""Reconcile: does the national identity store hold what each municipal register says?

An operator's tool, and the only module that asks both sides: each side computes its
own digest through its own service (registry.relay.register_digest on the municipal
database, network.identity.service.identity_digest on the national one) under a salt
drawn for this run, and only keyed hashes meet here. Neither side reads the other's
tables; this module reads no table at all.

The comparison is per 住民票コード. A code the register holds but the national store
shows under another municipality is not a difference when that municipality's record
began later (the person moved on and the register's record is the older one); every
other mismatch is listed with the fields that differ, by name, never by value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from secrets import token_bytes
from typing import Annotated

import typer
from sqlalchemy import Engine

from jumin.core.errors import DomainError
from jumin.core.ids import LgCode
from jumin.core.replication import IDENTITY_FIELDS, MunicipalityDigest
from jumin.db import default_engine, national_engine, unit_of_work
from jumin.network.identity import service as national
from jumin.registry import relay as municipal


class DifferenceKind(StrEnum):
    MISSING = "missing"  # the register holds the person; the national store has no such code
    HELD_ELSEWHERE = "held_elsewhere"  # the national store shows an older record elsewhere
    UNEXPECTED = "unexpected"  # the national store shows the person here; the register does not
    FIELDS = "fields"  # both hold the person, with different identity information


@dataclass(frozen=True, slots=True)
class PersonDifference:
    lg_code: str
    resident_code: str
    kind: DifferenceKind
    fields: tuple[str, ...] = ()
    national_lg_code: str | None = None


@dataclass(frozen=True, slots=True)
class MunicipalityReport:
    lg_code: str
    municipal_count: int
    national_count: int
    municipal_hash: str
    national_hash: str
    moved_on: int  # register records superseded by a later record elsewhere
    differences: tuple[PersonDifference, ...]

    @property
    def clean(self) -> bool:
        return not self.differences and self.municipal_hash == self.national_hash


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    municipalities: tuple[MunicipalityReport, ...] = field(default_factory=tuple)

    @property
    def clean(self) -> bool:
        return all(m.clean for m in self.municipalities)

    @property
    def differences(self) -> list[PersonDifference]:
        return [d for m in self.municipalities for d in m.differences]


def compare(
    municipal_side: MunicipalityDigest,
    national_side: MunicipalityDigest,
    holders: Mapping[str, tuple[str, dt.date | None]],
) -> MunicipalityReport:
    """Both sides' digests of one municipality, person by person (pure: no I/O)."""
    lg_code = municipal_side.lg_code
    mine = dict(municipal_side.persons)
    theirs = national_side.persons
    differences: list[PersonDifference] = []
    moved_on = 0
    for code in sorted(set(mine) - set(theirs)):
        holder = holders.get(code)
        started = mine[code].started_on
        if holder is not None and holder[0] != lg_code:
            other_started = holder[1]
            if other_started is not None and started is not None and other_started >= started:
                moved_on += 1
                del mine[code]
                continue
            differences.append(PersonDifference(lg_code, code, DifferenceKind.HELD_ELSEWHERE, (), holder[0]))
        else:
            differences.append(PersonDifference(lg_code, code, DifferenceKind.MISSING))
    for code in sorted(set(theirs) - set(municipal_side.persons)):
        differences.append(PersonDifference(lg_code, code, DifferenceKind.UNEXPECTED, (), lg_code))
    for code in sorted(set(mine) & set(theirs)):
        if mine[code].digest != theirs[code].digest:
            fields = tuple(f for f in IDENTITY_FIELDS if mine[code].fields[f] != theirs[code].fields[f])
            differences.append(PersonDifference(lg_code, code, DifferenceKind.FIELDS, fields, lg_code))
    kept = MunicipalityDigest(lg_code=lg_code, persons=mine)
    return MunicipalityReport(
        lg_code=lg_code,
        municipal_count=kept.count,
        national_count=national_side.count,
        municipal_hash=kept.combined,
        national_hash=national_side.combined,
        moved_on=moved_on,
        differences=tuple(differences),
    )


def reconcile(
    *,
    lg_codes: Sequence[str] | None = None,
    municipal_engine: Engine | None = None,
    national_db: Engine | None = None,
) -> ReconcileReport:
    """Ask each side for its digests (each side audits its own reading) and compare them."""
    salt = token_bytes(32)
    with unit_of_work(municipal_engine or default_engine()) as session:
        codes = list(lg_codes) if lg_codes else municipal.served_municipalities(session)
        registers = {lg: municipal.register_digest(session, lg_code=lg, salt=salt) for lg in codes}
    with unit_of_work(national_db or national_engine()) as session:
        stores = {lg: national.identity_digest(session, lg_code=lg, salt=salt) for lg in codes}
        absent = sorted(
            {code for lg in codes for code in registers[lg].persons if code not in stores[lg].persons}
        )
        holders = national.holders_of(session, absent)
    return ReconcileReport(tuple(compare(registers[lg], stores[lg], holders) for lg in codes))


def reconcile_command(
    lg: Annotated[
        list[str] | None,
        typer.Option(
            "--lg", help="この団体だけ確認する (複数指定可。省略時は市区町村側データベースの全団体)"
        ),
    ] = None,
) -> None:
    """市区町村の住民基本台帳と全国センターの本人確認情報を照合する (一致すれば終了コード 0、不一致は 1)。"""
    from jumin.cli_support import fail, print_json

    try:
        codes = [LgCode.parse(c, field="--lg").value for c in lg] if lg else None
        report = reconcile(lg_codes=codes)
    except DomainError as exc:
        fail(f"{exc.title} ({exc.field}): {exc.detail}" if exc.field else f"{exc.title}: {exc.detail}")
    for m in report.municipalities:
        print_json(
            {
                "lg_code": m.lg_code,
                "clean": m.clean,
                "municipal_count": m.municipal_count,
                "national_count": m.national_count,
                "municipal_hash": m.municipal_hash,
                "national_hash": m.national_hash,
                "moved_on": m.moved_on,
                "differences": len(m.differences),
            }
        )
        for d in m.differences:
            print_json(
                {
                    "lg_code": d.lg_code,
                    "resident_code": d.resident_code,
                    "difference": d.kind.value,
                    "fields": list(d.fields),
                    "national_lg_code": d.national_lg_code,
                }
            )
    typer.echo(
        "一致しました。" if report.clean else f"{len(report.differences)}人の本人確認情報が一致しません。",
        err=True,
    )
    if not report.clean:
        raise typer.Exit(1)
