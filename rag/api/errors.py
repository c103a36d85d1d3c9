"""Every error a client sees is JSON `{"error": {"code", "message"}}` with a fitting status;
stack traces stay in the server log, next to the request id."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import BackendError, ConfigError, RagError, StoreUnavailable

log = logging.getLogger("rag.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_length(text: str, limit: int, field: str) -> None:
    if len(text) > limit:
        raise ApiError(413, "too_long", f"{field}: at most {limit} characters ({len(text)} given)")


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# A backend or the store is away: how long a client should wait before it tries again.
_RETRY_AFTER_S = 2


def _response(
    request: Request, status: int, code: str, message: str, *, retry_after: int | None = None
) -> JSONResponse:
    headers = {"X-Request-ID": getattr(request.state, "request_id", "")}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return _response(request, exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
        return _response(request, 422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        message = str(exc)
        if message.startswith("no knowledge base named"):
            return _response(request, 404, "collection_not_found", message)
        return _response(request, 400, "bad_request", message)

    @app.exception_handler(BackendError)
    async def _backend(request: Request, exc: BackendError) -> JSONResponse:
        return _response(request, 503, "backend_unavailable", str(exc), retry_after=_RETRY_AFTER_S)

    @app.exception_handler(StoreUnavailable)
    async def _store(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return _response(request, 503, "store_unavailable", str(exc), retry_after=_RETRY_AFTER_S)

    @app.exception_handler(RagError)
    async def _rag(request: Request, exc: RagError) -> JSONResponse:
        log.error("request %s failed: %s", getattr(request.state, "request_id", "?"), exc)
        return _response(request, 500, "internal_error", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", getattr(request.state, "request_id", "?"))
        return _response(request, 500, "internal_error", "internal error (see the server log)")
