"""広域交付 at the national network: check who asks, ask the home municipality, return its answer.

The national network holds no resident record and reads no municipal table: it checks
the issuing municipality's signature, forwards the question to the home municipality's
registered endpoint signed with its own key, checks the home's signed answer, and hands
it back. Every step is audited in the national chain (who asked, for which 住民票コード,
which home, and how it ended).

No national transaction stays open while the home municipality is asked: the request is
accepted and audited in one unit of work, the home is called with none open, and the
outcome is audited in a second unit. A home that does not answer within
``HOME_TIMEOUT_SECONDS`` is a :class:`HomeUnavailable` (503) with the home's name, so the
clerk can tell the resident to try later or at the home's own window.

The copy-issued notice (:func:`forward_issued_notice`) takes the same road; an
unreachable home makes it fail, and the issuer's relay sends it again on its next cycle.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex

import httpx
from sqlalchemy.orm import Session

from jumin.audit import service as audit
from jumin.audit.domain import Actor, ActorKind, AuditAction, Outcome
from jumin.core.errors import DomainError, InvalidValue
from jumin.core.municipalities import load_master
from jumin.core.replication import MAX_CLOCK_SKEW, SENDER_HEADER, SIGNATURE_HEADER, sign, verify
from jumin.core.widearea import (
    HOME_ISSUED_PATH,
    HOME_RECORDS_PATH,
    HOME_TIMEOUT_SECONDS,
    NETWORK_KEY_NAME,
    NETWORK_SENDER,
    EnvelopeProblem,
    HomeUnavailable,
    IssuedNotice,
    RecordAnswer,
    RecordRequest,
    WideAreaKind,
    envelope,
    error_from_problem,
    open_envelope,
)
from jumin.db import utcnow
from jumin.keys import SigningKey, load_or_create_ed25519
from jumin.network.identity import repository, widearea_repository
from jumin.network.identity.domain import RefusalReason
from jumin.network.identity.models import EnvelopeNonce
from jumin.network.identity.service import _refuse, _require_register_keeper, authenticate
from jumin.network.identity.widearea_models import MunicipalityEndpoint
from jumin.network.service import NATIONAL_ORGANISATION
from jumin.request_context import current_request_id

PURPOSE = "住民票の写しの広域交付 (住民基本台帳法 第12条の4)"
_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")

NationalUnits = Callable[[], AbstractContextManager[Session]]


def network_key(key_dir: Path | None = None) -> SigningKey:
    """The key the national network signs what it forwards with; municipalities trust its public half."""
    return load_or_create_ed25519(NETWORK_KEY_NAME, key_dir)


def _issuer_actor(lg_code: str) -> Actor:
    return Actor(
        kind=ActorKind.SYSTEM, actor_id=f"municipality:{lg_code}", organisation_code=NATIONAL_ORGANISATION
    )


def _name(lg_code: str) -> str:
    entry = load_master().find(lg_code)
    return f"{entry.name} ({lg_code})" if entry is not None else lg_code


# ---------------------------------------------------------------------------
# Endpoints of the municipalities


@dataclass(frozen=True, slots=True)
class EndpointView:
    lg_code: str
    url: str
    registered_at: dt.datetime


def register_endpoint(
    session: Session, *, lg_code: str, url: str, actor: Actor | None = None
) -> EndpointView:
    """Where the municipality's system answers the network (replaced when it moves); audited."""
    lg = _require_register_keeper(lg_code)
    address = url.strip().rstrip("/")
    if len(address) > 300 or not _URL.match(address):
        raise InvalidValue("接続先は http(s)://ホスト[:ポート] の形式で指定してください。", field="url")
    row = widearea_repository.endpoint(session, lg.value)
    if row is not None and row.url == address:
        return EndpointView(row.lg_code, row.url, row.registered_at)
    now = utcnow()
    if row is None:
        row = MunicipalityEndpoint(
            lg_code=lg.value, prefecture_code=lg.prefecture_code, url=address, registered_at=now
        )
        repository.add(session, row)
    else:
        row.url = address
        row.registered_at = now
        session.flush()
    audit.record(
        session,
        actor=actor or Actor.system(NATIONAL_ORGANISATION),
        action=AuditAction.MUNICIPALITY_ENDPOINT_REGISTERED,
        target_kind="municipality",
        target_id=lg.value,
        detail=f"url={address}",
        now=now,
    )
    return EndpointView(row.lg_code, row.url, row.registered_at)


