"""The question log and feedback, against SQLite and a real PostgreSQL server: answers recorded
with their passages, feedback checked and kept, statistics and exports read back, retention, the
schema migrated by the application (several processes at once), and faults (a database that is
down, full or read-only) that cost no answer.

PostgreSQL: the server this machine runs on 127.0.0.1:5432 (RAG_TEST_POSTGRES_URL names another);
each test gets a database of its own, dropped afterwards. Without a server those cases skip, saying so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect, select, text, update
from sqlalchemy.exc import OperationalError

from rag.api import create_app
from rag.config import Settings
from rag.errors import AnswerNotFound, QuestionLogUnavailable
from rag.pipeline import RagPipeline
from rag.questionlog.report import export, stats
from rag.questionlog.schema import answers, citations, feedback, metadata
from rag.questionlog.store import Asked, Feedback, QuestionLog
from rag.types import Answer, Citation, Passage

from .support.documents import RUNBOOK
from .support.loopback import serve_asgi
from .support.processes import free_port, rag_serve, run_cli
from .support.profiles import offline_env, offline_settings

POSTGRES_ADMIN = os.environ.get("RAG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
KEYS = json.dumps(
    [
        {"key": "secret-reader-key", "role": "read", "collections": ["default"], "name": "reader"},
        {"key": "secret-other-key", "role": "read", "collections": ["other"], "name": "other"},
        {"key": "secret-admin-key", "role": "admin", "name": "admin"},
    ]
)
READER = {"Authorization": "Bearer secret-reader-key"}
ADMIN = {"Authorization": "Bearer secret-admin-key"}


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the PostgreSQL server; its URL."""
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        connection = admin.connect()
    except OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {admin.url.render_as_string()}: {str(exc.orig).strip()}")
    name = f"rag_test_{uuid.uuid4().hex[:12]}"
    try:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.close()
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Offline settings whose question log is SQLite under data_dir, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield offline_settings(tmp_path)
        return
    with postgres_database() as url:
        yield offline_settings(tmp_path, RAG_LOG__URL=url)


def passage(n: int, file: str, page: int | None) -> Passage:
    pages = [page] if page else []
    meta = {"file_name": file, "source": f"docs/{file}", "doc_id": f"doc-{file}", "page": page, "pages": pages}
    return Passage(f"{file}-{n}", f"text {n}", recall_rank=n, recall_score=0.5 / n, metadata=meta)


def answer(question: str, *, found: bool = True, degraded: tuple[str, ...] = (), file: str = "a.pdf") -> Answer:
    cited = (Citation(1, passage(1, file, 7), cited=True), Citation(2, passage(2, "b.md", None))) if found else ()
    text_ = "It is on page 7 [1]." if found else "I could not find this in the knowledge base."
    return Answer(question, text_, cited, found, "extractive", timings={"recall": 0.01}, degraded=degraded)


def asked(settings: Settings, collection: str = "default") -> Asked:
    return Asked.of(settings, "api.ask", "reader", collection, None)


