"""`rag eval`: trec_eval wiring on hand-made runs, a BEIR slice of SciFact end to end through the
real CLI (report, plot, encoding cache, collection reuse), the rerank stage with the tiny Qwen3,
and the QA set over the whole test corpus (acceptance: hybrid beats dense on the Chinese questions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag.evaluate.metrics import ir_metrics
from rag.evaluate.run import evaluate_beir, evaluate_qa
from rag.pipeline import RagPipeline

from .support.processes import run_cli
from .support.profiles import OFFLINE_PROFILE, PROJECT, local_reranker_env, offline_env, offline_settings

QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}}


class TestMetrics:
    def test_perfect_run(self) -> None:
        metrics = ir_metrics(QRELS, {"q1": ["d1", "x"], "q2": ["d2", "d3"]})
        assert metrics["ndcg@10"] == pytest.approx(1.0) and metrics["mrr@10"] == pytest.approx(1.0)
        assert metrics["recall@5"] == pytest.approx(1.0)

    def test_rank_two_and_a_hit_below_the_mrr_cut(self) -> None:
        run = {"q1": ["x", "d1"], "q2": [f"n{i}" for i in range(10)] + ["d2"]}
        metrics = ir_metrics(QRELS, run)
        assert metrics["mrr@10"] == pytest.approx((0.5 + 0.0) / 2)  # q2's hit is at rank 11
        assert metrics["recall@5"] == pytest.approx((1.0 + 0.0) / 2)
        assert metrics["recall@100"] == pytest.approx((1.0 + 0.5) / 2)
        assert metrics["ndcg@10"] == pytest.approx((1 / 1.5849625 + 0.0) / 2, rel=1e-4)  # 1/log2(3)


@pytest.fixture(scope="module")
def beir_slice(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SciFact cut down: 12 judged test queries, their relevant abstracts and 100 others."""
    source = shared / "eval" / "scifact"
    folder = tmp_path_factory.mktemp("scifact-slice")
    (folder / "qrels").mkdir()
    lines = (source / "qrels" / "test.tsv").read_text().splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:]]
    queries = list(dict.fromkeys(r[0] for r in rows))[:12]
    kept = [r for r in rows if r[0] in queries]
    (folder / "qrels" / "test.tsv").write_text("\n".join([header, *("\t".join(r) for r in kept)]) + "\n")
    relevant = {r[1] for r in kept}
    corpus = [json.loads(line) for line in (source / "corpus.jsonl").read_text().splitlines()]
    chosen = [d for d in corpus if d["_id"] in relevant] + [d for d in corpus if d["_id"] not in relevant][:100]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in chosen))
    all_queries = (source / "queries.jsonl").read_text().splitlines()
    (folder / "queries.jsonl").write_text("\n".join(q for q in all_queries if json.loads(q)["_id"] in queries) + "\n")
    return folder


