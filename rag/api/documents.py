"""Collections and documents over HTTP: list, create, upload (ingested by the CLI's own code), delete.

Uploaded files are kept under `data_dir/uploads/<collection>/` (so a re-upload of the same name
replaces that document, and the file is there to re-ingest). A client's file name is never a
path: only its last component survives, reduced to safe characters. A file's type is checked by
its content (PDF and DOCX magic, text that is text) before anything is ingested.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from fastapi import Path as PathParam
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from rag.api.auth import KeyRing
from rag.api.deps import Pipeline, PresentedKey
from rag.api.errors import ApiError
from rag.api.models import JsonBody
from rag.config import Settings
from rag.pipeline import RagPipeline
from rag.store import validate_collection_name

ALLOWED_SUFFIXES = {".pdf", ".docx", ".md", ".markdown", ".txt", ".html", ".htm"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\u3400-\u9fff]+")
_CHUNK = 1 << 20

# The example names the collection every install has: API docs and schema-driven clients
# (schemathesis, in the tests) start from a name that exists.
CollectionName = Annotated[str, PathParam(description="A knowledge base (GET /v1/collections).", examples=["default"])]


class CreateCollection(JsonBody):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=3, max_length=62)
    instruction: str | None = Field(default=None, max_length=2000, description="Default rerank instruction.")


def safe_file_name(name: str | None) -> str:
    """The last path component of a client's file name, in safe characters; never '', '.' or '..'."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE.sub("_", base).strip("._ ")[:120]
    if not base or Path(base).suffix.lower() not in ALLOWED_SUFFIXES:
        suffix = Path(base).suffix.lower() or "(none)"
        raise ValueError(f"file type {suffix} is not accepted; send {', '.join(sorted(ALLOWED_SUFFIXES))}")
    return base


