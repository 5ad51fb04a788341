from __future__ import annotations

import os
import shutil

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from jumin.accounts.domain import OrganisationKind, Role
from tests import factories
from tests.card.helpers import CHIYODA

STRICT = os.environ.get("JUMIN_TEST_STRICT") == "1"
Headers = dict[str, str]


@pytest.fixture
def clerk(client: TestClient, db: Session) -> Headers:
    return factories.auth(client, factories.staff(db, Role.CLERK, org=CHIYODA))


@pytest.fixture
def operator(client: TestClient, db: Session) -> Headers:
    return factories.auth(
        client, factories.staff(db, Role.OPERATOR, org=factories.NATIONAL, kind=OrganisationKind.NATIONAL)
    )


@pytest.fixture
def openssl() -> str:
    """The openssl program; a skip with the reason when missing, a failure under JUMIN_TEST_STRICT=1."""
    path = shutil.which("openssl")
    if path is None:
        message = "openssl が見つかりません (apt-get install openssl)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return path
