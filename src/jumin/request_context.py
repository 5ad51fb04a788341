"""The request id of the work in progress, for logs and audit entries.

Set by the HTTP middleware for a request and by the CLI for a command, so that an audit
entry written deep inside a service names the request that caused it without every
function passing it along.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("jumin_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str:
    rid = _request_id.get()
    if rid is None:
        rid = new_request_id()
        _request_id.set(rid)
    return rid


def set_request_id(request_id: str) -> None:
    _request_id.set(request_id)


def peek_request_id() -> str | None:
    """The current request id if one is set, without inventing one (for log lines)."""
    return _request_id.get()
