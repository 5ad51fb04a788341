"""The municipal side's door to the national network, run in process."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jumin.config import get_settings
from jumin.core.errors import NotFound
from jumin.core.ids import IndividualNumber, LgCode, ResidentCode
from jumin.db import national_engine, upgrade
from jumin.network import service
from jumin.network.domain import IssuanceRace
from jumin.network.models import NationalIndividualNumber, NationalResidentCode
from jumin.network_client import InProcessNetworkClient, NetworkClient, default_network_client

CHIYODA = LgCode("131016")


def test_the_in_process_client_satisfies_the_protocol(network: InProcessNetworkClient) -> None:
    client: NetworkClient = network
    assert client is network


def test_codes_and_numbers_through_the_client(network: InProcessNetworkClient, national_db: Session) -> None:
    codes = network.allocate_resident_codes(lg_code=CHIYODA, count=3)
    assert len({c.value for c in codes}) == 3
    assert all(isinstance(c, ResidentCode) for c in codes)

    number = network.individual_number_for(resident_code=codes[0], lg_code=CHIYODA)
    assert isinstance(number, IndividualNumber)
    assert network.individual_number_for(resident_code=codes[0], lg_code=CHIYODA) == number

    changed = network.change_individual_number(resident_code=codes[0], lg_code=CHIYODA)
    assert changed != number
    assert network.individual_number_for(resident_code=codes[0], lg_code=CHIYODA) == changed
    assert service.find_by_individual_number(national_db, number=number) == codes[0]


def test_national_work_stays_done_when_the_municipal_transaction_rolls_back(
    network: InProcessNetworkClient, db: Session, national_db: Session
) -> None:
    municipal = db.begin_nested()
    codes = network.allocate_resident_codes(lg_code=CHIYODA, count=2)
    municipal.rollback()

    allocated = national_db.execute(
        select(NationalResidentCode.code).where(NationalResidentCode.code.in_([c.value for c in codes]))
    ).scalars()
    assert set(allocated) == {c.value for c in codes}
    # And they are never handed out again.
    more = network.allocate_resident_codes(lg_code=CHIYODA, count=50)
    assert not {c.value for c in more} & {c.value for c in codes}


def test_a_refused_call_leaves_nothing_behind(network: InProcessNetworkClient, national_db: Session) -> None:
    with pytest.raises(NotFound):
        network.individual_number_for(resident_code=ResidentCode("24727059608"), lg_code=CHIYODA)
    count = national_db.execute(select(func.count()).select_from(NationalIndividualNumber)).scalar_one()
    assert count == 0


def test_a_race_is_retried_in_a_fresh_unit_of_work(
    network: InProcessNetworkClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service.allocate_resident_codes
    calls: list[int] = []

    def racy(session: Session, **kwargs: object) -> list[ResidentCode]:
        calls.append(1)
        if len(calls) == 1:
            raise IssuanceRace("競合")
        return real(session, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "allocate_resident_codes", racy)
    assert len(network.allocate_resident_codes(lg_code=CHIYODA, count=1)) == 1
    assert len(calls) == 2


def test_a_race_that_persists_is_reported(
    network: InProcessNetworkClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always(session: Session, **kwargs: object) -> list[ResidentCode]:
        raise IssuanceRace("競合")

    monkeypatch.setattr(service, "allocate_resident_codes", always)
    with pytest.raises(IssuanceRace):
        network.allocate_resident_codes(lg_code=CHIYODA, count=1)


def test_the_default_client_uses_the_national_database() -> None:
    """End to end on the configured national database (a throw-away SQLite file in tests)."""
    url = get_settings().national_database_url
    assert url.endswith("national.db")
    assert url != get_settings().database_url
    upgrade(url)
    client = default_network_client()

    code = client.allocate_resident_codes(lg_code=CHIYODA, count=1)[0]
    number = client.individual_number_for(resident_code=code, lg_code=CHIYODA)

    with Session(national_engine()) as session:
        assert service.find_by_individual_number(session, number=number) == code
