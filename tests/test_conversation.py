"""Conversations: a follow-up searched made standalone, through the library, the HTTP API (our
/v1/ask and OpenAI's chat completions, with the OpenAI SDK), the CLI (`rag chat`, `rag ask
--history`) and `rag eval --dialogues`, over the project's own data/ folder ingested with MiniLM."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingest.pipeline import Ingestor
from rag.api import create_app
from rag.config import ConversationSettings
from rag.conversation import labelled, leans_on_history, parse_history, recent, rule_query
from rag.errors import InvalidHistory
from rag.evaluate.run import evaluate_conversations
from rag.pipeline import RagPipeline
from rag.types import Turn

from .support.browser import shoot
from .support.loopback import serve_asgi
from .support.processes import free_port, run_cli
from .support.profiles import PROJECT, offline_env, offline_settings

DATA = PROJECT / "data"
DIALOGUES = PROJECT / "evalsets" / "dialogues.jsonl"
VPN = [Turn("user", "How do I fix VPN error 809?"), Turn("assistant", "Ask the user to try another network.")]
FOLLOW_UP = "What if it fails on every network?"


@pytest.fixture(scope="module")
def data_index(tmp_path_factory: pytest.TempPathFactory, minilm) -> Path:
    """The demo's documents (data/: English and Chinese, six formats), ingested with MiniLM."""
    data_dir = tmp_path_factory.mktemp("conversation-index")
    Ingestor(offline_settings(data_dir), embedder=minilm).run([DATA])
    return data_dir


@pytest.fixture(scope="module")
def pipeline(data_index: Path, minilm) -> RagPipeline:
    return RagPipeline(offline_settings(data_index, RAG_RECALL__MODE="hybrid"), embedder=minilm)


class TestHistory:
    settings = ConversationSettings(max_turns=4, max_tokens=40, max_messages=6, max_message_chars=100)

    def test_malformed_history_names_the_field(self) -> None:
        cases = [
            ([{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}], "history.1.role", 422),
            ([{"role": "user", "content": "  "}], "history.0.content", 422),
            ([{"role": "user", "content": ["a list"]}], "history.0.content", 422),
            (["just text"], "history.0", 422),
            ([{"role": "user", "content": "x" * 101}], "history.0.content", 413),
            ([{"role": "user", "content": "hi"}] * 7, "history", 413),
        ]
        for items, field, status in cases:
            with pytest.raises(InvalidHistory) as caught:
                parse_history(labelled(items), self.settings)
            assert (caught.value.field, caught.value.status) == (field, status), items
        ok = parse_history(
            labelled([{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}]), self.settings
        )
        assert ok == [Turn("user", "hi"), Turn("assistant", "yo")]

    def test_the_oldest_turns_go_first(self, minilm) -> None:
        turns = [Turn("user" if i % 2 == 0 else "assistant", f"turn {i} " + "word " * 5) for i in range(8)]
        size = minilm.count_tokens(turns[0].content)
        assert recent(turns, self.settings, minilm.count_tokens) == turns[-4:]  # max_turns
        by_tokens = ConversationSettings(max_turns=100, max_tokens=size * 3 - 1)
        assert recent(turns, by_tokens, minilm.count_tokens) == turns[-2:]
        assert recent(turns, ConversationSettings(max_turns=0), minilm.count_tokens) == []

    def test_what_leans_on_history(self) -> None:
        follow_ups = [
            "What if it fails on every network?",
            "And for Standard?",
            "For how many people?",
            "Can that be undone at once?",
            "Give me some examples of the first kind.",
            "那机密数据对外发送时有什么要求？",
            "处理它需要取得什么样的同意？",
            "情节严重的呢？",
        ]
        standalone = [
            "How do I fix VPN error 809?",
            "Where is customer data stored?",
            "What are the Clear, Purge and Destroy sanitization methods?",
            "How long should organizations keep evidence after an incident?",
            "什么是敏感个人信息？",
            "国家对数据实行什么样的保护制度？",
        ]
        assert [q for q in follow_ups if not leans_on_history(q)] == []
        assert [q for q in standalone if leans_on_history(q)] == []


