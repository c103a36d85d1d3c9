"""The HTTP API under a real uvicorn on 127.0.0.1, with httpx: search, ask (streaming), rerank,
errors, limits and the API-key matrix."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.api import create_app
from rag.config import VllmRerankSettings, load_settings
from rag.pipeline import RagPipeline
from rag.rerank import build_reranker

from .support.fake_openai import FakeOpenAI
from .support.loopback import serve, serve_asgi
from .support.processes import free_port, run_cli, wait_for_port
from .support.profiles import local_reranker_env, offline_env, offline_settings

KEYS = json.dumps(
    [
        {"key": "reader-default", "role": "read", "collections": ["default"], "name": "reader"},
        {"key": "reader-other", "role": "read", "collections": ["other"], "name": "other"},
        {"key": "admin-key", "role": "admin", "name": "admin"},
        {"key": "writer-uploads", "role": "write", "collections": ["uploads-kb"], "name": "writer"},
    ]
)
READER = {"Authorization": "Bearer reader-default"}


@pytest.fixture(scope="module")
def api(index: Path, minilm, tiny_models: dict[str, Path]) -> Iterator[str]:
    settings = offline_settings(
        index,
        RAG_API__KEYS=KEYS,
        RAG_API__MAX_QUESTION_CHARS="500",
        RAG_API__MAX_RERANK_DOCUMENTS="8",
        RAG_API__MAX_FILES_PER_UPLOAD="3",
        RAG_API__MAX_UPLOAD_MB="1",
        **local_reranker_env(tiny_models["reranker"]),
        RAG_GENERATE__MIN_RERANK_SCORE="0",  # the tiny model's scores mean nothing
    )
    pipeline = RagPipeline(settings, embedder=minilm)
    pipeline.warm_up()
    with serve_asgi(create_app(settings, pipeline=pipeline)) as url:
        yield url


@pytest.fixture(scope="module")
def offline_api(index: Path, minilm) -> Iterator[str]:
    """The offline profile as shipped (recall order, extractive answers): for answer quality."""
    settings = offline_settings(index, RAG_API__KEYS=KEYS)
    with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
        yield url


def test_health_needs_no_key(api: str) -> None:
    response = httpx.get(f"{api}/healthz")
    assert response.json() == {"status": "ok"} and response.headers["X-Request-ID"]


def test_search_and_ask(api: str) -> None:
    found = httpx.post(f"{api}/v1/search", json={"query": "what does error 809 mean?", "top_n": 2}, headers=READER)
    assert found.status_code == 200, found.text
    passages = found.json()["passages"]
    assert len(passages) == 2 and passages[0]["rerank_score"] is not None
    lexical = httpx.post(
        f"{api}/v1/search", json={"query": "error 809", "recall_mode": "bm25", "top_n": 1}, headers=READER
    ).json()["passages"]
    assert lexical[0]["file"] == "runbook.md" and lexical[0]["bm25_score"] > 0 and lexical[0]["dense_score"] is None
    bad_mode = httpx.post(f"{api}/v1/search", json={"query": "x", "recall_mode": "fuzzy"}, headers=READER)
    assert bad_mode.status_code == 422 and "recall_mode" in bad_mode.text
    answer = httpx.post(f"{api}/v1/ask", json={"question": "What does error 809 mean?"}, headers=READER, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["found"] and body["citations"] and {"embed", "recall", "generate"} <= set(body["timings"])


def test_ask_streams_server_sent_events(api: str) -> None:
    events = []
    with httpx.stream(
        "POST", f"{api}/v1/ask", json={"question": "What does error 809 mean?", "stream": True}, headers=READER
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    assert [n for n, _ in events][-1] == "answer" and all(n == "delta" for n, _ in events[:-1])
    assert "".join(d["text"] for _, d in events[:-1]).strip() == events[-1][1]["answer"]


def test_rerank_is_wire_compatible_and_our_vllm_client_works_against_it(api: str, tiny_models) -> None:
    documents = ["Printers jam.", {"text": "Error 809: the firewall blocks L2TP."}, "第一条 数据安全"]
    response = httpx.post(
        f"{api}/v1/rerank",
        json={"model": "m", "query": "error 809", "documents": documents, "top_n": 2},
        headers=READER,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "m" and body["usage"]["total_tokens"] > 0 and len(body["results"]) == 2
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and body["results"][0]["document"]["text"]
    # Our own vllm backend, pointed at this endpoint, equals the local backend on the same model.
    local_settings = load_settings(environ=local_reranker_env(tiny_models["reranker"])).rerank
    local = build_reranker(local_settings)
    texts = ["Printers jam.", "Error 809: the firewall blocks L2TP.", "第一条 数据安全"]
    expected = local.score("error 809", texts)
    vllm = VllmRerankSettings(url=api, template="server", api_key="reader-default")  # type: ignore[arg-type]
    client = build_reranker(local_settings.model_copy(update={"backend": "vllm", "vllm": vllm}))
    assert client.score("error 809", texts) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/search", {"query": "error 809"}),
        ("/v1/ask", {"question": "error 809"}),
        ("/v1/ask", {"question": "error 809", "stream": True}),
        ("/v1/rerank", {"query": "q", "documents": ["a"]}),
    ],
)
def test_key_matrix(api: str, path: str, body: dict) -> None:
    def post(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{api}{path}", json=body, headers=headers, timeout=60)

    assert post({}).status_code == 401 and post({}).json()["error"]["code"] == "unauthorized"
    assert post({"Authorization": "Bearer nope"}).status_code == 401
    if path != "/v1/rerank":  # rerank touches no collection
        forbidden = post({"Authorization": "Bearer reader-other"})
        assert forbidden.status_code == 403 and "collection 'default'" in forbidden.json()["error"]["message"]
    assert post(READER).status_code == 200
    assert post({"X-API-Key": "admin-key"}).status_code == 200


def test_errors_are_json_with_clear_codes(api: str) -> None:
    cases = [
        ({"question": "x" * 501}, 413, "too_long"),
        ({"question": ""}, 422, "invalid_request"),
        ({"question": "q", "top_k": 100000}, 422, "invalid_request"),
        ({"question": "q", "unknown": 1}, 422, "invalid_request"),
        ({"question": "q", "collection": "missing-kb"}, 404, "collection_not_found"),
        ({"question": "q", "collection": "missing-kb", "stream": True}, 404, "collection_not_found"),
    ]
    admin = {"Authorization": "Bearer admin-key"}
    for body, status, code in cases:
        response = httpx.post(f"{api}/v1/ask", json=body, headers=admin)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (body, response.text)
        assert "Traceback" not in response.text
    too_many = httpx.post(f"{api}/v1/rerank", json={"query": "q", "documents": ["d"] * 9}, headers=admin)
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_documents"
    broken = httpx.post(f"{api}/v1/search", content=b"{not json", headers={**admin, "Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_request"


def test_rerank_without_a_reranker_says_so(offline_api: str) -> None:
    response = httpx.post(
        f"{offline_api}/v1/rerank", json={"query": "q", "documents": ["a", "b"]}, headers={"X-API-Key": "admin-key"}
    )
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_reranker"


@pytest.mark.slow
@pytest.mark.server
def test_rag_serve_runs_the_api(index: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, **offline_env(index), "HF_HUB_OFFLINE": "1"}
    env.pop("MALLOC_ARENA_MAX", None)
    log = (tmp_path / "serve.log").open("wb")
    rag = Path(sys.executable).with_name("rag")
    server = subprocess.Popen([str(rag), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, process=server, timeout=120)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        found = httpx.post(f"http://127.0.0.1:{port}/v1/search", json={"query": "error 809"}, timeout=60)
        assert found.status_code == 200 and found.json()["passages"][0]["file"] == "runbook.md"
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200  # OpenAPI UI
        # The same process, run again by itself with glibc's arenas capped (docs/reliability.md, memory).
        assert b"MALLOC_ARENA_MAX=2" in Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    env = offline_env(tmp_path)
    result = run_cli("serve", "--host", "0.0.0.0", env=env, timeout=120)
    assert result.returncode == 2 and "refusing to serve on 0.0.0.0 without API keys" in result.stderr


def test_upload_ask_list_delete_round_trip_with_a_real_pdf(
    offline_api: str,
    corpus: Path,
    index: Path,
) -> None:
    api = offline_api
    writer = {"Authorization": "Bearer writer-uploads"}
    pdf = (corpus / "en" / "SP800-40r3.pdf").read_bytes()
    files = [
        ("files", ("SP800-40r3.pdf", pdf, "application/pdf")),
        ("files", ("not-a-pdf.pdf", (corpus / "nasty" / "not-a-pdf.pdf").read_bytes(), "application/pdf")),
        ("files", ("../../evil.txt", b"Harmless text that tried to escape the upload folder.", "text/plain")),
        ("files", ("junk.md", bytes(range(256)) * 4, "text/markdown")),
        ("files", ("evil.txt", b"A second file of the same name.", "text/plain")),
        ("files", ("tool.exe", b"MZ", "application/octet-stream")),
    ]
    refused = httpx.post(f"{api}/v1/collections/uploads-kb/documents", files=files[:1], headers=READER)
    assert refused.status_code == 403
    response = httpx.post(f"{api}/v1/collections/uploads-kb/documents", files=files, headers=writer, timeout=300)
    assert response.status_code == 200, response.text
    outcomes = {o["file"]: o for o in response.json()["files"]}
    assert outcomes["SP800-40r3.pdf"]["status"] == "added" and outcomes["SP800-40r3.pdf"]["pages"] > 20
    assert outcomes["not-a-pdf.pdf"] == {
        "file": "not-a-pdf.pdf",
        "status": "failed",
        "reason": "named .pdf but is not a PDF",
    }
    assert outcomes["evil.txt"]["status"] == "added"  # its name lost the path, the file stayed inside
    assert outcomes["junk.md"]["reason"] == "named .md but holds binary data"
    assert "not accepted" in outcomes["tool.exe"]["reason"] and response.json()["failed"] == 4
    assert next(o["reason"] for o in response.json()["files"] if o["file"] == "evil.txt") == (
        "the same name twice in one upload"
    )

    question = "Among the SCAP components, what is CCSS used for, as opposed to CVSS?"
    answer = httpx.post(
        f"{api}/v1/ask", json={"question": question, "collection": "uploads-kb"}, headers=writer, timeout=120
    ).json()
    assert answer["found"] and ("SP800-40r3.pdf", 23) in {(c["file"], c["page"]) for c in answer["citations"]}

    listed = httpx.get(f"{api}/v1/collections/uploads-kb/documents", headers=writer).json()["documents"]
    assert sorted(d["file"] for d in listed) == ["SP800-40r3.pdf", "evil.txt"]
    collections = httpx.get(f"{api}/v1/collections", headers=writer).json()["collections"]
    assert [c["name"] for c in collections] == ["uploads-kb"]  # only what this key may read
    pdf_id = next(d["doc_id"] for d in listed if d["file"] == "SP800-40r3.pdf")
    assert httpx.delete(f"{api}/v1/collections/uploads-kb/documents/{pdf_id}", headers=READER).status_code == 403
    deleted = httpx.delete(f"{api}/v1/collections/uploads-kb/documents/{pdf_id}", headers=writer)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": pdf_id}
    listed = httpx.get(f"{api}/v1/collections/uploads-kb/documents", headers=writer).json()["documents"]
    assert [d["file"] for d in listed] == ["evil.txt"]
    again = httpx.delete(f"{api}/v1/collections/uploads-kb/documents/{pdf_id}", headers=writer)
    assert again.status_code == 404 and again.json()["error"]["code"] == "document_not_found"
    # Kept uploads: exactly the documents the index holds; nothing staged or half-written is left.
    assert sorted(p.name for p in (index / "uploads" / "uploads-kb").iterdir()) == ["evil.txt"]


def test_create_collection_needs_admin(api: str) -> None:
    body = {"name": "sales-kb", "instruction": "Given a sales question, find the price or policy that answers it"}
    assert httpx.post(f"{api}/v1/collections", json=body, headers=READER).status_code == 403
    created = httpx.post(f"{api}/v1/collections", json=body, headers={"X-API-Key": "admin-key"})
    assert created.status_code == 201, created.text
    listed = httpx.get(f"{api}/v1/collections", headers={"X-API-Key": "admin-key"}).json()["collections"]
    assert {"name": "sales-kb", "documents": 0, "chunks": 0}.items() <= next(
        c for c in listed if c["name"] == "sales-kb"
    ).items()
    bad = httpx.post(f"{api}/v1/collections", json={"name": "../etc"}, headers={"X-API-Key": "admin-key"})
    assert bad.status_code == 400 and "invalid collection name" in bad.json()["error"]["message"]


def test_the_openai_sdk_asks_a_collection(offline_api: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{offline_api}/v1", api_key="reader-default", max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == ["default"]
    messages = [
        {"role": "system", "content": "You are the helpdesk."},
        {"role": "user", "content": "What does error 809 mean?"},
    ]
    completion = client.chat.completions.create(model="default", messages=messages)  # type: ignore[arg-type]
    text = completion.choices[0].message.content or ""
    assert text.startswith("Error 809 means the firewall blocks L2TP.") and "[1]" in text
    citations = completion.model_dump()["citations"]
    assert citations[0]["file"] == "runbook.md" and citations[0]["cited"]
    stream = client.chat.completions.create(model="default", messages=messages, stream=True)  # type: ignore[arg-type]
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip() == text
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_dump()["citations"] == citations
    from openai import NotFoundError, PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        OpenAI(base_url=f"{offline_api}/v1", api_key="reader-other", max_retries=0).chat.completions.create(
            model="default",
            messages=messages,  # type: ignore[arg-type]
        )
    with pytest.raises(NotFoundError):
        OpenAI(base_url=f"{offline_api}/v1", api_key="admin-key", max_retries=0).chat.completions.create(
            model="no-such-kb",
            messages=messages,  # type: ignore[arg-type]
        )


def test_readiness_names_each_backend_and_metrics_count_requests(api: str, offline_api: str) -> None:
    admin = {"X-API-Key": "admin-key"}
    assert httpx.get(f"{api}/readyz").status_code == 401 and httpx.get(f"{api}/metrics").status_code == 401
    ready = httpx.get(f"{offline_api}/readyz", headers=admin)
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"chroma", "embedder", "reranker", "generator"} and ready.json()["ready"]
    httpx.post(f"{offline_api}/v1/search", json={"query": "error 809"}, headers=admin)
    text = httpx.get(f"{offline_api}/metrics", headers=admin).text
    assert 'rag_requests_total{method="POST",route="/v1/search",status="200"}' in text
    assert 'rag_stage_seconds_count{stage="recall"}' in text and "rag_request_seconds_bucket" in text
    httpx.post(f"{api}/v1/search", json={"query": "error 809"}, headers=admin)  # reranked by the tiny Qwen3
    reranks = re.search(
        r"^rag_rerank_candidates_count (\d+)\.0$", httpx.get(f"{api}/metrics", headers=admin).text, re.M
    )
    assert reranks is not None and int(reranks.group(1)) >= 1


def test_readiness_fails_and_names_a_generator_that_is_down(index: Path, minilm) -> None:
    settings = offline_settings(
        index, RAG_GENERATE__BACKEND="openai", RAG_GENERATE__OPENAI__URL=f"http://127.0.0.1:{free_port()}/v1"
    )
    with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
        ready = httpx.get(f"{url}/readyz")
        answer = httpx.post(f"{url}/v1/ask", json={"question": "What does error 809 mean?"}, timeout=60).json()
    assert ready.status_code == 503 and not ready.json()["checks"]["generator"]["ok"]
    assert "unreachable" in ready.json()["checks"]["generator"]["detail"] and ready.json()["checks"]["chroma"]["ok"]
    assert answer["degraded"] == ["generate"] and answer["answer"].startswith("Error 809 means")


# Every route but /healthz: (method, path, role it needs, whether it names the collection).
CHAT = {"model": "default", "messages": [{"role": "user", "content": "q"}]}
UPLOAD = [("files", ("a.exe", b"MZ", "application/octet-stream"))]  # refused alone: the index stays as it is
ROUTES = [
    ("POST", "/v1/search", {"json": {"query": "q"}}, "read", True),
    ("POST", "/v1/ask", {"json": {"question": "q"}}, "read", True),
    ("POST", "/v1/rerank", {"json": {"query": "q", "documents": ["a"]}}, "read", False),
    (
        "POST",
        "/v1/chat/completions",
        {"json": {"model": "default", "messages": [{"role": "user", "content": "q"}]}},
        "read",
        True,
    ),
    ("GET", "/v1/models", {}, "read", False),
    ("GET", "/v1/collections", {}, "read", False),
    ("POST", "/v1/collections", {"json": {"name": "default"}}, "admin", True),
    ("GET", "/v1/collections/default/documents", {}, "read", True),
    (
        "POST",
        "/v1/collections/default/documents",
        {"files": [("files", ("a.txt", b"text", "text/plain"))]},
        "write",
        True,
    ),
    ("DELETE", "/v1/collections/default/documents/0000", {}, "write", True),
    ("GET", "/readyz", {}, "read", False),
    ("GET", "/metrics", {}, "read", False),
    ("GET", "/v1/collections/default/documents/0000/file", {}, "read", True),
    ("GET", "/v1/collections/default/documents/0000/pages/1", {}, "read", True),
    ("GET", "/v1/collections/default/documents/0000/pages/1/highlights?chunk_id=x", {}, "read", True),
    ("GET", "/v1/collections/default/documents/0000/section?chunk_id=x", {}, "read", True),
    ("GET", "/v1/stats", {}, "admin", False),
    # An answer of another collection is refused (403) after the key is checked: test_questionlog.
    ("POST", "/v1/feedback", {"json": {"answer_id": "0" * 32, "rating": "up"}}, "read", False),
]


@pytest.mark.parametrize(("method", "path", "body", "role", "scoped"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_every_route_checks_the_key(api: str, method: str, path: str, body: dict, role: str, scoped: bool) -> None:
    def call(headers: dict[str, str]) -> httpx.Response:
        return httpx.request(method, f"{api}{path}", headers=headers, timeout=120, **body)

    assert call({}).status_code == 401
    assert call({"Authorization": "Bearer wrong"}).status_code == 401
    other = call({"Authorization": "Bearer reader-other"})  # a read key for another collection
    allowed = 404 if path == "/v1/feedback" else 200  # no answer has that id: the key itself passed
    assert other.status_code == (403 if scoped or role != "read" else allowed), other.text
    reader = call(READER)  # a read key for this collection
    assert (reader.status_code == 403) == (role != "read"), reader.text
    assert call({"X-API-Key": "admin-key"}).status_code not in (401, 403)


def test_upload_limits(api: str) -> None:
    admin = {"X-API-Key": "admin-key"}
    many = [("files", (f"f{i}.txt", b"text", "text/plain")) for i in range(4)]
    too_many = httpx.post(f"{api}/v1/collections/default/documents", files=many, headers=admin)
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_files"
    big = [("files", ("big.txt", b"x" * (1024 * 1024 + 1), "text/plain"))]
    too_big = httpx.post(f"{api}/v1/collections/default/documents", files=big, headers=admin)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "file_too_large"
    refused = httpx.post(
        f"{api}/v1/collections/never-made/documents", files=[("files", ("a.exe", b"MZ"))], headers=admin
    )
    assert refused.status_code == 200 and refused.json()["failed"] == 1
    names = [c["name"] for c in httpx.get(f"{api}/v1/collections", headers=admin).json()["collections"]]
    assert "never-made" not in names  # nothing was ingested, so nothing was created


def test_a_slow_answer_does_not_block_other_requests(index: Path, minilm, tiny_generator) -> None:
    import threading
    import time

    slow = FakeOpenAI.around(tiny_generator)
    slow.fault, slow.delay_s = "slow", 3.0
    with serve(slow) as llm:
        settings = offline_settings(index, RAG_GENERATE__BACKEND="openai", RAG_GENERATE__OPENAI__URL=f"{llm}/v1")
        with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
            asking = threading.Thread(
                target=httpx.post, args=(f"{url}/v1/ask",), kwargs={"json": {"question": "error 809"}, "timeout": 60}
            )
            asking.start()
            time.sleep(0.5)
            started = time.monotonic()
            assert httpx.get(f"{url}/healthz").status_code == 200
            assert httpx.post(f"{url}/v1/search", json={"query": "error 809"}).status_code == 200
            assert time.monotonic() - started < 2.0 and asking.is_alive()
            asking.join(timeout=30)


def test_the_whole_qwen3_path_with_tiny_stand_ins(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """Qwen3-Embedding, Qwen3-Reranker and a Qwen3 generator in-process (random weights: paths, not quality)."""
    settings = load_settings(
        environ={
            "RAG_DATA_DIR": str(tmp_path),
            "RAG_EMBEDDING__MODEL": str(tiny_models["embedding"]),
            "RAG_EMBEDDING__DEVICE": "cpu",
            **local_reranker_env(tiny_models["reranker"]),
            "RAG_GENERATE__BACKEND": "local",
            "RAG_GENERATE__MODEL": str(tiny_models["generator"]),
            "RAG_GENERATE__DEVICE": "cpu",
            "RAG_GENERATE__MAX_TOKENS": "8",
            "RAG_GENERATE__MIN_RERANK_SCORE": "0",
        }
    )
    with serve_asgi(create_app(settings)) as url:  # the lifespan loads all three models once
        text = "# VPN\n\nError 809 means the firewall blocks L2TP.\n\n# Prices\n\nA seat costs 30 EUR.\n"
        uploaded = httpx.post(
            f"{url}/v1/collections/tiny/documents", files=[("files", ("kb.md", text.encode(), "text/markdown"))]
        )
        assert uploaded.json()["files"][0]["status"] == "added", uploaded.text
        with httpx.stream(
            "POST", f"{url}/v1/ask", json={"question": "error 809?", "collection": "tiny", "stream": True}, timeout=120
        ) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        answer = json.loads(lines[-1][6:])
        chunks = uploaded.json()["files"][0]["chunks"]
        assert answer["generator"] == "local" and answer["reranked"] == chunks >= 1 and answer["degraded"] == []
        assert {"embed", "recall", "rerank", "generate"} <= set(answer["timings"])
        assert all(0 <= c["rerank_score"] <= 1 for c in answer["citations"])


def test_uploads_accept_every_text_format_the_cli_ingests(offline_api: str) -> None:
    """One table of formats: `.text` and `.htm` upload as they ingest from the CLI."""
    admin = {"X-API-Key": "admin-key"}
    files = [
        ("files", ("notes.text", b"The backup window is 02:00 to 04:00 every night.", "text/plain")),
        ("files", ("page.htm", b"<h1>Printers</h1><p>Printer jams are cleared from tray 2.</p>", "text/html")),
        ("files", ("guide.markdown", b"# Guide\n\nThe guest Wi-Fi password changes every Monday.", "text/markdown")),
    ]
    response = httpx.post(f"{offline_api}/v1/collections/formats-kb/documents", files=files, headers=admin, timeout=120)
    assert response.status_code == 200, response.text
    assert {o["file"]: o["status"] for o in response.json()["files"]} == {
        "notes.text": "added",
        "page.htm": "added",
        "guide.markdown": "added",
    }


def test_readiness_carries_the_self_checks_and_metrics_one_per_check(api: str) -> None:
    admin = {"X-API-Key": "admin-key"}
    deadline = time.monotonic() + 60
    while (ready := httpx.get(f"{api}/readyz", headers=admin).json())["selfcheck"] is None:
        assert time.monotonic() < deadline, "the self-checks started with the app never finished"
        time.sleep(0.2)
    checks = {check["name"]: check for check in ready["selfcheck"]}
    assert set(checks) == {
        "reranker.template",
        "reranker.canary.en",
        "reranker.canary.zh",
        "embedder.query_prompt",
        "embedder.dimension",
    }
    assert checks["reranker.template"]["message"].startswith("template applied once") and ready["ready"]
    assert checks["embedder.dimension"]["details"] == {"embedder": 384, "collection": 384, "name": "default"}
    metrics = httpx.get(f"{api}/metrics", headers=admin).text
    assert all(f'rag_selfcheck_ok{{check="{name}"}} 1.0' in metrics for name in checks)
