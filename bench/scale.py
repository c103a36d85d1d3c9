"""Scale: recall latency, per-query overhead, memory, freshness and cold start, from 10k to 1M chunks.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/scale.py [--sizes 10000 100000 1000000] [--queries 200]
        [--work /tmp/rag-scale] [--resume] [--out bench/out/scale.json]

The layout is the multi-worker one: a real `chroma run` on 127.0.0.1 holding one collection, grown
in place from one size to the next. Documents of 10 chunks, four in five English and one in five
Chinese, their words drawn by frequency (Zipf) from wordninja's English word list and jieba's
dictionary, with random unit vectors of the offline profile's dimension: written through the real
KnowledgeBase (chunks, then manifest records, as the ingestion does) and LexicalIndex (term files),
not through the embedding model, which would take days at 1M on 2 cores.

At each size a fresh worker process, started as an API worker starts, measures:
- cold start: seconds to its first dense and first BM25 answer (the BM25 matrix is built then);
- recall p50 / p99 for dense, bm25 and hybrid, top-100 as a query asks (query vectors random,
  query text drawn like the documents: the model's time is not the collection's);
- the per-query work that does not depend on the query: reading the manifest's change token, and
  (for comparison) reading the whole manifest, what every BM25 query did before;
- its resident memory after those queries, and the Chroma server's;
- freshness: a real file ingested by the real Ingestor (offline profile embedder) in this process
  while the worker polls both recalls for it: seconds from the start of the ingest until each finds
  it; then how long the background rebuild of the BM25 matrix takes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
from rag.config import Settings, load_settings  # noqa: E402
from rag.embedding import build_embedder  # noqa: E402
from rag.lexical.index import LexicalIndex, LexicalIndexes  # noqa: E402
from rag.recall import recall  # noqa: E402
from rag.store import KnowledgeBase, VectorStore  # noqa: E402
from rag.types import Chunk, DocumentRecord, Passage  # noqa: E402
from tests.support.processes import free_port, run_chroma  # noqa: E402

COLLECTION = "scale"
CHUNKS_PER_DOC = 10
DOCS_PER_WRITE = 400  # 4,000 chunks: one Chroma upsert under its batch limit
VERSION = "0" * 16
MARKER = "zyxtquorbel"  # the added document's word no synthetic chunk holds


class Vocabulary:
    """Words drawn with probability ~ 1/rank (English) or by dictionary frequency (Chinese)."""

    def __init__(self, seed: int) -> None:
        import jieba
        import wordninja

        words_file = Path(wordninja.__file__).with_name("wordninja") / "wordninja_words.txt.gz"
        with gzip.open(words_file, "rt", encoding="utf-8") as handle:
            self.english = np.array([w.strip() for w in handle][:60_000])
        ranks = np.arange(1, len(self.english) + 1, dtype=np.float64)
        self.english_cdf = np.cumsum(1 / ranks) / np.sum(1 / ranks)
        han, freq = [], []
        for line in (Path(jieba.__file__).parent / "dict.txt").read_text(encoding="utf-8").splitlines():
            word, count, *_ = line.split(" ")
            if len(word) > 1 and all("\u4e00" <= ch <= "\u9fff" for ch in word):
                han.append(word)
                freq.append(float(count))
        self.chinese = np.array(han)
        weights = np.asarray(freq)
        self.chinese_cdf = np.cumsum(weights) / weights.sum()
        self.rng = np.random.default_rng(seed)

    def english_text(self, words: int) -> str:
        picks = np.searchsorted(self.english_cdf, self.rng.random(words))
        return " ".join(self.english[np.minimum(picks, len(self.english) - 1)])

    def chinese_text(self, words: int) -> str:
        picks = np.searchsorted(self.chinese_cdf, self.rng.random(words))
        return "".join(self.chinese[np.minimum(picks, len(self.chinese) - 1)]) + "。"

    def query(self) -> str:
        # Questions name mid-frequency words: the 1,000th to 20,000th most common.
        if self.rng.random() < 0.2:
            return "".join(self.rng.choice(self.chinese[:20_000], size=3))
        return " ".join(self.rng.choice(self.english[1_000:20_000], size=5))


def unit_vectors(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def grow(kb: KnowledgeBase, index: LexicalIndex, vocab: Vocabulary, start_doc: int, end_doc: int) -> None:
    """Documents start_doc..end_doc-1, each committed as the ingestion commits (chunks and term files
    first, then the manifest records naming their version)."""
    dimension = kb.dimension or 384
    for first in range(start_doc, end_doc, DOCS_PER_WRITE):
        numbers = range(first, min(first + DOCS_PER_WRITE, end_doc))
        chunks: list[Chunk] = []
        records: list[DocumentRecord] = []
        for number in numbers:
            doc_id = hashlib.sha256(str(number).encode()).hexdigest()[:16]
            chinese = number % 5 == 4
            source = f"/synthetic/{number // 1000:04d}/doc-{number}.{'zh' if chinese else 'en'}.txt"
            doc_chunks = []
            for index_in_doc in range(CHUNKS_PER_DOC):
                text = vocab.chinese_text(60) if chinese else vocab.english_text(90)
                doc_chunks.append(
                    Chunk(
                        id=f"{doc_id}:{VERSION}:{index_in_doc}",
                        text=text,
                        doc_id=doc_id,
                        version=VERSION,
                        source=source,
                        file_type="text",
                        chunk_index=index_in_doc,
                        char_start=0,
                        char_end=len(text),
                    )
                )
            index.write_terms(doc_id, VERSION, doc_chunks)
            chunks.extend(doc_chunks)
            records.append(
                DocumentRecord(doc_id, source, "text", 1000, doc_id * 4, version=VERSION, chunks=CHUNKS_PER_DOC)
            )
        kb.upsert_chunks(chunks, unit_vectors(vocab.rng, len(chunks), dimension))
        kb.put_documents(records)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker(args: argparse.Namespace) -> None:
    """One API worker's view: everything it measures goes to stdout as JSON lines."""
    started = time.perf_counter()
    settings = settings_for(args.chroma_url, Path(args.work))
    vocab = Vocabulary(seed=args.seed)
    kb = VectorStore(settings).open(COLLECTION)
    lexical = LexicalIndexes(settings).get(kb)
    dimension = kb.dimension or 384
    out: dict[str, object] = {}
    first_vector = unit_vectors(vocab.rng, 1, dimension)[0]
    kb.query(first_vector, 100)
    out["cold_dense_s"] = round(time.perf_counter() - started, 2)
    t0 = time.perf_counter()
    lexical.search("onboarding checklist", 100)
    lexical.search("数据安全", 100)  # loads jieba's dictionary, as a worker's first Chinese question does
    out["cold_bm25_s"] = round(time.perf_counter() - t0, 2)
    for mode in ("dense", "bm25", "hybrid"):
        timings = []
        for _ in range(args.queries):
            question, vector = vocab.query(), unit_vectors(vocab.rng, 1, dimension)[0]
            t0 = time.perf_counter()
            recall(kb, lexical, question, vector, k=100, mode=mode, settings=settings.recall)  # type: ignore[arg-type]
            timings.append(time.perf_counter() - t0)
        out[mode] = percentiles(timings)
    token_reads = []
    for _ in range(50):
        t0 = time.perf_counter()
        lexical.refresh()
        token_reads.append(time.perf_counter() - t0)
    out["refresh_unchanged_ms"] = percentiles(token_reads)["p50_ms"]
    t0 = time.perf_counter()
    kb.documents()
    out["manifest_read_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    out["worker_rss_mb"] = round(rss_mb(os.getpid()))
    embedder = build_embedder(settings.embedding)
    marker_vector = embedder.embed_query(f"{MARKER} onboarding checklist")
    # The documents added at smaller sizes hold the marker too: only a chunk not seen yet counts.
    seen = {p.chunk_id for p in kb.passages(lexical.search(MARKER, 50)) + kb.query(marker_vector, 50)}

    def new_hit(passages: list[Passage]) -> bool:
        return any(MARKER in p.text and p.chunk_id not in seen for p in passages)

    print(json.dumps({"measured": out}), flush=True)
    print("READY", flush=True)
    found: dict[str, float] = {}
    deadline = time.monotonic() + 120
    while len(found) < 2 and time.monotonic() < deadline:
        if "bm25" not in found and new_hit(kb.passages(lexical.search(MARKER, 5))):
            found["bm25"] = time.time()
        if "dense" not in found and new_hit(kb.query(marker_vector, 5)):
            found["dense"] = time.time()
        time.sleep(0.05)
    print(json.dumps({"found": found}), flush=True)
    t0 = time.perf_counter()
    lexical.wait_for_rebuild(600)
    print(json.dumps({"rebuild_wait_s": round(time.perf_counter() - t0, 1)}), flush=True)


def settings_for(chroma_url: str, work: Path) -> Settings:
    return load_settings(
        PROJECT / "configs" / "offline.yaml",
        data_dir=work / "data",
        collection=COLLECTION,
        chroma={"url": chroma_url, "timeout_s": 600},
    )


def measure(args: argparse.Namespace, chroma_url: str, chroma_pid: int, size: int) -> dict:
    settings = settings_for(chroma_url, Path(args.work))
    command = [sys.executable, __file__, "--worker", "--chroma-url", chroma_url, "--work", args.work]
    command += ["--queries", str(args.queries), "--seed", str(size)]
    worker_process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert worker_process.stdout is not None
    result: dict = {"chunks": size}
    for line in worker_process.stdout:
        if line.startswith("READY"):
            break
        result.update(json.loads(line)["measured"])
    result["chroma_rss_mb"] = round(rss_mb(chroma_pid))
    from ingest.pipeline import Ingestor

    with tempfile.TemporaryDirectory() as folder:
        added = Path(folder) / f"added-{size}.md"
        added.write_text(f"# Onboarding\n\nThe {MARKER} onboarding checklist is signed on day one by the new hire.\n")
        started = time.time()
        report = Ingestor(settings).run([added])
        ingest_s = time.time() - started
        assert report.count("added") == 1, report.to_dict()
        for line in worker_process.stdout:
            data = json.loads(line)
            if "found" in data:
                result["ingest_one_s"] = round(ingest_s, 2)
                result["searchable_s"] = {mode: round(at - started, 2) for mode, at in data["found"].items()}
            if "rebuild_wait_s" in data:
                result["rebuild_wait_s"] = data["rebuild_wait_s"]
    worker_process.wait(timeout=60)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "rag-scale"))
    parser.add_argument("--out", default=str(PROJECT / "bench" / "out" / "scale.json"))
    parser.add_argument("--resume", action="store_true", help="measure on (and grow) the collection in --work")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--chroma-url", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    work = Path(args.work)
    if work.exists() and not args.resume:
        raise SystemExit(f"{work} exists: remove it, give another --work, or --resume to grow it further")
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    results = []
    with run_chroma(work / "chroma", port, work / "chroma.log") as chroma:
        settings = settings_for(url, work)
        embedder = build_embedder(settings.embedding)
        embedder.warm_up()
        store = VectorStore(settings)
        kb = store.open(COLLECTION, embedding_model=embedder.model_name, dimension=embedder.dimension, create=True)
        index = LexicalIndexes(settings).get(kb)
        vocab = Vocabulary(seed=1)
        docs = sum(1 for record in kb.documents() if record.source.startswith("/synthetic/"))
        for size in sorted(args.sizes):
            started = time.perf_counter()
            target = size // CHUNKS_PER_DOC
            grow(kb, index, vocab, docs, target)
            docs = target
            built = time.perf_counter() - started
            result = measure(args, url, chroma.pid, size)
            result["grow_s"] = round(built, 1)
            results.append(result)
            print(json.dumps(result), flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))
    return 0


def table(results: list[dict]) -> str:
    rows = [
        "| chunks | dense p50 / p99 ms | bm25 p50 / p99 ms | hybrid p50 / p99 ms | unchanged refresh ms "
        "| whole manifest ms | worker RSS MB | Chroma RSS MB | cold start dense / bm25 s "
        "| one doc searchable s (dense / bm25) | rebuild s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        modes = " | ".join(f"{r[m]['p50_ms']:.1f} / {r[m]['p99_ms']:.1f}" for m in ("dense", "bm25", "hybrid"))
        searchable = r.get("searchable_s", {})
        rows.append(
            f"| {r['chunks']:,} | {modes} | {r['refresh_unchanged_ms']:.2f} | {r['manifest_read_ms']:.0f} "
            f"| {r['worker_rss_mb']} | {r['chroma_rss_mb']} | {r['cold_dense_s']} / {r['cold_bm25_s']} "
            f"| {searchable.get('dense', '-')} / {searchable.get('bm25', '-')} | {r.get('rebuild_wait_s', '-')} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
