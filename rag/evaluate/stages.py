"""One query through recall and rerank, keeping both rankings: what every evaluation scores."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rag.evaluate.metrics import percentiles
from rag.pipeline import RagPipeline, RerankResult, SearchOptions
from rag.store import KnowledgeBase
from rag.types import Passage, SearchResult


@dataclass(frozen=True)
class Staged:
    query: str
    recalled: list[Passage]
    ranked: list[Passage]  # reranked order, then what the reranker did not score in recall order
    timings: dict[str, float]
    rerank: RerankResult
    unknown_terms: tuple[str, ...] = ()

    def result(self, top_n: int) -> SearchResult:
        """What `search` would have returned: the top-n an answer reads."""
        return SearchResult(
            query=self.query,
            passages=tuple(self.ranked[:top_n]),
            timings=self.timings,
            degraded=self.rerank.degraded,
            notes=self.rerank.notes,
            reranked=self.rerank.reranked,
            unknown_terms=self.unknown_terms,
        )


def run_stages(pipeline: RagPipeline, kb: KnowledgeBase, query: str, options: SearchOptions) -> Staged:
    timings: dict[str, float] = {}
    recalled = pipeline.recall(query, kb, options, timings)
    instruction = options.instruction if options.instruction is not None else kb.instruction
    # Rerank and keep every candidate, not only the top-n an answer reads.
    everything = replace(options, top_n=max(1, len(recalled)), instruction=instruction)
    reranked = pipeline.rerank(query, recalled, everything, timings)
    seen = {p.chunk_id for p in reranked.passages}
    ranked = reranked.passages + [p for p in recalled if p.chunk_id not in seen]
    return Staged(query, recalled, ranked, timings, reranked, pipeline.unknown_terms(query, kb, options))


@dataclass
class Latencies:
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, timings: dict[str, float]) -> None:
        for stage, value in timings.items():
            self.seconds.setdefault(stage, []).append(value)

    def summary_ms(self) -> dict[str, dict[str, float]]:
        return {
            stage: {k: round(v * 1000, 2) for k, v in percentiles(values).items()}
            for stage, values in self.seconds.items()
        }
