"""Statutory tasks (別表事務), four-facts matching, agency codes and batch rows: the rules.

Pure Python: the catalogue text, the key, the candidates and the rows are passed in, so
every rule here is testable without a database or a file.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jumin.core.errors import AccessDenied, Conflict, InvalidValue, NotFound, RuleViolation
from jumin.core.ids import ResidentCode
from jumin.core.names import legal_age, normalize_kana
from jumin.core.wareki import parse_date

__all__ = [
    "AGENCY_CODE_LENGTH",
    "BATCH_COLUMNS",
    "CHANGE_KIND_EVENTS",
    "MAX_AGE",
    "MAX_BATCH_ROWS",
    "MAX_REF_LENGTH",
    "MIN_PURPOSE_LENGTH",
    "MIN_SCORE",
    "POINTS",
    "WEBHOOK_SIGNATURE_HEADER",
    "WEBHOOK_TOLERANCE",
    "AccessSummary",
    "BatchEncoding",
    "BatchKind",
    "BatchNotReady",
    "BatchRow",
    "BatchStatus",
    "CandidateFacts",
    "ExtractionFilter",
    "ExtractionNotApproved",
    "ExtractionStateConflict",
    "ExtractionStatus",
    "FeedEvent",
    "FourFacts",
    "IdentityField",
    "MatchOutcome",
    "OnError",
    "ParquetUnavailable",
    "PersonNotFound",
    "RowError",
    "ScoredCandidate",
    "Sex",
    "StatutoryTask",
    "TaskCatalogue",
    "TaskNotGranted",
    "age_on",
    "birth_dates_for_ages",
    "change_kinds_for",
    "check_agency_code",
    "derive_agency_code",
    "feed_event_of",
    "normalize_address",
    "outcome_of",
    "parse_batch_header",
    "parse_batch_row",
    "parse_kana",
    "parse_sex",
    "rank",
    "score_candidate",
    "sign_webhook",
    "verify_webhook",
    "webhook_backoff",
]


# --- errors ---------------------------------------------------------------------------------------


class TaskNotGranted(AccessDenied):
    """A request outside the client's statutory tasks; the refusal is audited and kept."""

    type_slug = "task-not-granted"
    title = "この事務での照会は認められていません"


class PersonNotFound(NotFound):
    """No person answers the query. The lookup itself is still audited, so the entry stays."""

    type_slug = "person-not-found"
    title = "該当する本人確認情報がありません"
    commits_recorded_work = True


class BatchNotReady(RuleViolation):
    type_slug = "batch-not-ready"
    title = "照合結果はまだ作成されていません"


class ExtractionNotApproved(AccessDenied):
    type_slug = "extraction-not-approved"
    title = "承認されていない抽出です"


class ExtractionStateConflict(Conflict):
    type_slug = "extraction-state"
    title = "抽出依頼の状態が操作と合いません"


class ParquetUnavailable(RuleViolation):
    type_slug = "parquet-unavailable"
    title = "Parquet形式は利用できません"


# --- vocabulary -----------------------------------------------------------------------------------


class IdentityField(StrEnum):
    """What a statutory task may receive of the 本人確認情報 (住基法 第30条の6・第30条の9)."""

    NAME = "name"
    NAME_KANA = "name_kana"
    BIRTH_DATE = "birth_date"
    SEX = "sex"
    ADDRESS = "address"
    RESIDENT_CODE = "resident_code"
    INDIVIDUAL_NUMBER = "individual_number"
    STATUS = "status"  # live/removed, the removal reason, the latest change and its date
    HISTORY = "history"  # earlier versions: identity as of a date, change history


class FeedEvent(StrEnum):
    """Change events an agency may subscribe to, each a group of 異動事由."""

    BIRTH = "birth"
    DEATH = "death"
    MOVE_IN = "move_in"
    MOVE_OUT = "move_out"
    ADDRESS_CHANGE = "address_change"
    NAME_CHANGE = "name_change"
    REMOVAL = "removal"
    CORRECTION = "correction"
    CODE_CHANGE = "code_change"