class TestBeir:
    @pytest.mark.slow
    def test_cli_reports_every_mode_writes_a_report_and_reuses_its_work(
        self, beir_slice: Path, tmp_path: Path, minilm
    ) -> None:
        env = offline_env(tmp_path / "ix")
        args = ["eval", "--beir", str(beir_slice), "--mode", "dense", "--mode", "bm25", "--mode", "hybrid", "--json"]
        first = run_cli(*args, "--out", str(tmp_path / "report"), env=env)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert report["queries"] == 12 and report["corpus"] > 100 and not report["reused"]
        assert report["encoding"]["encoded"] == report["corpus"]
        runs = {run["mode"]: run for run in report["runs"]}
        assert sorted(runs) == ["bm25", "dense", "hybrid"]
        for mode, run in runs.items():
            recall = run["recall"]
            assert 0.3 < recall["ndcg@10"] <= 1.0, (mode, recall)
            assert recall["recall@5"] <= recall["recall@100"]
            assert run["reranked"] is None  # the offline profile has no reranker, and says so
            assert set(run["latency_ms"]["recall"]) == {"p50", "p95"}
        assert "embed" not in runs["bm25"]["latency_ms"]
        markdown = (tmp_path / "report" / "report.md").read_text()
        assert "![recall curve](recall-curve.png)" in markdown and "| hybrid | recall |" in markdown
        assert (tmp_path / "report" / "recall-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # A second run (in-process: the same code as the command) reuses the collection as it is...
        settings = offline_settings(tmp_path / "ix")
        modes: list[Any] = ["dense", "bm25", "hybrid"]
        pipeline = RagPipeline(settings, embedder=minilm)
        again = evaluate_beir(settings, beir_slice, modes, progress=False, pipeline=pipeline)
        assert again["reused"] and again["encoding"]["encoded"] == 0
        for first_run, second_run in zip(report["runs"], again["runs"], strict=True):
            assert second_run["recall"] == pytest.approx(first_run["recall"])
        # ...and another collection of the same model and texts takes its vectors from the cache.
        other = evaluate_beir(
            settings, beir_slice, ["dense"], collection="scifact-copy", progress=False, pipeline=pipeline
        )
        assert not other["reused"] and other["encoding"]["encoded"] == 0
        assert other["encoding"]["cached"] == report["corpus"]

    @pytest.mark.slow
    def test_the_rerank_stage_is_scored_with_a_qwen3_reranker(
        self, beir_slice: Path, tmp_path: Path, tiny_models, minilm
    ) -> None:
        settings = offline_settings(
            tmp_path / "ix",
            **local_reranker_env(tiny_models["reranker"]),
        )
        report = evaluate_beir(
            settings, beir_slice, ["hybrid"], limit=3, progress=False, pipeline=RagPipeline(settings, embedder=minilm)
        )
        [run] = report["runs"]
        assert run["reranker"] == "local" and run["reranked"] is not None
        assert "rerank" in run["latency_ms"]
        # Random weights reorder the candidates; the set within the depth stays the recall set.
        assert run["reranked"]["recall@100"] == pytest.approx(run["recall"]["recall@100"])

    def test_a_folder_that_is_not_beir_is_one_clear_error(self, tmp_path: Path) -> None:
        result = run_cli("eval", "--beir", str(tmp_path), env={"RAG_CONFIG": str(OFFLINE_PROFILE)})
        assert result.returncode == 2 and "is not a BEIR folder: corpus.jsonl is missing" in result.stderr


@pytest.mark.slow
def test_qa_set_over_the_corpus_hybrid_beats_dense_on_chinese(
    corpus_index, shared: Path, minilm, tmp_path: Path
) -> None:
    """Acceptance for issue 6 and the QA acceptance of issue 3 (27/30 English, unanswerable refused)."""
    data_dir, _ = corpus_index
    settings = offline_settings(data_dir)
    report = evaluate_qa(
        settings,
        shared / "eval" / "qa-dev.jsonl",
        ["dense", "hybrid"],
        out_dir=tmp_path,
        progress=False,
        pipeline=RagPipeline(settings, embedder=minilm),
    )
    runs = {run["mode"]: run["groups"] for run in report["runs"]}
    for mode in ("dense", "hybrid"):
        english = runs[mode]["en"]
        assert english["answerable"] == 30 and english["recall"]["hit@5"] >= 27 / 30, (mode, english["missed"])
    # The offline profile's mode: every answerable English question answered, every unanswerable refused.
    assert runs["dense"]["en"]["refused_answerable"] == 0.0 and runs["dense"]["en"]["refused_unanswerable"] == 1.0
    assert runs["hybrid"]["zh"]["recall"]["hit@5"] > runs["dense"]["zh"]["recall"]["hit@5"]
    answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 2 * 43 and all("citations" in a and "gold_rank_recall" in a for a in answers)


@pytest.mark.slow
def test_a_split_question_set_is_reported_per_half_and_language(corpus_index, minilm, tmp_path: Path) -> None:
    """evalsets/qa.jsonl (tuning and check halves): each half and each half's languages get their own
    figures, and beside recall hits, the share answered with a gold page, with its interval."""
    data_dir, _ = corpus_index
    settings = offline_settings(data_dir)
    # Every third question of the set (both halves, both languages, some unanswerable): a quicker run.
    rows = (PROJECT / "evalsets" / "qa.jsonl").read_text(encoding="utf-8").splitlines()[::3]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(rows), encoding="utf-8")
    pipeline = RagPipeline(settings, embedder=minilm)
    report = evaluate_qa(settings, questions, ["dense"], out_dir=tmp_path, progress=False, pipeline=pipeline)
    groups = report["runs"][0]["groups"]
    assert {"tune", "check", "tune/en", "tune/zh", "check/en", "check/zh"} <= set(groups)
    answerable = sum('"unanswerable"' not in row for row in rows)
    assert groups["tune"]["answerable"] + groups["check"]["answerable"] == groups["all"]["answerable"] == answerable
    assert groups["all"]["unanswerable"] == len(rows) - answerable > 0
    assert groups["check/zh"]["answerable"] + groups["check/en"]["answerable"] == groups["check"]["answerable"]
    for figures in groups.values():
        # Answered with a gold page needs the gold page among the five passages and no refusal.
        assert figures["answered_gold"] <= figures["reranked"]["hit@5"]
        low, high = figures["answered_gold_ci95"]
        assert low <= figures["answered_gold"] <= high and figures["cited_gold"] <= figures["answered_gold"]
    answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    refused = [a for a in answers if not a["found"] and a["gold"]["doc"] != "none"]
    assert all(a["gold_rank_answer"] is None and a["gold_cited"] is False for a in refused)
