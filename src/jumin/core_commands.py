"""CLI commands over the pure core: ``jumin ids``, ``jumin wareki``, ``jumin lg``.

Outside ``jumin.core`` on purpose: the core stays free of typer. The root CLI mounts
the three sub-apps. Output is one JSON object per line (ensure_ascii=False) so that it
pipes into jq; errors are a Japanese message on stderr with exit status 2, the status
click uses for bad usage.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer

from jumin.core.errors import DomainError
from jumin.core.ids import LgCode, classify
from jumin.core.municipalities import Municipality, MunicipalityKind, load_master
from jumin.core.wareki import format_wareki, parse_date, parse_wareki

__all__ = ["ids_app", "lg_app", "municipality_json", "wareki_app"]

EXIT_INVALID_INPUT = 2

ids_app = typer.Typer(no_args_is_help=True, add_completion=False)
wareki_app = typer.Typer(no_args_is_help=True, add_completion=False)
lg_app = typer.Typer(no_args_is_help=True, add_completion=False)


def _emit(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


def _fail(error: DomainError) -> NoReturn:
    typer.echo(f"エラー: {error.detail}", err=True)
    raise typer.Exit(EXIT_INVALID_INPUT)


# A callback on each sub-app keeps it a command group even with a single command, so
# `jumin ids check ...` never collapses into `jumin ids ...`.
@ids_app.callback()
def ids_main() -> None:
    """個人番号・住民票コード・地方公共団体コードの検査"""


@ids_app.command("check")
def ids_check(
    values: Annotated[list[str], typer.Argument(help="検査する番号（複数可）")],
) -> None:
    """Classify each value by its digit count (12, 11, 6) and verify its check digit.

    Exit status 0 when every value is valid, 1 otherwise.
    """
    all_valid = True
    for value in values:
        result = classify(value)
        all_valid &= result.valid
        _emit(
            {
                "value": result.value,
                "kind": result.kind,
                "valid": result.valid,
                "reason": result.reason,
            }
        )
    if not all_valid:
        raise typer.Exit(1)


@wareki_app.callback()
def wareki_main() -> None:
    """和暦と西暦の変換"""


@wareki_app.command("format")
def wareki_format(
    value: Annotated[str, typer.Argument(help="日付（2019-05-01 など）")],
) -> None:
    """Print a date (ISO, or 和暦 to normalise) in 和暦: 2019-05-01 → 令和元年5月1日."""
    try:
        typer.echo(format_wareki(parse_date(value, field="date")))
    except DomainError as e:
        _fail(e)


@wareki_app.command("parse")
def wareki_parse(
    value: Annotated[str, typer.Argument(help="和暦の日付（令和元年5月1日、R1.5.1 など）")],
) -> None:
    """Print a 和暦 date in ISO 8601: 令和元年5月1日 → 2019-05-01."""
    try:
        typer.echo(parse_wareki(value, field="date").isoformat())
    except DomainError as e:
        _fail(e)


@lg_app.callback()
def lg_main() -> None:
    """地方公共団体コード（都道府県・市区町村・政令市の区）"""


def municipality_json(m: Municipality) -> dict[str, Any]:
    """The CLI's JSON shape; ``parent_code`` only for designated-city wards."""
    obj: dict[str, Any] = {
        "code": m.code,
        "name": m.name,
        "kana": m.kana,
        "prefecture_code": m.prefecture_code,
        "kind": m.kind.value,
    }
    if m.kind is MunicipalityKind.WARD:
        obj["parent_code"] = m.parent_code
    return obj


@lg_app.command("list")
def lg_list(
    pref: Annotated[
        str | None,
        typer.Option("--pref", help="都道府県（2桁の番号 13 または 6桁のコード 130001）"),
    ] = None,
) -> None:
    """Print every prefecture, municipality and designated-city ward, one JSON per line."""
    master = load_master()
    try:
        entries = master.all() if pref is None else master.in_prefecture(pref)
    except DomainError as e:
        _fail(e)
    for m in entries:
        _emit(municipality_json(m))


@lg_app.command("show")
def lg_show(
    code: Annotated[str, typer.Argument(help="地方公共団体コード（6桁、または検査数字なしの5桁）")],
) -> None:
    """Print one entry by its code."""
    try:
        lg = LgCode.from_five_digits(code) if len(code.strip()) == 5 else LgCode.parse(code)
        _emit(municipality_json(load_master().get(lg)))
    except DomainError as e:
        _fail(e)
