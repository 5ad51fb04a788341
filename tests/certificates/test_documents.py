"""Each document kind, read back from the PDF and compared with the register.

Every item the certificate should print is taken from the register's record and looked
for in the extracted text (pypdf, and poppler's pdftotext); items that must not be
printed are looked for too. Text is compared with all whitespace removed: pdftotext
rebuilds spaces from gaps, and a wrapped value continues on the next line.
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from jumin.certificates import fonts, service
from jumin.certificates.domain import UnprintableCharacter
from jumin.certificates.pdf import SPECIMEN_NOTICE
from jumin.certificates.schemas import WindowIssueRequest
from jumin.core.errors import InvalidValue, NotFound, RuleViolation
from jumin.core.wareki import format_wareki
from jumin.registry.domain import ResidentRecord
from tests.certificates.conftest import (
    Desk,
    days_ago,
    member,
    pdftotext,
    pypdf_text,
    require_program,
    self_request,
    squash,
    today,
)
from tests.conftest import STRICT

ALL_OPTIONAL = ["head_and_relationship", "honseki", "resident_code", "individual_number"]
SEX = {"male": "男", "female": "女"}


def _items(r: ResidentRecord) -> list[str]:
    """What a record copy with every optional item prints of a Japanese resident."""
    assert r.name_kana is not None
    assert r.individual_number is not None
    return [
        r.name,
        r.name_kana,
        format_wareki(r.birth_date),
        SEX[r.sex.value],
        r.relationship,
        format_wareki(r.became_resident_on),
        format_wareki(r.address_set_on),
        format_wareki(r.notified_on),
        r.previous_address or "",
        r.honseki or "",
        r.hittousha or "",
        r.resident_code,
        r.individual_number,
    ]


def test_household_copy_prints_every_item_of_every_member(desk: Desk, tmp_path: Path) -> None:
    family = desk.family()
    head, wife, child = family.person_ids
    issued = desk.window(
        {
            "kind": "record_copy",
            "household_id": family.household_ids[0],
            "include": ALL_OPTIONAL,
            "requester": {"kind": "self", "person_id": head},
        }
    )
    assert issued.issue_number.startswith(f"131016-{today().year}-")
    assert issued.fee_yen == 300
    extracted, poppler = squash(pypdf_text(issued.pdf)), squash(pdftotext(issued.pdf, tmp_path))
    for text in (extracted, poppler):
        for expected in (
            "住民票の写し",
            "世帯連記式",
            "この写しは、住民票の原本と相違ないことを証明する。",
            "千代田区長　千代田　一郎",
            format_wareki(today()),
            issued.issue_number,
            f"ページ1/{issued.page_count}",
            f"ページ{issued.page_count}/{issued.page_count}",
            "東京都千代田区千代田一丁目1番1号 千代田ハイツ101",
        ):
            assert squash(expected) in text, expected
    for person_id in (head, wife, child):
        record = desk.record(person_id)
        for expected in _items(record):
            assert squash(expected) in extracted, expected
        # Single-line values come back from poppler too.
        for expected in (
            record.name,
            record.name_kana or "",
            record.resident_code,
            record.individual_number or "",
        ):
            assert squash(expected) in poppler, expected
    # 世帯主 in the header names the head, who also has a section of their own.
    assert squash(f"世帯主{desk.record(head).name}") in extracted


def test_optional_items_are_omitted_unless_asked(desk: Desk) -> None:
    head = desk.family().person_ids[0]
    record = desk.record(head)
    extracted = squash(pypdf_text(desk.window(self_request(head)).pdf))
    assert squash(record.name) in extracted
    assert format_wareki(record.birth_date) in extracted
    assert record.individual_number is not None
    for absent in (
        record.individual_number,
        record.resident_code,
        record.honseki or "",
        "続柄",
        "世帯主",
        "本籍",
    ):
        assert squash(absent) not in extracted, absent


def test_record_certificate_prints_only_what_was_asked(desk: Desk) -> None:
    head = desk.family().person_ids[0]
    record = desk.record(head)
    issued = desk.window(
        self_request(head, kind="record_certificate", form="individual", include=["birth_date"])
    )
    extracted = squash(pypdf_text(issued.pdf))
    assert "住民票記載事項証明書" in extracted
    assert "個人票" in extracted
    assert squash("上記の事項は、住民票に記載されている事項と相違ないことを証明する。") in extracted
    assert squash(record.name) in extracted
    assert format_wareki(record.birth_date) in extracted
    assert "東京都千代田区千代田一丁目1番1号" in extracted
    for absent in ("性別", "住民となった年月日", record.previous_address or "", "この写しは"):
        assert squash(absent) not in extracted, absent


def test_individual_form_is_one_person_and_a_household_form_one_household(desk: Desk) -> None:
    head, wife, _ = desk.family().person_ids
    with pytest.raises(InvalidValue) as one:
        desk.window(self_request(head, form="individual") | {"person_ids": [head, wife]})
    assert one.value.field == "form"
    other = desk.family(line="千代田五丁目5番").person_ids[0]
    with pytest.raises(RuleViolation) as mixed:
        desk.window(self_request(head) | {"person_ids": [head, other]})
    assert "同じ世帯" in mixed.value.detail


def test_removed_records_need_the_removed_kinds(desk: Desk, tmp_path: Path) -> None:
    head, wife, child = desk.family().person_ids
    died = days_ago(3)
    desk.event(
        "death", {"effective_on": died, "person": {"person_id": child, "version": desk.version(child)}}
    )
    request = {"person_ids": [child], "requester": {"kind": "household_member", "person_id": wife}}

    with pytest.raises(RuleViolation) as live_kind:
        desk.window({"kind": "record_copy", **request})
    assert "除票" in live_kind.value.detail
    copy = desk.window({"kind": "removed_record_copy", **request, "include": ["head_and_relationship"]})
    extracted, poppler = squash(pypdf_text(copy.pdf)), squash(pdftotext(copy.pdf, tmp_path))
    assert "除票の写し" in extracted
    assert squash("この写しは、除票の原本と相違ないことを証明する。") in extracted
    assert squash(f"{format_wareki(dt.date.fromisoformat(died))}　死亡により消除") in extracted
    assert "最終住所" in extracted
    assert "山田一郎" in poppler

    certificate = desk.window({"kind": "removed_record_certificate", "form": "individual", **request})
    extracted = squash(pypdf_text(certificate.pdf))
    assert "除票記載事項証明書" in extracted
    assert squash("上記の事項は、除票に記載されている事項と相違ないことを証明する。") in extracted
    assert "死亡により消除" in extracted
    assert "生年月日" not in extracted

    with pytest.raises(RuleViolation) as removed_kind:
        desk.window({"kind": "removed_record_copy", **self_request(head)} | {"kind": "removed_record_copy"})
    assert "消除されていません" in removed_kind.value.detail


def test_a_planned_move_out_is_not_printed_before_its_date(desk: Desk) -> None:
    people = desk.family().person_ids
    planned = today() + dt.timedelta(days=10)
    desk.event(
        "move-out",
        {
            "effective_on": planned.isoformat(),
            "persons": [{"person_id": p, "version": desk.version(p)} for p in people],
            "destination": "北海道札幌市中央区北1条西2丁目",
            "destination_lg_code": "011002",
        },
    )
    assert desk.record(people[0]).planned_move_out is not None
    before = squash(pypdf_text(desk.window(self_request(people[0])).pdf))
    for absent in ("転出", "札幌市中央区", format_wareki(planned)):
        assert absent not in before, absent

    # From the planned date the record is a 除票, which shows the move-out and where to.
    later = desk.at(dt.datetime.combine(planned, dt.time(3), tzinfo=dt.UTC))
    after = later.window(self_request(people[0], kind="removed_record_copy"))
    assert after.issue_date == planned
    text = squash(pypdf_text(after.pdf))
    assert squash(f"{format_wareki(planned)}　転出により消除　転出先 北海道札幌市中央区北1条西2丁目") in text


def test_foreign_residents_birth_date_in_western_calendar_and_omissible_items(desk: Desk) -> None:
    person = desk.event(
        "move-in-from-abroad",
        {
            "effective_on": days_ago(20),
            "address": {"line": "六番町3番", "katagaki": "六番町レジデンス12"},
            "previous_address": "アメリカ合衆国",
            "members": [
                {
                    "resident_kind": "foreign",
                    "family_name": "SMITH",
                    "given_name": "JANE",
                    "family_name_kana": "スミス",
                    "given_name_kana": "ジェーン",
                    "birth_date": "1990-07-04",
                    "sex": "female",
                    "relationship": "世帯主",
                    "foreign": {
                        "nationality": "アメリカ合衆国",
                        "category": "mid_to_long_term",
                        "name_alphabet": "SMITH JANE",
                        "status_of_residence": "技術・人文知識・国際業務",
                        "period_of_stay": "3年",
                        "stay_expires_on": (today() + dt.timedelta(days=700)).isoformat(),
                        "residence_card_number": "AB12345678CD",
                    },
                }
            ],
        },
    ).person_ids[0]
    desk.event(
        "alias-entry",
        {
            "effective_on": days_ago(5),
            "person": {"person_id": person, "version": desk.version(person)},
            "alias": "須美寿　ジェーン",
            "alias_kana": "スミス　ジェーン",
        },
    )
    full = squash(pypdf_text(desk.window(self_request(person)).pdf))
    expected = ["SMITHJANE", "1990年7月4日", "アメリカ合衆国", "中長期在留者", "技術・人文知識・国際業務"]
    expected += [
        "3年",
        "AB12345678CD",
        "須美寿ジェーン",
        squash(format_wareki(dt.date.fromisoformat(days_ago(5)))),
    ]
    for item in expected:
        assert item in full, item
    assert "平成2年7月4日" not in full

    omitted = desk.window(
        self_request(person, omit=["nationality", "foreign_status", "residence_card_number", "alias"])
    )
    text = squash(pypdf_text(omitted.pdf))
    for absent in ("国籍", "中長期在留者", "技術・人文知識・国際業務", "AB12345678CD", "須美寿"):
        assert absent not in text, absent
    assert "1990年7月4日" in text
    with pytest.raises(InvalidValue) as standard:
        desk.window(self_request(person, omit=["birth_date"]))
    assert standard.value.field == "omit"


def test_a_character_outside_ipaex_prints_from_the_fallback_font(desk: Desk, tmp_path: Path) -> None:
    if fonts.find_font("ipamjm.ttf") is None:
        if STRICT:
            pytest.fail("IPAmj明朝 (fonts-ipamj-mincho) がありません: JUMIN_TEST_STRICT=1 では必須です")
        pytest.skip("IPAmj明朝 (fonts-ipamj-mincho) がありません")
    assert not fonts.load_fonts().mincho.covers("\U00020bb7")  # the case this is about
    person = desk.one("\U00020bb7野", "太郎", ("ヨシノ", "タロウ"))
    issued = desk.window(self_request(person, include=["honseki"]))
    assert "\U00020bb7野太郎" in squash(pypdf_text(issued.pdf))
    assert "\U00020bb7野太郎" in squash(pdftotext(issued.pdf, tmp_path))


def test_without_a_font_for_it_issuance_refuses_and_names_the_character(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = desk.one("\U00020bb7野", "太郎", ("ヨシノ", "タロウ"))
    monkeypatch.setattr(service, "load_fonts", lambda: fonts.load_fonts(use_fallbacks=False))
    with pytest.raises(UnprintableCharacter) as refused:
        desk.window(self_request(person))
    assert refused.value.type_uri == "urn:jumin:problem:unprintable-character"
    assert "「\U00020bb7」(U+20BB7)" in refused.value.detail
    # The preview says so before the clerk tries to issue.
    with pytest.raises(UnprintableCharacter):
        service.preview_at_window(
            desk.db, ctx=desk.ctx, request=WindowIssueRequest.model_validate(self_request(person))
        )
    total, _ = service.list_issuances(desk.db, actor=desk.ctx.actor, lg_code=desk.lg_code)
    assert total == 0


def test_history_lists_events_and_the_addresses_they_set(desk: Desk) -> None:
    people = desk.family(moved=60).person_ids
    desk.event(
        "move-within",
        {
            "effective_on": days_ago(10),
            "persons": [{"person_id": p, "version": desk.version(p)} for p in people],
            "address": {"line": "九段南一丁目2番3号", "katagaki": "九段マンション502"},
        },
    )
    text = squash(pypdf_text(desk.window(self_request(people[0], include=["history"])).pdf))
    moved_in, moved = (format_wareki(dt.date.fromisoformat(days_ago(n))) for n in (60, 10))
    assert squash(f"{moved_in}　国外転入") in text
    assert squash(f"{moved}　転居") in text
    assert "東京都千代田区九段南一丁目2番3号九段マンション502" in text
    assert "東京都千代田区千代田一丁目1番1号千代田ハイツ101" in text


def test_a_large_household_spans_pages_numbered_x_of_y(desk: Desk) -> None:
    members = [member("大家", f"{i}郎", ("オオヤ", "タロウ"), relationship="子") for i in range(7)]
    members[0]["relationship"] = "世帯主"
    moved = desk.event(
        "move-in-from-abroad",
        {
            "effective_on": days_ago(5),
            "address": {"line": "千代田三丁目3番"},
            "previous_address": "カナダ",
            "members": members,
        },
    )
    issued = desk.window(
        {
            "kind": "record_copy",
            "household_id": moved.household_ids[0],
            "include": ALL_OPTIONAL,
            "requester": {"kind": "self", "person_id": moved.person_ids[0]},
        }
    )
    pages = [squash(p.extract_text()) for p in PdfReader(io.BytesIO(issued.pdf)).pages]
    assert len(pages) == issued.page_count >= 3
    for n, page in enumerate(pages, start=1):
        assert f"ページ{n}/{len(pages)}" in page
        assert issued.issue_number in page
    assert "この写しは、住民票の原本と相違ないことを証明する。" in pages[-1]
    assert "千代田区長" in pages[-1]
    assert all("この写しは" not in page for page in pages[:-1])
    everything = "".join(pages)
    for i in range(7):
        assert f"大家{i}郎" in everything


def _red_pixels(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        data = image.convert("RGB").tobytes()
    return sum(1 for i in range(0, len(data), 3) if data[i] > 150 and data[i + 1] < 90 and data[i + 2] < 90)


def test_every_page_is_a4_and_only_the_last_carries_the_seal(desk: Desk, tmp_path: Path) -> None:
    members = [member("大家", f"{i}郎", ("オオヤ", "タロウ"), relationship="子") for i in range(7)]
    members[0]["relationship"] = "世帯主"
    moved = desk.event(
        "move-in-from-abroad",
        {
            "effective_on": days_ago(5),
            "address": {"line": "千代田三丁目3番"},
            "previous_address": "カナダ",
            "members": members,
        },
    )
    issued = desk.window(
        {
            "kind": "record_copy",
            "household_id": moved.household_ids[0],
            "include": ALL_OPTIONAL,
            "requester": {"kind": "self", "person_id": moved.person_ids[0]},
        }
    )
    pages = PdfReader(io.BytesIO(issued.pdf)).pages
    assert len(pages) >= 2
    for page in pages:
        # A4 is 210 × 297 mm: 595.28 × 841.89 points.
        assert (round(float(page.mediabox.width), 1), round(float(page.mediabox.height), 1)) == (595.3, 841.9)
    pdftoppm = require_program("pdftoppm")
    source = tmp_path / "c.pdf"
    source.write_bytes(issued.pdf)
    subprocess.run([pdftoppm, "-r", "40", "-png", str(source), str(tmp_path / "p")], check=True)
    renders = sorted(tmp_path.glob("p-*.png"))
    red = [_red_pixels(p) for p in renders]
    assert len(red) == len(pages)
    assert red[-1] > 200, red  # the seal: a red square of about 21 mm
    assert all(n == 0 for n in red[:-1]), red
    # The seal is a drawing, not text: its characters do not extract as words.
    assert "千代田区長之印" not in squash(pypdf_text(issued.pdf))


def test_each_value_is_printed_beside_its_label(desk: Desk) -> None:
    person = desk.one(
        "佐藤",
        "花子",
        ("サトウ", "ハナコ"),
        sex="female",
        birth="1975-03-03",
        old_surname="鈴木",
        old_surname_kana="スズキ",
    )
    r = desk.record(person)
    assert r.old_surname == "鈴木"
    text = squash(pypdf_text(desk.window(self_request(person, include=ALL_OPTIONAL)).pdf))
    for label, value in (
        ("氏名", r.name),
        ("フリガナ", r.name_kana or "(none)"),
        ("旧氏", "鈴木"),
        ("旧氏の振り仮名", "スズキ"),
        ("生年月日", format_wareki(r.birth_date)),
        ("性別", "女"),
        ("続柄", r.relationship),
        ("住民となった年月日", format_wareki(r.became_resident_on)),
        ("住所を定めた年月日", format_wareki(r.address_set_on)),
        ("届出年月日", format_wareki(r.notified_on)),
        ("前住所", r.previous_address or "(none)"),
        ("本籍", r.honseki or "(none)"),
        ("筆頭者", r.hittousha or "(none)"),
        ("住民票コード", r.resident_code),
        ("個人番号", r.individual_number or "(none)"),
    ):
        assert squash(label + value) in text, (label, value)
    assert format_wareki(r.birth_date) == "昭和50年3月3日"


def test_as_of_a_date_prints_the_register_of_that_date(desk: Desk) -> None:
    people = desk.family(moved=60).person_ids
    head = people[0]
    desk.event(
        "move-within",
        {
            "effective_on": days_ago(10),
            "persons": [{"person_id": p, "version": desk.version(p)} for p in people],
            "address": {"line": "九段南一丁目2番3号"},
        },
    )
    before = dt.date.fromisoformat(days_ago(20))
    issued = desk.window(self_request(head, include=["history"], as_of=before.isoformat()))
    assert issued.as_of == before
    text = squash(pypdf_text(issued.pdf))
    assert squash(f"基準日{format_wareki(before)}現在") in text
    assert squash("住所東京都千代田区千代田一丁目1番1号 千代田ハイツ101") in text
    assert "九段南" not in text  # neither the new address nor the later move in the history
    assert "転居" not in text
    assert squash(f"{format_wareki(dt.date.fromisoformat(days_ago(60)))}　国外転入") in text
    view = service.get_issuance(desk.db, actor=desk.ctx.actor, lg_code="131016", number=issued.issue_number)
    assert view.as_of == before

    # Without a 基準日: today's register, and no 基準日 row.
    now = squash(pypdf_text(desk.window(self_request(head, include=["history"])).pdf))
    assert "基準日" not in now
    assert "東京都千代田区九段南一丁目2番3号" in now
    assert "転居" in now

    # The 和暦 is accepted too; the future and a date before the person lived here are not.
    wareki = desk.window(self_request(head, as_of=format_wareki(before)))
    assert wareki.as_of == before
    with pytest.raises(InvalidValue) as future:
        desk.window(self_request(head, as_of=(today() + dt.timedelta(days=1)).isoformat()))
    assert future.value.field == "as_of"
    with pytest.raises(NotFound):
        desk.window(self_request(head, as_of=days_ago(90)))


def test_as_of_a_date_with_a_planned_move_out_prints_it_once_its_date_has_come(desk: Desk) -> None:
    people = desk.family().person_ids
    planned = today() + dt.timedelta(days=10)
    desk.event(
        "move-out",
        {
            "effective_on": planned.isoformat(),
            "persons": [{"person_id": p, "version": desk.version(p)} for p in people],
            "destination": "北海道札幌市中央区北1条西2丁目",
            "destination_lg_code": "011002",
        },
    )
    # Issued after the move, certifying the register of the day the move-out was filed:
    # the record was live then, with its planned move-out, whose date has now come.
    later = desk.at(dt.datetime.combine(planned + dt.timedelta(days=1), dt.time(3), tzinfo=dt.UTC))
    issued = later.window(self_request(people[0], as_of=today().isoformat()))
    text = squash(pypdf_text(issued.pdf))
    assert squash(f"転出予定{format_wareki(planned)}　転出先 北海道札幌市中央区北1条西2丁目") in text
    assert "消除" not in text
    # A household-member's request for the same date: the 除票 kind is refused, it was live then.
    with pytest.raises(RuleViolation, match="消除されていません"):
        later.window(self_request(people[0], kind="removed_record_copy", as_of=today().isoformat()))


def test_the_preview_pdf_is_marked_and_cannot_pass_for_a_certificate(desk: Desk, tmp_path: Path) -> None:
    family = desk.family()
    body = {
        "kind": "record_copy",
        "household_id": family.household_ids[0],
        "include": ["head_and_relationship", "history"],
        "requester": {"kind": "self", "person_id": family.person_ids[0]},
    }
    preview = service.preview_at_window(
        desk.db, ctx=desk.ctx, request=WindowIssueRequest.model_validate(body)
    )
    specimen = service.preview_pdf(preview)
    text = squash(pypdf_text(specimen))
    assert "見本" in text
    assert squash(SPECIMEN_NOTICE) in text
    assert all(name in text for name in ("山田太郎", "山田花子", "山田一郎"))
    assert "検証コード" not in text
    assert not service.verify_document(desk.db, pdf=specimen).authentic

    pdftoppm, zbarimg = require_program("pdftoppm"), require_program("zbarimg")
    source = tmp_path / "preview.pdf"
    source.write_bytes(specimen)
    subprocess.run([pdftoppm, "-r", "100", "-png", str(source), str(tmp_path / "p")], check=True)
    renders = sorted(tmp_path.glob("p-*.png"))
    assert all(_red_pixels(p) == 0 for p in renders)  # no seal
    for page in renders:
        assert subprocess.run([zbarimg, "-q", str(page)], capture_output=True).returncode != 0  # no QR
    # Page for page what issuing prints.
    issued = desk.window(body)
    assert len(renders) == issued.page_count