class TestPipeline:
    def test_a_follow_up_is_searched_with_the_question_before_it(self, pipeline: RagPipeline) -> None:
        alone = pipeline.ask(FOLLOW_UP)
        followed = pipeline.ask(FOLLOW_UP, history=VPN)
        assert followed.query == rule_query(FOLLOW_UP, VPN) and followed.question == FOLLOW_UP
        assert "condense" in followed.timings
        assert followed.found and followed.citations[0].passage.file_name == "it-runbook-vpn.md"
        assert "[1]" in followed.text and followed.citations[0].cited
        # Its sentences are chosen by the follow-up too: the one about failing everywhere is there.
        assert "If it fails everywhere, escalate" in followed.text, followed.text
        assert alone.query == FOLLOW_UP and "condense" not in alone.timings

    def test_a_question_that_needs_no_history_gets_the_same_passages(self, pipeline: RagPipeline) -> None:
        question = "What does the Standard plan cost?"
        history = [*VPN, Turn("user", FOLLOW_UP), Turn("assistant", "Escalate to the network team.")]
        with_history, without = pipeline.ask(question, history=history), pipeline.ask(question)
        assert with_history.query == question
        assert [c.passage.chunk_id for c in with_history.citations] == [c.passage.chunk_id for c in without.citations]
        assert with_history.text == without.text

    def test_a_chinese_follow_up(self, pipeline: RagPipeline) -> None:
        history = [
            Turn("user", "发现钓鱼邮件要在多长时间内报告？"),
            Turn("assistant", "应当在一小时内向信息安全部报告。"),
        ]
        answer = pipeline.ask("通过什么方式报告呢？", history=history)
        assert answer.citations and answer.citations[0].passage.file_name == "信息安全管理制度.md"
        assert answer.found and answer.query.endswith("通过什么方式报告呢？") and answer.citations[0].cited
        assert "8000" in answer.text  # the sentence that answers the follow-up, not only the first question's

    def test_an_unreachable_llm_falls_back_to_the_rule_visibly(self, data_index: Path, minilm) -> None:
        url = f"http://127.0.0.1:{free_port()}/v1"
        settings = offline_settings(
            data_index, RAG_RECALL__MODE="hybrid", RAG_GENERATE__BACKEND="openai", RAG_GENERATE__OPENAI__URL=url
        )
        answer = RagPipeline(settings, embedder=minilm).ask(FOLLOW_UP, history=VPN)
        assert answer.query == rule_query(FOLLOW_UP, VPN) and answer.degraded == ("condense", "generate")
        assert any("condensing the follow-up failed" in note for note in answer.notes)
        assert answer.citations[0].passage.file_name == "it-runbook-vpn.md"

    def test_rewrite_off_searches_the_question_alone(self, data_index: Path, minilm) -> None:
        settings = offline_settings(data_index, RAG_RECALL__MODE="hybrid", RAG_CONVERSATION__REWRITE="off")
        answer = RagPipeline(settings, embedder=minilm).ask(FOLLOW_UP, history=VPN)
        assert answer.query == FOLLOW_UP


@pytest.fixture(scope="module")
def api(data_index: Path, minilm) -> Iterator[str]:
    settings = offline_settings(data_index, RAG_RECALL__MODE="hybrid", RAG_CONVERSATION__MAX_MESSAGE_CHARS="500")
    with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
        yield url