def list_endpoints(session: Session) -> list[EndpointView]:
    return [EndpointView(r.lg_code, r.url, r.registered_at) for r in widearea_repository.endpoints(session)]


# ---------------------------------------------------------------------------
# Calling the home municipality


@dataclass(frozen=True, slots=True)
class HomeReply:
    status: int
    body: bytes
    signature: str | None


class HomeGateway:
    """HTTP to the home municipality's registered endpoint, with a short timeout.

    ``http`` may be any httpx client (a test passes one that reaches an app in process);
    it then carries its own timeout.
    """

    def __init__(self, http: httpx.Client | None = None, *, timeout: float = HOME_TIMEOUT_SECONDS) -> None:
        self._http = http
        self.timeout = timeout

    def post(self, url: str, *, body: bytes, signature: str) -> HomeReply | None:
        """The home's reply, or None when it could not be reached at all."""
        headers = {
            "Content-Type": "application/json",
            "X-Request-ID": current_request_id(),
            SENDER_HEADER: NETWORK_SENDER,
            SIGNATURE_HEADER: signature,
        }
        try:
            if self._http is None:
                with httpx.Client(timeout=self.timeout) as http:
                    response = http.post(url, content=body, headers=headers)
            else:
                response = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return None
        return HomeReply(response.status_code, response.content, response.headers.get(SIGNATURE_HEADER))


# ---------------------------------------------------------------------------
# Accepting a request from the issuer


_REASON_BY_FIELD: Mapping[str | None, RefusalReason] = {
    "sender": RefusalReason.SENDER_MISMATCH,
    "sent_at": RefusalReason.STALE,
}


def _accept(
    session: Session,
    *,
    sender: str | None,
    signature: str | None,
    body: bytes,
    kind: WideAreaKind,
    route: str,
) -> tuple[str, dict[str, object]]:
    """The authenticated sender and the envelope's body: fresh, of this kind, its nonce never seen."""
    issuer = authenticate(session, sender=sender, signature=signature, signed=body, route=route)
    now = utcnow()
    try:
        opened = open_envelope(body, expected=kind, sender=issuer, now=now)
    except EnvelopeProblem as exc:
        reason = _REASON_BY_FIELD.get(exc.field, RefusalReason.WRONG_PURPOSE)
        raise _refuse(session, claimed=issuer, reason=reason, route=route, message=exc.detail) from exc
    if repository.nonce_seen(session, opened.nonce):
        raise _refuse(
            session,
            claimed=issuer,
            reason=RefusalReason.REPLAYED,
            route=route,
            message="同じ署名付きの送信を二度は受け付けません。新しい署名で送り直してください。",
        )
    repository.forget_nonces_before(session, now - 2 * MAX_CLOCK_SKEW)
    repository.add(
        session,
        EnvelopeNonce(
            nonce=opened.nonce,
            lg_code=issuer,
            prefecture_code=issuer[:2],
            sent_at=opened.sent_at,
            received_at=now,
        ),
    )
    return issuer, dict(opened.body)


@dataclass(frozen=True, slots=True)
class _Route:
    """A request accepted for forwarding: where to, what exactly, signed how."""

    issuer: str
    home: str
    target: str  # what the audit entries name (a 住民票コード or an issue number)
    reference: str  # request id
    url: str
    home_key_pem: str
    nonce: str
    forward: bytes
    signature: str


def _route_to_home(session: Session, *, issuer: str, home: str) -> tuple[str, str]:
    """The home's endpoint and key; a home the network cannot reach is refused here, audited."""
    if home == issuer:
        raise InvalidValue(
            "住所地と交付地が同じです。自団体の窓口交付を使ってください。", field="home_lg_code"
        )
    _require_register_keeper(home)
    endpoint = widearea_repository.endpoint(session, home)
    key = repository.municipality_key(session, home)
    if endpoint is None or key is None:
        missing = "接続先" if endpoint is None else "公開鍵"
        raise HomeUnavailable(
            f"住所地 {_name(home)} の{missing}が全国センターに登録されていないため照会できません。"
            "全国センターに登録を依頼してください。",
            field="home_lg_code",
        )
    return endpoint.url, key.public_key_pem