# ``change_kind`` on the national store is the 異動事由 the municipality reported (the
# register's event kinds). Kinds missing here (household and head changes, aliases...)
# change nothing an agency receives and never reach the feed. 失踪宣告 counts as a death:
# the missing person is deemed dead (民法 第31条).
CHANGE_KIND_EVENTS: Mapping[str, FeedEvent] = {
    "birth": FeedEvent.BIRTH,
    "death": FeedEvent.DEATH,
    "declared_missing": FeedEvent.DEATH,
    "move_in": FeedEvent.MOVE_IN,
    "move_in_card_holder": FeedEvent.MOVE_IN,
    "move_in_from_abroad": FeedEvent.MOVE_IN,
    "move_out": FeedEvent.MOVE_OUT,
    "move_out_abroad": FeedEvent.MOVE_OUT,
    "move_out_confirmed": FeedEvent.MOVE_OUT,
    "move_within": FeedEvent.ADDRESS_CHANGE,
    "address_change": FeedEvent.ADDRESS_CHANGE,
    "name_change": FeedEvent.NAME_CHANGE,
    "furigana": FeedEvent.NAME_CHANGE,
    "naturalisation": FeedEvent.NAME_CHANGE,
    "ex_officio_removal": FeedEvent.REMOVAL,
    "ex_officio_entry": FeedEvent.CORRECTION,
    "ex_officio_correction": FeedEvent.CORRECTION,
    "clerical_correction": FeedEvent.CORRECTION,
    "cancellation": FeedEvent.CORRECTION,
    "resident_code_change": FeedEvent.CODE_CHANGE,
    "individual_number_change": FeedEvent.CODE_CHANGE,
}


def feed_event_of(change_kind: str) -> FeedEvent | None:
    return CHANGE_KIND_EVENTS.get(change_kind)


def change_kinds_for(events: Iterable[FeedEvent]) -> list[str]:
    """The store's change kinds that make up ``events``, sorted (for an IN list)."""
    wanted = set(events)
    return sorted(kind for kind, event in CHANGE_KIND_EVENTS.items() if event in wanted)


# --- statutory tasks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatutoryTask:
    """One 別表事務: who may ask, under which provision, and what they may receive."""

    code: str
    title: str
    agency: str
    law: str
    provision: str
    basis: str
    description: str
    confirmed: bool
    fields: frozenset[IdentityField]
    individual_number_key: bool
    feed_events: frozenset[FeedEvent]
    allows_linkage: bool
    # A task the prefectural governor performs (住基法 第30条の15 第1項, 別表第五): the law
    # itself entitles every prefecture to it, for the residents of its own area only.
    prefecture_use: bool = False

    def allows(self, f: IdentityField) -> bool:
        return f in self.fields


_TASK_CODE = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


def _task_from(raw: Mapping[str, Any], index: int) -> StatutoryTask:
    where = f"tasks[{index}]"
    try:
        code = str(raw["code"])
        fields = frozenset(IdentityField(f) for f in raw["fields"])
        events = frozenset(FeedEvent(e) for e in raw.get("feed_events", []))
        task = StatutoryTask(
            code=code,
            title=str(raw["title"]),
            agency=str(raw["agency"]),
            law=str(raw["law"]),
            provision=str(raw["provision"]),
            basis=str(raw["basis"]),
            description=str(raw["description"]),
            confirmed=bool(raw.get("confirmed", False)),
            fields=fields,
            individual_number_key=bool(raw.get("individual_number_key", False)),
            feed_events=events,
            allows_linkage=bool(raw.get("allows_linkage", False)),
            prefecture_use=bool(raw.get("prefecture_use", False)),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"statutory task catalogue: {where} is malformed: {exc}") from exc
    if not _TASK_CODE.fullmatch(code):
        raise ValueError(f"statutory task catalogue: {where} has a bad code {code!r}")
    if task.individual_number_key and IdentityField.INDIVIDUAL_NUMBER not in fields:
        # A key the task may use but never see back would be a half-right: keep them together.
        raise ValueError(f"statutory task catalogue: {code} uses 個人番号 as a key without receiving it")
    return task


