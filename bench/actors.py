"""The people and systems a run acts as, created the way an operator creates them.

A clerk of the municipality the run works in, a clerk of the prefecture it extracts, a
national operator who approves the extraction, and an agency client holding one
statutory task. Accounts are new for every run (a TOTP code is good for one login only,
and a fresh login keeps runs independent); they log in over HTTP like anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pyotp

from bench.config import RunConfig

AGENCY_CODE = "bench-agency"
# A task whose answer carries no 個人番号: the lookup measures the lookup, not decryption.
TASK = "pension-status-check"


@dataclass(frozen=True, slots=True)
class Actors:
    lg_code: str
    prefecture_code: str
    clerk_token: str
    prefecture_token: str
    operator_token: str
    agency_token: str
    task: str = TASK


def _login(client: httpx.Client, path: str, login: str, password: str, secret: str) -> str:
    response = client.post(
        path, json={"login": login, "password": password, "totp": pyotp.TOTP(secret).now()}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def prepare_actors(
    cfg: RunConfig, *, run_id: str, base_url: str, lg_code: str, prefecture_code: str
) -> Actors:
    from jumin.accounts import service as accounts
    from jumin.accounts.domain import OrganisationKind, Role
    from jumin.core.ids import LgCode
    from jumin.core.municipalities import load_master
    from jumin.db import make_engine, unit_of_work
    from jumin.network.agencies import service as agencies

    master = load_master()
    prefecture_lg = LgCode.from_five_digits(f"{prefecture_code}000").value
    municipal = make_engine(cfg.municipal_url)
    national = make_engine(cfg.national_url)
    try:
        with unit_of_work(municipal) as session:
            accounts.ensure_organisation(
                session, code=lg_code, kind=OrganisationKind.MUNICIPALITY, name=master.get(lg_code).name
            )
            clerk = accounts.create_staff(
                session,
                actor=None,
                organisation_code=lg_code,
                login=f"bench-{run_id}-clerk",
                display_name="ベンチマーク窓口",
                roles=[Role.CLERK],
            )
        with unit_of_work(national) as session:
            accounts.ensure_organisation(
                session,
                code=prefecture_lg,
                kind=OrganisationKind.PREFECTURE,
                name=master.get(prefecture_lg).name,
            )
            accounts.ensure_organisation(
                session, code="national", kind=OrganisationKind.NATIONAL, name="全国センター"
            )
            pref_clerk = accounts.create_staff(
                session,
                actor=None,
                organisation_code=prefecture_lg,
                login=f"bench-{run_id}-pref",
                display_name="ベンチマーク都道府県",
                roles=[Role.CLERK],
            )
            operator = accounts.create_staff(
                session,
                actor=None,
                organisation_code="national",
                login=f"bench-{run_id}-ops",
                display_name="ベンチマーク運用者",
                roles=[Role.OPERATOR],
            )
            client = agencies.register_agency_client(
                session,
                actor=None,
                organisation_code=AGENCY_CODE,
                name=f"bench-{run_id}",
                organisation_name="ベンチマーク機関",
            )
            agencies.grant_task(session, actor=None, client_id=client.client_id, task_code=TASK)
    finally:
        municipal.dispose()
        national.dispose()
    with httpx.Client(base_url=base_url, timeout=60) as http:
        clerk_token = _login(http, "/auth/login", clerk.login, clerk.password, clerk.totp_secret)
        pref_token = _login(
            http, "/network/v1/auth/login", pref_clerk.login, pref_clerk.password, pref_clerk.totp_secret
        )
        ops_token = _login(
            http, "/network/v1/auth/login", operator.login, operator.password, operator.totp_secret
        )
        response = http.post(
            "/network/v1/auth/token",
            json={"client_id": client.client_id, "client_secret": client.client_secret},
        )
        response.raise_for_status()
        agency_token = str(response.json()["access_token"])
    return Actors(lg_code, prefecture_code, clerk_token, pref_token, ops_token, agency_token)
