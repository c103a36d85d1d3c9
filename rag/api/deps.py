"""What routes get injected: the loaded pipeline, the settings and metrics, and who is calling.

Authorisation is declared, never called by hand: every route but /healthz and the page carries
`require(role, collection=...)`, either in `dependencies=[...]` or as a parameter when the route
needs the caller (to list only what a key may read). `collection` says where the request names
its knowledge base: `in_path` (the `{collection}` path parameter), `in_body("field")` (a field of
the JSON body; absent or null: the configured default), or nowhere (the role alone is checked).
`tests/test_architecture.py` fails on a route without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi import Path as PathParam

from rag.api.auth import KeyRing, Principal, presented_key
from rag.api.metrics import Metrics
from rag.api.selfchecks import SelfChecks
from rag.config import Role, Settings
from rag.pipeline import RagPipeline
from rag.questionlog.store import QuestionLog

# The example names the collection every install has: API docs and schema-driven clients
# (schemathesis, in the tests) start from a name that exists.
CollectionName = Annotated[str, PathParam(description="A knowledge base (GET /v1/collections).", examples=["default"])]
CollectionSource = Callable[..., Awaitable[str | None]]


def _pipeline(request: Request) -> RagPipeline:
    pipeline: RagPipeline = request.app.state.pipeline
    return pipeline


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _selfchecks(request: Request) -> SelfChecks:
    selfchecks: SelfChecks = request.app.state.selfchecks
    return selfchecks


def _question_log(request: Request) -> QuestionLog:
    question_log: QuestionLog = request.app.state.question_log
    return question_log


# The pipeline the lifespan loaded once.
Pipeline = Annotated[RagPipeline, Depends(_pipeline)]
AppSettings = Annotated[Settings, Depends(_settings)]
AppMetrics = Annotated[Metrics, Depends(_metrics)]
AppSelfChecks = Annotated[SelfChecks, Depends(_selfchecks)]
AppQuestionLog = Annotated[QuestionLog, Depends(_question_log)]


async def in_path(collection: CollectionName) -> str | None:
    """The collection the `{collection}` path parameter names."""
    return collection


def in_body(field: str) -> CollectionSource:
    """The collection a JSON body names in `field`. FastAPI has read and cached the body already;
    one that is not a JSON object names none (and fails validation after this check)."""

    async def named_in_body(request: Request) -> str | None:
        try:
            data: Any = await request.json()
        except (ValueError, RecursionError):
            return None
        value = data.get(field) if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    return named_in_body


async def _no_collection() -> str | None:
    return None


def require(role: Role, *, collection: CollectionSource | None = None) -> Any:
    """A dependency that lets the request through only with a key of at least `role`, for the
    collection it names (when it names one): 401 without a valid key, 403 without the right."""

    # A default, not an annotation: annotations are strings here, and FastAPI cannot resolve a local.
    named_collection = Depends(collection or _no_collection)

    async def authorized(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
        named: str | None = named_collection,
    ) -> Principal:
        keys: KeyRing = request.app.state.keys
        if collection is None:
            return keys.authorize(presented_key(authorization, x_api_key), role, None)
        target = named if named is not None else _settings(request).collection
        return keys.authorize(presented_key(authorization, x_api_key), role, target)

    return Depends(authorized)


# Any valid key, for routes that show each caller only what it may read.
Reader = Annotated[Principal, require("read")]
