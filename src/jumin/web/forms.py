"""HTML forms generated from the register's request models, and parsed back into them.

One form per event kind, built from the same Pydantic model the API and CLI accept, so
a new event kind gets a form without a template and a changed field shows up at once.
Inputs are named by their dotted path in the request (``members.0.birth_date``); the
same path comes back in a validation error's ``loc`` or a domain error's ``field``, so
each error lands beside its input.

Nothing here decides what is allowed: the request model and the service do. This module
only lays fields out, fills in what the clerk already has on screen (the person's id and
version, the household's members) and turns the posted strings back into a request.
"""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from starlette.datastructures import FormData

from jumin.core.errors import DomainError, InvalidValue
from jumin.core.wareki import parse_date
from jumin.registry.domain import CORRECTABLE_ITEMS, ForeignResidentCategory, ResidentKind, Sex
from jumin.registry.schemas import HouseholdRef, MemberRelationship, PersonRef
from jumin.registry.service import HouseholdView, RecordView
from jumin.web.security import CSRF_FIELD

DATE_HINT = "例: 令和7年4月1日、R7.4.1、2025-04-01"
STALE_MESSAGE = "他の職員がこの記録を更新しました。再読み込みしてください。"
CORRECTION_ROWS = 3

# Field names → the words on the form. Descriptions in the request models are the
# fallback; these are the short labels a clerk reads at the window.
LABELS: Mapping[str, str] = {
    "effective_on": "異動年月日",
    "notified_on": "届出年月日",
    "reason": "事由・備考",
    "line": "町名・番地",
    "katagaki": "方書 (建物名・部屋番号)",
    "address": "新しい住所",
    "previous_address": "従前の住所 (国外からは国名)",
    "origin_lg_code": "転出元の地方公共団体コード",
    "household": "世帯",
    "household_id": "世帯ID",
    "version": "版",
    "person_id": "住民ID",
    "members": "世帯員",
    "child": "出生した子",
    "resident_kind": "住民の種別",
    "family_name": "氏",
    "given_name": "名",
    "family_name_kana": "氏の振り仮名",
    "given_name_kana": "名の振り仮名",
    "birth_date": "生年月日",
    "sex": "性別",
    "relationship": "続柄",
    "honseki": "本籍",
    "hittousha": "筆頭者",
    "old_surname": "旧氏",
    "old_surname_kana": "旧氏の振り仮名",
    "resident_code": "住民票コード",
    "individual_number": "個人番号",
    "foreign": "外国人住民の記載事項",
    "nationality": "国籍・地域",
    "category": "外国人住民の区分",
    "name_alphabet": "氏名 (アルファベット表記)",
    "status_of_residence": "在留資格",
    "period_of_stay": "在留期間",
    "stay_expires_on": "在留期間の満了の日",
    "residence_card_number": "在留カード等の番号",
    "became_foreign_resident_on": "外国人住民となった年月日",
    "alias": "通称",
    "alias_kana": "通称の振り仮名",
    "persons": "対象者",
    "destination": "転出先の住所 (国外は国名)",
    "destination_lg_code": "転出先の地方公共団体コード",
    "abroad": "国外への転出",
    "remaining_head_person_id": "残る世帯の新しい世帯主 (住民ID)",
    "person": "対象者",
    "remaining_relationships": "元の世帯に残る世帯員の続柄",
    "relationships": "新しい続柄",
    "from_household": "合併される世帯",
    "into_household": "加わる先の世帯",
    "from_households": "元の世帯",
    "items": "修正する項目",
    "event_id": "取り消す異動の番号",
    "versions": "取り消す異動の対象者",
}

CORRECTABLE_LABELS: Mapping[str, str] = {
    "family_name": "氏",
    "given_name": "名",
    "family_name_kana": "氏の振り仮名",
    "given_name_kana": "名の振り仮名",
    "birth_date": "生年月日",
    "sex": "性別 (male / female)",
    "relationship": "続柄",
    "honseki": "本籍",
    "hittousha": "筆頭者",
    "old_surname": "旧氏",
    "old_surname_kana": "旧氏の振り仮名",
    "became_resident_on": "住民となった年月日",
    "address_set_on": "住所を定めた年月日",
    "notified_on": "届出年月日",
    "previous_address": "従前の住所",
    "address_line": "住所 (町名・番地)",
    "address_katagaki": "方書",
}

