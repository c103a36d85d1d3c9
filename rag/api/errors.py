"""Every error a client sees is JSON `{"error": {"code", "message"}}` with a fitting status;
stack traces stay in the server log, next to the request id."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import (
    AnswerNotFound,
    BackendError,
    CollectionNotFound,
    ConfigError,
    InvalidHistory,
    NotRenderable,
    PageNotFound,
    QuestionLogOff,
    QuestionLogUnavailable,
    RagError,
    SourceGone,
    StoreUnavailable,
)

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


# Errors whose message is written for the client: their status and code.
_SAID_AS_IS: tuple[tuple[type[RagError], int, str], ...] = (
    (ConfigError, 400, "bad_request"),
    (SourceGone, 410, "source_gone"),
    (PageNotFound, 404, "page_not_found"),
    (NotRenderable, 422, "not_renderable"),
    (AnswerNotFound, 404, "answer_not_found"),
    (QuestionLogOff, 409, "log_off"),
)

# A backend or the store is away: how long a client should wait before it tries again.
_RETRY_AFTER_S = 2


@dataclass(frozen=True)
class Failure:
    """What a client is told about an exception: the one mapping, for responses and streams alike."""

    status: int
    code: str
    message: str
    retry_after: int | None = None


def describe(exc: BaseException, request_id: str) -> Failure:
    """The status, code and message for `exc`; what a client must not see stays in the server log."""
    if isinstance(exc, ApiError):
        return Failure(exc.status, exc.code, exc.message)
    if isinstance(exc, CollectionNotFound):
        # Not str(exc): that names the server's data folder, which is none of a client's business.
        return Failure(404, "collection_not_found", f"no knowledge base named {exc.name!r}")
    if isinstance(exc, InvalidHistory):
        return Failure(exc.status, "invalid_history", str(exc))
    for family, status, code in _SAID_AS_IS:
        if isinstance(exc, family):
            return Failure(status, code, str(exc))
    if isinstance(exc, QuestionLogUnavailable):
        log.warning("request %s: %s", request_id, exc)
        return Failure(503, "log_unavailable", "the question log cannot be reached now", retry_after=_RETRY_AFTER_S)
    if isinstance(exc, BackendError):
        return Failure(503, "backend_unavailable", str(exc), retry_after=_RETRY_AFTER_S)
    if isinstance(exc, StoreUnavailable):
        return Failure(503, "store_unavailable", str(exc), retry_after=_RETRY_AFTER_S)
    if isinstance(exc, RagError):
        log.error("request %s failed: %s", request_id, exc)
        return Failure(500, "internal_error", str(exc))
    log.error("request %s failed", request_id, exc_info=exc)
    return Failure(500, "internal_error", "internal error (see the server log)")


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "?"))


def _response(
    request: Request, status: int, code: str, message: str, *, retry_after: int | None = None
) -> JSONResponse:
    headers = {"X-Request-ID": getattr(request.state, "request_id", "")}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _explain(error: dict[str, Any]) -> str:
    """One pydantic/FastAPI validation error as the field and what is wrong with it."""
    kind, loc = error.get("type"), tuple(error.get("loc", ()))
    if kind == "json_invalid":
        position = loc[1] if len(loc) > 1 else "?"
        return f"the body is not valid JSON: {error.get('ctx', {}).get('error', 'invalid')} (at character {position})"
    if loc == ("body",) and kind in ("model_attributes_type", "dict_type"):
        return "the body must be a JSON object, sent as Content-Type: application/json"
    where = ".".join(str(p) for p in loc if p != "body")
    what = str(error.get("msg", "invalid"))
    return f"{where}: {what}" if where else what


def _unreadable_body(cause: BaseException | None) -> str | None:
    """Why FastAPI could not parse a body (it says only "There was an error parsing the body")."""
    if isinstance(cause, RecursionError):
        return "the JSON body nests too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not UTF-8 (byte {cause.start})"
    if isinstance(cause, ValueError):  # e.g. an integer of more than 4300 digits
        return f"the JSON body cannot be read: {str(cause).split(';')[0]}"
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def _described(request: Request, exc: Exception) -> JSONResponse:
        failure = describe(exc, request_id_of(request))
        return _response(request, failure.status, failure.code, failure.message, retry_after=failure.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(_explain(error) for error in exc.errors()[:5])
        return _response(request, 422, "invalid_request", message or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        unreadable = _unreadable_body(exc.__cause__) if exc.status_code == 400 else None
        if unreadable:
            return _response(request, 400, "invalid_request", unreadable)
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
        return _response(request, exc.status_code, code, str(exc.detail))

    for family in (ApiError, RagError, Exception):
        app.add_exception_handler(family, _described)
