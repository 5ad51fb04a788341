from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from jumin.core_commands import ids_app, lg_app, wareki_app

# Stand-in for the root CLI, mounting the sub-apps the way cli.py does.
app = typer.Typer()
app.add_typer(ids_app, name="ids")
app.add_typer(wareki_app, name="wareki")
app.add_typer(lg_app, name="lg")

runner = CliRunner()


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


# --- jumin ids check ---------------------------------------------------------------------


def test_ids_check_all_valid() -> None:
    result = runner.invoke(app, ["ids", "check", "123456789018", "24727059608", "131016"])
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == [
        {"value": "123456789018", "kind": "individual_number", "valid": True, "reason": "ok"},
        {"value": "24727059608", "kind": "resident_code", "valid": True, "reason": "ok"},
        {"value": "131016", "kind": "lg_code", "valid": True, "reason": "ok"},
    ]


def test_ids_check_reports_each_and_fails_if_any_invalid() -> None:
    result = runner.invoke(app, ["ids", "check", "123456789018", "123456789012", "12345"])
    assert result.exit_code == 1
    assert lines(result.stdout) == [
        {"value": "123456789018", "kind": "individual_number", "valid": True, "reason": "ok"},
        {
            "value": "123456789012",
            "kind": "individual_number",
            "valid": False,
            "reason": "チェックデジットが一致しません",
        },
        {"value": "12345", "kind": "unknown", "valid": False, "reason": "桁数が不正です"},
    ]


def test_ids_check_prints_japanese_unescaped() -> None:
    result = runner.invoke(app, ["ids", "check", "１３１０１６", "abc"])
    assert result.exit_code == 1
    assert '"value": "１３１０１６"' in result.stdout
    assert '"reason": "数字以外の文字が含まれています"' in result.stdout
    assert "\\u" not in result.stdout


def test_ids_check_needs_a_value() -> None:
    result = runner.invoke(app, ["ids", "check"])
    assert result.exit_code == 2


# --- jumin wareki --------------------------------------------------------------------------


def test_wareki_format() -> None:
    result = runner.invoke(app, ["wareki", "format", "2019-05-01"])
    assert result.exit_code == 0
    assert result.stdout == "令和元年5月1日\n"


def test_wareki_parse() -> None:
    result = runner.invoke(app, ["wareki", "parse", "令和元年5月1日"])
    assert result.exit_code == 0
    assert result.stdout == "2019-05-01\n"
    result = runner.invoke(app, ["wareki", "parse", "H31.4.30"])
    assert result.stdout == "2019-04-30\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wareki", "parse", "令和元年4月30日"], "令和の期間"),
        (["wareki", "parse", "2019-05-01x"], "解釈できません"),
        (["wareki", "format", "2019-02-30"], "存在しない日付"),
        (["wareki", "format", "1868-01-24"], "明治元年"),
    ],
)
def test_wareki_bad_input(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr


# --- jumin lg ------------------------------------------------------------------------------------

CHIYODA = {
    "code": "131016",
    "name": "千代田区",
    "kana": "チヨダク",
    "prefecture_code": "130001",
    "kind": "special_ward",
}


def test_lg_list_everything() -> None:
    result = runner.invoke(app, ["lg", "list"])
    assert result.exit_code == 0
    entries = lines(result.stdout)
    assert len(entries) == 47 + 1741 + 171
    assert CHIYODA in entries
    for e in entries:
        if e["kind"] == "ward":
            assert set(e) == {*CHIYODA, "parent_code"}
        else:
            assert set(e) == set(CHIYODA)
    assert {
        "code": "011011",
        "name": "札幌市中央区",
        "kana": "サッポロシチュウオウク",
        "prefecture_code": "010006",
        "kind": "ward",
        "parent_code": "011002",
    } in entries


def test_lg_list_by_prefecture() -> None:
    two = runner.invoke(app, ["lg", "list", "--pref", "13"])
    six = runner.invoke(app, ["lg", "list", "--pref", "130001"])
    assert two.exit_code == six.exit_code == 0
    assert two.stdout == six.stdout
    entries = lines(two.stdout)
    assert len(entries) == 1 + 23 + 26 + 5 + 8
    assert entries[0]["code"] == "130001"
    assert CHIYODA in entries
    assert all(e["prefecture_code"] == "130001" for e in entries)


@pytest.mark.parametrize("pref", ["48", "131016", "x"])
def test_lg_list_bad_prefecture(pref: str) -> None:
    result = runner.invoke(app, ["lg", "list", "--pref", pref])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "エラー" in result.stderr


def test_lg_show() -> None:
    result = runner.invoke(app, ["lg", "show", "131016"])
    assert result.exit_code == 0
    assert lines(result.stdout) == [CHIYODA]
    ward = runner.invoke(app, ["lg", "show", "011011"])
    assert lines(ward.stdout)[0]["parent_code"] == "011002"
    five = runner.invoke(app, ["lg", "show", "13101"])
    assert lines(five.stdout) == [CHIYODA]


@pytest.mark.parametrize(
    ("code", "message"),
    [("130010", "該当する団体はありません"), ("131011", "チェックデジット"), ("1", "桁")],
)
def test_lg_show_unknown(code: str, message: str) -> None:
    result = runner.invoke(app, ["lg", "show", code])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr
