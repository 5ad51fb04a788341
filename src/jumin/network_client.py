"""The municipal side's only door to the national network.

Municipal code (``jumin.registry``) imports this module and never ``jumin.network``:
whatever crosses the boundary is plain values (core identifiers), as it would be over
HTTP, so the in-process client here and a remote one are interchangeable. Errors come
back as ``jumin.core.errors`` classes (NotFound, InvalidValue, Conflict...), which a
remote client rebuilds from the problem ``type``; callers catch those, not network types.

広域交付 (core.widearea) is the one exchange that leaves the process in both deployments:
the client signs the issuer's request with the municipality's key; the national side
checks it and asks the home municipality's registered endpoint over HTTP. In process
(:class:`InProcessNetworkClient`) the national use case runs here, on the national
database; over HTTP (:class:`HttpNetworkClient`, ``JUMIN_NETWORK_URL``) it runs on the
national server. Either way no transaction of the caller needs to be open meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from secrets import token_hex
from typing import TYPE_CHECKING, Protocol, TypeVar

import httpx

from jumin.config import get_settings
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.core.replication import SENDER_HEADER, SIGNATURE_HEADER, municipality_key_name, sign
from jumin.core.widearea import (
    WIDE_AREA_RECORDS_PATH,
    NetworkUnavailable,
    RecordAnswer,
    RecordRequest,
    WideAreaKind,
    envelope,
    error_from_problem,
)
from jumin.db import national_engine, unit_of_work, utcnow
from jumin.keys import load_or_create_ed25519
from jumin.network import service as network
from jumin.network.domain import IssuanceRace
from jumin.network.identity import widearea
from jumin.request_context import current_request_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["HttpNetworkClient", "InProcessNetworkClient", "NetworkClient", "default_network_client"]

_T = TypeVar("_T")

# A race (two requests drawing the same code or number at once) loses nothing: its unit
# of work rolled back whole, so the call is simply made again.
_RACE_ATTEMPTS = 3


class NetworkClient(Protocol):
    """What the municipal register may ask of the national network about codes."""

    def allocate_resident_codes(self, *, lg_code: LgCode, count: int) -> list[ResidentCode]:
        """New 住民票コード for the municipality's pool; each is allocated to it alone."""
        ...

    def individual_number_for(self, *, resident_code: ResidentCode, lg_code: LgCode) -> IndividualNumber:
        """The person's current 個人番号, issued on the first request; the same one after."""
        ...

    def change_individual_number(
        self, *, resident_code: ResidentCode, lg_code: LgCode, current_number: IndividualNumber | None = None
    ) -> IndividualNumber:
        """番号変更: a new 個人番号; the old one is never issued to anyone again."""
        ...

    def request_wide_area_record(self, *, request: RecordRequest) -> RecordAnswer:
        """広域交付: the home register's answer, asked through the national network.

        Raises the home's refusal (WideAreaNotFound, WideAreaProtected, RuleViolation...),
        HomeUnavailable when the home does not answer, NetworkRefused/NetworkUnavailable
        when the national network refuses or does not answer.
        """
        ...


def signed_wide_area_request(request: RecordRequest, *, key_dir: Path | None = None) -> tuple[bytes, str]:
    """The request as the issuing municipality signs it: the envelope's bytes and the signature."""
    body = envelope(
        kind=WideAreaKind.REQUEST,
        sender=request.issuer_lg_code,
        sent_at=utcnow(),
        nonce=token_hex(16),
        request=request.as_json(),
    )
    key = load_or_create_ed25519(municipality_key_name(request.issuer_lg_code), key_dir)
    return body, sign(key.private_key, body)


