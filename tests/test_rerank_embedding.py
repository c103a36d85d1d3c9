"""The `embedding` reranker (a second embedder's cosine: the real all-MiniLM-L6-v2) and the rerank
stage's options the offline profile runs it with: fusion with recall order, a cap on candidates, the
languages it reads; and the self-checks that fit such a reranker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.pipeline import RagPipeline, RerankResult, SearchOptions
from rag.recall import rrf
from rag.rerank.embedding import EmbeddingReranker
from rag.selfcheck import run_checks
from rag.types import Passage

from .support.profiles import offline_settings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
QUESTION = "How do I reset my VPN token?"
# In recall order: the passage that answers best comes last, the one that answers second best first.
TEXTS = [
    "VPN tokens are valid for 90 days and are reset by the service desk.",
    "Our standard plan costs 30 EUR per seat per month.",
    "The canteen opens at noon on weekdays.",
    "Laptops are collected from the IT desk on the first day.",
    "Business class flights need the CFO's approval.",
    "Passwords have at least twelve characters.",
    "Expense reports are due by the fifth of each month.",
    "To reset your VPN token, open the self-service portal, choose Tokens, then Reset.",
]


def recalled(texts: list[str]) -> list[Passage]:
    return [
        Passage(f"c{i}", text, recall_rank=i, recall_score=1.0 / i, metadata={"file_name": "a.pdf", "page": i})
        for i, text in enumerate(texts, start=1)
    ]


@pytest.fixture(scope="module")
def reranker() -> EmbeddingReranker:
    """The embedding reranker on MiniLM, loaded once for the module's pipelines."""
    reranker = EmbeddingReranker(offline_settings(Path("unused"), RAG_RERANK__MODEL=MINILM).rerank)
    reranker.warm_up()
    return reranker


def embedding_pipeline(index: Path, minilm, reranker: EmbeddingReranker, **environ: str) -> RagPipeline:
    settings = offline_settings(index, RAG_RERANK__BACKEND="embedding", RAG_RERANK__MODEL=MINILM, **environ)
    return RagPipeline(settings, embedder=minilm, reranker=reranker)


def ranked(pipeline: RagPipeline, question: str, texts: list[str]) -> RerankResult:
    return pipeline.rerank(question, recalled(texts), SearchOptions(), {})


@pytest.fixture(scope="module")
def cosines(minilm) -> dict[str, float]:
    vectors = np.asarray(minilm.embed_documents(TEXTS), dtype=np.float32)
    scores = vectors @ np.asarray(minilm.embed_query(QUESTION), dtype=np.float32)
    return dict(zip(TEXTS, scores.tolist(), strict=True))


def test_scores_are_the_second_embedders_cosines(
    minilm, reranker: EmbeddingReranker, cosines: dict[str, float]
) -> None:
    assert reranker.embedder.model_name == minilm.model_name and not reranker.reads_template
    assert reranker.score(QUESTION, TEXTS) == pytest.approx([cosines[t] for t in TEXTS], abs=1e-5)
    assert max(cosines, key=cosines.__getitem__) == TEXTS[-1]


def test_fusion_with_recall_order(index: Path, minilm, reranker: EmbeddingReranker, cosines: dict[str, float]) -> None:
    by_cosine = sorted(TEXTS, key=lambda t: -cosines[t])
    alone = ranked(embedding_pipeline(index, minilm, reranker), QUESTION, TEXTS)
    assert [p.text for p in alone.passages] == by_cosine[:5] and alone.reranked == len(TEXTS)
    fused = ranked(embedding_pipeline(index, minilm, reranker, RAG_RERANK__FUSE_RECALL_RRF_K="60"), QUESTION, TEXTS)
    expected = rrf([TEXTS, by_cosine], 60)
    assert [p.text for p in fused.passages] == sorted(TEXTS, key=lambda t: -expected[t])[:5]
    # First in recall and second by cosine beats last in recall and first by cosine.
    assert fused.passages[0].text == TEXTS[0] != by_cosine[0]
    scores = [p.rerank_score for p in fused.passages]
    assert scores == pytest.approx([cosines[p.text] for p in fused.passages], abs=1e-5)


def test_only_the_first_candidates_are_rescored_the_rest_follow_in_recall_order(
    index: Path, minilm, reranker: EmbeddingReranker
) -> None:
    result = ranked(embedding_pipeline(index, minilm, reranker, RAG_RERANK__MAX_CANDIDATES="3"), QUESTION, TEXTS)
    assert result.reranked == 3
    assert {p.text for p in result.passages[:3]} == set(TEXTS[:3])
    assert [p.text for p in result.passages[3:]] == TEXTS[3:5]
    assert [p.rerank_score is None for p in result.passages] == [False] * 3 + [True] * 2


def test_a_question_in_a_language_the_model_does_not_read_keeps_recall_order(
    index: Path, minilm, reranker: EmbeddingReranker
) -> None:
    pipeline = embedding_pipeline(index, minilm, reranker, RAG_RERANK__LANGUAGES='["en"]')
    chinese = ranked(pipeline, "如何重置VPN令牌？", TEXTS)
    assert [p.text for p in chinese.passages] == TEXTS[:5] and chinese.reranked == 0
    assert any("rerank.languages" in note and MINILM in note for note in chinese.notes), chinese.notes
    assert ranked(pipeline, QUESTION, TEXTS).reranked == len(TEXTS)


def test_self_checks_for_a_bi_encoder_skip_the_template_and_other_languages(
    index: Path, minilm, reranker: EmbeddingReranker
) -> None:
    pipeline = embedding_pipeline(index, minilm, reranker, RAG_RERANK__LANGUAGES='["en"]')
    pipeline.warm_up(generator=False)
    checks = {check.name: check for check in run_checks(pipeline)}
    assert "reranker.template" not in checks and "reranker.canary.zh" not in checks
    assert checks["reranker.canary.en"].status == "ok", checks["reranker.canary.en"]


def test_a_second_opinion_needs_the_embedding_reranker(index: Path, minilm, reranker: EmbeddingReranker) -> None:
    with pytest.raises(ConfigError, match=r"rerank\.backend: embedding"):
        RagPipeline(offline_settings(index, RAG_GENERATE__SECOND_OPINION_MIN_SIMILARITY="0.4"), embedder=minilm)
    pipeline = embedding_pipeline(index, minilm, reranker, RAG_GENERATE__SECOND_OPINION_MIN_SIMILARITY="0.4")
    assert pipeline.extractive.second_opinion is not None
    assert pipeline.extractive.second_opinion.reranker is pipeline.reranker