def accept_record_request(
    session: Session, *, sender: str | None, signature: str | None, body: bytes, route: str
) -> _Route:
    """Step 1: the issuer's signed request, checked and audited; the forward to the home, signed."""
    issuer, content = _accept(
        session, sender=sender, signature=signature, body=body, kind=WideAreaKind.REQUEST, route=route
    )
    request = RecordRequest.from_json(content.get("request"))
    if request.issuer_lg_code != issuer:
        raise _refuse(
            session,
            claimed=issuer,
            reason=RefusalReason.SENDER_MISMATCH,
            route=route,
            message="照会の交付地が署名した団体と一致しません。",
        )
    detail = (
        f"from={issuer} to={request.home_lg_code} request={request.request_id} "
        f"clerk={request.clerk} household={str(request.whole_household).lower()}"
    )
    try:
        url, home_key = _route_to_home(session, issuer=issuer, home=request.home_lg_code)
    except DomainError:
        audit.record(
            session,
            actor=_issuer_actor(issuer),
            action=AuditAction.WIDE_AREA_REQUEST_FORWARDED,
            target_kind="resident_code",
            target_id=request.resident_code,
            outcome=Outcome.FAILURE,
            purpose=PURPOSE,
            detail=detail + " reason=home_not_reachable",
        )
        raise
    audit.record(
        session,
        actor=_issuer_actor(issuer),
        action=AuditAction.WIDE_AREA_REQUEST_FORWARDED,
        target_kind="resident_code",
        target_id=request.resident_code,
        purpose=PURPOSE,
        detail=detail,
    )
    nonce = token_hex(16)
    forward = envelope(
        kind=WideAreaKind.FORWARD,
        sender=NETWORK_SENDER,
        sent_at=utcnow(),
        nonce=nonce,
        request=request.as_json(),
    )
    return _Route(
        issuer=issuer,
        home=request.home_lg_code,
        target=request.resident_code,
        reference=request.request_id,
        url=url + HOME_RECORDS_PATH,
        home_key_pem=home_key,
        nonce=nonce,
        forward=forward,
        signature=sign(network_key().private_key, forward),
    )


def _unreachable(home: str) -> HomeUnavailable:
    return HomeUnavailable(
        f"住所地 {_name(home)} のシステムから応答がありません。しばらくしてから再度お試しください"
        "（住所地の市区町村の窓口では交付を受けられます）。",
        field="home_lg_code",
    )


def _home_error(route: _Route, reply: HomeReply | None) -> DomainError | None:
    """The error the home's reply stands for, or None for a 200 (checked separately)."""
    if reply is None or reply.status >= 500:
        return _unreachable(route.home)
    if reply.status == 200:
        return None
    try:
        problem = json.loads(reply.body)
    except ValueError:
        problem = {}
    if reply.status in (401, 403) and not str(problem.get("type", "")).endswith(":protection-order"):
        # The home refused the network itself (its trust in the national key): not the clerk's doing.
        return HomeUnavailable(
            f"住所地 {_name(route.home)} のシステムが全国センターからの照会を受け付けませんでした"
            f" ({problem.get('detail', reply.status)})。全国センターに連絡してください。",
            field="home_lg_code",
        )
    return error_from_problem(reply.status, problem, refused=HomeUnavailable)


def settle_record_answer(
    session: Session, *, route: _Route, reply: HomeReply | None
) -> RecordAnswer | DomainError:
    """Step 2: the home's answer checked (signature, binding to the forward) and the outcome audited."""
    error = _home_error(route, reply)
    answer: RecordAnswer | None = None
    if error is None:
        assert reply is not None
        try:
            if reply.signature is None or not verify(route.home_key_pem, reply.body, reply.signature):
                raise InvalidValue(
                    "署名がありません、または住所地の公開鍵で検証できません。", field="signature"
                )
            answer = RecordAnswer.from_json(json.loads(reply.body))
            if (answer.home_lg_code, answer.request_id, answer.in_reply_to) != (
                route.home,
                route.reference,
                route.nonce,
            ):
                raise InvalidValue("回答が照会と対応していません。", field="request_id")
        except (ValueError, DomainError) as exc:
            why = getattr(exc, "detail", "JSON")
            error = HomeUnavailable(
                f"住所地 {_name(route.home)} の回答を確認できませんでした ({why})。"
                "全国センターに連絡してください。",
                field="home_lg_code",
            )
    if error is None:
        assert answer is not None
        outcome, detail = Outcome.SUCCESS, f"persons={len(answer.persons)}"
    else:
        denied = error.status in (403, 404, 409)
        outcome = Outcome.DENIED if denied else Outcome.FAILURE
        detail = f"problem={error.type_slug}"
    audit.record(
        session,
        actor=_issuer_actor(route.issuer),
        action=AuditAction.WIDE_AREA_ANSWER_RETURNED,
        target_kind="resident_code",
        target_id=route.target,
        outcome=outcome,
        purpose=PURPOSE,
        detail=f"from={route.home} to={route.issuer} request={route.reference} {detail}",
    )
    if error is not None:
        return error
    assert answer is not None
    return answer


