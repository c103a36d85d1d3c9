"""Documents over HTTP: list, upload (ingested by the write side's upload transaction, as the CLI
would), delete. Uploaded files are kept under `data_dir/uploads/<collection>/`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from starlette.concurrency import run_in_threadpool

from ingest.loaders import FORMATS, LoadOptions, load_document
from ingest.manifest import delete_document as delete
from ingest.pipeline import Ingestor
from ingest.uploads import UploadTooLarge, ingest_uploads, upload_folder
from rag.api.deps import AppSettings, CollectionName, Pipeline, in_path, require
from rag.api.errors import ApiError
from rag.api.sources import ChunkId, chunk_of, document_of
from rag.errors import LoadError
from rag.source import locate, original
from rag.store import validate_collection_name
from rag.types import DocumentRecord, Section

router = APIRouter(tags=["documents"])

_ACCEPTED = ", ".join(fmt.label for fmt in FORMATS)


@router.get("/v1/collections/{collection}/documents", dependencies=[require("read", collection=in_path)])
async def list_documents(collection: CollectionName, rag: Pipeline) -> dict[str, Any]:
    kb = await run_in_threadpool(rag.store.open, collection)
    records = await run_in_threadpool(kb.documents)
    return {"collection": collection, "documents": [_record(r) for r in records if r.visible]}


@router.post("/v1/collections/{collection}/documents", dependencies=[require("write", collection=in_path)])
async def upload_documents(
    collection: CollectionName,
    rag: Pipeline,
    settings: AppSettings,
    files: Annotated[list[UploadFile], File(description=f"One or more files: {_ACCEPTED}.")],
) -> dict[str, Any]:
    """Upload and ingest files; the answer lists each file's outcome (a bad file fails alone)."""
    validate_collection_name(collection)
    limits = settings.api
    if len(files) > limits.max_files_per_upload:
        raise ApiError(413, "too_many_files", f"at most {limits.max_files_per_upload} files per upload")

    def upload() -> list[dict[str, Any]]:
        outcomes = ingest_uploads(
            [(f.filename, f.file) for f in files],
            ingestor=Ingestor(rag.settings, embedder=rag.embedder, store=rag.store),
            collection=collection,
            folder=upload_folder(settings.data_dir, collection),
            max_file_mb=limits.max_upload_mb,
        )
        rag.forget(collection)
        return [o.to_dict() for o in outcomes]

    try:
        outcomes = await run_in_threadpool(upload)
    except UploadTooLarge as exc:
        raise ApiError(413, "file_too_large", str(exc)) from None
    failed = sum(1 for o in outcomes if o["status"] == "failed")
    return {"collection": collection, "files": outcomes, "failed": failed}


@router.delete("/v1/collections/{collection}/documents/{doc_id}", dependencies=[require("write", collection=in_path)])
async def delete_document(
    collection: CollectionName, doc_id: str, rag: Pipeline, settings: AppSettings
) -> dict[str, Any]:
    kb = await run_in_threadpool(rag.store.open, collection)
    record = await run_in_threadpool(kb.document, doc_id)
    if record is None:
        raise ApiError(404, "document_not_found", f"no document {doc_id!r} in {collection!r}")
    await run_in_threadpool(delete, kb, record, rag.lexical.get(kb))
    stored = upload_folder(settings.data_dir, collection)
    source = Path(record.source)
    if source.parent.resolve() == stored.resolve():
        source.unlink(missing_ok=True)  # only files we keep ourselves, never a user's own folder
    return {"deleted": doc_id}


@router.get(
    "/v1/collections/{collection}/documents/{doc_id}/section", dependencies=[require("read", collection=in_path)]
)
async def section(
    collection: CollectionName,
    doc_id: str,
    rag: Pipeline,
    chunk_id: ChunkId,
) -> dict[str, Any]:
    """The section of the original (the text under the chunk's heading, or the page of a PDF) that
    holds a chunk, and where in it the chunk's text is (`highlight`: [start, end) characters, or
    the chunk itself when it cannot be found again: a scanned page, a file changed since). Here, not in
    rag.api.sources: it parses with the loaders."""

    def find() -> dict[str, Any]:
        kb = rag.store.open(collection)
        path = original(document_of(kb, doc_id))
        passage = chunk_of(kb, doc_id, chunk_id)
        found: tuple[Section, tuple[int, int]] | None = None
        try:
            # No OCR here: seconds per page in a request. A scanned page's text is its chunks'.
            document = load_document(path, path.read_bytes(), LoadOptions(ocr=False))
        except LoadError:
            document = None
        if document is not None:
            same_place = [
                s
                for s in document.sections
                if " > ".join(s.heading_path) == passage.heading and (passage.page is None or s.page == passage.page)
            ]
            located = ((c, locate(c.text, passage.text)) for c in [*same_place, *document.sections])
            found = next(((c, span) for c, span in located if span is not None), None)
        if found is None:
            heading = tuple(passage.heading.split(" > ")) if passage.heading else ()
            found = (Section(passage.text, passage.page, heading), (0, len(passage.text)))
        shown, span = found
        return {
            "doc_id": doc_id,
            "chunk_id": chunk_id,
            "file": path.name,
            "heading": " > ".join(shown.heading_path),
            "page": shown.page,
            "text": shown.text,
            "highlight": list(span),
        }

    return await run_in_threadpool(find)


def _record(record: DocumentRecord) -> dict[str, Any]:
    return {
        "doc_id": record.doc_id,
        "file": Path(record.source).name,
        "file_type": record.file_type,
        "pages": record.pages,
        "chunks": record.chunks,
        "size": record.size,
        "ingested_at": record.ingested_at,
        "title": record.title,
    }
