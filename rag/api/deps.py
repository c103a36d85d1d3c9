"""What routes get injected: the API key a request presents, and the app's loaded pipeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from rag.api.auth import presented_key
from rag.pipeline import RagPipeline


def _presented(
    authorization: Annotated[str | None, Header()] = None, x_api_key: Annotated[str | None, Header()] = None
) -> str | None:
    return presented_key(authorization, x_api_key)


def _pipeline(request: Request) -> RagPipeline:
    pipeline: RagPipeline = request.app.state.pipeline
    return pipeline


# `Authorization: Bearer KEY` or `X-API-Key: KEY` (None when neither is sent).
PresentedKey = Annotated[str | None, Depends(_presented)]
# The pipeline the lifespan loaded once.
Pipeline = Annotated[RagPipeline, Depends(_pipeline)]