class TaskCatalogue:
    """The statutory tasks, loaded from the data file shipped in the package."""

    def __init__(self, tasks: Iterable[StatutoryTask]) -> None:
        self._tasks: dict[str, StatutoryTask] = {}
        for task in tasks:
            if task.code in self._tasks:
                raise ValueError(f"statutory task catalogue: duplicate code {task.code}")
            self._tasks[task.code] = task

    @staticmethod
    def parse(text: str) -> TaskCatalogue:
        data = json.loads(text)
        return TaskCatalogue(_task_from(t, i) for i, t in enumerate(data["tasks"]))

    def find(self, code: str) -> StatutoryTask | None:
        return self._tasks.get(code)

    def get(self, code: str, *, field: str = "task") -> StatutoryTask:
        task = self._tasks.get(code)
        if task is None:
            raise InvalidValue(f"別表事務コード「{code}」は登録されていません。", field=field)
        return task

    def all(self) -> tuple[StatutoryTask, ...]:
        return tuple(self._tasks[c] for c in sorted(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)


# --- agency codes (機関別符号) --------------------------------------------------------------------

_AGENCY_CODE_LABEL = b"jumin/agency-code/v1"
AGENCY_CODE_LENGTH = 26  # 128 bits in RFC 4648 base32 without padding
_AGENCY_CODE = re.compile(r"^[A-Z2-7]{26}$")


def derive_agency_code(key: bytes, organisation_code: str, person_anchor: str) -> str:
    """The 機関別符号 of one person for one agency: HMAC-SHA256, 128 bits, base32.

    ``person_anchor`` is the national store's internal identity key, which survives
    moves, 住民票コード changes and 個人番号 changes (see service.py). Without ``key`` the
    code of one agency tells nothing about the code of another, nor about the person.
    """
    message = b"\x00".join([_AGENCY_CODE_LABEL, organisation_code.encode(), person_anchor.encode()])
    digest = hmac.new(key, message, hashlib.sha256).digest()[:16]
    return base64.b32encode(digest).decode().rstrip("=")


def check_agency_code(raw: str, *, field: str = "agency_code") -> str:
    code = raw.strip().upper()
    if not _AGENCY_CODE.fullmatch(code):
        raise InvalidValue("機関別符号は英大文字と数字2〜7の26文字です。", field=field)
    return code


# --- four facts matching --------------------------------------------------------------------------

_DASHES = str.maketrans(dict.fromkeys("‐‑‒–—―−－ｰ", "-"))
_SPACES = re.compile(r"\s+")


def normalize_address(s: str) -> str:
    """Addresses compared as written, minus the noise: NFKC, no spaces, one kind of hyphen.

    丁目・番地 notation is not rewritten (1丁目2番 vs 1-2): an address prefix is usually
    given down to the town (大字・町名), where spellings agree.
    """
    folded = _SPACES.sub("", unicodedata.normalize("NFKC", s)).translate(_DASHES)
    # Removing a space can bring a combining mark next to a letter (¯ is " " + U+0304):
    # normalise again so that the key of a key is the key.
    return unicodedata.normalize("NFKC", folded)


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


_SEX_INPUT = {
    "male": Sex.MALE,
    "m": Sex.MALE,
    "1": Sex.MALE,
    "男": Sex.MALE,
    "男性": Sex.MALE,
    "female": Sex.FEMALE,
    "f": Sex.FEMALE,
    "2": Sex.FEMALE,
    "女": Sex.FEMALE,
    "女性": Sex.FEMALE,
}


def parse_sex(raw: str, *, field: str = "sex") -> Sex:
    found = _SEX_INPUT.get(unicodedata.normalize("NFKC", raw).strip().lower())
    if found is None:
        raise InvalidValue(
            f"性別「{raw}」は male/female、1/2、男/女 のいずれかで指定してください。", field=field
        )
    return found


_KATAKANA_KEY = re.compile(r"^[ァ-ヺー・]+$")
# Readings as the register writes them: full-width katakana, ー and ・, separated by spaces.
# normalize_kana leaves every one of these characters as it is and removes the spaces.
_ALREADY_KEYED = re.compile(r"[ァ-ヺー・ \u3000]*")


def _kana_key(s: str) -> str:
    """``normalize_kana(s)``, without its conversions when there is nothing to convert.

    A batch reads every row twice; the conversions were most of the cost of a row.
    """
    if _ALREADY_KEYED.fullmatch(s):
        return s.replace(" ", "").replace("\u3000", "")
    return normalize_kana(s)


def parse_kana(raw: str, *, field: str = "name_kana") -> tuple[str, str | None]:
    """The search key of a reading and, if a space separates them, of the family name."""
    parts = [p for p in _SPACES.split(raw.replace("\u3000", " ").strip()) if p]
    key = _kana_key(raw)
    if not key or not _KATAKANA_KEY.fullmatch(key):
        raise InvalidValue(
            f"氏名のふりがな「{raw}」はカタカナ（またはひらがな）で指定してください。", field=field
        )
    family = _kana_key(parts[0]) if len(parts) > 1 else None
    return key, family


@dataclass(frozen=True, slots=True)
class FourFacts:
    """A four-facts query (4情報): reading, birth date, sex and the start of the address."""

    name_kana: str  # normalized search key
    family_kana: str | None  # normalized, when the query separated family and given name
    birth_date: dt.date
    sex: Sex
    address_prefix: str  # normalized

    @staticmethod
    def parse(*, name_kana: str, birth_date: str | dt.date, sex: str, address: str) -> FourFacts:
        key, family = parse_kana(name_kana)
        born = birth_date if isinstance(birth_date, dt.date) else parse_date(birth_date, field="birth_date")
        prefix = normalize_address(address)
        if len(prefix) < 2:
            raise InvalidValue(
                "住所は都道府県名または市区町村名から2文字以上で指定してください。", field="address"
            )
        if len(prefix) > 300:
            raise InvalidValue("住所は300文字以内で指定してください。", field="address")
        return FourFacts(
            name_kana=key,
            family_kana=family,
            birth_date=born,
            sex=parse_sex(sex),
            address_prefix=prefix,
        )


@dataclass(frozen=True, slots=True)
class CandidateFacts:
    """What the matcher needs to know of one person in the store."""

    identity_id: int
    search_kana: str
    birth_date: dt.date
    sex: str
    full_address: str  # normalized, prefecture and municipality names included
    municipality_prefix: str  # normalized prefecture + municipality name
    prefecture_name: str


class MatchOutcome(StrEnum):
    MATCHED = "matched"  # one person, every fact exact
    AMBIGUOUS = "ambiguous"  # several people match every fact
    PARTIAL = "partial"  # a near miss: an investigator's lead, no data returned in batches
    NOT_FOUND = "not_found"
    INVALID = "invalid"  # a bad row (batches with on_error=skip_bad)


# Points per fact; 100 means every fact matched exactly. A candidate under MIN_SCORE is not
# shown: with the birth date and the reading both off there is nothing to go on.
POINTS: Mapping[str, Mapping[str, int]] = {
    "name": {"exact": 40, "family_name": 20, "given_name": 15, "similar": 15, "none": 0},
    "birth_date": {"exact": 30, "day_month_swapped": 10, "year_month": 10, "month_day": 10, "none": 0},
    "sex": {"exact": 10, "none": 0},
    "address": {"exact_prefix": 20, "municipality": 10, "prefecture": 5, "none": 0},
}
MIN_SCORE = 50


@dataclass(frozen=True, slots=True)
class ScoredCandidate:
    identity_id: int
    score: int
    exact: bool
    facts: Mapping[str, str]  # per fact: how it matched, keys of POINTS

    def explain(self) -> str:
        return "、".join(
            f"{_FACT_LABELS[k]}:{_MATCH_LABELS[v]}(+{POINTS[k][v]})" for k, v in self.facts.items()
        )


_FACT_LABELS = {"name": "氏名", "birth_date": "生年月日", "sex": "性別", "address": "住所"}
_MATCH_LABELS = {
    "exact": "一致",
    "family_name": "氏のみ一致",
    "given_name": "名のみ一致",
    "similar": "1文字違い",
    "day_month_swapped": "月日の入れ違い",
    "year_month": "年月のみ一致",
    "month_day": "月日のみ一致",
    "exact_prefix": "前方一致",
    "municipality": "市区町村のみ一致",
    "prefecture": "都道府県のみ一致",
    "none": "不一致",
}


def _one_edit_apart(a: str, b: str) -> bool:
    """True when one substitution, insertion or deletion turns ``a`` into ``b``."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def _name_match(q: FourFacts, kana: str) -> str:
    if kana == q.name_kana:
        return "exact"
    if q.family_kana and len(q.family_kana) < len(q.name_kana):
        given = q.name_kana[len(q.family_kana) :]
        if kana.startswith(q.family_kana) and len(kana) > len(q.family_kana):
            return "family_name"
        if kana.endswith(given) and len(kana) > len(given):
            return "given_name"
    if len(q.name_kana) >= 4 and _one_edit_apart(q.name_kana, kana):
        return "similar"
    return "none"


def _birth_match(q: dt.date, d: dt.date) -> str:
    if q == d:
        return "exact"
    if q.year == d.year and q.month == d.day and q.day == d.month:
        return "day_month_swapped"
    if q.year == d.year and q.month == d.month:
        return "year_month"
    if q.month == d.month and q.day == d.day:
        return "month_day"
    return "none"


def _address_match(prefix: str, c: CandidateFacts) -> str:
    without_prefecture = c.full_address[len(c.prefecture_name) :]
    if c.full_address.startswith(prefix) or without_prefecture.startswith(prefix):
        return "exact_prefix"
    municipality = c.municipality_prefix[len(c.prefecture_name) :]
    if prefix.startswith(c.municipality_prefix) or (municipality and prefix.startswith(municipality)):
        return "municipality"
    if prefix.startswith(c.prefecture_name):
        return "prefecture"
    return "none"


def score_candidate(q: FourFacts, c: CandidateFacts) -> ScoredCandidate:
    facts = {
        "name": _name_match(q, c.search_kana),
        "birth_date": _birth_match(q.birth_date, c.birth_date),
        "sex": "exact" if c.sex == q.sex.value else "none",
        "address": _address_match(q.address_prefix, c),
    }
    score = sum(POINTS[k][v] for k, v in facts.items())
    exact = facts == {"name": "exact", "birth_date": "exact", "sex": "exact", "address": "exact_prefix"}
    return ScoredCandidate(identity_id=c.identity_id, score=score, exact=exact, facts=facts)


def rank(q: FourFacts, candidates: Iterable[CandidateFacts], *, limit: int) -> list[ScoredCandidate]:
    """Candidates at or above MIN_SCORE, best first (ties by identity, for a stable order)."""
    seen: set[int] = set()
    scored: list[ScoredCandidate] = []
    for c in candidates:
        if c.identity_id in seen:
            continue
        seen.add(c.identity_id)
        s = score_candidate(q, c)
        if s.score >= MIN_SCORE:
            scored.append(s)
    scored.sort(key=lambda s: (-s.score, s.identity_id))
    return scored[:limit]


def outcome_of(ranked: Sequence[ScoredCandidate]) -> MatchOutcome:
    exact = [s for s in ranked if s.exact]
    if len(exact) == 1:
        return MatchOutcome.MATCHED
    if len(exact) > 1:
        return MatchOutcome.AMBIGUOUS
    return MatchOutcome.PARTIAL if ranked else MatchOutcome.NOT_FOUND


# --- batches --------------------------------------------------------------------------------------


class BatchKind(StrEnum):
    RESIDENT_CODE = "resident_code"
    FOUR_FACTS = "four_facts"


class BatchEncoding(StrEnum):
    UTF8 = "utf-8"  # a BOM is accepted
    SHIFT_JIS = "shift_jis"  # read as Windows-31J (cp932), as spreadsheets in Japan write it


class OnError(StrEnum):
    REJECT_ALL = "reject_all"  # any bad row: no result at all
    SKIP_BAD = "skip_bad"  # bad rows reported, the valid rows verified


class BatchStatus(StrEnum):
    QUEUED = "queued"
    VALIDATING = "validating"
    RUNNING = "running"
    DONE = "done"
    REJECTED = "rejected"  # bad rows and on_error=reject_all: nothing was verified
    FAILED = "failed"  # the file itself could not be read (header, encoding, size)


MAX_BATCH_ROWS = 1_000_000
MAX_REF_LENGTH = 64
BATCH_COLUMNS: Mapping[BatchKind, tuple[frozenset[str], frozenset[str]]] = {
    # (required, optional)
    BatchKind.RESIDENT_CODE: (frozenset({"resident_code"}), frozenset({"ref"})),
    BatchKind.FOUR_FACTS: (frozenset({"name_kana", "birth_date", "sex", "address"}), frozenset({"ref"})),
}


@dataclass(frozen=True, slots=True)
class BatchRow:
    line: int
    ref: str
    resident_code: str | None = None
    facts: FourFacts | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str | None
    reason: str
    ref: str = ""  # the row's own reference, when it could be read


def parse_batch_header(kind: BatchKind, header: Sequence[str]) -> dict[str, int]:
    """Column positions by name; the header must hold the required columns and no others."""
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    required, optional = BATCH_COLUMNS[kind]
    missing = sorted(required - set(names))
    unknown = sorted(set(names) - required - optional)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if missing or unknown or duplicated:
        problems = []
        if missing:
            problems.append("必須列がありません: " + ", ".join(missing))
        if unknown:
            problems.append("不明な列があります: " + ", ".join(unknown))
        if duplicated:
            problems.append("列名が重複しています: " + ", ".join(duplicated))
        raise InvalidValue("1行目（見出し行）: " + "。".join(problems), field="header")
    return {n: i for i, n in enumerate(names)}


def parse_batch_row(
    kind: BatchKind, columns: Mapping[str, int], line: int, values: Sequence[str]
) -> BatchRow | RowError:
    """One data row, or the reason it is refused (with its line number and column)."""
    if len(values) != len(columns):
        return RowError(line, None, f"列の数が{len(values)}です（見出し行は{len(columns)}列）。")
    if any("\ufffd" in v for v in values):
        return RowError(line, None, "文字コードを読み取れない文字が含まれています。")

    def value(name: str) -> str:
        return values[columns[name]].strip() if name in columns else ""

    ref = value("ref")
    if len(ref) > MAX_REF_LENGTH:
        return RowError(line, "ref", f"ref は{MAX_REF_LENGTH}文字以内にしてください。")
    try:
        if kind is BatchKind.RESIDENT_CODE:
            code = ResidentCode.parse(value("resident_code"), field="resident_code")
            return BatchRow(line=line, ref=ref, resident_code=code.value)
        return BatchRow(
            line=line,
            ref=ref,
            facts=FourFacts.parse(
                name_kana=value("name_kana"),
                birth_date=value("birth_date"),
                sex=value("sex"),
                address=value("address"),
            ),
        )
    except InvalidValue as exc:
        return RowError(line, exc.field, exc.detail, ref=ref)


# --- prefecture extraction ------------------------------------------------------------------------


class ExtractionStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    PRODUCING = "producing"
    READY = "ready"
    FAILED = "failed"


MIN_PURPOSE_LENGTH = 5
MAX_AGE = 150


@dataclass(frozen=True, slots=True)
class ExtractionFilter:
    reference_date: dt.date
    min_age: int | None = None
    max_age: int | None = None

    def check(self, today: dt.date) -> None:
        if self.reference_date > today:
            raise InvalidValue("基準日は今日以前の日付を指定してください。", field="reference_date")
        for name, age in (("min_age", self.min_age), ("max_age", self.max_age)):
            if age is not None and not 0 <= age <= MAX_AGE:
                raise InvalidValue(f"年齢は0〜{MAX_AGE}の範囲で指定してください。", field=name)
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise InvalidValue("min_age は max_age 以下にしてください。", field="min_age")


def age_on(birth: dt.date, on: dt.date) -> int:
    """``legal_age(birth, on)`` in a few operations, for a whole extraction's column.

    One is N from the day before the Nth birthday, so the age on ``on`` is the ordinary
    age on the day after; a 29 February birthday falls after 28 February in every year,
    which is when ``legal_age`` counts it. A birth after ``on`` fails as it does there.
    """
    if on < birth:
        return legal_age(birth, on)  # raises
    after = on + dt.timedelta(days=1)
    return after.year - birth.year - ((after.month, after.day) < (birth.month, birth.day))


def birth_dates_for_ages(
    on: dt.date, min_age: int | None, max_age: int | None
) -> tuple[dt.date | None, dt.date | None]:
    """The birth dates (earliest, latest) of those aged ``min_age``..``max_age`` on ``on``.

    ``legal_age`` never grows as the birth date moves later, so an age range is a
    birth-date range, which a query can use; its bounds are found with ``legal_age``
    itself, so that both agree on every date (29 February included).
    """
    lowest = dt.date(max(1, on.year - MAX_AGE - 2), 1, 1)

    def first(pred: Any) -> dt.date | None:
        """The earliest date in [lowest, on] where ``pred`` holds (it holds from there on)."""
        lo, hi = lowest.toordinal(), on.toordinal()
        if not pred(dt.date.fromordinal(hi)):
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            if pred(dt.date.fromordinal(mid)):
                hi = mid
            else:
                lo = mid + 1
        return dt.date.fromordinal(lo)

    earliest = None if max_age is None else first(lambda b: legal_age(b, on) <= max_age)
    latest: dt.date | None = None
    if min_age is not None:
        too_young = first(lambda b: legal_age(b, on) < min_age)
        latest = on if too_young is None else too_young - dt.timedelta(days=1)
    return earliest, latest


@dataclass(frozen=True, slots=True)
class AccessSummary:
    """What a bulk read hands out, in the form an audit entry can carry."""

    count: int
    digest: str = field(default="")

    @staticmethod
    def of(resident_codes: Iterable[str]) -> AccessSummary:
        codes = sorted(resident_codes)
        digest = hashlib.sha256("\n".join(codes).encode()).hexdigest() if codes else ""
        return AccessSummary(count=len(codes), digest=digest)


# --- webhook signatures ---------------------------------------------------------------------------

WEBHOOK_SIGNATURE_HEADER = "Jumin-Signature"
WEBHOOK_TOLERANCE = dt.timedelta(minutes=5)


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256 over "<t>." + body>``: the body cannot be replayed
    later (the time is signed) nor altered (the body is)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(secret: str, header: str, body: bytes, *, now: dt.datetime) -> bool:
    """The receiver's check: a v1 signature matches and the time is within the tolerance."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > WEBHOOK_TOLERANCE.total_seconds():
        return False
    expected = sign_webhook(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def webhook_backoff(failures: int, *, base: dt.timedelta = dt.timedelta(seconds=30)) -> dt.timedelta:
    """Wait after the n-th consecutive failure: 30 s, 1 min, 2 min... at most 6 hours."""
    return min(base * (1 << min(max(failures - 1, 0), 20)), dt.timedelta(hours=6))
