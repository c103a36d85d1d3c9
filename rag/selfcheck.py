"""Self-checks of the configured models, run by `rag doctor`, at `rag serve` start-up and in /readyz.

Two kinds of findings. Exact ones hold for any weights: whether the reranker reads the Qwen3
template once, not at all or twice (told by counting the tokens it actually read against our own
count of the pair with the template applied once, zero and two times), whether queries carry the
embedder's query prompt exactly once, whether the embedder's dimension is the collection's. A
failed exact check is `failed`. Judgements need real weights: a relevant passage should outscore
an irrelevant one, in English and in Chinese; random stand-ins lose that about half the time, so a
lost canary is a `warning` with its margin, never a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from rag.backends import NO_RERANKER
from rag.embedding import Embedder
from rag.errors import CollectionNotFound, RagError
from rag.qwen3 import qwen3_tokenizer_dir
from rag.rerank import Reranker, _template

if TYPE_CHECKING:
    from rag.pipeline import RagPipeline

log = logging.getLogger(__name__)

Status = Literal["ok", "warning", "failed"]

# One short pair for the template probe: the counts, not the score, are what it reads.
TEMPLATE_PAIR = ("What does VPN error 809 mean?", "Error 809 means a firewall blocks the L2TP ports.")
# (query, relevant passage, irrelevant passage) per language.
CANARIES = {
    "en": (
        "How often must passwords be changed?",
        "Passwords must be changed every 90 days and may not repeat the last five.",
        "The cafeteria on the second floor opens at 8 am on weekdays.",
    ),
    "zh": (
        "发现数据泄露后多久之内需要报告？",
        "发现疑似数据泄露时，应当在一小时内向信息安全部报告。",
        "二楼食堂工作日早上八点开门。",
    ),
}
# A served embedder's tokenizer may add a few special tokens of its own (Qwen3-Embedding appends
# <|endoftext|>) that a count of the text alone does not see.
_SERVER_SPECIALS = range(0, 3)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def _qwen3_counter() -> Any:
    from tokenizers import Tokenizer

    from rag.embedding._tokens import counting

    return counting(Tokenizer.from_file(str(qwen3_tokenizer_dir() / "tokenizer.json")))


def count_tokens(text: str) -> int:
    """Tokens of `text` alone in Qwen3's tokenizer, no special tokens added."""
    return len(_qwen3_counter().encode(text, add_special_tokens=False).ids)


def template_counts(query: str, document: str, instruction: str | None) -> dict[str, int]:
    """What a scorer reads for the pair with the Qwen3 template applied once, not at all (a server
    without a template joins the raw texts) and twice (our client's template inside the server's,
    which then has no instruction from the request and uses its default task)."""
    head, parts = _template.split_for_scoring(query, [document], instruction)
    return {
        "once": count_tokens(_template.render(query, document, instruction)),
        "missing": count_tokens(query + document),
        "twice": count_tokens(_template.render(head, parts[0])),
    }


_VERDICTS: dict[str, tuple[Status, str]] = {
    "once": ("ok", "applied once"),
    "missing": ("failed", "missing"),
    "twice": ("failed", "applied twice"),
}


def check_reranker_template(reranker: Reranker, instruction: str) -> Check:
    name = "reranker.template"
    query, document = TEMPLATE_PAIR
    read = reranker.template_tokens(query, document, instruction=instruction)
    if read is None:
        return Check(name, "warning", f"{reranker.name}: cannot tell which template it reads (no token count)")
    counts = template_counts(query, document, instruction)
    details = {"read_tokens": read, "expected_tokens": counts["once"], "counts": counts}
    numbers = f"{read} tokens read, {counts['once']} with the template once"
    if read == counts["once"]:
        return Check(name, "ok", f"template applied once ({numbers})", details)
    if read == counts["missing"]:
        return Check(name, "failed", f"template missing: scores will be near random ({numbers})", details)
    if read == counts["twice"]:
        return Check(name, "failed", f"template applied twice: scores will be off ({numbers})", details)
    message = f"not the Qwen3 template once, never or twice ({numbers}, {counts['missing']} without it): another one?"
    return Check(name, "failed", message, details)


