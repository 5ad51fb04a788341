"""The error vocabulary every layer shares.

A domain error knows its HTTP status, a stable problem ``type`` and a Japanese title, so
one handler in the app can render any of them as ``application/problem+json`` and the
CLI can print the same words. Subclasses set the class attributes; instances carry the
detail and the offending field.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """Base of every error a user can cause; never raised for programming mistakes."""

    status: ClassVar[int] = 400
    type_slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "リクエストが不正です"
    # A refusal that is itself evidence (a failed login, an access outside one's rights)
    # keeps what was recorded before it: the unit of work commits, then re-raises.
    commits_recorded_work: ClassVar[bool] = False

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    @property
    def type_uri(self) -> str:
        return problem_type(self.type_slug)


def problem_type(slug: str) -> str:
    """The stable identifier clients match on; a URN so that it needs no web host."""
    return f"urn:jumin:problem:{slug}"


class InvalidValue(DomainError):
    """A value that fails its own rules: a bad check digit, an impossible date."""

    status = 400
    type_slug = "invalid-value"
    title = "入力値が不正です"


class NotFound(DomainError):
    status = 404
    type_slug = "not-found"
    title = "対象が見つかりません"


class Conflict(DomainError):
    status = 409
    type_slug = "conflict"
    title = "他の操作と競合しました"


class RuleViolation(DomainError):
    """A well-formed request that the register's rules forbid in the current state.

    409, not 422: DESIGN.md keeps 422 for malformed payloads only.
    """

    status = 409
    type_slug = "rule-violation"
    title = "業務規則に反するため処理できません"


class Unauthenticated(DomainError):
    status = 401
    type_slug = "unauthenticated"
    title = "認証が必要です"


class Forbidden(DomainError):
    status = 403
    type_slug = "forbidden"
    title = "権限がありません"


class AccessDenied(Forbidden):
    """A refusal that is audited: the audit entry written before raising is committed."""

    type_slug = "access-denied"
    commits_recorded_work = True
