"""A cap on request bodies, enforced while they arrive: the server never holds or spools more.

Starlette reads a whole JSON body into memory, and spools a whole multipart body to disk, before
a route sees it, so the routes' own size limits alone come too late. A body whose declared
Content-Length is over the cap is refused before a byte of it is read; one without (chunked) is
counted as it streams and refused the moment it passes the cap.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.config import ApiSettings

_MB = 1 << 20
_FORM_OVERHEAD = _MB  # part headers and boundaries around an upload's files


class BodyLimit:
    """ASGI middleware. The refusal is an HTTPException raised where the route reads its body:
    FastAPI passes it on to the app's error handlers, so it is a 413 in the usual error shape."""

    def __init__(self, app: ASGIApp, *, limits: ApiSettings) -> None:
        self.app = app
        self.json_cap = int(limits.max_body_mb * _MB)
        # An upload may carry its most files at their largest.
        self.form_cap = int(limits.max_files_per_upload * limits.max_upload_mb * _MB) + _FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        is_form = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        cap = self.form_cap if is_form else self.json_cap
        declared = headers.get(b"content-length", b"")
        received = int(declared) if declared.isdigit() else 0
        refusal = HTTPException(413, f"the request body is over {cap / _MB:g} MB")

        async def counted() -> Message:
            nonlocal received
            if received > cap:
                raise refusal
            message = await receive()
            if message["type"] == "http.request" and not declared.isdigit():
                received += len(message.get("body", b""))
                if received > cap:
                    raise refusal
            return message

        await self.app(scope, counted, send)
