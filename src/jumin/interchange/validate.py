"""Checking one municipality's rows: each row alone, then the rows against each other.

Pure: no database. Every bad row is reported with its file, line and reason; a
municipality with any bad row is refused whole (the caller imports nothing of it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from jumin.interchange.files import MunicipalityRows
from jumin.interchange.layout import (
    ALIASES,
    CARDS,
    EVENTS,
    FILES,
    FOREIGN_RESIDENTS,
    HOUSEHOLDS,
    PERSONS,
    REMOVAL_EVENT_KINDS,
    AliasRow,
    CardRow,
    EventRow,
    FileLayout,
    ForeignRow,
    HouseholdRow,
    PersonRow,
    RowError,
)

__all__ = ["ValidMunicipality", "validate_municipality"]

RELATIONSHIP_HEAD = "世帯主"
# What may still happen to a closed record (除票): corrections, and a planned 転出 that the
# destination's 転入通知 closed earlier than planned.
_AFTER_REMOVAL = REMOVAL_EVENT_KINDS | {"ex_officio_correction", "clerical_correction"}


@dataclass
class ValidMunicipality:
    """A municipality whose rows passed every check, in file order, with their line numbers."""

    lg_code: str
    digest: str
    households: list[tuple[int, HouseholdRow]] = field(default_factory=list)
    persons: list[tuple[int, PersonRow]] = field(default_factory=list)
    foreign: dict[str, ForeignRow] = field(default_factory=dict)  # by atena_no
    aliases: dict[str, list[AliasRow]] = field(default_factory=dict)
    events: list[tuple[int, EventRow]] = field(default_factory=list)
    cards: dict[str, CardRow] = field(default_factory=dict)


def _parse(batch: MunicipalityRows, layout: FileLayout[Any], errors: list[RowError]) -> list[tuple[int, Any]]:
    parsed: list[tuple[int, Any]] = []
    for line, values in batch.rows.get(layout.name, []):
        row, problems = layout.parse(values, line=line)
        if row is None:
            errors.extend(problems)
        else:
            parsed.append((line, row))
    return parsed


def validate_municipality(batch: MunicipalityRows) -> tuple[ValidMunicipality | None, list[RowError]]:
    """The municipality's typed rows, or every reason it cannot be imported."""
    errors: list[RowError] = []
    parsed = {layout.name: _parse(batch, layout, errors) for layout in FILES}
    lg = batch.lg_code
    valid = ValidMunicipality(lg, batch.digest)

    def err(layout: FileLayout[Any], line: int, reason: str, name: str | None = None) -> None:
        errors.append(RowError(layout.filename, line, reason, name, lg))

    households: dict[str, tuple[int, HouseholdRow]] = {}
    for line, h in parsed[HOUSEHOLDS.name]:
        if h.household_no in households:
            err(
                HOUSEHOLDS,
                line,
                f"世帯番号 {h.household_no} が重複しています ({households[h.household_no][0]}行目)",
                "household_no",
            )
        else:
            households[h.household_no] = (line, h)
            valid.households.append((line, h))

    persons: dict[str, tuple[int, PersonRow]] = {}
    live_codes: dict[str, int] = {}
    numbers: dict[str, int] = {}
    members: dict[str, list[PersonRow]] = defaultdict(list)
    for line, p in parsed[PERSONS.name]:
        if p.atena_no in persons:
            err(
                PERSONS,
                line,
                f"宛名番号 {p.atena_no} が重複しています ({persons[p.atena_no][0]}行目)",
                "atena_no",
            )
            continue
        persons[p.atena_no] = (line, p)
        if p.household_no not in households:
            err(PERSONS, line, f"世帯番号 {p.household_no} は households.csv にありません", "household_no")
        if p.status == "live":
            if p.resident_code in live_codes:
                err(
                    PERSONS,
                    line,
                    f"住民票コードが {live_codes[p.resident_code]}行目の住民と重複しています"
                    "（現に住民である住民票の住民票コードは一意です）",
                    "resident_code",
                )
            live_codes.setdefault(p.resident_code, line)
            members[p.household_no].append(p)
        if p.individual_number is not None:
            if p.individual_number in numbers and p.status == "live":
                err(
                    PERSONS,
                    line,
                    f"個人番号が {numbers[p.individual_number]}行目の住民と重複しています",
                    "individual_number",
                )
            numbers.setdefault(p.individual_number, line)
        valid.persons.append((line, p))

    # Rows that reference a person row refused above are not reported again: the person's
    # own errors say what is wrong, and a cascade of "not found" would only hide them.
    refused_atenas = {v[1] for _, v in batch.rows.get(PERSONS.name, []) if len(v) > 11} - persons.keys()
    refused_households = {
        v[11] for _, v in batch.rows.get(PERSONS.name, []) if len(v) > 11 and v[1] in refused_atenas
    }

    def missing(layout: FileLayout[Any], line: int, atena: str) -> None:
        if atena not in refused_atenas:
            err(layout, line, f"宛名番号 {atena} は persons.csv にありません", "atena_no")

    for no, (line, h) in households.items():
        if no in refused_households:
            continue
        live = members.get(no, [])
        heads = [p for p in live if p.relationship == RELATIONSHIP_HEAD]
        if h.member_count != len(live):
            err(
                HOUSEHOLDS,
                line,
                f"世帯員数 {h.member_count} が persons.csv の住民 {len(live)} 人と一致しません",
                "member_count",
            )
        if live and len(heads) != 1:
            err(
                HOUSEHOLDS,
                line,
                f"世帯主 (続柄「世帯主」の住民) が {len(heads)} 人です。1人でなければなりません",
                "head_atena_no",
            )
        elif live and h.head_atena_no != heads[0].atena_no:
            err(
                HOUSEHOLDS,
                line,
                f"世帯主の宛名番号が persons.csv の世帯主 ({heads[0].atena_no}) と一致しません",
                "head_atena_no",
            )
        elif not live and h.head_atena_no is not None:
            err(HOUSEHOLDS, line, "住民のいない世帯に世帯主は記載できません", "head_atena_no")

    for line, f in parsed[FOREIGN_RESIDENTS.name]:
        owner = persons.get(f.atena_no)
        if owner is None:
            missing(FOREIGN_RESIDENTS, line, f.atena_no)
        elif owner[1].resident_kind != "foreign":
            err(
                FOREIGN_RESIDENTS,
                line,
                "日本人住民の住民票に外国人住民の記載事項は記載できません",
                "atena_no",
            )
        elif f.atena_no in valid.foreign:
            err(FOREIGN_RESIDENTS, line, f"宛名番号 {f.atena_no} の行が重複しています", "atena_no")
        else:
            valid.foreign[f.atena_no] = f
    # A row that is there but bad was reported already; only a missing one is reported here.
    listed = {values[1] for _, values in batch.rows.get(FOREIGN_RESIDENTS.name, []) if len(values) > 1}
    for atena, (line, p) in persons.items():
        if p.resident_kind == "foreign" and atena not in listed:
            err(PERSONS, line, "外国人住民の住民票に foreign_residents.csv の行がありません", "resident_kind")

    for line, a in parsed[ALIASES.name]:
        if a.atena_no not in valid.foreign:
            if a.atena_no not in refused_atenas:
                err(ALIASES, line, f"宛名番号 {a.atena_no} は外国人住民の住民票ではありません", "atena_no")
            continue
        valid.aliases.setdefault(a.atena_no, []).append(a)
    for atena, history in valid.aliases.items():
        current = valid.foreign[atena].alias
        open_rows = [a for a in history if a.deleted_on is None]
        if current is None and open_rows:
            err(
                ALIASES,
                persons[atena][0],
                "通称のない住民票に削除されていない通称の履歴があります",
                "deleted_on",
            )
        elif current is not None and (history[-1].alias != current or history[-1].deleted_on is not None):
            err(ALIASES, persons[atena][0], "通称の履歴の最後の行が現在の通称と一致しません", "alias")
    for atena, f in valid.foreign.items():
        if f.alias is not None and atena not in valid.aliases:
            err(
                FOREIGN_RESIDENTS,
                persons[atena][0],
                "通称を記載した住民票に aliases.csv の履歴がありません",
                "alias",
            )

    groups: dict[str, tuple[int, EventRow]] = {}
    pairs: set[tuple[str, str]] = set()
    events_of: dict[str, list[EventRow]] = defaultdict(list)
    for line, e in parsed[EVENTS.name]:
        if e.atena_no not in persons:
            missing(EVENTS, line, e.atena_no)
            continue
        if (e.event_no, e.atena_no) in pairs:
            err(
                EVENTS,
                line,
                f"異動番号 {e.event_no} と宛名番号 {e.atena_no} の組が重複しています",
                "event_no",
            )
            continue
        pairs.add((e.event_no, e.atena_no))
        first = groups.get(e.event_no)
        if first is None:
            groups[e.event_no] = (line, e)
        elif (
            first[1].event_kind,
            first[1].effective_on,
            first[1].notified_on,
            first[1].late,
            first[1].reason,
        ) != (
            e.event_kind,
            e.effective_on,
            e.notified_on,
            e.late,
            e.reason,
        ):
            err(EVENTS, line, f"異動番号 {e.event_no} の事由・日付が {first[0]}行目と異なります", "event_no")
            continue
        events_of[e.atena_no].append(e)
        valid.events.append((line, e))
    for atena, (line, p) in persons.items():
        mine = events_of.get(atena, [])
        if not mine:
            err(
                PERSONS,
                line,
                "この住民票の異動が events.csv にありません（記載の異動が少なくとも1件必要です）",
                "atena_no",
            )
            continue
        if p.status == "removed" and not any(
            e.event_kind in REMOVAL_EVENT_KINDS and e.effective_on == p.removed_on for e in mine
        ):
            err(
                PERSONS,
                line,
                "消除された住民票に、消除年月日の消除の異動 (転出・死亡など) がありません",
                "removed_on",
            )
        if p.removed_on is not None and any(
            e.effective_on > p.removed_on and e.event_kind not in _AFTER_REMOVAL for e in mine
        ):
            err(PERSONS, line, "消除年月日より後の異動があります", "removed_on")

    for line, c in parsed[CARDS.name]:
        if c.atena_no not in persons:
            missing(CARDS, line, c.atena_no)
        elif c.atena_no in valid.cards:
            err(CARDS, line, f"宛名番号 {c.atena_no} のカードが重複しています（1人1枚）", "atena_no")
        elif c.card_issued_on < persons[c.atena_no][1].birth_date:
            err(CARDS, line, "カードの交付年月日が生年月日より前です", "card_issued_on")
        else:
            valid.cards[c.atena_no] = c

    if errors:
        errors.sort(
            key=lambda e: (
                FILES.index(next(x for x in FILES if x.filename == e.file)) if e.file else 0,
                e.line,
            )
        )
        return None, errors
    return valid, []
