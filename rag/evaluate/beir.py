"""`rag eval --beir DIR`: one throwaway (or reused) collection holding the BEIR corpus, one chunk
per document (the chunk id is the BEIR id), then every judged query through recall and rerank.

The corpus is written as a single manifest document whose version hashes the texts and the
model, so a second run against the same corpus and model reuses the collection as it is.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.backends import NO_RERANKER
from rag.config import RecallMode
from rag.evaluate.cache import CachedEncoder
from rag.evaluate.data import BeirSet
from rag.evaluate.metrics import ir_metrics
from rag.evaluate.stages import Latencies, run_stages
from rag.pipeline import RagPipeline, SearchOptions
from rag.store import KnowledgeBase
from rag.types import Chunk, DocumentRecord

log = logging.getLogger(__name__)

CORPUS_DOC_ID = "beir-corpus"


@dataclass
class ModeRun:
    """One recall mode over every query: ranked ids before and after reranking, stage times."""

    mode: str
    reranker: str
    recalled: dict[str, list[str]] = field(default_factory=dict)
    reranked: dict[str, list[str]] = field(default_factory=dict)
    latencies: Latencies = field(default_factory=Latencies)
    notes: set[str] = field(default_factory=set)


def collection_name(folder: Path, model: str) -> str:
    digest = hashlib.sha256(f"{folder.resolve()}|{model}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", folder.name)[:30].strip("-_") or "beir"
    return f"eval-{readable}-{digest}"


def corpus_version(data: BeirSet, model: str, max_tokens: int) -> str:
    digest = hashlib.sha256(f"{model}|{max_tokens}".encode())
    for doc_id, text in data.corpus.items():
        digest.update(f"\x00{doc_id}\x01{text}".encode())
    return digest.hexdigest()[:16]


def build_collection(
    pipeline: RagPipeline, data: BeirSet, name: str, encoder: CachedEncoder, *, source: str
) -> tuple[KnowledgeBase, bool]:
    """The corpus as a knowledge base; (kb, reused?)."""
    embedder = pipeline.embedder
    embedder.warm_up()
    version = corpus_version(data, embedder.model_name, embedder.max_tokens)
    store = pipeline.store
    if name in store.list_knowledge_bases():
        kb = store.open(name)
        record = kb.document(CORPUS_DOC_ID)
        if record is not None and record.version == version and not record.pending_version:
            pipeline.lexical.get(kb).refresh()
            return kb, True
        store.drop(name)
        pipeline.lexical.drop(name)
    pipeline.forget(name)
    kb = store.open(name, embedding_model=embedder.model_name, dimension=embedder.dimension, create=True)
    ids = list(data.corpus)
    texts = [data.corpus[i] for i in ids]
    vectors = encoder.encode(texts)
    chunks = [
        Chunk(
            id=doc_id,
            text=text,
            doc_id=CORPUS_DOC_ID,
            version=version,
            source=source,
            file_type="beir",
            chunk_index=i,
            char_start=0,
            char_end=len(text),
        )
        for i, (doc_id, text) in enumerate(zip(ids, texts, strict=True))
    ]
    record = DocumentRecord(
        doc_id=CORPUS_DOC_ID, source=source, file_type="beir", size=0, sha256="", chunks=len(chunks), title=name
    )
    # The ingest write protocol, shortened: invisible until the record names the version.
    kb.put_document(replace(record, pending_version=version))
    started = time.perf_counter()
    kb.upsert_chunks(chunks, vectors)
    lexical = pipeline.lexical.get(kb)
    lexical.write_terms(CORPUS_DOC_ID, version, chunks)
    kb.put_document(replace(record, version=version))
    log.info("wrote %d vectors in %.1fs", len(chunks), time.perf_counter() - started)
    lexical.prune_terms()
    return kb, False


def run_queries(
    pipeline: RagPipeline, kb: KnowledgeBase, queries: dict[str, str], mode: RecallMode, *, progress: bool = True
) -> ModeRun:
    run = ModeRun(mode=mode, reranker=pipeline.reranker.name)
    options = SearchOptions(mode=mode)
    for qid, text in tqdm(queries.items(), desc=f"queries ({mode})", unit="q", disable=not progress):
        staged = run_stages(pipeline, kb, text, options)
        run.recalled[qid] = [p.chunk_id for p in staged.recalled]
        run.reranked[qid] = [p.chunk_id for p in staged.ranked]
        run.notes.update(staged.rerank.notes)
        run.latencies.add(staged.timings)
    return run


def summarize(run: ModeRun, data: BeirSet) -> dict[str, Any]:
    return {
        "mode": run.mode,
        "reranker": run.reranker,
        "recall": ir_metrics(data.qrels, run.recalled),
        "reranked": ir_metrics(data.qrels, run.reranked) if run.reranker != NO_RERANKER else None,
        "latency_ms": run.latencies.summary_ms(),
        "notes": sorted(run.notes),
    }
