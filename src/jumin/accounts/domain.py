"""Who may act, and how they prove it.

Every staff login needs a password (argon2id) and a TOTP code; a TOTP code is accepted
once only (its time step is remembered), and repeated failures lock the account.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from enum import StrEnum

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from jumin.core.errors import DomainError, InvalidValue, Unauthenticated

TOTP_ISSUER = "Jumin"
TOTP_STEP_SECONDS = 30
# ±1 step tolerates clocks a little apart without widening the replay window much.
TOTP_WINDOW = 1
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()


class Role(StrEnum):
    CLERK = "clerk"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"
    OPERATOR = "operator"


class OrganisationKind(StrEnum):
    MUNICIPALITY = "municipality"
    PREFECTURE = "prefecture"
    AGENCY = "agency"
    NATIONAL = "national"


class PrincipalKind(StrEnum):
    STAFF = "staff"
    AGENCY_CLIENT = "agency_client"


class AccountLocked(DomainError):
    status = 423
    type_slug = "account-locked"
    title = "アカウントがロックされています"
    commits_recorded_work = True


class InvalidCredentials(Unauthenticated):
    """The failure count and its audit entry must survive the refusal, or lock-out never comes."""

    type_slug = "invalid-credentials"
    title = "認証に失敗しました"
    commits_recorded_work = True


GENERIC_LOGIN_FAILURE = "ログイン名、パスワードまたはワンタイムパスワードが正しくありません。"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    kind: PrincipalKind
    subject: str  # login of a staff member, client id of an agency client
    organisation_code: str
    organisation_kind: OrganisationKind
    roles: frozenset[Role]
    token_id: int

    def has_any(self, roles: frozenset[Role]) -> bool:
        return bool(self.roles & roles)


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _hasher.hash(password)


def hash_secret(secret: str) -> str:
    """Machine-generated secrets (client secrets) skip the human password policy."""
    return _hasher.hash(secret)


def verify_password(password_hash: str, password: str) -> bool:
    # argon2's verify raises on mismatch instead of returning False (STACK.md).
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the login is unknown, so that a wrong login name and a
# wrong password take the same time and an attacker cannot enumerate logins.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def burn_password_check(password: str) -> None:
    verify_password(_DUMMY_HASH, password)


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidValue(f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください。", field="password")
    if password.isdigit() or password.isalpha():
        raise InvalidValue("パスワードには文字と数字を混ぜてください。", field="password")


def generate_password() -> str:
    # token_urlsafe can in principle yield only letters; a digit guarantees the policy.
    return f"{secrets.token_urlsafe(12)}{secrets.randbelow(10)}"


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, login: str, organisation_code: str) -> str:
    return str(
        pyotp.TOTP(secret).provisioning_uri(name=f"{login}@{organisation_code}", issuer_name=TOTP_ISSUER)
    )


def matching_totp_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step whose code equals ``code`` within the window, or None."""
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS)
    step_now = int(now.timestamp()) // TOTP_STEP_SECONDS
    for step in range(step_now - TOTP_WINDOW, step_now + TOTP_WINDOW + 1):
        if secrets.compare_digest(str(totp.at(step * TOTP_STEP_SECONDS)), code):
            return step
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_client_id() -> str:
    return f"agc_{secrets.token_hex(8)}"
