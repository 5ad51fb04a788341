"""Generate a synthetic population, household by household, as interchange rows.

Streaming: a municipality is generated household by household and each household's rows
are handed to the sink at once, so memory does not grow with the number of residents.
Deterministic: each municipality draws from its own random stream (seed and 地方公共団体
コード), and identifiers come from keyed permutations of the resident's index in the
whole country, so the same seed gives the same files, and a run for one prefecture
gives exactly that prefecture's part of a run for all of Japan.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from jumin.core.ids import IndividualNumber, ResidentCode
from jumin.core.municipalities import Municipality, MunicipalityKind, load_master
from jumin.core.names import nth_birthday
from jumin.interchange.layout import AliasRow, CardRow, EventRow, ForeignRow, HouseholdRow, PersonRow
from jumin.population.model import (
    CARD_YEAR_WEIGHTS,
    FOREIGN_SHARE,
    HOUSEHOLD_TYPES,
    NATIONALITY_WEIGHTS,
    SPECIAL_PERMANENT_SHARE,
    STATUS_OF_RESIDENCE,
    AgeTable,
    IdPermutation,
)
from jumin.population.names import JapaneseName, NamePools, load_pools
from jumin.population.places import JAPAN_POPULATION, Allocation, Town, allocate, towns_by_jis

__all__ = ["DEFAULT_AS_OF", "GeneratedHousehold", "Generator", "HouseholdSink", "generate"]

DEFAULT_AS_OF = dt.date(2022, 12, 31)  # the date of the published card rates
NOTIFICATION_DAYS = 14
_KANJI_DIGITS = "〇一二三四五六七八九"
_BUILDINGS = ("ハイツ", "コーポ", "レジデンス", "マンション", "荘", "ハウス", "パレス", "コート")


@dataclass
class GeneratedHousehold:
    """Every row one household contributes to the interchange files."""

    household: HouseholdRow
    persons: list[PersonRow] = field(default_factory=list)
    foreign: list[ForeignRow] = field(default_factory=list)
    aliases: list[AliasRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    cards: list[CardRow] = field(default_factory=list)


class HouseholdSink(Protocol):
    def __call__(self, household: GeneratedHousehold, /) -> None: ...


@dataclass
class _Member:
    sex: str
    age: int
    relationship: str
    name: JapaneseName | None = None  # given name (Japanese)
    birth_date: dt.date = dt.date(2000, 1, 1)


def _kanji_number(n: int) -> str:
    if n < 10:
        return _KANJI_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _KANJI_DIGITS[tens]) + "十" + ("" if ones == 0 else _KANJI_DIGITS[ones])


class Generator:
    """Generates the residents of one municipality after another; see :func:`generate`."""

    def __init__(self, *, seed: int, as_of: dt.date = DEFAULT_AS_OF, pools: NamePools | None = None) -> None:
        self.seed = seed
        self.as_of = as_of
        self.pools = pools or load_pools()
        self.ages = AgeTable.build()
        self.resident_codes = IdPermutation(10**10, f"{seed}:resident_code")
        self.individual_numbers = IdPermutation(10**11, f"{seed}:individual_number")
        self.card_numbers = IdPermutation(10**8, f"{seed}:residence_card")
        self.towns = towns_by_jis()
        self.master = load_master()
        self._municipalities = list(self.master.municipalities())
        self._prefecture_names = {m.code: m.name for m in self.master.prefectures()}
        self._sources: dict[str, list[tuple[str, tuple[Town, ...]]]] = {}
        self._nationalities = [n for n, _ in NATIONALITY_WEIGHTS if n in self.pools.foreign_family]
        self._nationality_weights = [w for n, w in NATIONALITY_WEIGHTS if n in self.pools.foreign_family]

    # -- identifiers ---------------------------------------------------------------------

    def resident_code(self, index: int) -> str:
        base = f"{self.resident_codes(index):010d}"
        return base + str(ResidentCode.check_digit(base))

    def individual_number(self, index: int) -> str:
        base = f"{self.individual_numbers(index):011d}"
        return base + str(IndividualNumber.check_digit(base))

    def residence_card_number(self, index: int, rng: random.Random) -> str:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        digits = f"{self.card_numbers(index % 10**8):08d}"
        return rng.choice(letters) + rng.choice(letters) + digits + rng.choice(letters) + rng.choice(letters)

    # -- places ------------------------------------------------------------------------

    def _town_sources(self, municipality: Municipality) -> list[tuple[str, tuple[Town, ...]]]:
        """(prefix of the address line, towns): a designated city's lines start with the ward."""
        found = self._sources.get(municipality.code)
        if found is None:
            found = self._sources[municipality.code] = self._find_town_sources(municipality)
        return found

    def _find_town_sources(self, municipality: Municipality) -> list[tuple[str, tuple[Town, ...]]]:
        if municipality.kind is MunicipalityKind.DESIGNATED_CITY:
            sources = []
            for ward in self.master.wards_of(municipality.code):
                towns = self.towns.get(ward.code[:5], ())
                if towns:
                    sources.append((ward.name.removeprefix(municipality.name), towns))
            return sources
        towns = self.towns.get(municipality.code[:5], ())
        return [("", towns)] if towns else [("", (Town("本町", "ホンチョウ", True),))]

    def _address_line(self, rng: random.Random, sources: Sequence[tuple[str, tuple[Town, ...]]]) -> str:
        prefix, towns = rng.choice(sources)
        town = rng.choice(towns)
        if town.chome:
            chome = _kanji_number(rng.randint(1, 6))
            return f"{prefix}{town.name}{chome}丁目{rng.randint(1, 30)}番{rng.randint(1, 25)}号"
        branch = "" if rng.random() < 0.7 else f"の{rng.randint(1, 20)}"
        return f"{prefix}{town.name}{rng.randint(1, 2500)}番地{branch}"

    def _katagaki(self, rng: random.Random, surname: JapaneseName, town_hint: str) -> str:
        if rng.random() >= 0.35:
            return ""
        building = rng.choice(_BUILDINGS)
        base = surname.kanji if rng.random() < 0.3 else town_hint[:4]
        return f"{base}{building}{rng.randint(1, 9)}{rng.randint(0, 1)}{rng.randint(1, 9)}"

    def _elsewhere(self, rng: random.Random, exclude: str) -> tuple[str, str]:
        """A real address in another municipality: (full text, its lg_code)."""
        while True:
            other = rng.choice(self._municipalities)
            if other.code != exclude:
                break
        line = self._address_line(rng, self._town_sources(other))
        return f"{self._full_name(other)}{line}", other.code

    def _full_name(self, m: Municipality) -> str:
        """都道府県 + 郡 + 市区町村, as an address outside the municipality is written."""
        return f"{self._prefecture_names[m.prefecture_code]}{m.county or ''}{m.name}"

    # -- people --------------------------------------------------------------------------

    def _birth_date(self, rng: random.Random, age: int) -> dt.date:
        """A birth date that makes the person ``age`` years old on ``as_of``."""
        try:
            latest = self.as_of.replace(year=self.as_of.year - age)
        except ValueError:  # as_of is 29 February
            latest = dt.date(self.as_of.year - age, 2, 28)
        return latest - dt.timedelta(days=rng.randrange(365))

    def _members(self, rng: random.Random, kind: str) -> list[_Member]:
        ages = self.ages
        # Living alone and as a couple without children are mostly the old (国勢調査 2020: a
        # third of one-person households and over half of couple households are 65+).
        if kind == "single":
            age = ages.draw(rng, 65, 104) if rng.random() < 0.36 else ages.draw(rng, 18, 64)
            sex = "male" if rng.random() < ages.male_share[age] else "female"
            return [_Member(sex, age, "世帯主")]
        if kind in ("couple", "couple_children", "three_generations"):
            if kind == "couple":
                head_age = ages.draw(rng, 65, 100) if rng.random() < 0.58 else ages.draw(rng, 22, 64)
            else:
                head_age = ages.draw(rng, 24, 70)
            spouse_age = max(18, min(104, head_age + round(rng.gauss(-2, 3))))
            members = [_Member("male", head_age, "世帯主"), _Member("female", spouse_age, "妻")]
            if rng.random() < 0.06:  # a wife as head of the household
                members = [_Member("female", spouse_age, "世帯主"), _Member("male", head_age, "夫")]
            if kind != "couple":
                mother_age = spouse_age if members[0].sex == "male" else head_age
                for _ in range(rng.choices((1, 2, 3, 4), weights=(42, 42, 14, 2))[0]):
                    child_age = mother_age - rng.randint(22, 42)
                    if child_age >= 0:
                        members.append(_Member(rng.choice(("male", "female")), child_age, "子"))
            if kind == "three_generations":
                elder = min(104, head_age + rng.randint(25, 35))
                members.append(_Member("female" if rng.random() < 0.7 else "male", elder, "母"))
                if members[-1].sex == "male":
                    members[-1].relationship = "父"
            return members
        # single parent
        parent_age = ages.draw(rng, 25, 70)
        parent_sex = "female" if rng.random() < 0.86 else "male"
        members = [_Member(parent_sex, parent_age, "世帯主")]
        for _ in range(rng.choices((1, 2, 3), weights=(60, 32, 8))[0]):
            child_age = parent_age - rng.randint(20, 42)
            if child_age >= 0:
                members.append(_Member(rng.choice(("male", "female")), child_age, "子"))
        return members

    def _notified(self, rng: random.Random, effective: dt.date) -> tuple[dt.date, bool]:
        if rng.random() < 0.02:
            days = rng.randint(NOTIFICATION_DAYS + 1, 90)
        else:
            days = min(NOTIFICATION_DAYS, int(rng.expovariate(1 / 4)))
        notified = min(effective + dt.timedelta(days=days), self.as_of)
        return notified, (notified - effective).days > NOTIFICATION_DAYS

    def _card(
        self, rng: random.Random, birth: dt.date, arrived: dt.date, stay_ends: dt.date | None
    ) -> tuple[dt.date, dt.date, tuple[dt.date, dt.date] | None, tuple[dt.date, dt.date]] | None:
        """(card issued, card valid until, signing cert, auth cert) as they stand on ``as_of``."""
        years = [y for y, _ in CARD_YEAR_WEIGHTS if dt.date(y, 12, 31) >= birth]
        if not years:
            return None
        weights = [w for y, w in CARD_YEAR_WEIGHTS if y in years]
        year = rng.choices(years, weights=weights)[0]
        start = max(dt.date(year, 1, 4), birth + dt.timedelta(days=30), arrived if stay_ends else dt.date.min)
        end = min(dt.date(year, 12, 28), self.as_of)
        if start > end:
            return None
        issued = start + dt.timedelta(days=rng.randrange((end - start).days + 1))
        while True:
            age = _age_on(birth, issued)
            until = _after_birthdays(birth, issued, 10 if age >= 18 else 5)
            if stay_ends is not None:
                until = min(until, stay_ends)
            if until > self.as_of or until <= issued:
                break
            # Renewed at the window within three months before it ran out.
            issued = max(issued + dt.timedelta(days=1), until - dt.timedelta(days=rng.randint(0, 90)))
        if until <= issued:
            return None
        cert_issued = issued
        while True:
            cert_until = min(_after_birthdays(birth, cert_issued, 5), until)
            if cert_until > self.as_of or cert_until == until:
                break
            cert_issued = max(
                cert_issued + dt.timedelta(days=1), cert_until - dt.timedelta(days=rng.randint(0, 90))
            )
        auth = (cert_issued, cert_until)
        signing = auth if _age_on(birth, cert_issued) >= 15 else None
        return issued, until, signing, auth

    # -- a municipality -------------------------------------------------------------------

    def municipality(self, allocation: Allocation) -> Iterator[GeneratedHousehold]:
        m = allocation.municipality
        rng = random.Random(f"{self.seed}:{m.code}")  # noqa: S311 (synthetic data, not a secret)
        sources = self._town_sources(m)
        produced = 0
        household_no = 0
        event_no = 0
        while produced < allocation.residents:
            household_no += 1
            # Foreign households are smaller (a third are single): 1.2 x the share of households
            # gives the share of residents.
            foreign = rng.random() < FOREIGN_SHARE * 1.2
            kind = rng.choices([k for k, _ in HOUSEHOLD_TYPES], weights=[w for _, w in HOUSEHOLD_TYPES])[0]
            if foreign and rng.random() < 0.35:
                kind = "single"
            members = self._members(rng, kind)[: allocation.residents - produced]
            for member in members:
                member.birth_date = self._birth_date(rng, member.age)
                member.name = self.pools.given_name(rng, member.sex, member.birth_date.year)
            # The household came here (転入) when its youngest adult was an adult; children
            # born after that were born here (出生).
            adults = [x for x in members if x.age >= 18] or members
            max_years = max(0, min(x.age for x in adults) - 18)
            years_here = min(max_years, int(rng.expovariate(1 / 12)))
            moved_in = self.as_of - dt.timedelta(days=years_here * 365 + rng.randrange(365))
            moved_in = max(moved_in, max(x.birth_date for x in adults))
            within = rng.random() < 0.25 and (self.as_of - moved_in).days > 60
            moved_within = (
                moved_in + dt.timedelta(days=rng.randint(30, (self.as_of - moved_in).days))
                if within
                else None
            )
            line = self._address_line(rng, sources)
            household = GeneratedHousehold(
                HouseholdRow(m.code, f"{household_no:08d}", None, len(members)),
            )
            surname = self.pools.surname(rng)
            if foreign:
                nationality = rng.choices(self._nationalities, weights=self._nationality_weights)[0]
                family_latin, _ = self.pools.foreign(rng, nationality, "male")
            katagaki = self._katagaki(rng, surname, line)
            origin, _origin_lg = self._elsewhere(rng, m.code)
            special_permanent = foreign and rng.random() < SPECIAL_PERMANENT_SHARE
            from_abroad = foreign and not special_permanent and rng.random() < 0.5
            move_in_no = 0
            within_no = 0
            if any(x.birth_date < moved_in or x.birth_date == moved_in for x in members):
                event_no += 1
                move_in_no = event_no
            if moved_within is not None:
                event_no += 1
                within_no = event_no
            # 筆頭者 of the family's 戸籍: the husband (or the head); the elder parent keeps their own.
            first = next(
                (x for x in members if x.sex == "male" and x.relationship in ("世帯主", "夫")), members[0]
            )
            assert first.name is not None
            family_hittousha = f"{surname.kanji}　{first.name.kanji}"
            move_in_notified, move_in_late = self._notified(rng, moved_in)
            within_notified, within_late = (
                self._notified(rng, moved_within) if moved_within is not None else (moved_in, False)
            )
            for position, member in enumerate(members):
                index = allocation.first_index + produced + position
                atena = f"{produced + position + 1:010d}"
                born_here = member.birth_date > moved_in
                became = member.birth_date if born_here else moved_in
                address_set = moved_within if moved_within is not None and moved_within > became else became
                if born_here:
                    event_no += 1
                    notified, late = (
                        min(member.birth_date + dt.timedelta(days=rng.randint(1, 14)), self.as_of),
                        False,
                    )
                    household.events.append(
                        EventRow(
                            m.code, str(event_no), atena, "birth", member.birth_date, notified, late, None
                        )
                    )
                else:
                    notified, late = move_in_notified, move_in_late
                    kind_in = "move_in_from_abroad" if from_abroad else "move_in"
                    household.events.append(
                        EventRow(m.code, str(move_in_no), atena, kind_in, moved_in, notified, late, None)
                    )
                if moved_within is not None and moved_within > became:
                    household.events.append(
                        EventRow(
                            m.code,
                            str(within_no),
                            atena,
                            "move_within",
                            moved_within,
                            within_notified,
                            within_late,
                            None,
                        )
                    )
                given = member.name
                assert given is not None
                stay_ends: dt.date | None = None
                if foreign:
                    given_foreign = self.pools.foreign(rng, nationality, member.sex)[1]
                    family_name, given_name = family_latin.latin, given_foreign.latin
                    family_kana_value, given_kana_value = family_latin.kana, given_foreign.kana
                    honseki = hittousha = None
                    name_romaji = f"{family_latin.latin} {given_foreign.latin}"
                    category = "special_permanent" if special_permanent else "mid_to_long_term"
                    status: str | None
                    period: str | None
                    if special_permanent:
                        status, period, stay_ends = None, None, None
                    else:
                        status, _, period = rng.choices(
                            STATUS_OF_RESIDENCE, weights=[w for _, w, _ in STATUS_OF_RESIDENCE]
                        )[0]
                        if period is not None:
                            stay_ends = self.as_of + dt.timedelta(days=rng.randint(30, 3 * 365))
                    alias = alias_kana = None
                    if special_permanent and rng.random() < 0.7:
                        alias_family = surname
                        alias = f"{alias_family.kanji}　{given.kanji}"
                        alias_kana = f"{alias_family.kana}　{given.kana}"
                        household.aliases.append(
                            AliasRow(m.code, atena, alias, alias_kana, became, m.code, None, None)
                        )
                    household.foreign.append(
                        ForeignRow(
                            lg_code=m.code,
                            atena_no=atena,
                            nationality=nationality,
                            category=category,
                            status_of_residence=status,
                            period_of_stay=period,
                            stay_expires_on=stay_ends,
                            residence_card_number=self.residence_card_number(index, rng),
                            became_foreign_resident_on=member.birth_date if special_permanent else became,
                            name_alphabet=name_romaji,
                            alias=alias,
                            alias_kana=alias_kana,
                        )
                    )
                else:
                    family_name, given_name = surname.kanji, given.kanji
                    family_kana_value, given_kana_value = surname.kana, given.kana
                    name_romaji = f"{surname.romaji} {given.romaji}"
                    honseki_place = m if rng.random() < 0.6 else rng.choice(self._municipalities)
                    ward, towns = rng.choice(self._town_sources(honseki_place))
                    town = rng.choice(towns).name
                    honseki = f"{self._full_name(honseki_place)}{ward}{town}{rng.randint(1, 3000)}番地"
                    hittousha = (
                        f"{surname.kanji}　{given.kanji}"
                        if member.relationship in ("父", "母")
                        else family_hittousha
                    )
                household.persons.append(
                    PersonRow(
                        lg_code=m.code,
                        atena_no=atena,
                        resident_code=self.resident_code(index),
                        individual_number=self.individual_number(index),
                        resident_kind="foreign" if foreign else "japanese",
                        family_name=family_name,
                        given_name=given_name,
                        family_name_kana=family_kana_value,
                        given_name_kana=given_kana_value,
                        birth_date=member.birth_date,
                        sex=member.sex,
                        household_no=household.household.household_no,
                        relationship=member.relationship,
                        address_line=line,
                        katagaki=katagaki or None,
                        became_resident_on=became,
                        address_set_on=address_set,
                        notified_on=notified,
                        honseki=honseki,
                        hittousha=hittousha,
                        old_surname=None,
                        old_surname_kana=None,
                        previous_address=None if born_here else ("国外" if from_abroad else origin),
                        planned_move_out_on=None,
                        planned_move_out_destination=None,
                        planned_move_out_lg_code=None,
                        status="live",
                        removal_reason=None,
                        removed_on=None,
                    )
                )
                if rng.random() < allocation.issuance_rate:
                    card = self._card(rng, member.birth_date, became, stay_ends)
                    if card is not None:
                        issued, until, signing, auth = card
                        household.cards.append(
                            CardRow(
                                lg_code=m.code,
                                atena_no=atena,
                                card_status="issued",
                                card_issued_on=issued,
                                card_valid_until=until,
                                signing_cert_issued_on=signing[0] if signing else None,
                                signing_cert_valid_until=signing[1] if signing else None,
                                auth_cert_issued_on=auth[0],
                                auth_cert_valid_until=auth[1],
                                name_romaji=name_romaji,
                            )
                        )
            household.household = HouseholdRow(
                m.code, household.household.household_no, household.persons[0].atena_no, len(members)
            )
            household.events.sort(key=lambda e: (int(e.event_no), e.atena_no))
            produced += len(members)
            yield household


def _age_on(birth: dt.date, on: dt.date) -> int:
    age = on.year - birth.year
    if (on.month, on.day) < (birth.month, birth.day):
        age -= 1
    return age


def _after_birthdays(birth: dt.date, issued: dt.date, n: int) -> dt.date:
    """The n-th birthday after ``issued`` (DOMAIN.md: card and certificate validity)."""
    age = _age_on(birth, issued)
    return nth_birthday(birth, age + n)


def generate(
    *,
    residents: int,
    seed: int,
    sink: HouseholdSink,
    as_of: dt.date = DEFAULT_AS_OF,
    prefectures: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Generate ``residents`` (spread over all of Japan, then filtered to ``prefectures``).

    ``sink`` receives each household's rows; ``progress`` the number of residents just
    added. Returns how many residents were generated.
    """
    generator = Generator(seed=seed, as_of=as_of)
    total = 0
    for allocation in allocate(residents, prefectures=prefectures):
        for household in generator.municipality(allocation):
            sink(household)
            total += len(household.persons)
            if progress is not None:
                progress(len(household.persons))
    return total


def residents_for_scale(scale: float) -> int:
    return round(scale * JAPAN_POPULATION)
