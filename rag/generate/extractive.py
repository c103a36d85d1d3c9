"""An answer without an LLM: the passages' sentences closest to the question, each cited.

It is the offline profile's generator and every other profile's fallback when the LLM is down.
It never writes a word the documents do not contain, and it says "not found" when no sentence
comes close enough to the question (`generate.extractive_min_similarity`, a cosine of the
configured embedder).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rag.config import GenerateSettings, Language
from rag.embedding import Embedder
from rag.generate import Generator
from rag.generate._language import is_chinese, language_of, sentences
from rag.generate.prompt import not_found_text
from rag.rerank import Reranker
from rag.tables import row_statements, segments
from rag.types import Passage

# Sentences scored per answer at most: the passages' first ones win. Keeps the fallback quick
# when a GPU-sized embedder runs on a CPU.
MAX_CANDIDATE_SENTENCES = 96
# The second opinion reads this many of the sentences closest to the question: whether the best of
# them answers is what the two models must agree on (docs/benchmarks.md, "A second opinion").
SECOND_OPINION_SENTENCES = 10
_MAX_SENTENCE_CHARS = 400
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Floor:
    value: float
    setting: str  # which setting set it, for the refusal's note


@dataclass(frozen=True)
class Extract:
    n: int  # the passage's number (1-based) in the answer
    sentence: str
    score: float


@dataclass(frozen=True)
class Closest:
    """What `closest` found: the sentences to quote (none: not found), how close the best one came,
    how close the second opinion's best came (None when it was not asked) and, when it overruled a
    find, why."""

    extracts: list[Extract]
    best: float
    second: float | None = None
    overruled: str | None = None


@dataclass(frozen=True)
class SecondOpinion:
    """Another model (the `embedding` reranker, whose scores are cosines) that must also find one of
    the sentences closest to a question in `languages` close enough: two models must agree that
    something answers."""

    reranker: Reranker
    min_similarity: float
    languages: tuple[Language, ...] | None
    setting: str = "generate.second_opinion_min_similarity"

    def similarity(self, question: str, sentences: Sequence[str]) -> float | None:
        """The second model's best score between `question` and one of `sentences`; None when it
        does not read the question's language or there is no sentence."""
        if not sentences or (self.languages is not None and language_of(question) not in self.languages):
            return None
        return max(self.reranker.score(question, sentences))

    def doubt(self, similarity: float | None) -> str | None:
        """Why a find is overruled at this `similarity`, or None when it stands."""
        if similarity is None or similarity >= self.min_similarity:
            return None
        return (
            f"{self.reranker.model_name} finds no sentence close enough to the question "
            f"({similarity:.3f} < {self.setting} {self.min_similarity:g})"
        )


