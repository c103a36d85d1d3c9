"""Requests meant to break the API, against a real server on 127.0.0.1: schemathesis over the
served OpenAPI schema (every operation, inputs valid and invalid by the schema), then a matrix of
hand-made hostile bodies (oversized, deeply nested, undecodable, huge numbers, thousands of rerank
documents, blank and 100k-character questions, lone surrogates, mixed scripts and emoji).
No response may be a 5xx; every refusal is a 4xx in our error shape that says what was wrong and
never names the server's files."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from rag.api import create_app  # noqa: E402
from rag.pipeline import RagPipeline  # noqa: E402

from .support.loopback import serve_asgi  # noqa: E402
from .support.profiles import local_reranker_env, offline_settings  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.server]

ADMIN = {"Authorization": "Bearer fuzz-admin"}


@pytest.fixture(scope="module")
def served(index: Path, minilm, tiny_models: dict[str, Path]) -> Iterator[str]:
    """The whole path in one process: MiniLM recall, the tiny Qwen3 reranker, extractive answers."""
    settings = offline_settings(
        index,
        RAG_API__KEYS=json.dumps([{"key": "fuzz-admin", "role": "admin", "name": "fuzzer"}]),
        **local_reranker_env(tiny_models["reranker"]),
    )
    pipeline = RagPipeline(settings, embedder=minilm)
    pipeline.warm_up()
    with serve_asgi(create_app(settings, pipeline=pipeline)) as url:
        yield url


# The schema the server publishes, read from the app itself: it depends on no data or model, and an
# eager schema gives one test per operation (schemathesis' fixture-based loader breaks on pytest 9).
schema = schemathesis.openapi.from_dict(create_app(offline_settings(Path("unused"))).openapi())


def explains_itself(ctx, response, case) -> None:
    """A 4xx carries {"error": {"code", "message"}} with a message a person can act on."""
    if 400 <= response.status_code < 500:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        assert isinstance(error, dict), f"{response.status_code} without an error object: {response.text[:200]}"
        assert error.get("code") and len(error.get("message", "")) >= 10, f"unclear error: {error}"


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_server_fail(case, served: str) -> None:
    case.call_and_validate(base_url=served, headers=ADMIN, checks=[not_a_server_error, explains_itself], timeout=60)


def _post(url: str, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(url, content=body, headers={**ADMIN, "content-type": content_type}, timeout=120)


def _refused(response: httpx.Response, status: int, code: str, phrase: str, data_dir: Path) -> None:
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == code and phrase in error["message"], error
    assert str(data_dir) not in error["message"]


DEEP = b"[" * 100_000 + b"]" * 100_000
HOSTILE_BODIES = [
    # (case, route, body, content type, status, code, phrase in the message)
    (
        "100k-character question",
        "/v1/ask",
        json.dumps({"question": "password " * 11_112}).encode(),
        "application/json",
        413,
        "too_long",
        "at most 4000 characters (100008 given)",
    ),
    (
        "100k-character query",
        "/v1/search",
        json.dumps({"query": "重置密码" * 25_000}, ensure_ascii=False).encode(),
        "application/json",
        413,
        "too_long",
        "at most 4000 characters",
    ),
    ("empty question", "/v1/ask", b'{"question": ""}', "application/json", 422, "invalid_request", "question:"),
    (
        "blank question",
        "/v1/ask",
        b'{"question": " \\n\\t "}',
        "application/json",
        422,
        "invalid_request",
        "only white space",
    ),
    (
        "blank rerank query",
        "/v1/rerank",
        b'{"query": " ", "documents": ["a"]}',
        "application/json",
        422,
        "invalid_request",
        "only white space",
    ),
    (
        "top_k of a billion",
        "/v1/search",
        b'{"query": "q", "top_k": 1000000000}',
        "application/json",
        422,
        "invalid_request",
        "top_k: at most 1000",
    ),
    (
        "top_k of 5,000 digits",
        "/v1/search",
        b'{"query": "q", "top_k": 1' + b"0" * 5000 + b"}",
        "application/json",
        400,
        "invalid_request",
        "4300 digits",
    ),
    (
        "negative top_n",
        "/v1/ask",
        b'{"question": "q", "top_n": -5}',
        "application/json",
        422,
        "invalid_request",
        "top_n:",
    ),
    (
        "5,000 rerank documents",
        "/v1/rerank",
        json.dumps({"query": "q", "documents": ["doc"] * 5000}).encode(),
        "application/json",
        413,
        "too_many_documents",
        "at most 1000 documents",
    ),
    (
        "JSON nested 100,000 deep",
        "/v1/ask",
        b'{"question": ' + DEEP + b"}",
        "application/json",
        400,
        "invalid_request",
        "nests too deeply",
    ),
    (
        "filters nested 200 deep",
        "/v1/search",
        b'{"query": "q", "filters": {"file": ' + b"[" * 200 + b"]" * 200 + b"}}",
        "application/json",
        422,
        "invalid_request",
        "filters.file",
    ),
    (
        "lone surrogate",
        "/v1/ask",
        b'{"question": "reset \\ud800 password"}',
        "application/json",
        422,
        "invalid_request",
        "question: holds a lone UTF-16 surrogate",
    ),
    (
        "lone surrogate in a rerank document",
        "/v1/rerank",
        b'{"query": "q", "documents": ["a\\udfff"]}',
        "application/json",
        422,
        "invalid_request",
        "documents.0",
    ),
    (
        "lone surrogate 800 lists deep",
        "/v1/rerank",
        b'{"query": "q", "documents": ' + b"[" * 800 + b'"\\ud800"' + b"]" * 800 + b"}",
        "application/json",
        422,
        "invalid_request",
        "holds a lone UTF-16 surrogate",
    ),
    (
        "invalid UTF-8",
        "/v1/search",
        b'{"query": "\xff\xfe reset"}',
        "application/json",
        400,
        "invalid_request",
        "not UTF-8",
    ),
    ("not JSON", "/v1/ask", b"reset my password", "application/json", 422, "invalid_request", "not valid JSON"),
    (
        "a JSON array",
        "/v1/ask",
        b'["reset my password"]',
        "application/json",
        422,
        "invalid_request",
        "must be a JSON object",
    ),
    (
        "JSON sent as text/plain",
        "/v1/ask",
        b'{"question": "reset"}',
        "text/plain",
        422,
        "invalid_request",
        "Content-Type: application/json",
    ),
    (
        "unknown field",
        "/v1/ask",
        b'{"question": "q", "temperature": 2}',
        "application/json",
        422,
        "invalid_request",
        "temperature",
    ),
    (
        "unknown collection",
        "/v1/ask",
        b'{"question": "q", "collection": "no-such-kb"}',
        "application/json",
        404,
        "collection_not_found",
        "no knowledge base named 'no-such-kb'",
    ),
    (
        "collection name with a path",
        "/v1/search",
        b'{"query": "q", "collection": "../../etc"}',
        "application/json",
        400,
        "bad_request",
        "invalid collection name",
    ),
]


@pytest.mark.parametrize(
    ("route", "body", "content_type", "status", "code", "phrase"),
    [case[1:] for case in HOSTILE_BODIES],
    ids=[case[0] for case in HOSTILE_BODIES],
)
def test_hostile_bodies_are_refused_with_a_reason(
    served: str,
    index: Path,
    route: str,
    body: bytes,
    content_type: str,
    status: int,
    code: str,
    phrase: str,
) -> None:
    _refused(_post(served + route, body, content_type), status, code, phrase, index)


@pytest.mark.parametrize(
    "question",
    [
        "How do I 重置 my пароль? 🔑🙂",
        "👩‍💻🔐❓",
        "パスワードを再設定するには？ how do I reset it",
        "reset\u0000 password",
    ],
)
def test_mixed_scripts_and_emoji_are_questions_like_any_other(served: str, question: str) -> None:
    for route, field in (("/v1/ask", "question"), ("/v1/search", "query")):
        response = _post(served + route, json.dumps({field: question}, ensure_ascii=False).encode())
        assert response.status_code == 200, response.text[:300]
        assert response.json()[field] == question  # round-trips intact, ZWJ sequences included


def _raw_exchange(url: str, head: bytes, chunks: Iterator[bytes]) -> tuple[int, dict, int]:
    """Send a request head, then body chunks until the server answers; (status, error, bytes sent)."""
    port = int(url.rsplit(":", 1)[1])
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer came before the body was all sent
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    head_part, _, body_part = reply.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return status, json.loads(body_part)["error"], sent


def _head(path: str, content_type: str, length_header: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {ADMIN['Authorization']}\r\n"
        f"Content-Type: {content_type}\r\n{length_header}\r\n\r\n"
    ).encode()


def test_a_declared_oversized_body_is_refused_before_it_is_sent(served: str) -> None:
    for path, content_type, declared, cap in (
        ("/v1/search", "application/json", 1 << 30, "8 MB"),
        ("/v1/collections/default/documents", "multipart/form-data; boundary=x", 5 << 30, "2001 MB"),
    ):
        # No body byte is sent: a server that waited for the body would time the socket out (60 s).
        status, error, _ = _raw_exchange(served, _head(path, content_type, f"Content-Length: {declared}"), iter(()))
        assert (status, error["code"]) == (413, "body_too_large") and cap in error["message"], error


def test_a_streamed_body_is_cut_off_once_it_passes_the_cap(served: str) -> None:
    """No Content-Length (chunked): the server counts what arrives and answers 413 past 8 MB."""
    chunk = b"x" * 65536
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    thirty_two_mb = (framed for _ in range(512))
    status, error, sent = _raw_exchange(
        served, _head("/v1/ask", "application/json", "Transfer-Encoding: chunked"), thirty_two_mb
    )
    assert (status, error["code"]) == (413, "body_too_large") and "over 8 MB" in error["message"], error
    assert sent < 16 << 20  # refused near the cap, not after the whole body