def content_problem(path: Path) -> str | None:
    """Why the content does not match the name's type, or None when it does."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return None if b"%PDF-" in head[:1024] else "named .pdf but is not a PDF"
    if suffix == ".docx":
        return None if head.startswith(b"PK\x03\x04") else "named .docx but is not a DOCX (zip) file"
    if b"\x00" in head:
        return f"named {suffix} but holds binary data"
    return None


def documents_router(settings: Settings, keys: KeyRing) -> APIRouter:
    router = APIRouter(tags=["documents"])
    limits = settings.api
    uploads_root = settings.data_dir / "uploads"

    @router.get("/v1/collections")
    async def list_collections(rag: Pipeline, key: PresentedKey) -> dict[str, Any]:
        """The knowledge bases this key may read."""
        principal = keys.principal(key)

        def rows() -> list[dict[str, Any]]:
            names = rag.store.list_knowledge_bases()
            return [rag.store.open(name).summary() for name in names if principal.may("read", name)]

        return {"collections": await run_in_threadpool(rows)}

    @router.post("/v1/collections", status_code=201)
    async def create_collection(body: CreateCollection, rag: Pipeline, key: PresentedKey) -> dict[str, Any]:
        """Create an empty knowledge base (admin), optionally with its default rerank instruction."""
        keys.authorize(key, "admin", body.name)
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

    @router.get("/v1/collections/{collection}/documents")
    async def list_documents(collection: CollectionName, rag: Pipeline, key: PresentedKey) -> dict[str, Any]:
        keys.authorize(key, "read", collection)
        kb = await run_in_threadpool(rag.store.open, collection)
        records = await run_in_threadpool(kb.documents)
        return {"collection": collection, "documents": [_record(r) for r in records if r.visible]}

    @router.post("/v1/collections/{collection}/documents")
    async def upload_documents(
        collection: CollectionName,
        rag: Pipeline,
        files: Annotated[list[UploadFile], File(description="One or more PDF, DOCX, Markdown, HTML or text files.")],
        key: PresentedKey,
    ) -> dict[str, Any]:
        """Upload and ingest files; the answer lists each file's outcome (a bad file fails alone)."""
        keys.authorize(key, "write", collection)
        validate_collection_name(collection)
        if len(files) > limits.max_files_per_upload:
            raise ApiError(413, "too_many_files", f"at most {limits.max_files_per_upload} files per upload")
        folder = uploads_root / collection
        folder.mkdir(parents=True, exist_ok=True)
        outcomes: list[dict[str, Any]] = []
        pending: list[tuple[Path, Path]] = []  # (incoming copy, final place)
        swapped: list[tuple[Path, Path | None]] = []  # (final place, the earlier file it replaced)
        try:
            for upload in files:
                try:
                    name = safe_file_name(upload.filename)
                except ValueError as exc:
                    outcomes.append({"file": upload.filename or "", "status": "failed", "reason": str(exc)})
                    continue
                if any(final.name == name for _, final in pending):
                    outcomes.append({"file": name, "status": "failed", "reason": "the same name twice in one upload"})
                    continue
                incoming = folder / f".incoming-{uuid.uuid4().hex}{Path(name).suffix}"
                pending.append((incoming, folder / name))
                await _save(upload, incoming, limits.max_upload_mb)
                problem = content_problem(incoming)
                if problem:
                    pending.pop()
                    incoming.unlink()
                    outcomes.append({"file": name, "status": "failed", "reason": problem})
            while pending:
                incoming, final = pending.pop(0)
                swapped.append(_swap_in(incoming, final))
            paths = [final for final, _ in swapped]
            report = await run_in_threadpool(_ingest, rag, paths, collection) if paths else None
        except BaseException:
            for incoming, _ in pending:
                incoming.unlink(missing_ok=True)
            for final, previous in swapped:
                _roll_back(final, previous)
            raise
        by_path = {Path(o.path).resolve(): o for o in report.outcomes} if report is not None else {}
        for final, previous in swapped:
            outcome = by_path.get(final.resolve())
            if outcome is not None and outcome.status in ("added", "replaced", "unchanged"):
                if previous is not None:
                    previous.unlink(missing_ok=True)
            else:
                _roll_back(final, previous)  # the index still holds the earlier version, if any
            outcomes.append(
                {
                    "file": final.name,
                    "status": outcome.status if outcome else "failed",
                    "reason": outcome.reason if outcome else "not ingested",
                    "doc_id": outcome.doc_id if outcome else "",
                    "pages": outcome.pages if outcome else 0,
                    "chunks": outcome.chunks if outcome else 0,
                }
            )
        failed = sum(1 for o in outcomes if o["status"] == "failed")
        return {"collection": collection, "files": outcomes, "failed": failed}

    @router.delete("/v1/collections/{collection}/documents/{doc_id}")
    async def delete_document(
        collection: CollectionName, doc_id: str, rag: Pipeline, key: PresentedKey
    ) -> dict[str, Any]:
        keys.authorize(key, "write", collection)
        from ingest.manifest import delete_document as delete

        kb = await run_in_threadpool(rag.store.open, collection)
        record = await run_in_threadpool(kb.document, doc_id)
        if record is None:
            raise ApiError(404, "document_not_found", f"no document {doc_id!r} in {collection!r}")
        await run_in_threadpool(delete, kb, record)
        stored = uploads_root / collection
        source = Path(record.source)
        if source.parent.resolve() == stored.resolve():
            source.unlink(missing_ok=True)  # only files we keep ourselves, never a user's own folder
        return {"deleted": doc_id}

    return router


async def _save(upload: UploadFile, target: Path, max_mb: float) -> None:
    limit = int(max_mb * (1 << 20))
    written = 0
    with target.open("wb") as handle:
        while block := await upload.read(_CHUNK):
            written += len(block)
            if written > limit:
                handle.close()
                target.unlink(missing_ok=True)
                raise ApiError(413, "file_too_large", f"{upload.filename}: over {max_mb:g} MB")
            handle.write(block)


def _swap_in(incoming: Path, final: Path) -> tuple[Path, Path | None]:
    previous = None
    if final.exists():
        previous = final.with_name(f".previous-{uuid.uuid4().hex}{final.suffix}")
        final.replace(previous)
    incoming.replace(final)
    return final, previous


def _roll_back(final: Path, previous: Path | None) -> None:
    """Put back the file the index still describes (or remove a new one that never got in)."""
    if previous is not None and previous.exists():
        previous.replace(final)
    else:
        final.unlink(missing_ok=True)


def _ingest(pipeline: RagPipeline, paths: list[Path], collection: str) -> Any:
    from ingest import Ingestor

    ingestor = Ingestor(pipeline.settings, embedder=pipeline.embedder, store=pipeline.store)
    report = ingestor.run(paths, collection=collection)
    pipeline.forget(collection)
    return report


def _record(record: Any) -> dict[str, Any]:
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