def forward_record_request(
    units: NationalUnits,
    *,
    sender: str | None,
    signature: str | None,
    body: bytes,
    route: str,
    gateway: HomeGateway,
) -> RecordAnswer:
    """The whole exchange: accept (one unit), ask the home (no unit open), settle (another unit)."""
    with units() as session:
        accepted = accept_record_request(session, sender=sender, signature=signature, body=body, route=route)
    reply = gateway.post(accepted.url, body=accepted.forward, signature=accepted.signature)
    with units() as session:
        outcome = settle_record_answer(session, route=accepted, reply=reply)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


# ---------------------------------------------------------------------------
# The copy-issued notice


def accept_issued_notice(
    session: Session, *, sender: str | None, signature: str | None, body: bytes, route: str
) -> _Route:
    issuer, content = _accept(
        session, sender=sender, signature=signature, body=body, kind=WideAreaKind.ISSUED, route=route
    )
    notice = IssuedNotice.from_json(content.get("notice"))
    if notice.issuer_lg_code != issuer:
        raise _refuse(
            session,
            claimed=issuer,
            reason=RefusalReason.SENDER_MISMATCH,
            route=route,
            message="交付の通知の交付地が署名した団体と一致しません。",
        )
    url, home_key = _route_to_home(session, issuer=issuer, home=notice.home_lg_code)
    nonce = token_hex(16)
    forward = envelope(
        kind=WideAreaKind.ISSUED_FORWARD,
        sender=NETWORK_SENDER,
        sent_at=utcnow(),
        nonce=nonce,
        notice=notice.as_json(),
    )
    return _Route(
        issuer=issuer,
        home=notice.home_lg_code,
        target=notice.issue_number,
        reference=notice.request_id,
        url=url + HOME_ISSUED_PATH,
        home_key_pem=home_key,
        nonce=nonce,
        forward=forward,
        signature=sign(network_key().private_key, forward),
    )


def settle_issued_notice(session: Session, *, route: _Route, reply: HomeReply | None) -> str | DomainError:
    error = _home_error(route, reply)
    status = ""
    if error is None:
        assert reply is not None
        try:
            status = str(json.loads(reply.body).get("status", ""))
        except (ValueError, AttributeError):
            status = ""
        if status not in ("recorded", "duplicate"):
            error = _unreachable(route.home)
    audit.record(
        session,
        actor=_issuer_actor(route.issuer),
        action=AuditAction.WIDE_AREA_ISSUED_FORWARDED,
        target_kind="certificate",
        target_id=route.target,
        outcome=Outcome.SUCCESS if error is None else Outcome.FAILURE,
        purpose=PURPOSE,
        detail=f"from={route.issuer} to={route.home} request={route.reference} "
        + (f"status={status}" if error is None else f"problem={error.type_slug}"),
    )
    return error if error is not None else status


def forward_issued_notice(
    units: NationalUnits,
    *,
    sender: str | None,
    signature: str | None,
    body: bytes,
    route: str,
    gateway: HomeGateway,
) -> str:
    """Tell the home a copy was issued: "recorded", or "duplicate" when it already knew."""
    with units() as session:
        accepted = accept_issued_notice(session, sender=sender, signature=signature, body=body, route=route)
    reply = gateway.post(accepted.url, body=accepted.forward, signature=accepted.signature)
    with units() as session:
        outcome = settle_issued_notice(session, route=accepted, reply=reply)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome
