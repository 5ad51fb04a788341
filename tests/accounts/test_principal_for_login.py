"""`principal_for_login`: the account a CLI command acts as."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from jumin.accounts import service
from jumin.accounts.domain import OrganisationKind, PrincipalKind, Role
from jumin.audit.models import AuditEntry
from jumin.core.errors import Forbidden, NotFound
from tests import factories


def test_the_principal_carries_the_accounts_organisation_and_roles(db: Session) -> None:
    staff = factories.staff(db, Role.CLERK, Role.SUPERVISOR, org="011002")
    principal = service.principal_for_login(db, login=staff.login)
    assert principal.kind is PrincipalKind.STAFF
    assert principal.subject == staff.login
    assert principal.organisation_code == "011002"
    assert principal.organisation_kind is OrganisationKind.MUNICIPALITY
    assert principal.roles == {Role.CLERK, Role.SUPERVISOR}
    assert principal.token_id == 0


def test_an_unknown_login_is_not_found(db: Session) -> None:
    with pytest.raises(NotFound) as caught:
        service.principal_for_login(db, login="nobody-here")
    assert caught.value.field == "login"
    assert "nobody-here" in caught.value.detail


def test_a_deactivated_account_is_refused_and_the_refusal_audited(db: Session) -> None:
    staff = factories.staff(db, Role.CLERK)
    service.deactivate(db, actor=None, login=staff.login)
    with pytest.raises(Forbidden) as caught:
        service.principal_for_login(db, login=staff.login)
    assert "無効化" in caught.value.detail
    # The refusal's trace must outlive the refusal's rollback.
    assert caught.value.commits_recorded_work
    denied = db.query(AuditEntry).filter_by(actor_id=staff.login, action="access.denied").one()
    assert denied.outcome == "denied"
    assert denied.detail == "inactive account"
