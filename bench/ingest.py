"""Ingest throughput on ../shared/corpus/en with the offline embedder (all-MiniLM-L6-v2).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ingest.py [--corpus DIR] [--out bench/out/ingest.json]

Reports, side by side on the same machine and run:
  * pages/s parsed (pypdf, in-process, alone),
  * chunks/s for the whole ingest (load, chunk, embed, write),
  * the share of wall time spent outside the embedding model, with parsing in the main process
    (parse_workers=0) and overlapped in a worker process (parse_workers=1, the default).
Goal (issue 2): outside-model time at most 15% of the total.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from ingest import Ingestor  # noqa: E402
from ingest.loaders import load_document  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding.local import SentenceTransformerEmbedder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=PROJECT.parent / "shared" / "corpus" / "en")
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "out" / "ingest.json")
    args = parser.parse_args()
    files = sorted(args.corpus.glob("*.pdf"))
    if not files:
        print(f"no PDFs under {args.corpus}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    pages = sum(load_document(f, f.read_bytes()).pages for f in files)
    parse_seconds = time.perf_counter() - started

    profile = PROJECT / "configs" / "offline.yaml"
    embedder = SentenceTransformerEmbedder(load_settings(profile, environ={}).embedding)
    embedder.warm_up()
    embedder.embed_documents(["warm-up"])
    runs = {}
    for workers in (0, 1):
        with tempfile.TemporaryDirectory() as data_dir:
            settings = load_settings(
                profile, environ={"RAG_DATA_DIR": data_dir, "RAG_INGEST__PARSE_WORKERS": str(workers)}
            )
            report = Ingestor(settings, embedder=embedder).run(files)
            assert report.count("failed") == 0, report.to_dict()
            runs[f"parse_workers={workers}"] = {
                "wall_seconds": round(report.seconds, 2),
                "embed_seconds": round(report.embed_seconds, 2),
                "store_seconds": round(report.store_seconds, 2),
                "outside_model_share": round(1 - report.embed_seconds / report.seconds, 3),
                "chunks": report.chunks,
                "chunks_per_second": round(report.chunks / report.seconds, 1),
            }
    result = {
        "corpus": str(args.corpus),
        "files": len(files),
        "pages": pages,
        "parse_pages_per_second": round(pages / parse_seconds, 1),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
