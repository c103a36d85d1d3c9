"""See the source: a document's original file, its pages as PNG, and where a cited chunk lies on a
page. Only documents in the collection's manifest can be opened: the request names a document id,
never a path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from rag.api.deps import AppSettings, CollectionName, Pipeline, in_path, require
from rag.api.errors import ApiError
from rag.source import PageRenderer, highlight, original
from rag.store import KnowledgeBase
from rag.types import DocumentRecord, Passage

router = APIRouter(tags=["documents"])

DOCUMENT = "/v1/collections/{collection}/documents/{doc_id}"
PageNumber = Annotated[int, PathParam(ge=1, le=100_000, description="1-based page number.")]
_MEDIA_TYPES = {
    "pdf": "application/pdf",
    "markdown": "text/markdown; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


# A chunk id in a query string: what the routes that find a chunk again take.
ChunkId = Annotated[str, Query(min_length=1, max_length=300, description="A chunk of this document.")]


def document_of(kb: KnowledgeBase, doc_id: str) -> DocumentRecord:
    """The manifest's record of a visible document (404 otherwise): the only way in, by id."""
    record = kb.document(doc_id)
    if record is None or not record.visible:
        raise ApiError(404, "document_not_found", f"no document {doc_id!r} in {kb.name!r}")
    return record


def chunk_of(kb: KnowledgeBase, doc_id: str, chunk_id: str) -> Passage:
    """A visible chunk of the document (404 for a chunk of another one, or none)."""
    found = kb.passages([(chunk_id, 0.0)])
    if not found or found[0].metadata.get("doc_id") != doc_id:
        raise ApiError(404, "chunk_not_found", f"no chunk {chunk_id!r} in document {doc_id!r}")
    return found[0]


def _pdf(kb: KnowledgeBase, doc_id: str) -> tuple[DocumentRecord, Path]:
    record = document_of(kb, doc_id)
    if record.file_type != "pdf":
        raise ApiError(404, "no_pages", f"{Path(record.source).name} is {record.file_type}, which has no pages to draw")
    return record, original(record)


@router.get(f"{DOCUMENT}/file", response_class=FileResponse, dependencies=[require("read", collection=in_path)])
async def download(collection: CollectionName, doc_id: str, rag: Pipeline) -> FileResponse:
    """The original file, as ingested (410 when it has gone or changed since)."""

    def find() -> tuple[DocumentRecord, Path]:
        record = document_of(rag.store.open(collection), doc_id)
        return record, original(record)

    record, path = await run_in_threadpool(find)
    media_type = _MEDIA_TYPES.get(record.file_type, "application/octet-stream")
    return FileResponse(path, media_type=media_type, filename=path.name)


@router.get(
    f"{DOCUMENT}/pages/{{page}}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    dependencies=[require("read", collection=in_path)],
)
async def page_image(
    collection: CollectionName,
    doc_id: str,
    page: PageNumber,
    rag: Pipeline,
    settings: AppSettings,
    width: Annotated[
        int, Query(ge=1, le=100_000, description="Pixels; rounded to 100, at most api.max_page_width.")
    ] = 1000,
) -> Response:
    """Page `page` of a PDF as PNG."""

    def render() -> bytes:
        record, path = _pdf(rag.store.open(collection), doc_id)
        renderer = PageRenderer(settings.data_dir / "cache" / "pages", settings.api.max_page_width)
        return renderer.render(path, record, page, width)

    png = await run_in_threadpool(render)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get(f"{DOCUMENT}/pages/{{page}}/highlights", dependencies=[require("read", collection=in_path)])
async def page_highlights(
    collection: CollectionName,
    doc_id: str,
    page: PageNumber,
    rag: Pipeline,
    settings: AppSettings,
    chunk_id: ChunkId,
) -> dict[str, Any]:
    """The rectangles of a chunk's text on the page, in PDF points from the top left, with the page's
    size. A scanned page's are the OCR boxes holding the text (seconds the first time, then cached)."""

    def find() -> dict[str, Any]:
        kb = rag.store.open(collection)
        record, path = _pdf(kb, doc_id)
        passage = chunk_of(kb, doc_id, chunk_id)
        ocr_cache = settings.data_dir / "cache" / "ocr" / record.sha256[:32]
        return {
            "doc_id": doc_id,
            "chunk_id": chunk_id,
            **highlight(path, page, passage.text, ocr_cache=ocr_cache).to_dict(),
        }

    return await run_in_threadpool(find)