def test_answers_feedback_stats_and_exports(database: Settings) -> None:
    question_log = QuestionLog(database)
    question_log.prepare()
    question_log.prepare()  # a second start migrates nothing and fails on nothing
    try:
        good = question_log.record(answer("Where is the VPN setting?"), asked(database))
        refused = [question_log.record(answer("Who won the cup?", found=False), asked(database)) for _ in range(2)]
        slow = question_log.record(answer("What is 809?", degraded=("rerank",)), asked(database, "other"))
        assert all(a.logged and "log" not in a.degraded for a in (good, *refused, slow))

        assert question_log.collection_of(slow.answer_id) == "other"
        with pytest.raises(AnswerNotFound):
            question_log.collection_of("0" * 32)
        with pytest.raises(AnswerNotFound):
            question_log.rate("0" * 32, Feedback("up"), "reader")
        question_log.rate(good.answer_id, Feedback("down", "wrong page"), "reader")
        question_log.rate(good.answer_id, Feedback("up"), "reader")  # changed their mind: the latest counts
        question_log.rate(slow.answer_id, Feedback("down", "see the manual", "manual.pdf", 3), "admin")
        question_log.rate(refused[0].answer_id, Feedback("down"), "reader")

        report = stats(question_log, days=7)
        assert (report["questions"], report["refused"], report["degraded"]) == (4, 2, 1)
        assert (report["refusal_rate"], report["degraded_rate"]) == (0.5, 0.25)
        assert (report["rated"], report["up"], report["down"], report["down_vote_rate"]) == (3, 1, 2, round(2 / 3, 4))
        today = datetime.now(UTC).date().isoformat()
        assert report["per_day"] == [{"day": today, "questions": 4, "refused": 2, "degraded": 1, "down": 2, "up": 1}]
        assert report["top_refused"] == [{"question": "Who won the cup?", "count": 2}]
        assert {q["question"] for q in report["top_down_voted"]} == {"What is 809?", "Who won the cup?"}
        assert stats(question_log, days=7, collection="other")["questions"] == 1

        qa, left_out = export(question_log, rating="up", output="qa")
        assert left_out == 0 and qa == [
            {
                "id": f"log-{good.answer_id[:12]}",
                "question": "Where is the VPN setting?",
                "lang": "en",
                "doc": "a.pdf",
                "pages": [7],
                "kind": "rated-up",
                "collection": "default",
                "answer_id": good.answer_id,
            }
        ]
        # Down-voted: the expected file and page make a gold; a refusal without them cannot.
        down_qa, left_out = export(question_log, rating="down", output="qa")
        assert left_out == 1 and [(q["doc"], q["pages"]) for q in down_qa] == [("manual.pdf", [3])]
        review, _ = export(question_log, rating="down", output="review")
        assert {r["comment"] for r in review} == {"see the manual", None}
        row = next(r for r in review if r["answer_id"] == slow.answer_id)
        assert row["cited"][0] == {"n": 1, "file": "a.pdf", "page": 7, "cited": True, "chunk_id": "a.pdf-1"}
        assert row["degraded"] == ["rerank"] and row["key_name"] == "reader" and row["expected_page"] == 3

        # The migrated schema is the one the code declares, at Alembic's newest revision.
        assert question_log.engine is not None
        found = inspect(question_log.engine)
        for table in metadata.tables.values():
            assert {c["name"] for c in found.get_columns(table.name)} == set(table.columns.keys()), table.name
        with question_log.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    finally:
        question_log.close()


def test_retention_deletes_old_answers_with_their_passages_and_feedback(database: Settings) -> None:
    settings = database.model_copy(update={"log": database.log.model_copy(update={"retention_days": 30})})
    question_log = QuestionLog(settings)
    try:
        old, recent = (question_log.record(answer(q), asked(settings)) for q in ("old question", "new question"))
        question_log.rate(old.answer_id, Feedback("up"), "reader")
        assert question_log.engine is not None
        with question_log.engine.begin() as connection:
            long_ago = datetime.now(UTC) - timedelta(days=31)
            connection.execute(update(answers).where(answers.c.id == old.answer_id).values(created_at=long_ago))
        assert question_log.purge() == 1
        with question_log.engine.connect() as connection:
            assert connection.execute(select(answers.c.id)).scalars().all() == [recent.answer_id]
            assert {r.answer_id for r in connection.execute(select(citations))} == {recent.answer_id}
            assert connection.execute(select(feedback)).all() == []
    finally:
        question_log.close()


