"""What one answer costs the question log: milliseconds per recorded answer (five cited passages)
on SQLite under a temporary data_dir and, when one answers, on PostgreSQL, one writer and eight
writers at once; then `rag log stats` over what was written.

    .venv/bin/python bench/questionlog.py [--answers 500] [--postgres URL] [--out bench/out/questionlog.json]

PostgreSQL: a database created for the run on the server at --postgres (default: 127.0.0.1:5432,
trust auth, as on our machines) and dropped afterwards; skipped, saying so, when none answers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from rag.config import load_settings
from rag.questionlog.report import stats
from rag.questionlog.store import Asked, QuestionLog
from rag.types import Answer, Citation, Passage

PROJECT = Path(__file__).resolve().parent.parent


def sample_answer(i: int) -> Answer:
    cited = tuple(
        Citation(
            n,
            Passage(
                f"chunk-{i}-{n}",
                "passage text " * 40,
                recall_rank=n,
                recall_score=0.5,
                metadata={"file_name": "SP800-40r3.pdf", "doc_id": "d", "page": n, "pages": [n]},
            ),
            cited=n == 1,
        )
        for n in range(1, 6)
    )
    timings = {"embed": 0.01, "recall": 0.02, "generate": 0.1}
    return Answer(f"What is question {i}?", "An answer [1].", cited, True, "extractive", timings=timings)


def measure(url: str | None, answers: int, data_dir: Path) -> dict:
    environ = {"RAG_DATA_DIR": str(data_dir), **({"RAG_LOG__URL": url} if url else {})}
    settings = load_settings(environ=environ)
    question_log = QuestionLog(settings)
    question_log.prepare()
    asked = Asked.of(settings, "api.ask", "bench", None, None)
    figures: dict = {"database": question_log.where.split(":", 1)[0]}
    try:
        for writers in (1, 8):
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=writers) as pool:
                recorded = list(pool.map(lambda i: question_log.record(sample_answer(i), asked), range(answers)))
            seconds = time.perf_counter() - started
            assert all(a.logged for a in recorded), "a write failed"
            figures[f"writers_{writers}"] = {
                "answers": answers,
                "ms_per_answer": round(seconds * 1000 / answers, 3),
                "answers_per_second": round(answers / seconds, 1),
            }
        started = time.perf_counter()
        report = stats(question_log, days=30)
        figures["stats_ms"] = round((time.perf_counter() - started) * 1000, 1)
        figures["stats_questions"] = report["questions"]
    finally:
        question_log.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "out" / "questionlog.json")
    args = parser.parse_args()
    results = {"sqlite": measure(None, args.answers, Path(tempfile.mkdtemp(prefix="rag-log-")))}
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            name = f"rag_bench_{uuid.uuid4().hex[:10]}"
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = admin.url.set(database=name).render_as_string(hide_password=False)
                results["postgresql"] = measure(url, args.answers, Path(tempfile.mkdtemp(prefix="rag-log-")))
            finally:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except OperationalError as exc:
        results["postgresql"] = {"skipped": f"no server at {args.postgres}: {str(exc.orig).strip()}"}
    finally:
        admin.dispose()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