class TestApi:
    def test_ask_takes_history_and_returns_the_query_searched(self, api: str) -> None:
        history = [t.to_dict() for t in VPN]
        body = httpx.post(f"{api}/v1/ask", json={"question": FOLLOW_UP, "history": history}, timeout=60).json()
        assert body["query"] == rule_query(FOLLOW_UP, VPN) and body["question"] == FOLLOW_UP
        assert body["citations"][0]["file"] == "it-runbook-vpn.md"
        streamed = httpx.post(
            f"{api}/v1/ask", json={"question": FOLLOW_UP, "history": history, "stream": True}, timeout=60
        ).text
        final = json.loads(streamed.split("event: answer\ndata: ")[1].split("\n\n")[0])
        assert final["query"] == body["query"] and final["citations"][0]["file"] == "it-runbook-vpn.md"

    def test_bad_history_is_a_clear_4xx_and_never_logged(self, api: str, caplog: pytest.LogCaptureFixture) -> None:
        secret = "my-home-address-is-42-secret-lane"
        cases = [
            ([{"role": "user", "content": secret}, {"role": "narrator", "content": secret}], 422, "history.1.role"),
            ([{"role": "user", "content": ""}], 422, "history.0.content"),
            ([{"role": "user", "content": secret * 20}], 413, "history.0.content"),
            ([{"role": "user"}], 422, "history.0.content"),
        ]
        with caplog.at_level(logging.DEBUG):
            for history, status, field in cases:
                response = httpx.post(f"{api}/v1/ask", json={"question": "why?", "history": history}, timeout=30)
                assert response.status_code == status, response.text
                error = response.json()["error"]
                assert error["code"] in ("invalid_history", "invalid_request") and field in error["message"]
                assert secret not in response.text
            ok = httpx.post(
                f"{api}/v1/ask",
                json={"question": FOLLOW_UP, "history": [{"role": "user", "content": secret}]},
                timeout=60,
            )
            assert ok.status_code == 200
        assert caplog.text.count("POST /v1/ask") == len(cases) + 1  # the requests were logged, not their history
        assert secret not in caplog.text

    def test_the_openai_sdk_holds_a_conversation(self, api: str) -> None:
        from openai import OpenAI

        client = OpenAI(base_url=f"{api}/v1", api_key="none", max_retries=0, timeout=60)
        messages: list = [{"role": "system", "content": "You are the IT help desk."}]
        for question, expected in (
            ("What is the uptime commitment for the Enterprise plan?", "99.95"),
            ("And what does the customer get if you miss it?", "service credits"),
        ):
            messages.append({"role": "user", "content": question})
            completion = client.chat.completions.create(model="default", messages=messages)
            extra = completion.model_extra or {}
            assert extra["citations"][0]["file"] == "sales-faq.txt", extra["query"]
            reply = completion.choices[0].message.content or ""
            assert expected in reply
            messages.append({"role": "assistant", "content": reply})
        assert extra["query"].startswith("What is the uptime commitment")
        stream = client.chat.completions.create(model="default", messages=messages[:-1], stream=True)
        chunks = list(stream)
        last = chunks[-1].model_extra or {}
        assert last["query"] == extra["query"] and last["citations"][0]["file"] == "sales-faq.txt"
        with pytest.raises(Exception, match=r"messages\.1\.role"):
            client.chat.completions.create(
                model="default",
                messages=[
                    {"role": "user", "content": "hi"},
                    {"role": "wizard", "content": "x"},
                    {"role": "user", "content": "and?"},
                ],
            )


