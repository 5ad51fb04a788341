"""HTTP routes of the card service, JPKI and the four-facts update service (/card/v1).

Municipal clerks act on residents of their own municipality (the caller's organisation,
never a parameter); the national operator runs production, setup, notices, the sweeper
and reports; CRL, OCSP, card login, online application and suspension by card number
and secret are public; residents use their card-login session (``RESIDENT``) and
businesses their API key (``BUSINESS``). The card's work happens on the national
database (``NationalSessionDep``); staff tokens are checked where they live.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from jumin.accounts.domain import OrganisationKind, Principal, Role
from jumin.accounts.service import actor_of
from jumin.api_support import PROBLEM_RESPONSES, PUBLIC, NationalSessionDep, require
from jumin.card import fourfacts, service
from jumin.card.access import RESIDENT, BusinessDep, ResidentDep
from jumin.card.domain import fiscal_year_label
from jumin.card.jpki import service as jpki
from jumin.card.schemas import (
    ApplicationIn,
    ApplicationOut,
    AuthoritiesOut,
    BusinessIn,
    BusinessOut,
    BusinessSummaryOut,
    CardOut,
    CertificateOut,
    CertificatesIn,
    ChallengeOut,
    ConsentIn,
    ConsentOut,
    ExpiryRowOut,
    ExpiryRunOut,
    FormIn,
    FormOut,
    FourFactsOut,
    HandOverIn,
    HandOverOut,
    LoginIn,
    LoginOut,
    MyCardOut,
    NoticeBatchOut,
    NoticeOut,
    NoticesIn,
    OnlineApplicationIn,
    PinResetIn,
    ProductionIn,
    ProductionOut,
    ProvisionOut,
    ProvisionsOut,
    RateRowOut,
    ResidentCardsIn,
    ResolveIn,
    SetupIn,
    SetupOut,
    SuspendIn,
    SweepOut,
    WaitingCardOut,
    WindowCheckIn,
    WorkItemOut,
)

router = APIRouter(prefix="/card/v1", tags=["マイナンバーカード・公的個人認証"], responses=PROBLEM_RESPONSES)

_MUNICIPAL = frozenset({OrganisationKind.MUNICIPALITY})
_NATIONAL = frozenset({OrganisationKind.NATIONAL})
Clerk = Annotated[Principal, Depends(require(Role.CLERK, Role.SUPERVISOR, organisation_kinds=_MUNICIPAL))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR, organisation_kinds=_NATIONAL))]
CardNumberPath = Annotated[str, Path(pattern=r"^[0-9]{12}$", description="カード番号 (12桁)")]

CRL_MEDIA = "application/pkix-crl"
OCSP_REQUEST_MEDIA = "application/ocsp-request"
OCSP_RESPONSE_MEDIA = "application/ocsp-response"


def card_out(view: service.CardView) -> CardOut:
    return CardOut(
        card_number=view.card_number,
        status=view.status,
        lg_code=view.lg_code,
        issued_on=view.issued_on,
        valid_until=view.valid_until,
        renewal_opens_on=view.renewal_opens_on,
        revocation_reason=view.revocation_reason,
        signing_tries_left=view.signing_tries_left,
        auth_tries_left=view.auth_tries_left,
        certificates=[
            CertificateOut(
                kind=c.kind,
                serial=c.serial,
                status=c.status,
                valid_until=c.valid_until,
                revocation_reason=c.revocation_reason,
            )
            for c in view.certificates
        ],
    )


def application_out(view: service.ApplicationView) -> ApplicationOut:
    return ApplicationOut(
        application_no=view.application_no,
        status=view.status,
        channel=view.channel,
        reason=view.reason,
        express=view.express,
        express_reason=view.express_reason,
        due_on=view.due_on,
        applied_at=view.applied_at,
        has_photo=view.has_photo,
    )


# --- municipal window -----------------------------------------------------------------------------


@router.post("/applications", status_code=201, summary="交付申請 (窓口)")
def apply_at_window(body: ApplicationIn, clerk: Clerk, session: NationalSessionDep) -> ApplicationOut:
    return application_out(
        service.apply(
            session,
            actor=actor_of(clerk),
            lg_code=clerk.organisation_code,
            resident_code=body.resident_code,
            reason=body.reason,
            photo_ref=body.photo_ref,
            reissue_reason=body.reissue_reason,
            express_reason=body.express_reason,
            stay_ends_on=body.stay_ends_on,
        )
    )


@router.get("/applications/{application_no}", summary="申請の状況")
def application_status(
    application_no: Annotated[str, Path(pattern=r"^[0-9]{16}$")], clerk: Clerk, session: NationalSessionDep
) -> ApplicationOut:
    return application_out(
        service.application_status(
            session, actor=actor_of(clerk), lg_code=clerk.organisation_code, application_no=application_no
        )
    )


@router.post("/application-forms", status_code=201, summary="交付申請書 (申請書ID) の発行")
def application_form(body: FormIn, clerk: Clerk, session: NationalSessionDep) -> FormOut:
    form_id = service.issue_application_form(
        session, actor=actor_of(clerk), lg_code=clerk.organisation_code, resident_code=body.resident_code
    )
    return FormOut(form_id=form_id)


@router.get("/work-items", summary="交付前設定で一致しなかったカード (自団体の作業リスト)")
def work_items(
    clerk: Clerk, session: NationalSessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[WorkItemOut]:
    return [
        WorkItemOut(
            id=i.id, card_number=i.card_number, reason=i.reason, created_at=i.created_at, batch_id=i.batch_id
        )
        for i in service.work_list(
            session, actor=actor_of(clerk), lg_code=clerk.organisation_code, limit=limit
        )
    ]


@router.get("/cards-awaiting-hand-over", summary="交付待ちのカード (交付前設定済み、自団体)")
def cards_awaiting_hand_over(
    clerk: Clerk, session: NationalSessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[WaitingCardOut]:
    return [
        WaitingCardOut(
            card_number=c.card_number,
            application_no=c.application_no,
            express=c.express,
            due_on=c.due_on,
            setup_at=c.setup_at,
        )
        for c in service.cards_awaiting_hand_over(
            session, actor=actor_of(clerk), lg_code=clerk.organisation_code, limit=limit
        )
    ]


@router.post("/work-items/{item_id}/resolve", summary="作業リストの処理 (再設定またはカード廃止)")
def resolve_work_item(
    item_id: Annotated[int, Path(ge=1, le=2**62)], body: ResolveIn, clerk: Clerk, session: NationalSessionDep
) -> CardOut:
    return card_out(
        service.resolve_work_item(
            session,
            actor=actor_of(clerk),
            lg_code=clerk.organisation_code,
            item_id=item_id,
            retry=body.resolution == "retry",
        )
    )


@router.get("/cards/{card_number}", summary="カードの状態")
def get_card(card_number: CardNumberPath, clerk: Clerk, session: NationalSessionDep) -> CardOut:
    return card_out(
        service.view_card(
            session, actor=actor_of(clerk), lg_code=clerk.organisation_code, card_number=card_number
        )
    )


@router.post("/resident-cards", summary="住民票コードによるカードの検索 (自団体の住民)")
def resident_cards(body: ResidentCardsIn, clerk: Clerk, session: NationalSessionDep) -> list[CardOut]:
    # POST, not GET: the 住民票コード stays out of URLs (proxies and browsers log them).
    return [
        card_out(v)
        for v in service.cards_of_resident(
            session, actor=actor_of(clerk), lg_code=clerk.organisation_code, resident_code=body.resident_code
        )
    ]


@router.post("/cards/{card_number}/hand-over", summary="交付 (本人確認・暗証番号設定・電子証明書発行)")
def hand_over(
    card_number: CardNumberPath, body: HandOverIn, clerk: Clerk, session: NationalSessionDep
) -> HandOverOut:
    result = service.hand_over(
        session,
        actor=actor_of(clerk),
        lg_code=clerk.organisation_code,
        card_number=card_number,
        identity_documents=body.identity_documents,
        auth_pin=body.auth_pin,
        signing_pin=body.signing_pin,
        under_guardianship=body.under_guardianship,
    )
    return HandOverOut(card=card_out(result.card), suspension_secret=result.suspension_secret)


@router.post("/cards/{card_number}/certificates", summary="電子証明書の更新・新規発行 (窓口)")
def issue_certificates(
    card_number: CardNumberPath, body: CertificatesIn, clerk: Clerk, session: NationalSessionDep
) -> CardOut:
    return card_out(
        service.issue_certificates(
            session,
            actor=actor_of(clerk),
            lg_code=clerk.organisation_code,
            card_number=card_number,
            identity_documents=body.identity_documents,
            auth_pin=body.auth_pin,
            signing_pin=body.signing_pin,
            under_guardianship=body.under_guardianship,
        )
    )


@router.post("/cards/{card_number}/pin-reset", summary="暗証番号の再設定 (ロック解除)")
def pin_reset(
    card_number: CardNumberPath, body: PinResetIn, clerk: Clerk, session: NationalSessionDep
) -> CardOut:
    return card_out(
        service.reset_pin(
            session,
            actor=actor_of(clerk),
            lg_code=clerk.organisation_code,
            card_number=card_number,
            kind=body.kind,
            new_pin=body.new_pin,
            identity_documents=body.identity_documents,
        )
    )


@router.post("/cards/{card_number}/lift-suspension", summary="一時停止の解除 (窓口)")
def lift_suspension(
    card_number: CardNumberPath, body: WindowCheckIn, clerk: Clerk, session: NationalSessionDep
) -> CardOut:
    return card_out(
        service.lift_suspension(
            session,
            actor=actor_of(clerk),
            lg_code=clerk.organisation_code,
            card_number=card_number,
            identity_documents=body.identity_documents,
        )
    )


@router.post("/cards/{card_number}/return", summary="カードの返納 (廃止)")
def return_card(card_number: CardNumberPath, clerk: Clerk, session: NationalSessionDep) -> CardOut:
    return card_out(
        service.return_card(
            session, actor=actor_of(clerk), lg_code=clerk.organisation_code, card_number=card_number
        )
    )


# --- the national operator ----------------------------------------------------------------------


@router.post("/production", summary="カードの製造 (一括)")
def produce(body: ProductionIn, operator: Operator, session: NationalSessionDep) -> ProductionOut:
    report = service.produce(
        session, actor=actor_of(operator), limit=body.limit, express_only=body.express_only
    )
    return ProductionOut(batch_id=report.batch_id, cards=report.cards, express=report.express)


@router.post("/pre-issuance-setup", summary="交付前設定 (一括)")
def pre_issuance_setup(body: SetupIn, operator: Operator, session: NationalSessionDep) -> SetupOut:
    r = service.pre_issuance_setup(session, actor=actor_of(operator), chunk_size=body.chunk_size)
    return SetupOut(
        batch_id=r.batch_id,
        examined=r.examined,
        ready=r.ready,
        mismatched=r.mismatched,
        chunks=r.chunks,
        reasons=r.reasons,
    )


@router.post("/renewal-notices", summary="有効期限通知書の作成 (一括、送付先を最新化)")
def renewal_notices(body: NoticesIn, operator: Operator, session: NationalSessionDep) -> NoticeBatchOut:
    r = service.renewal_notices(session, actor=actor_of(operator), months_ahead=body.months_ahead)
    return NoticeBatchOut(
        batch_id=r.batch_id,
        card_notices=r.card_notices,
        certificate_notices=r.certificate_notices,
        skipped_not_live=r.skipped_not_live,
    )


@router.get("/renewal-notices/{batch_id}", summary="通知書の一覧 (印刷・発送用)")
def renewal_notice_list(
    batch_id: Annotated[str, Path(max_length=32)], operator: Operator, session: NationalSessionDep
) -> list[NoticeOut]:
    return [
        NoticeOut(
            kind=n.kind,
            form_id=n.form_id,
            lg_code=n.lg_code,
            expires_on=n.expires_on,
            mailing_name=n.mailing_name,
            mailing_address=n.mailing_address,
        )
        for n in service.notices_of_batch(session, actor=actor_of(operator), batch_id=batch_id)
    ]


@router.post("/identity-sweep", summary="本人確認情報の変更による失効 (署名用の自動失効・最新4情報)")
def identity_sweep(operator: Operator, session: NationalSessionDep) -> SweepOut:
    r = service.sweep_identity_changes(session)
    return SweepOut(
        history_rows=r.history_rows,
        signing_revoked=r.signing_revoked,
        cards_revoked=r.cards_revoked,
        provisions=r.provisions,
        position=r.position,
    )


@router.post("/expiry", summary="有効期限切れのカード・電子証明書の失効")
def expiry(operator: Operator, session: NationalSessionDep) -> ExpiryRunOut:
    cards, certs = service.expire(session, actor=actor_of(operator))
    return ExpiryRunOut(cards=cards, certificates=certs)


@router.post("/jpki/authorities", summary="認証局 (ルート・署名用・利用者証明用) の作成")
def create_authorities(operator: Operator, session: NationalSessionDep) -> AuthoritiesOut:
    return AuthoritiesOut(created=jpki.ensure_authorities(session))


@router.get("/reports/expiry", summary="年度別の有効期限到来数 (カード・電子証明書)")
def expiry_report(
    operator: Operator,
    session: NationalSessionDep,
    from_year: Annotated[int | None, Query(ge=2000, le=2200)] = None,
) -> list[ExpiryRowOut]:
    return [
        ExpiryRowOut(
            fiscal_year=r.fiscal_year,
            label=fiscal_year_label(r.fiscal_year),
            cards=r.cards,
            certificates=r.certificates,
        )
        for r in service.expiring_by_fiscal_year(session, actor=actor_of(operator), from_year=from_year)
    ]


@router.get("/reports/issuance-rates", summary="都道府県・市区町村別の申請率・交付率")
def issuance_rates(operator: Operator, session: NationalSessionDep) -> list[RateRowOut]:
    return [
        RateRowOut(
            kind=r.kind,
            rank=r.rank,
            lg_code=r.lg_code,
            name=r.name,
            population=r.population,
            application_rate_pct=r.application_rate_pct,
            issuance_rate_pct=r.issuance_rate_pct,
        )
        for r in service.issuance_rates(session, actor=actor_of(operator))
    ]


@router.post("/businesses", status_code=201, summary="最新4情報提供の事業者 (署名検証者) の登録")
def register_business(body: BusinessIn, operator: Operator, session: NationalSessionDep) -> BusinessOut:
    new = fourfacts.register_business(
        session, actor=actor_of(operator), code=body.code, name=body.name, webhook_url=body.webhook_url
    )
    return BusinessOut(
        code=new.code,
        name=new.name,
        webhook_url=new.webhook_url,
        api_key=new.api_key,
        webhook_secret=new.webhook_secret,
    )


# --- public: online application, suspension at any hour, login, CRL, OCSP --------------------------------


@router.post(
    "/online-applications",
    status_code=201,
    dependencies=[Depends(PUBLIC)],
    summary="オンライン申請 (申請書ID)",
)
def apply_online(body: OnlineApplicationIn, session: NationalSessionDep) -> ApplicationOut:
    return application_out(
        service.apply_online(
            session, form_id=body.form_id, photo_ref=body.photo_ref, stay_ends_on=body.stay_ends_on
        )
    )


@router.post(
    "/suspensions",
    dependencies=[Depends(PUBLIC)],
    summary="一時利用停止 (24時間受付: カード番号と確認コード)",
)
def suspend(body: SuspendIn, session: NationalSessionDep) -> CardOut:
    return card_out(service.suspend_with_secret(session, card_number=body.card_number, secret=body.secret))


@router.post("/login/challenge", dependencies=[Depends(PUBLIC)], summary="カードログイン: チャレンジの取得")
def login_challenge(session: NationalSessionDep) -> ChallengeOut:
    challenge = service.login_challenge(session)
    return ChallengeOut(
        challenge_id=challenge.challenge_id,
        to_sign=service.encode(challenge.to_sign),
        expires_at=challenge.expires_at,
    )


@router.post(
    "/login", dependencies=[Depends(PUBLIC)], summary="カードログイン: 署名と利用者証明用電子証明書の検証"
)
def login(body: LoginIn, session: NationalSessionDep) -> LoginOut:
    result = service.login(
        session,
        challenge_id=body.challenge_id,
        certificate_der=service.decode(body.certificate, "certificate"),
        signature=service.decode(body.signature, "signature"),
    )
    return LoginOut(access_token=result.access_token, expires_at=result.expires_at)


@router.get(
    "/jpki/crl/{ca_name}.crl",
    dependencies=[Depends(PUBLIC)],
    response_class=Response,
    responses={200: {"content": {CRL_MEDIA: {"schema": {"type": "string", "format": "binary"}}}}},
    summary="失効リスト (CRL, DER)",
)
def crl(ca_name: Annotated[str, Path(pattern=r"^(signing|auth)$")], session: NationalSessionDep) -> Response:
    return Response(content=jpki.current_crl(session, ca_name), media_type=CRL_MEDIA)


@router.get(
    "/jpki/ca/{ca_name}.pem",
    dependencies=[Depends(PUBLIC)],
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}}},
    summary="認証局の証明書 (PEM)",
)
def ca_certificate(
    ca_name: Annotated[str, Path(pattern=r"^(root|signing|auth)$")], session: NationalSessionDep
) -> Response:
    return Response(content=jpki.ca_certificate_pem(session, ca_name), media_type="application/x-pem-file")


async def _raw_body(request: Request) -> bytes:
    return await request.body()


_OCSP_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        # application/octet-stream too: generic clients (and API fuzzers) know how to send it.
        "content": {
            OCSP_REQUEST_MEDIA: {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/jpki/ocsp",
    dependencies=[Depends(PUBLIC)],
    response_class=Response,
    openapi_extra=_OCSP_BODY,
    responses={200: {"content": {OCSP_RESPONSE_MEDIA: {"schema": {"type": "string", "format": "binary"}}}}},
    summary="OCSP レスポンダ (RFC 6960, POST)",
)
def ocsp(body: Annotated[bytes, Depends(_raw_body)], session: NationalSessionDep) -> Response:
    # Every answer is HTTP 200 with an OCSP response status (RFC 6960 A.1); a malformed
    # request gets malformedRequest, not an HTTP error.
    return Response(content=jpki.ocsp_respond(session, body[:65536]), media_type=OCSP_RESPONSE_MEDIA)


# --- residents (card login) ------------------------------------------------------------------------------


@router.get("/me", summary="自分のカードと4情報")
def me(resident: ResidentDep, session: NationalSessionDep) -> MyCardOut:
    mine = service.my_card(session, resident=resident)
    f = mine.facts
    return MyCardOut(
        card=card_out(mine.card),
        facts=FourFactsOut(name=f.name, birth_date=f.birth_date, sex=f.sex, address=f.address),
    )


@router.post("/me/suspend", summary="自分のカードの一時利用停止")
def suspend_mine(resident: ResidentDep, session: NationalSessionDep) -> CardOut:
    return card_out(service.suspend_as_resident(session, resident=resident))


@router.post("/me/logout", status_code=204, summary="ログアウト")
def logout(resident: ResidentDep, session: NationalSessionDep) -> Response:
    service.logout_resident(session, resident=resident)
    return Response(status_code=204)


def consent_out(view: fourfacts.ConsentView) -> ConsentOut:
    return ConsentOut(
        id=view.id,
        business_code=view.business_code,
        business_name=view.business_name,
        scope=list(view.scope),
        consented_on=view.consented_on,
        withdrawn_at=view.withdrawn_at,
    )


@router.get(
    "/me/four-facts-businesses",
    dependencies=[Depends(RESIDENT)],
    summary="同意できる事業者 (署名検証者) の一覧",
)
def consentable_businesses(session: NationalSessionDep) -> list[BusinessSummaryOut]:
    return [BusinessSummaryOut(code=b.code, name=b.name) for b in fourfacts.verifier_businesses(session)]


@router.get("/me/four-facts-consents", summary="最新4情報提供への同意の一覧")
def my_consents(resident: ResidentDep, session: NationalSessionDep) -> list[ConsentOut]:
    return [consent_out(c) for c in fourfacts.consents_of(session, resident=resident)]


@router.post("/me/four-facts-consents", status_code=201, summary="最新4情報提供への同意")
def give_consent(body: ConsentIn, resident: ResidentDep, session: NationalSessionDep) -> ConsentOut:
    return consent_out(
        fourfacts.consent(
            session, resident=resident, business_code=body.business_code, scope=list(body.scope)
        )
    )


@router.delete("/me/four-facts-consents/{consent_id}", summary="同意の撤回")
def withdraw_consent(
    consent_id: Annotated[int, Path(ge=1, le=2**62)], resident: ResidentDep, session: NationalSessionDep
) -> ConsentOut:
    return consent_out(fourfacts.withdraw(session, resident=resident, consent_id=consent_id))


# --- businesses ------------------------------------------------------------------------------------------


@router.get("/four-facts/updates", summary="最新4情報の取得 (事業者、カーソル方式)")
def four_facts_updates(
    business: BusinessDep,
    session: NationalSessionDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="前回受け取った最後の delivery_id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ProvisionsOut:
    views = fourfacts.pull(session, business=business, after=after, limit=limit)
    return ProvisionsOut(
        items=[
            ProvisionOut(
                delivery_id=v.delivery_id,
                certificate_serial=v.certificate_serial,
                changed_on=v.changed_on,
                facts=v.facts,
            )
            for v in views
        ],
        next_after=views[-1].delivery_id if views else after,
    )