class InProcessNetworkClient:
    """Calls the national services in this process, each call in its own national unit of work.

    The national side commits independently of the caller's municipal transaction, as a
    remote server would. If the municipal transaction later rolls back, what the national
    side did stays done: a 住民票コード allocated to it is simply never used, which keeps
    codes unique (no code is ever handed out twice), and a 個人番号 issued for a resident
    code is found again, unchanged, by the next request for that code.

    ``session_scope`` opens one national unit of work: it yields a session, commits when
    the block ends and rolls back on an error (``jumin.db.unit_of_work`` on the national
    engine, or a test's savepoint).

    ``homes`` reaches the home municipalities' endpoints for 広域交付 (HTTP by default);
    ``key_dir`` holds the municipalities' signing keys (default: the settings').
    """

    def __init__(
        self,
        session_scope: Callable[[], AbstractContextManager[Session]],
        *,
        homes: widearea.HomeGateway | None = None,
        key_dir: Path | None = None,
    ) -> None:
        self._session_scope = session_scope
        self._homes = homes or widearea.HomeGateway()
        self._key_dir = key_dir

    def _call(self, use_case: Callable[[Session], _T]) -> _T:
        for attempt in range(1, _RACE_ATTEMPTS + 1):
            try:
                with self._session_scope() as session:
                    return use_case(session)
            except IssuanceRace:
                if attempt == _RACE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def allocate_resident_codes(self, *, lg_code: LgCode, count: int) -> list[ResidentCode]:
        return self._call(lambda s: network.allocate_resident_codes(s, lg_code=lg_code, count=count))

    def individual_number_for(self, *, resident_code: ResidentCode, lg_code: LgCode) -> IndividualNumber:
        return self._call(
            lambda s: network.individual_number_for(s, resident_code=resident_code, lg_code=lg_code)
        )

    def change_individual_number(
        self, *, resident_code: ResidentCode, lg_code: LgCode, current_number: IndividualNumber | None = None
    ) -> IndividualNumber:
        return self._call(
            lambda s: network.change_individual_number(
                s, resident_code=resident_code, lg_code=lg_code, current_number=current_number
            )
        )

    def request_wide_area_record(self, *, request: RecordRequest) -> RecordAnswer:
        body, signature = signed_wide_area_request(request, key_dir=self._key_dir)
        # The same national use case the HTTP route runs: it verifies the signature too.
        return widearea.forward_record_request(
            self._session_scope,
            sender=request.issuer_lg_code,
            signature=signature,
            body=body,
            route="in-process wide-area",
            gateway=self._homes,
        )


class HttpNetworkClient:
    """The national server over HTTP for 広域交付; codes and numbers through ``codes``.

    The national network offers 住民票コード and 個人番号 to municipal systems in this
    process only (no HTTP routes for them yet), so a municipal system that points
    JUMIN_NETWORK_URL at a national server still draws those from ``codes``.
    """

    def __init__(
        self,
        url: str,
        *,
        codes: NetworkClient,
        key_dir: Path | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._codes = codes
        self._key_dir = key_dir
        self._http = http
        self.timeout = timeout

    def allocate_resident_codes(self, *, lg_code: LgCode, count: int) -> list[ResidentCode]:
        return self._codes.allocate_resident_codes(lg_code=lg_code, count=count)

    def individual_number_for(self, *, resident_code: ResidentCode, lg_code: LgCode) -> IndividualNumber:
        return self._codes.individual_number_for(resident_code=resident_code, lg_code=lg_code)

    def change_individual_number(
        self, *, resident_code: ResidentCode, lg_code: LgCode, current_number: IndividualNumber | None = None
    ) -> IndividualNumber:
        return self._codes.change_individual_number(
            resident_code=resident_code, lg_code=lg_code, current_number=current_number
        )

    def request_wide_area_record(self, *, request: RecordRequest) -> RecordAnswer:
        body, signature = signed_wide_area_request(request, key_dir=self._key_dir)
        headers = {
            "Content-Type": "application/json",
            "X-Request-ID": current_request_id(),
            SENDER_HEADER: request.issuer_lg_code,
            SIGNATURE_HEADER: signature,
        }
        try:
            if self._http is None:
                with httpx.Client(timeout=self.timeout) as http:
                    response = http.post(self.url + WIDE_AREA_RECORDS_PATH, content=body, headers=headers)
            else:
                response = self._http.post(self.url + WIDE_AREA_RECORDS_PATH, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NetworkUnavailable(
                f"住基ネット (全国センター) から応答がありません ({type(exc).__name__})。"
                "しばらくしてから再度お試しください。"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200:
            raise error_from_problem(response.status_code, data)
        return RecordAnswer.from_json(data)


def default_network_client() -> NetworkClient:
    """The national services on the national database, or (JUMIN_NETWORK_URL) a national server."""
    local = InProcessNetworkClient(lambda: unit_of_work(national_engine()))
    url = get_settings().network_url
    return HttpNetworkClient(url, codes=local) if url else local