@pytest.mark.slow  # four Python processes importing rag
def test_processes_starting_at_once_migrate_once_and_lose_nothing(database: Settings, tmp_path: Path) -> None:
    """Four processes (as API workers) open an empty database at the same moment and write."""
    script = tmp_path / "writer.py"
    script.write_text(
        "import sys\n"
        "from rag.config import load_settings\n"
        "from rag.questionlog.store import Asked, QuestionLog\n"
        "from rag.types import Answer\n"
        "settings = load_settings(environ={'RAG_DATA_DIR': sys.argv[1], **({'RAG_LOG__URL': sys.argv[2]}"
        " if sys.argv[2] != '-' else {})})\n"
        "log = QuestionLog(settings)\n"
        "sys.stdin.readline()  # every process is up: now all at once\n"
        "for i in range(25):\n"
        "    a = log.record(Answer(f'q{i}', 't', (), True, 'x'), Asked.of(settings, 'api.ask', 'k', None, None))\n"
        "    assert a.logged, a.degraded\n"
        "print('ok')\n"
    )
    url = database.log.url.get_secret_value() if database.log.url else "-"
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(database.data_dir), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [w.communicate("go\n", timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err[-2000:] for _, err in results]
    question_log = QuestionLog(database)
    try:
        assert stats(question_log, days=1)["questions"] == 100
    finally:
        question_log.close()


# -- through the API -------------------------------------------------------------------------------
@contextmanager
def served(index: Path, minilm, **environ: str) -> Iterator[str]:
    settings = offline_settings(index, RAG_API__KEYS=KEYS, **environ)
    with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
        yield url


def ask(url: str, question: str = "What does VPN error 809 mean?", **extra: object) -> dict:
    response = httpx.post(f"{url}/v1/ask", json={"question": question, **extra}, headers=READER, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def streamed_answer(url: str, question: str) -> dict:
    with httpx.stream(
        "POST", f"{url}/v1/ask", json={"question": question, "stream": True}, headers=READER, timeout=120
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    return json.loads(lines[-1][6:])


@pytest.mark.slow
def test_every_answer_is_logged_and_rated_through_the_api(index: Path, minilm, tmp_path: Path) -> None:
    database = tmp_path / "log.sqlite3"
    with served(index, minilm, RAG_LOG__URL=f"sqlite:///{database}") as url:
        plain = ask(url)
        streamed = streamed_answer(url, "How long must a password be?")
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "default", "messages": [{"role": "user", "content": "What is the capital of Peru?"}]},
            headers=READER,
            timeout=120,
        ).json()
        ids = [plain["answer_id"], streamed["answer_id"], chat["answer_id"]]
        assert len(set(ids)) == 3 and plain["logged"] and streamed["logged"] and chat["logged"]

        def rate(body: dict, headers: dict[str, str] = READER) -> httpx.Response:
            return httpx.post(f"{url}/v1/feedback", json=body, headers=headers, timeout=30)

        assert rate({"answer_id": plain["answer_id"], "rating": "up"}).json()["recorded"] is True
        down = {"answer_id": chat["answer_id"], "rating": "down", "comment": "it should say so", "expected_file": "x"}
        assert rate(down).status_code == 200
        unknown = rate({"answer_id": "f" * 32, "rating": "up"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "answer_not_found"
        bad = rate({"answer_id": plain["answer_id"], "rating": "meh"})
        assert bad.status_code == 422 and "rating" in bad.json()["error"]["message"]
        long = rate({"answer_id": plain["answer_id"], "rating": "up", "comment": "x" * 2001})
        assert long.status_code == 413 and "comment: at most 2000" in long.json()["error"]["message"]
        assert rate({"answer_id": plain["answer_id"], "rating": "up", "comment": "x" * 2000}).status_code == 200
        other = rate({"answer_id": plain["answer_id"], "rating": "down"}, {"Authorization": "Bearer secret-other-key"})
        assert other.status_code == 403  # the answer came from a collection this key may not read
        assert rate({"answer_id": plain["answer_id"], "rating": "up"}, {}).status_code == 401

        assert httpx.get(f"{url}/v1/stats", headers=READER).status_code == 403
        report = httpx.get(f"{url}/v1/stats", params={"days": 1}, headers=ADMIN).json()
        assert report["questions"] == 3 and (report["up"], report["down"]) == (1, 1)
        assert report["top_refused"] == [{"question": "What is the capital of Peru?", "count": 1}]

    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(select(answers))}
        assert {r.channel for r in rows.values()} == {"api.ask", "api.chat"}
        assert {r.key_name for r in rows.values()} == {"reader"}
        logged = rows[plain["answer_id"]]
        assert logged.query == plain["query"] and logged.found and logged.recall_mode == "dense"
        assert set(logged.timings) == set(plain["timings"])
        sources = connection.execute(select(citations).where(citations.c.answer_id == plain["answer_id"])).all()
        assert [(c.chunk_id, c.file, c.page) for c in sources] == [
            (c["chunk_id"], c["file"], c["page"]) for c in plain["citations"]
        ]
        assert connection.execute(select(feedback.c.key_name)).scalars().all() == ["reader"] * 3
    engine.dispose()
    # The key's name is kept, never the key.
    assert b"secret-reader-key" not in b"".join(p.read_bytes() for p in tmp_path.glob("log.sqlite3*"))


@pytest.mark.slow
def test_with_the_log_off_nothing_is_kept_and_feedback_says_why(index: Path, minilm, tmp_path: Path) -> None:
    database = tmp_path / "off.sqlite3"
    with served(index, minilm, RAG_LOG__ENABLED="false", RAG_LOG__URL=f"sqlite:///{database}") as url:
        given = ask(url)
        assert given["answer_id"] and not given["logged"] and given["degraded"] == []
        refused = httpx.post(
            f"{url}/v1/feedback", json={"answer_id": given["answer_id"], "rating": "up"}, headers=READER
        )
        assert refused.status_code == 409 and "log.enabled: false" in refused.json()["error"]["message"]
    assert not database.exists()


@contextmanager
def small_filesystem(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of `size_kb` at `path` (needs root, as on our machines; skipped otherwise)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.slow
def test_a_full_database_costs_no_answer(index: Path, minilm, tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small", 256) as small:
        env = {"RAG_LOG__URL": f"sqlite:///{small / 'log.sqlite3'}", "RAG_LOG__RETRY_AFTER_S": "0.5"}
        with served(index, minilm, **env) as url:
            assert ask(url)["logged"]
            # The rest of the filesystem taken by another file.
            filler = small / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=1000"], capture_output=True)
            long_question = "What does VPN error 809 mean? " + "Please explain in detail. " * 150
            full = ask(url, long_question)
            assert not full["logged"] and full["degraded"] == ["log"] and full["found"] and full["answer"]
            resting = ask(url)  # within retry_after_s: not tried, marked at once
            assert resting["degraded"] == ["log"]
            filler.unlink()
            threading.Event().wait(0.6)
            assert ask(url)["logged"]


@pytest.mark.slow
def test_a_read_only_database_costs_no_answer(index: Path, minilm) -> None:
    """PostgreSQL turned read-only under the service (as a standby is after a failover)."""
    with postgres_database() as database_url:
        name = database_url.rsplit("/", 1)[1]
        admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        env = {"RAG_LOG__URL": database_url, "RAG_LOG__RETRY_AFTER_S": "0.5"}
        try:
            with served(index, minilm, **env) as url:
                assert ask(url)["logged"]
                with admin.connect() as connection:
                    connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
                    connection.execute(
                        text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
                    )
                read_only = ask(url, "How long must a password be?")
                assert read_only["degraded"] == ["log"] and read_only["found"] and read_only["answer"]
                threading.Event().wait(0.6)
                rating = httpx.post(
                    f"{url}/v1/feedback", json={"answer_id": read_only["answer_id"], "rating": "up"}, headers=READER
                )
                assert rating.status_code == 404  # it was never logged: there is nothing to rate
                with admin.connect() as connection:
                    connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off'))
                    connection.execute(
                        text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
                    )
                threading.Event().wait(0.6)
                assert ask(url)["logged"]
        finally:
            admin.dispose()


@pytest.mark.slow
def test_a_database_that_is_down_costs_no_answer(index: Path, minilm) -> None:
    nobody = f"postgresql+psycopg://rag@127.0.0.1:{free_port()}/rag"  # a port where nothing listens
    with served(index, minilm, RAG_LOG__URL=nobody) as url:
        for _ in range(3):
            given = ask(url)
            assert given["degraded"] == ["log"] and not given["logged"] and given["found"]
        streamed = streamed_answer(url, "How long must a password be?")
        assert streamed["degraded"] == ["log"] and streamed["found"]
        rating = httpx.post(
            f"{url}/v1/feedback", json={"answer_id": given["answer_id"], "rating": "up"}, headers=READER
        )
        assert rating.status_code == 503 and rating.json()["error"]["code"] == "log_unavailable"
        assert rating.headers["retry-after"]
        stats_down = httpx.get(f"{url}/v1/stats", headers=ADMIN)
        assert stats_down.status_code == 503 and "secret" not in stats_down.text
        metrics = httpx.get(f"{url}/metrics", headers=ADMIN).text
        assert 'rag_degraded_total{stage="log"} 4.0' in metrics


def test_an_unreachable_database_is_an_error_not_a_hang(tmp_path: Path) -> None:
    settings = offline_settings(tmp_path, RAG_LOG__URL=f"postgresql+psycopg://rag@127.0.0.1:{free_port()}/rag")
    question_log = QuestionLog(settings)
    try:
        with pytest.raises(QuestionLogUnavailable, match=re.escape("127.0.0.1")):
            question_log.collection_of("a" * 32)
        assert question_log.record(answer("q"), asked(settings)).degraded == ("log",)
    finally:
        question_log.close()


@pytest.mark.slow
@pytest.mark.server
def test_two_workers_share_one_sqlite_log(chroma_server: str, tmp_path: Path) -> None:
    """`rag serve --workers 2` (two processes, a Chroma server between them) writing one SQLite log."""
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        **offline_env(data_dir),
        "RAG_CHROMA__URL": chroma_server,
        "RAG_LOG__URL": f"sqlite:///{tmp_path / 'workers.sqlite3'}",
    }
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "runbook.md").write_text(RUNBOOK)
    (docs / "policy.md").write_text("# Passwords\n\nPasswords have at least twelve characters.\n")
    ingested = run_cli("ingest", str(docs), env=env)
    assert ingested.returncode == 0, ingested.stderr
    with rag_serve(env, workers=2, log=tmp_path / "serve.log") as url:
        questions = ["What does VPN error 809 mean?", "How long must a password be?", "Who won the cup?"] * 10

        def one(question: str) -> dict:
            return httpx.post(f"{url}/v1/ask", json={"question": question}, timeout=300).json()

        with ThreadPoolExecutor(max_workers=12) as pool:
            given = list(pool.map(one, questions))
    assert all(a["logged"] and a["degraded"] == [] for a in given), [a.get("degraded") for a in given]
    question_log = QuestionLog(offline_settings(data_dir, RAG_LOG__URL=env["RAG_LOG__URL"]))
    try:
        assert stats(question_log, days=1)["questions"] == 30
        assert question_log.collection_of(given[-1]["answer_id"]) == "default"
    finally:
        question_log.close()


@pytest.mark.slow
def test_cli_answers_are_logged_and_an_exported_set_runs_through_rag_eval(index: Path, tmp_path: Path) -> None:
    env = {**offline_env(index), "RAG_LOG__URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    asked_ = run_cli("ask", "What does VPN error 809 mean?", "--json", env=env)
    assert asked_.returncode == 0, asked_.stderr
    given = json.loads(asked_.stdout)
    assert given["logged"] and len(given["answer_id"]) == 32
    # Rated through the log (as POST /v1/feedback does), then read back by the CLI.
    question_log = QuestionLog(offline_settings(index, RAG_LOG__URL=env["RAG_LOG__URL"]))
    try:
        question_log.rate(given["answer_id"], Feedback("up"), "cli")
    finally:
        question_log.close()

    report = run_cli("log", "stats", "--json", env=env)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["up"] == 1
    table = run_cli("log", "stats", env=env)
    assert "1 questions in 30 days" in table.stdout and "What does VPN" not in table.stdout

    exported = tmp_path / "rated-up.jsonl"
    done = run_cli("log", "export", "--rating", "up", "--format", "qa", "--out", str(exported), env=env)
    assert done.returncode == 0 and "1 up-rated answers" in done.stderr, done.stderr
    evaluated = run_cli("eval", "--qa", str(exported), "--out", str(tmp_path / "eval"), "--json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    scored = json.loads(evaluated.stdout)["runs"][0]["groups"]["all"]
    # The gold is the passage the up-voted answer cited: the same question finds it again.
    assert scored["answerable"] == 1 and scored["reranked"]["hit@5"] == 1.0, scored

    wrong = run_cli("log", "export", "--rating", "sideways", env=env)
    assert wrong.returncode == 2 and "--rating: up or down" in wrong.stderr
