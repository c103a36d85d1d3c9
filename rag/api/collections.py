"""Knowledge bases over HTTP: list the ones a key may read, create one (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from rag.api.deps import Pipeline, Reader, in_body, require
from rag.api.models import JsonBody
from rag.store import validate_collection_name

router = APIRouter(tags=["documents"])


class CreateCollection(JsonBody):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=3, max_length=62)
    instruction: str | None = Field(default=None, max_length=2000, description="Default rerank instruction.")


@router.get("/v1/collections")
async def list_collections(rag: Pipeline, caller: Reader) -> dict[str, Any]:
    """The knowledge bases this key may read."""

    def rows() -> list[dict[str, Any]]:
        names = rag.store.list_knowledge_bases()
        return [rag.store.open(name).summary() for name in names if caller.may("read", name)]

    return {"collections": await run_in_threadpool(rows)}


@router.post("/v1/collections", status_code=201, dependencies=[require("admin", collection=in_body("name"))])
async def create_collection(body: CreateCollection, rag: Pipeline) -> dict[str, Any]:
    """Create an empty knowledge base (admin), optionally with its default rerank instruction."""
    validate_collection_name(body.name)

    def create() -> None:
        kb = rag.store.open(
            body.name, embedding_model=rag.embedder.model_name, dimension=rag.embedder.dimension, create=True
        )
        if body.instruction is not None:
            kb.set_instruction(body.instruction)
        rag.forget(body.name)

    await run_in_threadpool(create)
    return {"name": body.name, "instruction": body.instruction}