class ExtractiveGenerator(Generator):
    """No model of its own: it reads with the pipeline's embedder."""

    name = "extractive"
    writes = False

    def __init__(self, settings: GenerateSettings, *, embedder: Embedder) -> None:
        self.embedder = embedder
        # Set by the pipeline where generate.second_opinion_min_similarity asks for one.
        self.second_opinion: SecondOpinion | None = None
        self.model_name = embedder.model_name
        self.device = ""
        self.max_sentences = settings.extractive_sentences
        self.min_similarity = settings.extractive_min_similarity
        self.runner_up_margin = settings.extractive_runner_up_margin
        self.min_similarity_zh = settings.extractive_min_similarity_zh
        self.unknown_term_min_similarity = settings.unknown_term_min_similarity

    def warm_up(self) -> None:
        self.embedder.warm_up()
        self.device = self.embedder.device

    def floor(self, question: str, unknown_terms: Sequence[str] = ()) -> Floor:
        """How close the best sentence must come for `question`: the floor of its language, raised
        when the question has words the knowledge base has never seen (`unknown_terms`)."""
        floor = Floor(self.min_similarity, "generate.extractive_min_similarity")
        if self.min_similarity_zh is not None and is_chinese(question):
            floor = Floor(self.min_similarity_zh, "generate.extractive_min_similarity_zh")
        raised = self.unknown_term_min_similarity
        if unknown_terms and raised is not None and raised > floor.value:
            words = ", ".join(repr(t) for t in unknown_terms)
            floor = Floor(raised, f"generate.unknown_term_min_similarity (no document has {words})")
        return floor

    def select(self, question: str, passages: Sequence[Passage]) -> list[Extract]:
        """The best sentences, most similar first, one copy each (overlapping chunks repeat text).
        Empty when none reaches `min_similarity`; see `closest` for how near the best one came."""
        return self.closest(question, passages).extracts

    def closest(
        self,
        question: str,
        passages: Sequence[Passage],
        *,
        focus: str | None = None,
        min_similarity: float | None = None,
    ) -> Closest:
        """The selection and the best sentence's similarity to `question` (-1 when there was no
        sentence). `focus` (a follow-up, when `question` is it joined to the earlier questions):
        whether any sentence is close enough is still decided on `question`, but sentences are
        chosen by their mean similarity to both, so the answer is to the follow-up, not to the
        question before it. `min_similarity`: the floor to apply (default: `floor(question)`). A
        sentence after the first is quoted only when it reaches the floor on `question` (or on
        `focus`) as well, so that an answer is not padded with what is merely near the best one.
        With a second opinion, its model must also find one of the sentences closest to `question`
        close enough, or nothing is found."""
        quotable = [(n, sentence) for n, passage in enumerate(passages, start=1) for sentence in _quotable(passage)]
        candidates = quotable[:MAX_CANDIDATE_SENTENCES]
        if not candidates:
            return Closest([], -1.0)
        vectors = np.asarray(self.embedder.embed_documents([s for _, s in candidates]), dtype=np.float32)
        scores = vectors @ np.asarray(self.embedder.embed_query(question), dtype=np.float32)
        rank = reach = scores
        if focus is not None and focus != question:
            focused = vectors @ np.asarray(self.embedder.embed_query(focus), dtype=np.float32)
            rank = ((scores + focused) / 2).astype(np.float32)
            reach = np.maximum(scores, focused)
        # Whether anything answers is decided on `question` alone; which sentences answer, by rank.
        floor = self.floor(question).value if min_similarity is None else min_similarity
        found = float(scores.max()) >= floor
        second = None
        if found and self.second_opinion is not None:
            nearest = np.argsort(-scores, kind="stable")[:SECOND_OPINION_SENTENCES]
            second = self.second_opinion.similarity(question, [candidates[int(i)][1] for i in nearest])
            overruled = self.second_opinion.doubt(second)
            if overruled is not None:
                return Closest([], float(scores.max()), second, overruled)
        eligible = [int(i) for i in np.argsort(-rank, kind="stable")] if found else []
        chosen: list[Extract] = []
        seen: list[str] = []
        for i in eligible:
            if rank[i] < rank[eligible[0]] - self.runner_up_margin or len(chosen) == self.max_sentences:
                break
            if chosen and reach[i] < floor:
                continue  # a sentence after the first is quoted only if it, too, is close enough to a question
            n, sentence = candidates[i]
            key = " ".join(_WORD.findall(sentence.lower()))
            if any(key in other or other in key for other in seen):
                continue
            seen.append(key)
            chosen.append(Extract(n, _clip(sentence), float(scores[i])))
        return Closest(chosen, float(scores.max()), second)

    def compose(self, question: str, extracts: Sequence[Extract]) -> str:
        if not extracts:
            return not_found_text(question)
        if is_chinese(question):
            return "".join(f"{e.sentence}[{e.n}]" for e in extracts)
        return " ".join(f"{e.sentence} [{e.n}]" for e in extracts)

    def stream(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        yield self.compose(question, self.select(question, passages))


def statements(text: str) -> list[str]:
    """What an answer may quote from a passage: its sentences, and each row of a table in it said
    with the table's column headers."""
    out: list[str] = []
    for start, end, table in segments(text):
        part = text[start:end]
        out += row_statements(part) if table else sentences(part) if part.strip() else []
    return out


def _substantial(sentence: str) -> bool:
    """Drop headings, page furniture, fragments and questions (an FAQ's question is not its
    answer): an answer is made of real statements."""
    if sentence.rstrip().endswith(("?", "？")):
        return False
    if is_chinese(sentence):
        return len(sentence) >= 8
    return len(_WORD.findall(sentence)) >= 4


def _quotable(passage: Passage) -> list[str]:
    """The passage's statements an answer may quote: substantial ones, its document's title left out."""
    title = _title(passage)
    return [sentence for sentence in statements(passage.text) if _substantial(sentence) and sentence != title]


def _title(passage: Passage) -> str | None:
    """The document's title: the top of the heading path of its first chunk, whose text starts with
    it. It names the document and answers nothing. Other headings stay quotable: a runbook's may be
    the answer itself ("Error 691: wrong user name or password")."""
    if passage.metadata.get("chunk_index") != 0 or not passage.heading:
        return None
    return passage.heading.split(" > ", 1)[0]


def _clip(sentence: str) -> str:
    if len(sentence) <= _MAX_SENTENCE_CHARS:
        return sentence
    return sentence[:_MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " …"
