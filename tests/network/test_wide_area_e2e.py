"""広域交付 end to end: three servers, three databases, only HTTP between them.

- the national server (its own national database),
- Sapporo's system, the issuer: its own municipal database, and JUMIN_NETWORK_URL
  pointing at the national server,
- Chiyoda's system, the home: its own municipal database, its endpoint and key
  registered at the national server, the national key installed with
  `jumin relay trust-network`.

Each has its own key directory. Sapporo's process is never given Chiyoda's database: the
record copy it issues can only have come through the network, and the audit trails of
all three show the road it took.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import Engine, func, select

from jumin.accounts import service as accounts
from jumin.accounts.domain import OrganisationKind, Role
from jumin.audit.models import AuditEntry
from jumin.certificates.widearea_models import WideAreaNotice, WideAreaProvision
from jumin.config import get_settings
from jumin.core.replication import municipality_key_name
from jumin.db import unit_of_work
from jumin.keys import load_or_create_ed25519, lookup_hash
from jumin.network.identity import service as identity
from jumin.network.identity import widearea as wide_area
from jumin.registry.models import Person
from jumin.registry.relay import Relay
from tests.conftest import BACKENDS
from tests.network.servers import Deployment, Server, deployment
from tests.registry.conftest import member, today

CHIYODA, SAPPORO = "131016", "011002"


def _clerk(municipal: Engine, lg_code: str, name: str) -> dict[str, str]:
    with unit_of_work(municipal) as session:
        accounts.ensure_organisation(session, code=lg_code, kind=OrganisationKind.MUNICIPALITY, name=name)
        new = accounts.create_staff(
            session,
            actor=None,
            organisation_code=lg_code,
            login=f"clerk-{lg_code}",
            display_name=name,
            roles=[Role.CLERK, Role.SUPERVISOR],
        )
    return {"login": f"clerk-{lg_code}", "password": new.password, "totp": new.totp_secret}


def _login(http: httpx.Client, clerk: dict[str, str]) -> dict[str, str]:
    r = http.post(
        "/auth/login",
        json={
            "login": clerk["login"],
            "password": clerk["password"],
            "totp": pyotp.TOTP(clerk["totp"]).now(),
        },
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _run(d: Deployment, *args: str) -> str:
    done = d.jumin(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _actions(engine: Engine, chain: str | None = None) -> list[tuple[str, str, str]]:
    with unit_of_work(engine) as session:
        query = select(AuditEntry.action, AuditEntry.actor_id, AuditEntry.outcome).order_by(AuditEntry.id)
        if chain is not None:
            query = query.where(AuditEntry.chain == chain)
        return [(a, b, c) for a, b, c in session.execute(query)]


def _own_keys(d: Deployment) -> Path:
    """A key directory of the deployment's own: its own signing keys, nobody else's.

    The data key and the keyed-hash secrets are copied from this test process, which
    created the staff accounts (their TOTP secrets are sealed with that data key); the
    signing keys (municipalities', the national network's) are each server's own.
    """
    keys = d.root / "keys"
    source = get_settings().key_dir
    shutil.copytree(source / "data", keys / "data")
    for secret in source.glob("*.secret"):
        shutil.copy2(secret, keys / secret.name)
    d.env["JUMIN_KEY_DIR"] = str(keys)
    d.env["JUMIN_CA_PASSPHRASE"] = "e2e-ca-passphrase"
    d.env["JUMIN_CARD_WORKER_INTERVAL_SECONDS"] = "0"
    return keys


@pytest.mark.parametrize("backend", BACKENDS)
def test_wide_area_issuance_between_separate_registers_over_http(backend: str, tmp_path: Path) -> None:
    with (
        deployment(backend, tmp_path / "national", "wa_n") as dn,
        deployment(backend, tmp_path / "sapporo", "wa_s") as ds,
        deployment(backend, tmp_path / "chiyoda", "wa_c") as dc,
    ):
        national_db = dn.engine("national")
        sapporo_db, chiyoda_db = ds.engine("municipal"), dc.engine("municipal")
        issuer_clerk = _clerk(sapporo_db, SAPPORO, "札幌市")
        home_clerk = _clerk(chiyoda_db, CHIYODA, "千代田区")
        lookup_hash("warm", "e2e")  # the keyed-hash secret exists before it is copied
        national_keys, sapporo_keys, chiyoda_keys = (_own_keys(d) for d in (dn, ds, dc))

        national = Server(dn).start()
        home = Server(dc).start()
        ds.env["JUMIN_NETWORK_URL"] = national.url
        issuer = Server(ds).start()
        try:
            # The operators link the three: the municipalities' keys and the home's endpoint
            # at the national server, the national key at the home (`jumin network
            # register-key` and `jumin relay public-key` are tested elsewhere).
            with unit_of_work(national_db) as session:
                for code, keys in ((SAPPORO, sapporo_keys), (CHIYODA, chiyoda_keys)):
                    pem = load_or_create_ed25519(municipality_key_name(code), keys).public_pem()
                    identity.register_key(session, lg_code=code, public_key_pem=pem)
            _run(dn, "network", "register-endpoint", CHIYODA, "--url", home.url)
            network_pem = tmp_path / "national.pub.pem"
            network_pem.write_text(wide_area.network_key(national_keys).public_pem())
            _run(dc, "relay", "trust-network", "--public-key", str(network_pem))
            assert not (chiyoda_keys / "national-network.ed25519.pem").exists()  # only its public half

            at_home = httpx.Client(base_url=home.url, timeout=30)
            at_issuer = httpx.Client(base_url=issuer.url, timeout=60)
            home_headers = _login(at_home, home_clerk)
            issuer_headers = _login(at_issuer, issuer_clerk)

            # The family lives in Chiyoda's register only.
            r = at_home.post(
                "/registry/events/move-in-from-abroad",
                json={
                    "effective_on": (today().replace(day=1)).isoformat(),
                    "address": {"line": "千代田一丁目1番1号"},
                    "previous_address": "アメリカ合衆国",
                    "members": [
                        member(),
                        member(
                            "山田",
                            "花子",
                            ("ヤマダ", "ハナコ"),
                            birth="1982-06-15",
                            sex="female",
                            relationship="妻",
                        ),
                    ],
                },
                headers=home_headers,
            )
            assert r.status_code == 201, r.text
            head, wife = r.json()["person_ids"]
            codes = {
                p: at_home.get(f"/registry/persons/{p}", headers=home_headers).json()["resident_code"]
                for p in (head, wife)
            }

            def wide(code: str, **body: Any) -> httpx.Response:
                return at_issuer.post(
                    "/certificates/wide-area",
                    json={"home_lg_code": CHIYODA, "resident_code": code, **body},
                    headers=issuer_headers,
                )

            # Sapporo issues the household's record copy, asked through the network.
            r = wide(codes[head], whole_household=True, include=["head_and_relationship"])
            assert r.status_code == 200, r.text
            number = r.headers["x-issue-number"]
            assert number.startswith(f"{SAPPORO}-")
            assert r.content.startswith(b"%PDF-")

            # The issuer never held the family: its register is empty, and its ledger names
            # the home's persons by the home's ids.
            with unit_of_work(sapporo_db) as session:
                assert session.scalar(select(func.count()).select_from(Person)) == 0
                notice = session.scalars(select(WideAreaNotice)).one()
                assert (notice.issue_number, notice.home_lg_code, notice.delivered_at) == (
                    number,
                    CHIYODA,
                    None,
                )
                assert json.loads(notice.payload)["person_ids"] == [head, wife]
            issuer_trail = _actions(sapporo_db, SAPPORO)
            assert ("certificate.wide_area_requested", "clerk-011002", "success") in issuer_trail
            assert ("certificate.issued", "clerk-011002", "success") in issuer_trail
            assert not any(a == "registry.read" for a, _, _ in issuer_trail)
            # The network forwarded it and saw the answer come back.
            network_trail = _actions(national_db)
            assert ("network.wide_area_request_forwarded", "municipality:011002", "success") in network_trail
            assert ("network.wide_area_answer_returned", "municipality:011002", "success") in network_trail
            # The home read its own register under the visiting clerk's name, and recorded it.
            home_trail = _actions(chiyoda_db, CHIYODA)
            assert ("registry.read", "clerk-011002@011002", "success") in home_trail
            assert ("certificate.record_provided", "clerk-011002@011002", "success") in home_trail

            # Refusals come back as the home decided them, in Japanese.
            r = wide("24727059608")
            assert (r.status_code, r.json()["type"]) == (404, "urn:jumin:problem:not-found")
            order = at_home.post(
                "/certificates/protection-orders",
                json={"person_id": wife, "reason": "DV", "parties": [{"name": "加害　者"}]},
                headers=home_headers,
            )
            assert order.status_code == 201, order.text
            r = wide(codes[wife])
            assert (r.status_code, r.json()["type"]) == (403, "urn:jumin:problem:protection-order")
            assert "広域交付はできません" in r.json()["detail"]
            home_refusals = [o for a, _, o in _actions(chiyoda_db, CHIYODA) if a == "certificate.refused"]
            assert home_refusals == ["denied", "denied"]

            # The home goes down: the clerk is told so, and the copy-issued notice waits.
            home.stop()
            r = wide(codes[head])
            assert r.status_code == 503
            assert r.json()["type"] == "urn:jumin:problem:home-municipality-unavailable"
            assert "千代田区" in r.json()["detail"]
            # Sapporo's relay (as `jumin relay --once` runs it, on Sapporo's database and keys).
            relay = Relay(url=national.url, engine=sapporo_db, key_dir=sapporo_keys, attempts=1)
            report = relay.run_once()
            assert report.wide_area_notices == 0
            assert any("次回再送" in e for e in report.errors)

            # Back up: the next relay cycle tells the home, which keeps the record.
            home = Server(dc, port=home.port).start()
            report = relay.run_once()
            assert (report.wide_area_notices, report.errors) == (1, [])
            relay.close()
            with unit_of_work(chiyoda_db) as session:
                provided = session.scalars(
                    select(WideAreaProvision).where(WideAreaProvision.issue_number == number)
                ).one()
                assert (provided.issuer_lg_code, provided.fee_yen) == (SAPPORO, 300)
            assert ("certificate.wide_area_issued", "clerk-011002@011002", "success") in _actions(
                chiyoda_db, CHIYODA
            )
            # An unsigned request never gets past the national server.
            r = httpx.post(national.url + "/network/v1/wide-area/records", content=b"{}")
            assert r.status_code == 401
        finally:
            issuer.stop()
            home.stop()
            national.stop()
