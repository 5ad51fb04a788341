"""Use cases of the resident portal: each one composes the services that own the rules.

The portal holds no rule of its own about the register, the card or certificates: the
card service checks the PIN and the certificate, the register decides who may move out
and when, the certificate service decides what a kiosk may issue. What lives here is
how those meet for a resident who logged in with their card:

- ``card_login`` plays the card reader for the software card (docs/card.md): a fresh
  challenge, signed by the card's authentication key once the PIN is right, verified
  by the card service (chain, validity, OCSP, card status);
- ``issue_record_copy`` hands the card login to the kiosk channel of the certificate
  service, from the municipality that holds the resident's record now;
- ``who_looked`` gathers every access to the resident's data by someone else: the
  national network's access log (agencies, by statutory task), the card's audit
  entries by staff, and the municipal audit entries on the resident's records.

The municipal register and the national side have separate databases: functions take
``session`` (municipal) and ``national`` (the national side's unit of work).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from jumin.accounts import service as accounts
from jumin.audit import service as audit
from jumin.audit.domain import ActorKind, Outcome
from jumin.card import service as cards
from jumin.card.domain import (
    CardAuthenticationFailed,
    CardNotFound,
    CertificateKind,
    ResidentPrincipal,
    check_auth_pin,
)
from jumin.certificates import service as certificates
from jumin.certificates.domain import CardCredentials, DocumentKind, Form, Item
from jumin.certificates.schemas import KioskCardIssueRequest
from jumin.core.errors import InvalidValue
from jumin.core.ids import ResidentCode
from jumin.core.municipalities import load_master
from jumin.network.agencies import service as agencies
from jumin.network_client import NetworkClient
from jumin.registry import service as registry
from jumin.registry.domain import EventOutcome
from jumin.registry.schemas import MoveOutRequest, PersonRef

PURPOSE = "住民本人による確認 (住民ポータル)"
ACCESS_LOG_LIMIT = 200

__all__ = [
    "ACCESS_LOG_LIMIT",
    "PURPOSE",
    "AccessEntry",
    "card_login",
    "file_move_out",
    "issue_record_copy",
    "who_looked",
]


# --- the card reader ---------------------------------------------------------------------------


def card_login(national: Session, *, card_number: str, pin: str) -> cards.ResidentLogin:
    """Log in with the card: the software card signs a fresh challenge after its PIN.

    A wrong PIN counts down the card's tries (kept, although the login fails) and the
    third locks the key until the window resets the PIN, as the chip enforces. An unknown
    card number fails like a wrong card, saying nothing about which numbers exist.
    """
    number = card_number.replace(" ", "").replace("-", "")
    check_auth_pin(pin)
    challenge = cards.login_challenge(national)
    try:
        certificate = cards.read_certificate(national, card_number=number, kind=CertificateKind.AUTH)
        signature = cards.sign_with_card(
            national, card_number=number, kind=CertificateKind.AUTH, pin=pin, data=challenge.to_sign
        )
    except CardNotFound:
        raise CardAuthenticationFailed(
            "カード番号が正しくないか、利用者証明用電子証明書のないカードです。", field="card_number"
        ) from None
    return cards.login(
        national, challenge_id=challenge.challenge_id, certificate_der=certificate, signature=signature
    )


# --- certificates -------------------------------------------------------------------------------


def issue_record_copy(
    session: Session,
    *,
    resident: ResidentPrincipal,
    network: NetworkClient,
    whole_household: bool,
    include: list[Item],
) -> certificates.IssuedCertificate:
    """住民票の写し on the kiosk channel, from the municipality that holds the record now.

    The portal session is a card login the card service verified (signature, chain,
    OCSP): that is the kiosk's card authentication, so no PIN is asked again here.
    """
    ctx, _ = registry.resident_context(session, resident_code=resident.resident_code, network=network)
    request = KioskCardIssueRequest(
        lg_code=ctx.lg_code,
        kind=DocumentKind.RECORD_COPY,
        form=Form.HOUSEHOLD,
        whole_household=whole_household,
        include=include,
        omit=[],
    )
    card = CardCredentials(
        resident_code=resident.resident_code,
        card_id=resident.card_id,
        certificate_serial=resident.certificate_serial,
    )
    return certificates.issue_at_kiosk_with_card(session, network=network, request=request, card=card)


# --- the online 転出届 --------------------------------------------------------------------------


def file_move_out(
    session: Session,
    *,
    resident: ResidentPrincipal,
    network: NetworkClient,
    persons: list[PersonRef],
    planned_on: dt.date,
    destination_lg_code: str,
    destination_line: str,
    remaining_head_person_id: int | None,
) -> EventOutcome:
    """The resident files a 転出届 with a 転入予約 to ``destination_lg_code``."""
    ctx, person_id = registry.resident_context(session, resident_code=resident.resident_code, network=network)
    master = load_master()
    entry = master.find(destination_lg_code)
    if entry is None:
        raise InvalidValue("転出先の市区町村を選んでください。", field="destination_lg_code")
    place = (
        entry.name
        if entry.code == entry.prefecture_code
        else master.get(entry.prefecture_code).name + entry.name
    )
    line = destination_line.strip()
    if not line:
        raise InvalidValue("転出先の町名・番地を入力してください。", field="destination_line")
    request = MoveOutRequest(
        effective_on=planned_on,
        persons=persons,
        destination=(place + line)[:200],
        destination_lg_code=destination_lg_code,
        remaining_head_person_id=remaining_head_person_id,
    )
    return registry.move_out_online(session, ctx=ctx, filer_person_id=person_id, request=request)


# --- who looked at my data ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One access to the resident's data by someone other than the resident."""

    accessed_at: dt.datetime
    source: str  # "network" (住基ネット), "card" (カード・電子証明書) or "register" (住民記録)
    organisation_code: str
    actor_kind: str  # ActorKind value
    action: str  # an AuditAction value, or "network.provided:<query kind>"
    purpose: str  # the statutory task's title, or the purpose the reader gave
    task_code: str
    refused: bool