def check_reranker_canaries(
    reranker: Reranker, instruction: str, languages: Sequence[str] | None = None
) -> list[Check]:
    """A relevant and an irrelevant passage for a question in each language (those the reranker
    reads, `rerank.languages`, where set)."""
    checks = []
    for language, (query, relevant, irrelevant) in CANARIES.items():
        if languages is not None and language not in languages:
            continue
        relevant_score, irrelevant_score = reranker.score(query, [relevant, irrelevant], instruction=instruction)
        margin = relevant_score - irrelevant_score
        details = {"relevant": relevant_score, "irrelevant": irrelevant_score, "margin": margin}
        name = f"reranker.canary.{language}"
        if margin > 0:
            checks.append(Check(name, "ok", f"relevant passage first by {margin:.3f}", details))
        else:
            message = f"the reranker cannot tell a relevant passage from an irrelevant one (margin {margin:.3f})"
            checks.append(Check(name, "warning", message, details))
    return checks


def check_query_prompt(embedder: Embedder) -> Check:
    """The query prompt once at the head of what is embedded and, for a served model, the tokens the
    server read against our count of that text with the prompt once, never and twice."""
    name = "embedder.query_prompt"
    prompt, query = embedder.query_prompt, CANARIES["en"][0]
    shown = repr(prompt) if prompt else "none (a symmetric model)"
    read = embedder.query_tokens(query)
    if read is None:
        return Check(name, "ok", f"query prompt {shown}, applied once", {"prompt": prompt})
    counts = {
        "once": count_tokens(prompt + query),
        "missing": count_tokens(query),
        "twice": count_tokens(prompt * 2 + query),
    }
    details = {"prompt": prompt, "read_tokens": read, "counts": counts}
    for verdict in ("once", "missing", "twice") if prompt else ("once",):
        if read - counts[verdict] in _SERVER_SPECIALS:
            status, how = _VERDICTS[verdict]
            return Check(name, status, f"query prompt {shown} {how} ({read} tokens read)", details)
    message = f"the server read {read} tokens for a query of {counts['once']} with its prompt: cannot tell"
    return Check(name, "warning", message, details)


def run_checks(pipeline: RagPipeline, collection: str | None = None) -> list[Check]:
    """Every self-check of a warmed-up pipeline, each one caught: a backend that cannot be reached
    is a failed check naming it, not an exception."""
    embedder, reranker = pipeline.embedder, pipeline.reranker
    instruction = pipeline.settings.rerank.instruction
    runs: list[tuple[str, Callable[[], list[Check]]]] = [
        ("embedder.query_prompt", lambda: [check_query_prompt(embedder)]),
        ("embedder.dimension", lambda: [_check_dimension(pipeline, collection)]),
    ]
    if reranker.name != NO_RERANKER:
        languages = pipeline.settings.rerank.languages
        runs[:0] = [("reranker.canary", lambda: check_reranker_canaries(reranker, instruction, languages))]
        if reranker.reads_template:
            runs[:0] = [("reranker.template", lambda: [check_reranker_template(reranker, instruction)])]
    checks: list[Check] = []
    for name, run in runs:
        try:
            checks.extend(run())
        except RagError as exc:
            checks.append(Check(name, "failed", f"could not run: {exc}"))
    return checks


def _check_dimension(pipeline: RagPipeline, collection: str | None) -> Check:
    try:
        kb = pipeline.knowledge_base(collection)
    except CollectionNotFound as exc:
        return Check("embedder.dimension", "ok", f"no collection {exc.name!r} yet: its first ingest sets the dimension")
    dimension, stored = pipeline.embedder.dimension, kb.dimension
    details = {"embedder": dimension, "collection": stored, "name": kb.name}
    if stored is None or stored == dimension:
        return Check("embedder.dimension", "ok", f"dimension {dimension}, as collection {kb.name!r}", details)
    message = f"the embedder gives {dimension} dimensions, {kb.name!r} holds {stored}"
    return Check("embedder.dimension", "failed", message, details)


def log_checks(checks: list[Check]) -> None:
    for check in checks:
        level = logging.INFO if check.status == "ok" else logging.WARNING
        log.log(level, "self-check %s %s: %s", check.name, check.status, check.message)
