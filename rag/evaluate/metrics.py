"""IR metrics by trec_eval (pytrec-eval-terrier), the implementation BEIR itself reports with."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

Run = Mapping[str, Sequence[str]]  # query id -> ranked doc ids, best first

METRICS = ("ndcg@10", "mrr@10", "recall@5", "recall@100")


def _scored(ranked: Sequence[str], depth: int | None = None) -> dict[str, float]:
    ranked = ranked[:depth] if depth is not None else ranked
    # trec_eval orders by score, not by position: give strictly falling scores.
    return {doc: float(len(ranked) - i) for i, doc in enumerate(dict.fromkeys(ranked))}


_DOT_LEADER = re.compile(r"(?:\s?\.){4,}")
CURVE_DEPTHS = (1, 2, 3, 5, 10, 20, 30, 50, 100)


def ir_metrics(qrels: Mapping[str, Mapping[str, int]], run: Run) -> dict[str, float]:
    """Means over the judged queries of nDCG@10, MRR@10, Recall@5, Recall@100, and recall@k
    for the depths of the recall curve (keys "curve@k")."""
    import pytrec_eval

    judged = {q: dict(docs) for q, docs in qrels.items() if q in run}
    if not judged:
        return dict.fromkeys(METRICS, 0.0)
    depths = ",".join(str(k) for k in CURVE_DEPTHS)
    full = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", f"recall.{depths}"})
    per_query = full.evaluate({q: _scored(run[q]) for q in judged})
    # trec_eval's recip_rank has no cut-off: MRR@10 is recip_rank over the top 10.
    top10 = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"})
    rr = top10.evaluate({q: _scored(run[q], 10) for q in judged})

    def mean(table: Mapping[str, Mapping[str, float]], key: str) -> float:
        return float(np.mean([table[q][key] if q in table else 0.0 for q in judged]))

    out = {
        "ndcg@10": mean(per_query, "ndcg_cut_10"),
        "mrr@10": mean(rr, "recip_rank"),
        "recall@5": mean(per_query, "recall_5"),
        "recall@100": mean(per_query, "recall_100"),
    }
    out.update({f"curve@{k}": mean(per_query, f"recall_{k}") for k in CURVE_DEPTHS})
    return out


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def share_interval(hits: int, total: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a share (scipy's binomtest): a set of a few dozen questions
    moves by several points per question, so a hit rate is read with its interval. Wilson rather
    than a bootstrap: exact for a binomial share and defined at 0% and 100%."""
    if total == 0:
        return (0.0, 0.0)
    from scipy.stats import binomtest

    interval = binomtest(hits, total).proportion_ci(confidence_level=0.95, method="wilson")
    return (round(float(interval.low), 4), round(float(interval.high), 4))


def character_accuracy(recognised: str, reference: str) -> tuple[int, int]:
    """(edit distance, reference length) between OCR output and the text layer it should equal:
    accuracy is 1 - distance / length, summed over pages before dividing. Both are NFKC-folded
    (full-width and ASCII punctuation count as one); layout whitespace (line breaks, column joins)
    is not text: Chinese is compared without it, other text with each run as one space; dot leaders
    of a table of contents are not text either (the PDF loader drops them too)."""
    from rapidfuzz.distance import Levenshtein

    from rag.lexical.analyzer import has_han

    def fold(text: str) -> str:
        text = _DOT_LEADER.sub(" ", unicodedata.normalize("NFKC", text))
        return "".join(text.split()) if has_han(reference) else " ".join(text.split())

    target = fold(reference)
    return Levenshtein.distance(fold(recognised), target), len(target)
