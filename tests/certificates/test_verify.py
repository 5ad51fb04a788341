"""The public verification routes: by issue number and code, by uploading the PDF.

No login: whoever holds a certificate (a bank, a school) checks it. Every check is
audited, and the routes are rate-limited per client address.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.audit.models import AuditEntry
from jumin.certificates import service
from jumin.certificates.ratelimit import TokenBucketLimiter
from tests.certificates.conftest import Desk, pypdf_text, self_request, squash
from tests.certificates.test_signature import _flip_inside_signed_range, _incremental_update


def _issue(desk: Desk) -> tuple[service.IssuedCertificate, str]:
    head = desk.family().person_ids[0]
    issued = desk.window(self_request(head))
    match = re.search(r"code=([A-Z2-9]{12})", squash(pypdf_text(issued.pdf)))
    assert match is not None
    return issued, match.group(1)


def test_the_number_and_code_show_when_and_by_whom_it_was_issued(
    desk: Desk, client: TestClient, db: Session
) -> None:
    issued, code = _issue(desk)
    r = client.get("/certificates/verify", params={"no": issued.issue_number, "code": code})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued"] is True
    assert body["issue_number"] == issued.issue_number
    assert body["title"] == "住民票の写し"
    assert body["issued_by"] == "千代田区"
    assert body["issued_by_lg_code"] == "131016"
    assert body["document_sha256"] == issued.sha256
    assert body["issue_date"] == issued.issue_date.isoformat()
    # The code as printed (with hyphens, lower case) works as well.
    printed = "-".join(code[i : i + 4] for i in range(0, 12, 4)).lower()
    assert (
        client.get("/certificates/verify", params={"no": issued.issue_number, "code": printed}).status_code
        == 200
    )

    page = client.get(
        "/certificates/verify",
        params={"no": issued.issue_number, "code": code},
        headers={"Accept": "text/html,application/xhtml+xml"},
    )
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "発行済みの証明書です" in page.text
    assert issued.sha256 in page.text
    assert "千代田区" in page.text

    wrong = client.get("/certificates/verify", params={"no": issued.issue_number, "code": "AAAAAAAAAAAA"})
    assert wrong.status_code == 404
    assert wrong.headers["content-type"].startswith("application/problem+json")
    unknown = client.get("/certificates/verify", params={"no": "131016-2000-0000001", "code": code})
    assert unknown.status_code == 404
    assert wrong.json()["detail"] == unknown.json()["detail"]  # no hint which part was wrong

    entries = db.query(AuditEntry).filter_by(action="certificate.verified").order_by(AuditEntry.id).all()
    assert [e.outcome for e in entries] == ["success", "success", "success", "failure", "failure"]
    assert entries[0].target_id == issued.issue_number
    assert entries[0].chain == "131016"


def test_an_uploaded_pdf_is_authentic_only_as_issued(desk: Desk, client: TestClient) -> None:
    issued, _ = _issue(desk)

    def upload(data: bytes) -> dict[str, object]:
        r = client.post("/certificates/verify", files={"file": ("c.pdf", data, "application/pdf")})
        assert r.status_code == 200, r.text
        result: dict[str, object] = r.json()
        return result

    ok = upload(issued.pdf)
    assert ok["authentic"] is True
    assert ok["reasons"] == []
    assert ok["signature"] == {
        "signed": True,
        "intact": True,
        "trusted": True,
        "unmodified": True,
        "signer": ok["signature"]["signer"],  # type: ignore[index]
        "signed_at": ok["signature"]["signed_at"],  # type: ignore[index]
    }
    assert ok["issuance"]["issue_number"] == issued.issue_number  # type: ignore[index]

    flipped = upload(_flip_inside_signed_range(issued.pdf))
    assert flipped["authentic"] is False
    assert "署名後に文書の内容が変更されています。" in flipped["reasons"]  # type: ignore[operator]
    updated = upload(_incremental_update(issued.pdf))
    assert updated["authentic"] is False
    assert "署名後に文書へ追記 (増分更新) が行われています。" in updated["reasons"]  # type: ignore[operator]
    garbage = upload(b"%PDF-1.4 not really")
    assert garbage["authentic"] is False
    assert garbage["signature"]["signed"] is False  # type: ignore[index]

    page = client.post(
        "/certificates/verify",
        files={"file": ("c.pdf", issued.pdf, "application/pdf")},
        headers={"Accept": "text/html"},
    )
    assert "真正な証明書です" in page.text


def test_verification_is_rate_limited_per_client(desk: Desk, client: TestClient, app: FastAPI) -> None:
    issued, code = _issue(desk)
    app.state.certificate_verify_limiter = TokenBucketLimiter(capacity=3, rate=0.01)
    params = {"no": issued.issue_number, "code": code}
    assert [client.get("/certificates/verify", params=params).status_code for _ in range(3)] == [200] * 3
    limited = client.get("/certificates/verify", params=params)
    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["title"] == "リクエストが多すぎます"
    assert client.post("/certificates/verify", files={"file": ("c.pdf", b"x")}).status_code == 429


def test_token_bucket_refills_and_keeps_clients_apart() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(capacity=2, rate=1.0, max_clients=2, clock=lambda: now[0])
    assert limiter.take("a") is None
    assert limiter.take("a") is None
    assert limiter.take("a") == 1
    assert limiter.take("b") is None
    now[0] += 1.0
    assert limiter.take("a") is None
    limiter.take("c")  # evicts the least recently seen client
    assert len(limiter._buckets) == 2


def test_the_ca_certificate_is_public(desk: Desk, client: TestClient) -> None:
    _issue(desk)
    r = client.get("/certificates/ca.pem")
    assert r.status_code == 200
    assert r.text.startswith("-----BEGIN CERTIFICATE-----")
    assert r.content == service.ca_certificate_pem()