ENUM_LABELS: Mapping[type[Enum], Mapping[str, str]] = {
    Sex: {"male": "男", "female": "女"},
    ResidentKind: {"japanese": "日本人住民", "foreign": "外国人住民"},
    ForeignResidentCategory: {
        "mid_to_long_term": "中長期在留者",
        "special_permanent": "特別永住者",
        "temporary_refuge": "一時庇護許可者",
        "provisional_stay": "仮滞在許可者",
        "transitional_birth": "出生による経過滞在者",
        "transitional_nationality_loss": "国籍喪失による経過滞在者",
    },
}

WidgetKind = Literal["text", "date", "number", "select", "checkbox", "hidden", "textarea"]


@dataclass
class Widget:
    name: str
    label: str
    kind: WidgetKind
    value: str = ""
    required: bool = False
    hint: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    autocomplete: str = "off"

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-").replace("_", "-")


@dataclass
class Group:
    """A fieldset: a nested request object or one row of a list."""

    name: str
    legend: str
    items: list[Widget | Group] = field(default_factory=list)
    error: str = ""
    note: str = ""
    collapsible: bool = False


@dataclass
class FormContext:
    """What the clerk already has on screen when opening the form."""

    person: RecordView | None = None
    household: HouseholdView | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    # True when ``values`` is a posted form being shown again: an absent checkbox then
    # means "unticked", not "use the default".
    submitted: bool = False
    list_counts: Mapping[str, int] = field(default_factory=dict)
    # Members of the household pre-selected in a selectable list (persons, relationships).
    preselect_all: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------
# Types


def _strip(tp: Any) -> tuple[Any, bool]:
    """The field's core type, and whether None is allowed."""
    optional = False
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            optional = optional or len(args) < len(get_args(tp))
            if len(args) != 1:
                return tp, optional
            tp = args[0]
        else:
            return tp, optional


def _is_model(tp: Any, model: type[BaseModel] | None = None) -> bool:
    return isinstance(tp, type) and issubclass(tp, model or BaseModel)


def _label(name: str, info: FieldInfo | None) -> str:
    if name in LABELS:
        return LABELS[name]
    if info is not None and info.description:
        return info.description
    return name


# ---------------------------------------------------------------------------
# Building


def build_form(model: type[BaseModel], ctx: FormContext) -> list[Widget | Group]:
    return _fields(model, "", ctx)


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _fields(model: type[BaseModel], prefix: str, ctx: FormContext) -> list[Widget | Group]:
    items: list[Widget | Group] = []
    for name, info in model.model_fields.items():
        items.extend(_field(name, info, _path(prefix, name), ctx))
    return items


def _member_rows(ctx: FormContext) -> list[RecordView]:
    if ctx.household is not None and ctx.household.members:
        return list(ctx.household.members)
    return [ctx.person] if ctx.person is not None else []


def _preselected(path: str, member: RecordView, ctx: FormContext) -> bool:
    """Fresh form: the focal person, or everyone for lists that concern the whole household."""
    return path.split(".")[0] in ctx.preselect_all or (
        ctx.person is not None and member.person_id == ctx.person.person_id
    )


def _field(name: str, info: FieldInfo, path: str, ctx: FormContext) -> list[Widget | Group]:
    tp, optional = _strip(info.annotation)
    required = info.is_required() and not optional
    label = _label(name, info)
    origin = get_origin(tp)

    if _is_model(tp, PersonRef) and ctx.person is not None:
        return [_person_ref(path, ctx.person, label, ctx)]
    if _is_model(tp, HouseholdRef) and name == "household" and ctx.household is not None:
        return [
            Widget(f"{path}.household_id", "世帯ID", "hidden", str(ctx.household.household_id)),
            Widget(
                f"{path}.version", "世帯の版", "hidden", _value(ctx, f"{path}.version", ctx.household.version)
            ),
        ]
    if _is_model(tp, HouseholdRef) and name.startswith("from") and ctx.household is not None:
        group = Group(path, label, _fields(tp, path, ctx))
        _prefill(group, {"household_id": ctx.household.household_id, "version": ctx.household.version}, ctx)
        return [group]
    if origin is list:
        (element,) = get_args(tp)
        element, _ = _strip(element)
        return [_list(name, path, element, label, info, ctx)]
    if origin is dict:
        return [_correction_items(path, label, ctx)]
    if _is_model(tp):
        group = Group(path, label, _fields(tp, path, ctx), collapsible=optional)
        if optional:
            group.note = "該当する場合のみ入力してください。"
        return [group]
    return [_widget(name, path, tp, label, required, info, ctx)]


