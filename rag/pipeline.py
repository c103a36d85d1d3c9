"""The query side, stage by stage: embed the query -> recall top-k -> rerank -> keep top-n ->
answer from those with citations.

Every stage is timed. A reranker that fails falls back to recall order and the result says so
(`degraded: ["rerank"]`); a generator that fails falls back to the extractive answer
(`degraded: ["generate"]`); with `on_failure: fail` the request fails instead: never silently.
A GPU-sized reranker on a CPU reranks fewer, shorter candidates and the result says that too.
When the best passage scores under the configured floor the answer is "not found" and no
generator is called.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rag.backends import NO_RERANKER, gpu_model_on_cpu
from rag.config import RecallMode, Settings
from rag.conversation import QueryRewriter, Rewrite, recent
from rag.embedding import Embedder, build_embedder
from rag.errors import BackendError, ConfigError
from rag.generate import Generator, build_generator
from rag.generate._language import language_of
from rag.generate.extractive import ExtractiveGenerator, SecondOpinion
from rag.generate.prompt import cited_numbers, is_not_found, not_found_text
from rag.lexical.analyzer import analyze
from rag.lexical.index import LexicalIndexes
from rag.recall import recall, rrf
from rag.rerank import Reranker, build_reranker
from rag.rerank._budget import Throughput
from rag.rerank.embedding import EmbeddingReranker
from rag.store import KnowledgeBase, VectorStore
from rag.types import Answer, Citation, Passage, SearchResult, Turn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchOptions:
    """Per-request choices; None means the configured default (never `or`: 0 and "" are values)."""

    top_k: int | None = None
    top_n: int | None = None
    instruction: str | None = None
    filters: dict[str, Any] | None = None
    min_score: float | None = None
    mode: RecallMode | None = None


@dataclass(frozen=True)
class RerankResult:
    """What the rerank stage kept, and how."""

    passages: list[Passage]  # the top-n, best first
    degraded: tuple[str, ...] = ()  # ("rerank",) when the reranker failed and recall order was kept
    notes: tuple[str, ...] = ()  # what was adapted, e.g. fewer candidates on a CPU
    reranked: int = 0  # candidates the reranker scored (0: recall order)


class RagPipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        generator: Generator | None = None,
        store: VectorStore | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder if embedder is not None else build_embedder(settings.embedding)
        self.reranker = reranker if reranker is not None else build_reranker(settings.rerank)
        self.generator = (
            generator if generator is not None else build_generator(settings.generate, embedder=self.embedder)
        )
        # The answer of last resort, and the source of the supporting sentence in each citation.
        self.extractive = (
            self.generator
            if isinstance(self.generator, ExtractiveGenerator)
            else ExtractiveGenerator(settings.generate, embedder=self.embedder)
        )
        second_opinion = _second_opinion(settings, self.reranker)
        if second_opinion is not None:
            self.extractive.second_opinion = second_opinion
        self.store = store if store is not None else VectorStore(settings)
        self.lexical = LexicalIndexes(settings)
        self._kbs: dict[str, KnowledgeBase] = {}
        self.rerank_speed = Throughput()
        self.rewriter = QueryRewriter(settings.conversation, self.generator, settings.api.max_question_chars)

    def warm_up(self, *, generator: bool = True) -> None:
        """Load the models now (search alone needs no generator)."""
        self.embedder.warm_up()
        self.reranker.warm_up()
        if self._rerank_budget_s() is not None:
            try:
                self.rerank_speed.calibrate(self.reranker)  # before a user's question waits on it
            except BackendError as exc:  # measured on the first calls instead; requests degrade as usual
                log.warning("reranker speed not measured at start-up: %s", exc)
        # jieba loads its dictionary (~1 s) on first use: not on a user's first question.
        analyze("预热 warm-up")
        if generator:
            self.generator.warm_up()

    def close(self) -> None:
        self.reranker.close()
        self.generator.close()

    def knowledge_base(self, collection: str | None) -> KnowledgeBase:
        name = collection if collection is not None else self.settings.collection
        if name not in self._kbs:
            kb = self.store.open(name)
            kb.check_model(self.embedder.model_name, None)
            self._kbs[name] = kb
        return self._kbs[name]

    def forget(self, collection: str) -> None:
        """Drop a cached collection handle (after it was created, changed or written elsewhere)."""
        self._kbs.pop(collection, None)

    def search(
        self, query: str, *, collection: str | None = None, options: SearchOptions | None = None
    ) -> SearchResult:
        options = options or SearchOptions()
        timings: dict[str, float] = {}
        kb = self.knowledge_base(collection)
        recalled = self.recall(query, kb, options, timings)
        instruction = options.instruction if options.instruction is not None else kb.instruction
        reranked = self.rerank(query, recalled, replace(options, instruction=instruction), timings)
        return SearchResult(
            query=query,
            passages=tuple(reranked.passages),
            timings=timings,
            degraded=reranked.degraded,
            notes=reranked.notes,
            reranked=reranked.reranked,
            unknown_terms=self.unknown_terms(query, kb, options),
        )

    def unknown_terms(self, query: str, kb: KnowledgeBase, options: SearchOptions) -> tuple[str, ...]:
        """The query's words no document of `kb` holds, where an answer's floor depends on them. Read
        after the recall: a recall that used BM25 has just brought the index in step with the
        documents, so only a dense one leaves that to do here."""
        if self.settings.generate.unknown_term_min_similarity is None:
            return ()
        return self.lexical.get(kb).unknown_terms(query, refresh=self._mode(options) == "dense")

    def _mode(self, options: SearchOptions) -> RecallMode:
        return options.mode if options.mode is not None else self.settings.recall.mode

    def recall(self, query: str, kb: KnowledgeBase, options: SearchOptions, timings: dict[str, float]) -> list[Passage]:
        """The recall stage alone (rag eval scores it before and after reranking)."""
        mode = self._mode(options)
        vector = None
        if mode != "bm25":
            started = time.perf_counter()
            vector = self.embedder.embed_query(query)
            timings["embed"] = time.perf_counter() - started
        top_k = options.top_k if options.top_k is not None else self.settings.recall.top_k
        started = time.perf_counter()
        recalled = recall(
            kb,
            self.lexical.get(kb) if mode != "dense" else None,
            query,
            vector,
            k=top_k,
            mode=mode,
            settings=self.settings.recall,
            filters=options.filters,
        )
        timings["recall"] = time.perf_counter() - started
        return recalled

    def rerank(
        self, query: str, recalled: list[Passage], options: SearchOptions, timings: dict[str, float]
    ) -> RerankResult:
        """The rerank stage alone (rag eval scores recall before it)."""
        rerank = self.settings.rerank
        top_n = options.top_n if options.top_n is not None else rerank.top_n
        min_score = options.min_score if options.min_score is not None else rerank.min_score
        instruction = options.instruction if options.instruction is not None else rerank.instruction
        if self.reranker.name == NO_RERANKER or not recalled:
            return RerankResult(self._head(recalled, top_n))
        if rerank.languages is not None and language_of(query) not in rerank.languages:
            note = f"not reranked: {self.reranker.model_name} reads {', '.join(rerank.languages)} (rerank.languages)"
            return RerankResult(self._head(recalled, top_n), notes=(note,))
        self.reranker.warm_up()  # its device and size decide the budget below
        pool, head = recalled, recalled
        if rerank.max_candidates is not None:
            # The first pages, not the first chunks, when only one passage per page can be kept.
            pool = one_per_page(recalled, len(recalled)) if rerank.distinct_pages else recalled
            head = pool[: rerank.max_candidates]
        candidates, notes = self._within_budget(head)
        texts = [p.text for p in candidates]
        started = time.perf_counter()
        try:
            scores = self.reranker.score(query, texts, instruction=instruction)
        except BackendError as exc:
            timings["rerank"] = time.perf_counter() - started
            if rerank.on_failure == "fail":
                raise
            log.warning("reranker failed, answering in recall order: %s", exc)
            head = self._head(recalled, top_n)
            return RerankResult(head, degraded=("rerank",), notes=(*notes, f"rerank failed: {exc}"))
        timings["rerank"] = time.perf_counter() - started
        self.rerank_speed.record(sum(map(len, texts)), timings["rerank"])
        scored = [replace(p, rerank_score=s) for p, s in zip(candidates, scores, strict=True)]
        scored.sort(key=lambda p: (-(p.rerank_score or 0.0), p.recall_rank))
        if rerank.fuse_recall_rrf_k is not None:
            fused = rrf([[p.chunk_id for p in candidates], [p.chunk_id for p in scored]], rerank.fuse_recall_rrf_k)
            scored = sorted(scored, key=lambda p: (-fused[p.chunk_id], p.recall_rank))
        if min_score is not None:
            scored = [p for p in scored if (p.rerank_score or 0.0) >= min_score]
        elif rerank.max_candidates is not None:
            scored += pool[len(candidates) :]  # those not rescored follow, in recall order
        return RerankResult(self._head(scored, top_n), notes=notes, reranked=len(candidates))

    def _head(self, ranked: list[Passage], top_n: int) -> list[Passage]:
        """The first top_n passages; with rerank.distinct_pages, one per page of a paged document."""
        return one_per_page(ranked, top_n) if self.settings.rerank.distinct_pages else ranked[:top_n]

    def _rerank_budget_s(self) -> float | None:
        """Seconds a rerank may take: rerank.time_budget_s, else the CPU budget for a GPU-sized model
        in-process on a CPU, else None (every candidate)."""
        rerank = self.settings.rerank
        if rerank.time_budget_s is not None:
            return rerank.time_budget_s
        return rerank.cpu_time_budget_s if gpu_model_on_cpu(self.reranker) is not None else None

    def _within_budget(self, recalled: list[Passage]) -> tuple[list[Passage], tuple[str, ...]]:
        """The head of the recall list this reranker scores within its time budget, at its measured speed."""
        budget_s = self._rerank_budget_s()
        if budget_s is None:
            return recalled, ()
        count = self.rerank_speed.fits([p.text for p in recalled], budget_s)
        if count >= len(recalled):
            return recalled, ()
        why = f"{self.rerank_speed.rate:.0f} characters/s measured, a {budget_s:g} s budget"
        slow = gpu_model_on_cpu(self.reranker)
        where = "rerank on CPU" if slow else "rerank within its time budget"
        note = f"{where}: {count} of {len(recalled)} candidates ({why}{'; ' + slow if slow else ''})"
        return recalled[:count], (note,)

    # -- answers ----------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        collection: str | None = None,
        options: SearchOptions | None = None,
        history: Sequence[Turn] = (),
    ) -> Answer:
        return final_answer(self.ask_stream(question, collection=collection, options=options, history=history))

    def answer(self, question: str, result: SearchResult) -> Answer:
        """The answer to `question` from passages already searched (rag eval reuses its search)."""
        return final_answer(self.answer_stream(question, result))

    def ask_stream(
        self,
        question: str,
        *,
        collection: str | None = None,
        options: SearchOptions | None = None,
        history: Sequence[Turn] = (),
    ) -> Iterator[str | Answer]:
        """The answer's text piece by piece as the generator writes it, then the whole Answer.
        With `history` (the conversation before `question`), a follow-up is searched made standalone."""
        started = time.perf_counter()
        rewrite = self.standalone(question, history)
        condensed_s = time.perf_counter() - started
        result = self.search(rewrite.query, collection=collection, options=options)
        if rewrite.method != "as-asked":
            result = replace(
                result,
                timings={"condense": condensed_s, **result.timings},
                degraded=(*rewrite.degraded, *result.degraded),
                notes=(*rewrite.notes, *result.notes),
            )
        # Answered as searched: the bare follow-up is too far from any sentence for the extractive
        # floor (most data/ follow-ups were refused). A rule's query also holds the earlier
        # questions, so the extractive answer orders its sentences by the follow-up too (`focus`).
        focus = question if rewrite.method == "rule" else None
        for item in self.answer_stream(rewrite.query, result, focus=focus):
            yield replace(item, question=question) if isinstance(item, Answer) else item

    def standalone(self, question: str, history: Sequence[Turn]) -> Rewrite:
        """The query to search for `question` after `history` (capped to the newest turns)."""
        return self.rewriter.rewrite(question, recent(history, self.settings.conversation, self.embedder.count_tokens))

    def answer_stream(self, question: str, result: SearchResult, *, focus: str | None = None) -> Iterator[str | Answer]:
        passages = result.passages
        timings = dict(result.timings)
        degraded, notes = list(result.degraded), list(result.notes)
        refusal = self._refusal(passages)
        if refusal is not None:
            text = not_found_text(question)
            yield text
            yield Answer(
                question=question,
                query=result.query,
                text=text,
                citations=(),
                found=False,
                generator="none",
                timings=timings,
                degraded=tuple(degraded),
                notes=(*notes, refusal),
                reranked=result.reranked,
            )
            return
        pieces: list[str] = []
        generator_name = self.generator.name
        snippets: dict[int, str] = {}
        started = time.perf_counter()
        try:
            if self.generator is self.extractive:
                text, snippets = self._extract(question, result, notes, focus)
                pieces.append(text)
                yield text
            else:
                for piece in self.generator.stream(question, passages):
                    pieces.append(piece)
                    yield piece
        except BackendError as exc:
            if self.settings.generate.on_failure == "fail":
                raise
            degraded.append("generate")
            if "".join(pieces).strip():
                # The reader already has the first part; what it has is all there is.
                notes.append(f"generator stopped mid-answer: {exc}")
            else:
                log.warning("generator failed, answering extractively: %s", exc)
                notes.append(f"generator failed, answered extractively: {exc}")
                generator_name = self.extractive.name
                text, snippets = self._extract(question, result, notes, focus)
                pieces.append(text)
                yield text
        timings["generate"] = time.perf_counter() - started
        text = "".join(pieces).strip()
        found = bool(text) and not is_not_found(text, question)
        cited = cited_numbers(text)
        citations = (
            tuple(
                Citation(n, passage, cited=n in cited, snippet=snippets.get(n) or _opening(passage.text))
                for n, passage in enumerate(passages, start=1)
            )
            if found
            else ()
        )
        yield Answer(
            question=question,
            query=result.query,
            text=text,
            citations=citations,
            found=found,
            generator=generator_name,
            timings=timings,
            degraded=tuple(degraded),
            notes=tuple(notes),
            reranked=result.reranked,
        )

    def _extract(
        self, question: str, result: SearchResult, notes: list[str], focus: str | None = None
    ) -> tuple[str, dict[int, str]]:
        floor = self.extractive.floor(question, result.unknown_terms)
        closest = self.extractive.closest(question, result.passages, focus=focus, min_similarity=floor.value)
        if closest.overruled is not None:
            notes.append(closest.overruled)
        elif not closest.extracts:
            notes.append(
                "no sentence of the passages is close enough to the question "
                f"({closest.best:.3f} < {floor.setting} {floor.value:g})"
            )
        snippets: dict[int, str] = {}
        for extract in closest.extracts:
            snippets.setdefault(extract.n, extract.sentence)
        return self.extractive.compose(question, closest.extracts), snippets

    def _refusal(self, passages: Sequence[Passage]) -> str | None:
        """Why the knowledge base cannot answer, or None when it may."""
        if not passages:
            return "no passage to answer from"
        generate = self.settings.generate
        best = passages[0]
        if best.rerank_score is not None:
            floor = generate.min_rerank_score
            if floor is not None and best.rerank_score < floor:
                return f"best rerank score {best.rerank_score:.3f} is under generate.min_rerank_score {floor:g}"
        elif generate.min_recall_score is not None:
            # The cosine similarity is the comparable number; BM25 and fused scores are not.
            similarities = [p.dense_score for p in passages if p.dense_score is not None]
            if similarities and max(similarities) < generate.min_recall_score:
                return (
                    f"best recall similarity {max(similarities):.3f} is under generate.min_recall_score "
                    f"{generate.min_recall_score:g}"
                )
        return None


def _second_opinion(settings: Settings, reranker: Reranker) -> SecondOpinion | None:
    """The extractive answer's second opinion: the `embedding` reranker's model, where a floor is set."""
    floor = settings.generate.second_opinion_min_similarity
    if floor is None:
        return None
    if not isinstance(reranker, EmbeddingReranker):
        raise ConfigError(
            f"generate.second_opinion_min_similarity needs rerank.backend: embedding (not {reranker.name!r})"
        )
    languages = settings.rerank.languages
    return SecondOpinion(reranker, floor, tuple(languages) if languages is not None else None)


def one_per_page(ranked: Sequence[Passage], top_n: int) -> list[Passage]:
    """The first top_n passages, a later one left out when an earlier one covers the same pages of the
    same document (overlapping chunks); passages without pages are all kept."""
    head: list[Passage] = []
    seen: set[tuple[str, tuple[int, ...]]] = set()
    for passage in ranked:
        key = (str(passage.metadata.get("doc_id", passage.file_name)), passage.pages)
        if passage.pages and key in seen:
            continue
        seen.add(key)
        head.append(passage)
        if len(head) == top_n:
            break
    return head


def final_answer(events: Iterator[str | Answer]) -> Answer:
    """The whole Answer at the end of an answer's stream."""
    answer: Answer | None = None
    for item in events:
        if isinstance(item, Answer):
            answer = item
    assert answer is not None
    return answer


def _opening(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"
