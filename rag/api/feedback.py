"""Feedback on answers and what the question log says: POST /v1/feedback (any key that may read
the answer's collection) and GET /v1/stats (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from rag.api.auth import Principal
from rag.api.deps import AppQuestionLog, AppSettings, Reader, require
from rag.api.errors import ApiError, check_length
from rag.api.models import FeedbackRequest
from rag.questionlog.report import stats as log_stats
from rag.questionlog.store import Feedback

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback")
async def give_feedback(
    body: FeedbackRequest, caller: Reader, question_log: AppQuestionLog, settings: AppSettings
) -> dict[str, Any]:
    """Rate an answer (up or down), optionally saying why and where the answer really is. The
    answer's latest rating counts; 404 for an answer the log does not hold."""
    if body.comment is not None:
        check_length(body.comment, settings.log.max_comment_chars, "comment")
    collection = await run_in_threadpool(question_log.collection_of, body.answer_id)
    if not caller.may("read", collection):
        # The same answer as for an unknown id would hide that it exists; a 403 is what every
        # other route gives a key outside its collections, and the id is not guessable.
        raise ApiError(403, "forbidden", f"this key may not read on collection {collection!r}")
    given = Feedback(body.rating, body.comment or None, body.expected_file or None, body.expected_page)
    await run_in_threadpool(question_log.rate, body.answer_id, given, caller.name)
    return {"answer_id": body.answer_id, "rating": body.rating, "recorded": True}


@router.get("/v1/stats")
async def stats(
    question_log: AppQuestionLog,
    _admin: Annotated[Principal, require("admin")],
    days: Annotated[int, Query(ge=1, le=3660, description="The window: the last N days (UTC).")] = 30,
    collection: Annotated[str | None, Query(max_length=200, description="One collection; default: all.")] = None,
) -> dict[str, Any]:
    """Questions per day, refusal / degraded / down-vote rates, the most refused and most
    down-voted questions (the question log; admin only: it holds what every user asked)."""
    return await run_in_threadpool(lambda: log_stats(question_log, days=days, collection=collection))