def _value(ctx: FormContext, path: str, default: object = "") -> str:
    if path in ctx.values:
        return ctx.values[path]
    if default is None:
        return ""
    return str(default)


def _prefill(group: Group, defaults: Mapping[str, object], ctx: FormContext) -> None:
    for item in group.items:
        if isinstance(item, Widget):
            key = item.name.rsplit(".", 1)[-1]
            if key in defaults and item.name not in ctx.values:
                item.value = str(defaults[key])


def _person_ref(path: str, person: RecordView, label: str, ctx: FormContext) -> Group:
    return Group(
        path,
        label,
        [
            Widget(f"{path}.person_id", "住民ID", "hidden", str(person.person_id)),
            Widget(f"{path}.version", "版", "hidden", _value(ctx, f"{path}.version", person.version)),
        ],
        note=f"{person.record.name} (住民ID {person.person_id})",
    )


def _list(name: str, path: str, element: Any, label: str, info: FieldInfo, ctx: FormContext) -> Group:
    group = Group(path, label)
    members = _member_rows(ctx)
    if _is_model(element, PersonRef) and members:
        for i, m in enumerate(members):
            row = f"{path}.{i}"
            group.items.append(
                Group(
                    row,
                    f"{m.record.name} ({m.record.relationship})",
                    [
                        *_include(row, m, ctx, f"{m.record.name}を対象にする"),
                        Widget(f"{row}.person_id", "住民ID", "hidden", str(m.person_id)),
                        Widget(f"{row}.version", "版", "hidden", _value(ctx, f"{row}.version", m.version)),
                    ],
                )
            )
        group.note = "対象になる人を選んでください。"
        return group
    if _is_model(element, MemberRelationship) and members:
        for i, m in enumerate(members):
            row = f"{path}.{i}"
            group.items.append(
                Group(
                    row,
                    f"{m.record.name} (現在の続柄: {m.record.relationship})",
                    [
                        *_include(row, m, ctx, f"{m.record.name}を含める"),
                        Widget(f"{row}.person_id", "住民ID", "hidden", str(m.person_id)),
                        Widget(
                            f"{row}.relationship",
                            "続柄",
                            "text",
                            _value(ctx, f"{row}.relationship", m.record.relationship),
                        ),
                    ],
                )
            )
        group.note = "含める人を選び、続柄を入力してください。"
        return group
    count = max(ctx.list_counts.get(name, 0), 1)
    for i in range(count):
        row = f"{path}.{i}"
        if _is_model(element):
            group.items.append(Group(row, f"{label} {i + 1}", _fields(element, row, ctx)))
        else:
            group.items.append(_widget(name, row, element, f"{label} {i + 1}", False, info, ctx))
    return group


def _include(row: str, member: RecordView, ctx: FormContext, label: str) -> list[Widget]:
    # A resubmitted form keeps what the clerk ticked; a fresh one starts from the default.
    checked = ctx.values.get(f"{row}.include") == "true" if ctx.submitted else _preselected(row, member, ctx)
    return [
        Widget(f"{row}.include", label, "checkbox", "true" if checked else ""),
        Widget(f"{row}.selectable", "", "hidden", "1"),
    ]


def _correction_items(path: str, label: str, ctx: FormContext) -> Group:
    options = [("", "(選択してください)")] + [(k, CORRECTABLE_LABELS.get(k, k)) for k in CORRECTABLE_ITEMS]
    group = Group(
        path, label, note="誤っている項目と正しい値を入力してください。日付は和暦でも入力できます。"
    )
    for i in range(CORRECTION_ROWS):
        row = f"{path}.{i}"
        group.items.append(
            Group(
                row,
                f"修正 {i + 1}",
                [
                    Widget(f"{row}.name", "項目", "select", _value(ctx, f"{row}.name"), options=options),
                    Widget(f"{row}.value", "正しい値", "text", _value(ctx, f"{row}.value")),
                ],
            )
        )
    return group