class TestCli:
    def test_rag_chat_holds_a_conversation(self, data_index: Path) -> None:
        session = "\n".join(["How do I fix VPN error 809?", FOLLOW_UP, "/new", FOLLOW_UP, "/exit", ""])
        done = run_cli("chat", "--mode", "hybrid", env=offline_env(data_index), input=session, timeout=240)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("you> ") == 5
        assert done.stderr.count("searched: How do I fix VPN error 809? What if it fails on every network?") == 1
        assert "(new conversation)" in done.stdout and "it-runbook-vpn.md" in done.stdout

    def test_rag_ask_reads_history_from_a_file(self, data_index: Path, tmp_path: Path) -> None:
        history = tmp_path / "history.json"
        history.write_text(json.dumps([t.to_dict() for t in VPN]))
        done = run_cli(
            "ask", FOLLOW_UP, "--history", str(history), "--mode", "hybrid", "--json", env=offline_env(data_index)
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["query"] == rule_query(FOLLOW_UP, VPN) and answer["citations"][0]["file"] == "it-runbook-vpn.md"
        history.write_text(json.dumps([{"role": "robot", "content": "x"}]))
        bad = run_cli("ask", FOLLOW_UP, "--history", str(history), env=offline_env(data_index))
        assert bad.returncode == 2 and "history.0.role" in bad.stderr


def test_eval_dialogues_reports_hits_with_and_without_history(data_index: Path, minilm, tmp_path: Path) -> None:
    """The project's dialogues over data/ (the ones whose gold is a data/ file), end to end."""
    rows = [json.loads(line) for line in DIALOGUES.read_text(encoding="utf-8").splitlines() if line.strip()]
    local = [r for r in rows if (DATA / r["doc"]).exists()]
    assert len(local) >= 10
    subset = tmp_path / "set.jsonl"
    subset.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in local), encoding="utf-8")
    settings = offline_settings(data_index)
    report = evaluate_conversations(
        settings, subset, ["hybrid"], out_dir=tmp_path, progress=False, pipeline=RagPipeline(settings, embedder=minilm)
    )
    figures = report["runs"][0]["groups"]["all"]
    assert figures["dialogues"] == len(local)
    for key in ("with_history", "alone"):
        low, high = figures[key]["ci95"]
        assert low <= figures[key]["hit"] <= high
    assert figures["with_history"]["hit"] > figures["alone"]["hit"]
    written = [json.loads(line) for line in (tmp_path / "dialogues.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {w["id"] for w in written} == {r["id"] for r in local}
    assert all(w["with_history"]["query"] == w["searched"] for w in written)


@pytest.mark.slow
def test_the_web_page_holds_a_three_turn_conversation(api: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data or "{}")) if r.url.endswith("/v1/ask") else None)
    page.goto(f"{api}/#ask")
    page.wait_for_selector("#ask-collection option[value='default']", state="attached")
    page.select_option("#ask-mode", "hybrid")
    page.fill("#ask-instruction", "Find the runbook step that fixes it")
    turns = ["How do I fix VPN error 809?", FOLLOW_UP, "And who should it be escalated to?"]
    for n, question in enumerate(turns, start=1):
        page.fill("#ask-question", question)
        page.click("#ask-submit")
        page.wait_for_selector(f"#conversation-state:has-text('{n} question(s) in this conversation')")
        page.wait_for_selector("#citations li")
    assert page.locator("#thread li.turn").count() == 2
    assert page.locator("#thread li.turn .question").all_text_contents() == turns[:2]
    assert "it-runbook-vpn.md" in page.locator("#thread li.turn .sources").first.text_content()
    assert page.locator("#current-question").text_content() == turns[2]
    assert page.locator("#ask-query").text_content() == "Searched: " + " ".join(turns)
    assert "it-runbook-vpn.md" in page.locator("#citations").text_content()
    # The conversation keeps its collection, recall mode and instruction; every turn sent them.
    assert page.is_disabled("#ask-collection") and page.is_disabled("#ask-instruction")
    assert [len(body["history"]) for body in sent] == [0, 2, 4]
    assert {(b["collection"], b["recall_mode"], b["instruction"]) for b in sent} == {
        ("default", "hybrid", "Find the runbook step that fixes it")
    }
    assert sent[2]["history"][0] == {"role": "user", "content": turns[0]}
    shoot(page, "conversation-desktop")
    page.reload()  # kept in the tab: every turn in the thread now
    page.wait_for_selector("#thread li.turn")
    assert page.locator("#thread li.turn .question").all_text_contents() == turns
    assert page.is_disabled("#ask-collection")
    page.click("#new-conversation")
    assert page.locator("#thread li.turn").count() == 0 and not page.is_disabled("#ask-collection")
    assert errors == []
    page.close()
