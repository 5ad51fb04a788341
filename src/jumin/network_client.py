"""The municipal side's only door to the national network.

Municipal code (``jumin.registry``) imports this module and never ``jumin.network``:
whatever crosses the boundary is plain values (core identifiers), as it would be over
HTTP, so the in-process client here and a remote one are interchangeable. Errors come
back as ``jumin.core.errors`` classes (NotFound, InvalidValue, Conflict...), which a
remote client rebuilds from the problem ``type``; callers catch those, not network types.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, TypeVar

from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.db import national_engine, unit_of_work
from jumin.network import service as network
from jumin.network.domain import IssuanceRace

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["InProcessNetworkClient", "NetworkClient", "default_network_client"]

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
    """

    def __init__(self, session_scope: Callable[[], AbstractContextManager[Session]]) -> None:
        self._session_scope = session_scope

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


def default_network_client() -> InProcessNetworkClient:
    """The single-process deployment: the national services on the national database."""
    return InProcessNetworkClient(lambda: unit_of_work(national_engine()))