def _widget(
    name: str, path: str, tp: Any, label: str, required: bool, info: FieldInfo, ctx: FormContext
) -> Widget:
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if isinstance(default, Enum):
        default = default.value
    if isinstance(tp, type) and issubclass(tp, Enum):
        labels = ENUM_LABELS.get(tp, {})
        options = [] if required else [("", "(選択してください)")]
        options += [(m.value, labels.get(m.value, m.value)) for m in tp]
        return Widget(path, label, "select", _value(ctx, path, default), required, options=options)
    if tp is bool:
        checked = ctx.values.get(path) == "true" if ctx.submitted else bool(default)
        return Widget(path, label, "checkbox", "true" if checked else "")
    if tp is dt.date:
        return Widget(path, label, "date", _value(ctx, path, default), required, hint=DATE_HINT)
    if tp is int:
        return Widget(path, label, "number", _value(ctx, path, default), required)
    kind: WidgetKind = "textarea" if name == "reason" else "text"
    hint = ""
    if name.endswith("_kana"):
        hint = "全角カタカナ"
    elif name.endswith("lg_code"):
        hint = "6桁 (例: 131016)"
    return Widget(path, label, kind, _value(ctx, path, default), required, hint=hint)


# ---------------------------------------------------------------------------
# Parsing


def form_values(form: FormData) -> dict[str, str]:
    """The posted fields as strings, without the CSRF token (to refill a refused form)."""
    return {
        k: v.strip()
        for k, v in form.multi_items()
        if isinstance(v, str) and k != CSRF_FIELD and not k.startswith("_")
    }


