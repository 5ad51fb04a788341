"""Guards in front of every route.

NUL characters are refused at the door: PostgreSQL text cannot hold them, so a request
carrying one would otherwise reach the database and fail there as a 500, and no name,
address or code ever contains one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from jumin.core.errors import problem_type

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_NUL_MARKERS = (b"\x00", b"\\u0000", b"%00")


class RejectNulCharacters:
    """Buffers the request body, refuses NUL in it or in the query, then replays it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        path = scope.get("raw_path") or scope.get("path", "").encode()
        if any(marker in part for part in (query, path) for marker in _NUL_MARKERS):
            await _refuse(send)
            return
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"")
        if not content_type.startswith((b"application/json", b"application/x-www-form-urlencoded")):
            # Uploads (CSV batches, PDFs) stream through untouched; their parsers check rows.
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if any(marker in body for marker in _NUL_MARKERS):
            await _refuse(send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send) -> None:
    payload = json.dumps(
        {
            "type": problem_type("malformed-request"),
            "title": "入力形式が正しくありません",
            "status": 422,
            "detail": "NUL文字 (U+0000) を含む入力は受け付けられません。",
        },
        ensure_ascii=False,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