_SELF_OR_MACHINE = frozenset({ActorKind.SYSTEM.value})
_CARD_ACTIONS = ("card.", "jpki.")


def _by_others(kind: str, actor_id: str, own: frozenset[str]) -> bool:
    if kind in _SELF_OR_MACHINE:
        return False
    # "anonymous": a refused card login or suspension, made with the card before anyone
    # was identified; the card's own holder is the one who has it.
    return not (kind == ActorKind.RESIDENT.value and (actor_id in own or actor_id == "anonymous"))


def who_looked(
    session: Session,
    national: Session,
    *,
    resident: ResidentPrincipal,
    limit: int = ACCESS_LOG_LIMIT,
) -> list[AccessEntry]:
    """Every access by agencies, clerks and other people to this resident's data, newest first.

    Reading these logs is itself audited, on both sides, as the resident's read.
    """
    code = resident.resident_code
    found = registry.records_of_resident(session, resident_code=code)
    own = frozenset({code} | {f"person:{person_id}" for _, person_id in found.all})
    entries: list[AccessEntry] = []

    for row in agencies.resident_access_log(
        national, viewer=cards.resident_actor(resident), resident_code=ResidentCode.parse(code), limit=limit
    ):
        entries.append(
            AccessEntry(
                accessed_at=row.accessed_at,
                source="network",
                organisation_code=row.organisation_code,
                actor_kind=row.actor_kind,
                action=f"network.provided:{row.query_kind}",
                purpose=row.task_title or row.purpose,
                task_code=row.task_code,
                refused=False,
            )
        )

    for view in audit.search(
        national,
        viewer=cards.resident_actor(resident),
        organisation_code=None,
        target_kind="resident_code",
        target_id=code,
        limit=limit,
    ):
        if view.action.startswith(_CARD_ACTIONS) and _by_others(view.actor_kind, view.actor_id, own):
            entries.append(
                AccessEntry(
                    accessed_at=view.occurred_at,
                    source="card",
                    organisation_code=view.organisation_code,
                    actor_kind=view.actor_kind,
                    action=view.action,
                    purpose=view.purpose,
                    task_code="",
                    refused=view.outcome != Outcome.SUCCESS.value,
                )
            )

    if found.all:
        lg_code, person_id = found.current or found.all[-1]
        reader = registry.resident_actor(lg_code, person_id)
        targets = [("person", str(p)) for _, p in found.all] + [
            ("register", f"household:{h}") for h in found.households
        ]
        for kind, target in targets:
            for view in audit.search(
                session,
                viewer=reader,
                organisation_code=None,
                target_kind=kind,
                target_id=target,
                limit=limit,
            ):
                if _by_others(view.actor_kind, view.actor_id, own):
                    entries.append(
                        AccessEntry(
                            accessed_at=view.occurred_at,
                            source="register",
                            organisation_code=view.organisation_code,
                            actor_kind=view.actor_kind,
                            action=view.action,
                            purpose=view.purpose,
                            task_code="",
                            refused=view.outcome != Outcome.SUCCESS.value,
                        )
                    )
    entries.sort(key=lambda e: e.accessed_at, reverse=True)
    return entries[:limit]


def organisation_names(session: Session, national: Session) -> dict[str, str]:
    """Names for the organisation codes an access log shows: both sides' organisations."""
    names = {o.code: o.name for o in accounts.list_organisations(national)}
    names |= {o.code: o.name for o in accounts.list_organisations(session)}
    return names