def _nest(values: Mapping[str, str]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in values.items():
        if value == "":
            continue
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


def _listify(node: Any) -> Any:
    """Dicts keyed 0, 1, 2... become lists; unticked selectable rows and empty groups go."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    converted = {k: v for k, v in converted.items() if v not in ({}, [])}
    if converted and all(k.isdigit() for k in converted):
        rows = []
        for _, row in sorted(converted.items(), key=lambda kv: int(kv[0])):
            # A selectable row posts its hidden id and version even when its box is
            # unticked; only the ticked ones are part of the request.
            selectable = isinstance(row, dict) and row.pop("selectable", None) is not None
            if selectable and row.pop("include", None) != "true":
                continue
            rows.append(row)
        return rows
    return converted


class FormInvalid(Exception):
    """The posted form does not make a valid request: errors by input name."""

    def __init__(self, errors: dict[str, str], summary: str = "") -> None:
        super().__init__(summary or "入力内容に誤りがあります。")
        self.errors = errors
        self.summary = summary


def parse_request(model: type[BaseModel], values: Mapping[str, str]) -> BaseModel:
    """The request model from posted strings; FormInvalid names every bad input."""
    data = _listify(_nest(values))
    if not isinstance(data, dict):
        data = {}
    errors: dict[str, str] = {}
    if "items" in model.model_fields and "items" in data:
        data["items"] = _items(data["items"], errors)
    if errors:
        raise FormInvalid(errors)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FormInvalid(validation_errors(exc)) from exc


def _items(rows: Any, errors: dict[str, str]) -> dict[str, Any]:
    items: dict[str, Any] = {}
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        name = row.get("name") if isinstance(row, dict) else None
        if not name:
            continue
        value = row.get("value")
        if value is not None and CORRECTABLE_ITEMS.get(name) == "date":
            try:
                value = parse_date(value).isoformat()
            except InvalidValue as exc:
                errors[f"items.{i}.value"] = exc.detail
        items[name] = value
    return items


_MESSAGES: Mapping[str, str] = {
    "missing": "入力してください。",
    "string_too_short": "入力してください。",
    "too_short": "1件以上選んでください。",
    "int_parsing": "半角数字で入力してください。",
    "int_type": "半角数字で入力してください。",
    "enum": "選択肢から選んでください。",
    "literal_error": "選択肢から選んでください。",
    "date_parsing": "日付として解釈できません (" + DATE_HINT + ")。",
    "date_from_datetime_parsing": "日付として解釈できません (" + DATE_HINT + ")。",
    "date_type": "日付として解釈できません (" + DATE_HINT + ")。",
    "string_pattern_mismatch": "形式が正しくありません。",
    "extra_forbidden": "この項目は指定できません。",
    "bool_parsing": "はい・いいえで指定してください。",
}


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "value_error":
        # Our validators raise Japanese messages; pydantic prefixes them in English.
        return str(error.get("msg", "")).removeprefix("Value error, ")
    if kind == "string_too_long":
        return f"{ctx.get('max_length')}文字以内で入力してください。"
    if kind in ("greater_than_equal", "greater_than"):
        return "正しい番号を入力してください。"
    if kind == "too_long":
        return f"{ctx.get('max_length')}件以内にしてください。"
    return _MESSAGES.get(kind, "入力内容を確認してください。")


def validation_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "_form"
        errors.setdefault(name, _message(error))
    return errors


def domain_error_fields(exc: DomainError, names: Sequence[str]) -> dict[str, str]:
    """Where a service error belongs: the input its ``field`` names, else the form as a whole."""
    if exc.field:
        if exc.field in names:
            return {exc.field: exc.detail}
        for name in names:
            if name.endswith("." + exc.field):
                return {name: exc.detail}
    return {"_form": exc.detail}


def widget_names(items: Sequence[Widget | Group]) -> list[str]:
    names: list[str] = []
    for item in items:
        if isinstance(item, Widget):
            names.append(item.name)
        else:
            names.extend(widget_names(item.items))
    return names


def attach_errors(items: Sequence[Widget | Group], errors: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Put each error on its input (or the nearest group); returns (anchor id, label, message)."""
    placed: list[tuple[str, str, str]] = []
    remaining = dict(errors)

    def walk(nodes: Sequence[Widget | Group]) -> None:
        for node in nodes:
            if isinstance(node, Widget):
                if node.name in remaining:
                    node.error = remaining.pop(node.name)
                    placed.append((node.id, node.label, node.error))
            else:
                walk(node.items)
                if node.name in remaining:
                    node.error = remaining.pop(node.name)
                    placed.append(("g-" + node.name.replace(".", "-"), node.legend, node.error))

    walk(items)
    for name, message in remaining.items():
        # Errors on a path with no input of its own (a row's model rule) go to the
        # closest enclosing group, or stay at the top of the form.
        target = _closest_group(items, name)
        if target is not None:
            target.error = (target.error + " " if target.error else "") + message
            placed.append(("g-" + target.name.replace(".", "-"), target.legend, message))
        else:
            placed.append(("", "", message))
    return placed


def _closest_group(items: Sequence[Widget | Group], name: str) -> Group | None:
    best: Group | None = None
    for node in items:
        if isinstance(node, Group) and (name.startswith(node.name + ".") or name == node.name):
            best = node
            deeper = _closest_group(node.items, name)
            if deeper is not None:
                best = deeper
    return best


def request_values(request: BaseModel, members: Sequence[RecordView]) -> dict[str, str]:
    """A stored request as the form's posted values, to open it again (a resubmitted draft).

    Versions are left out, so the form names the versions current now. A list of the
    household's persons comes back as the ticked rows of the members on screen.
    """
    values: dict[str, str] = {}
    row_of = {m.person_id: i for i, m in enumerate(members)}

    def put(path: str, value: Any) -> None:
        name = path.rsplit(".", 1)[-1]
        if isinstance(value, dict):
            if name == "items":
                for i, (item, item_value) in enumerate(value.items()):
                    values[f"{path}.{i}.name"] = str(item)
                    values[f"{path}.{i}.value"] = "" if item_value is None else str(item_value)
                return
            for key, inner in value.items():
                if key != "version":
                    put(f"{path}.{key}" if path else key, inner)
            return
        if isinstance(value, list):
            if value and all(isinstance(v, dict) and "person_id" in v for v in value) and members:
                for v in value:
                    row = row_of.get(int(v["person_id"]))
                    if row is None:
                        continue
                    values[f"{path}.{row}.include"] = "true"
                    for key, inner in v.items():
                        if key not in ("person_id", "version"):
                            put(f"{path}.{row}.{key}", inner)
                return
            for i, v in enumerate(value):
                put(f"{path}.{i}", v)
            return
        if isinstance(value, bool):
            values[path] = "true" if value else ""
        elif value is not None:
            values[path] = str(value)

    put("", request.model_dump(mode="json"))
    return values
