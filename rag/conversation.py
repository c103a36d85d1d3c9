"""Conversations: a follow-up question turned into the query that recall and rerank see.

"and what does the customer get if you miss it?" searched alone finds nothing about uptime. Two
ways to make it standalone, picked by `conversation.rewrite`:

* `llm`: the generator LLM condenses history + follow-up into one question (the prompt is
  `rag.generate.prompt.condense_messages`); if it fails or answers nothing usable, the rule below
  is used and the answer says so (`degraded: ["condense"]`).
* `rule`, needing no model: the follow-up joined after the user's earlier questions (their
  answers are left out: they add the last answer's topic twice and the wrong page's words).
  Chosen by measurement on evalsets/dialogues.jsonl (docs/benchmarks.md, "Conversations").

Either way a question that shows no sign of depending on what came before (no pronoun or
demonstrative pointing back, no opening "and"/"what about", not a bare fragment) is searched
exactly as asked, so history never changes the answer to a standalone question.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal

from rag.config import ConversationSettings
from rag.errors import BackendError, InvalidHistory
from rag.generate._language import is_chinese
from rag.generate.prompt import condense_messages
from rag.lexical.analyzer import analyze
from rag.types import Turn, TurnRole

if TYPE_CHECKING:
    from rag.generate import Generator

log = logging.getLogger(__name__)

TURN_ROLES: tuple[TurnRole, ...] = ("user", "assistant")


def parse_history(
    items: Sequence[tuple[str, object]], settings: ConversationSettings, *, field: str = "history"
) -> list[Turn]:
    """Turns from JSON-shaped items ({"role", "content"}), each labelled with where it is in the
    request ("history.3"), checked; an InvalidHistory names the first bad one."""
    if len(items) > settings.max_messages:
        raise InvalidHistory(field, f"{len(items)} messages; at most {settings.max_messages}", status=413)
    turns = []
    for where, item in items:
        if not isinstance(item, dict):
            raise InvalidHistory(where, 'expected an object {"role", "content"}')
        role, content = item.get("role"), item.get("content")
        if role not in TURN_ROLES:
            raise InvalidHistory(f"{where}.role", f"{str(role)[:40]!r} is not one of {', '.join(TURN_ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise InvalidHistory(f"{where}.content", "must be text, not empty")
        if len(content) > settings.max_message_chars:
            raise InvalidHistory(
                f"{where}.content",
                f"{len(content)} characters; at most {settings.max_message_chars} (conversation.max_message_chars)",
                status=413,
            )
        turns.append(Turn(role, content.strip()))
    return turns


def labelled(items: Sequence[object], field: str = "history") -> list[tuple[str, object]]:
    return [(f"{field}.{i}", item) for i, item in enumerate(items)]


def recent(turns: Sequence[Turn], settings: ConversationSettings, count_tokens: Callable[[str], int]) -> list[Turn]:
    """The newest turns within conversation.max_turns and max_tokens; the oldest go first."""
    kept: list[Turn] = []
    tokens = 0
    for turn in reversed(turns[-settings.max_turns :] if settings.max_turns else []):
        tokens += count_tokens(turn.content)
        if tokens > settings.max_tokens:
            break
        kept.append(turn)
    return kept[::-1]


# -- does a question lean on what came before? ------------------------------------------------
_EN_POINTERS = frozenset(
    (
        *("it", "its", "it's", "itself", "they", "them", "their", "theirs", "themselves", "this", "these", "those"),
        *("he", "she", "him", "her", "his", "same", "such", "former", "latter", "above", "aforementioned"),
    )
)
_EN_OPENERS = re.compile(
    r"^\s*(and|but|also|so|then|or|what about|how about|what if|and if|and what|and how|and when|"
    r"what else|anything else|same for|why not)\b",
    re.IGNORECASE,
)
# "that" and "one" point back at the end of a question ("what decides that?", "how is one reset?");
# elsewhere they are mostly a relative pronoun or a number.
_EN_TRAILING_POINTER = re.compile(r"\b(that|ones?)\s*[?.!]*\s*$", re.IGNORECASE)
# ... and "that" is a subject after an auxiliary ("can that be undone?", "is that allowed?").
_EN_THAT_SUBJECT = re.compile(
    r"\b(can|could|is|was|does|did|will|would|should|may|might|must|has)\s+that\b", re.IGNORECASE
)
_EN_ORDINAL_POINTER = re.compile(
    r"\bthe (first|second|third|last|other) (one|kind|type|option|case|step)s?\b", re.IGNORECASE
)
_ZH_POINTERS = (
    *("它", "这样", "这么", "这个", "那个", "这些", "那些", "这种", "那种", "这项"),
    *("该", "上述", "前述", "此项", "其中"),
)
_ZH_OPENERS = re.compile(r"^\s*(那么|那|还有|另外|此外|而且|并且|如果|要是|假如|那如果|然后|以及)")
_ZH_TRAILERS = re.compile(r"(呢|吗呢)\s*[？?]?\s*$")
_EN_WORD = re.compile(r"[A-Za-z']+")
# Words that ask rather than say what about: a question of little else is a fragment ("For how
# many people?", "违反了会被怎么处罚？").
_ASKING = (
    "how many much what when where who whom whose why which can could do does did is are was were be "
    "should would will shall may might must give me tell about some any there get have has "
    "会 被 怎么 什么 哪些 多少 要 还要 吗 呢 不 如何 怎样 能 可以 需要 应该 应当 是否 有 哪 谁 了"
)


@cache
def _asking_words() -> frozenset[str]:
    """The asking words as the BM25 analyzer writes them (stemmed, jieba words); on first use, not
    at import (jieba loads its dictionary then)."""
    return frozenset(analyze(_ASKING))


# Fewer topic words than this: a fragment. Chinese counts jieba words, which split finer.
_MIN_TOPIC_TERMS = {"en": 2, "zh": 3}


def leans_on_history(question: str) -> bool:
    """True when the question points back (a pronoun, a demonstrative, an opening "and"/"那么", a
    trailing 呢) or is too short to be about anything on its own."""
    if is_chinese(question):
        if _ZH_OPENERS.search(question) or _ZH_TRAILERS.search(question):
            return True
        if any(pointer in question for pointer in _ZH_POINTERS):
            return True
    else:
        if any(p.search(question) for p in (_EN_OPENERS, _EN_TRAILING_POINTER, _EN_THAT_SUBJECT, _EN_ORDINAL_POINTER)):
            return True
        if any(word.lower() in _EN_POINTERS for word in _EN_WORD.findall(question)):
            return True
    topic = set(analyze(question)) - _asking_words()
    return len(topic) < _MIN_TOPIC_TERMS["zh" if is_chinese(question) else "en"]


# -- the query searched -----------------------------------------------------------------------
Method = Literal["as-asked", "rule", "llm"]


@dataclass(frozen=True)
class Rewrite:
    query: str  # what recall and rerank see
    method: Method  # how it was made
    degraded: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def rule_query(question: str, history: Sequence[Turn]) -> str:
    """The follow-up after the user's earlier questions, in order, newest last."""
    asked = [turn.content for turn in history if turn.role == "user"]
    return "\n".join([*asked, question])


class QueryRewriter:
    """Turns a question and its (already capped) history into the query to search."""

    def __init__(self, settings: ConversationSettings, generator: Generator, max_query_chars: int) -> None:
        self.settings = settings
        self.generator = generator
        self.max_query_chars = max_query_chars

    @property
    def method(self) -> Literal["llm", "rule", "off"]:
        wanted = self.settings.rewrite
        if wanted == "auto":
            return "llm" if self.generator.writes else "rule"
        return wanted

    def rewrite(self, question: str, history: Sequence[Turn]) -> Rewrite:
        method = self.method
        if not history or method == "off" or not leans_on_history(question):
            return Rewrite(question, "as-asked")
        if method == "rule":
            return Rewrite(self._capped(rule_query(question, history)), "rule")
        return self._condense(question, history)

    def _condense(self, question: str, history: Sequence[Turn]) -> Rewrite:
        messages = condense_messages(question, history)
        try:
            condensed = standalone_line(self.generator.complete(messages, max_tokens=self.settings.condense_max_tokens))
        except BackendError as exc:
            log.warning("condensing a follow-up failed, joining it to the earlier questions: %s", exc)
            return self._by_rule_instead(question, history, f"condensing the follow-up failed ({exc})")
        if not condensed:
            return self._by_rule_instead(question, history, "the generator gave no standalone question")
        return Rewrite(self._capped(condensed), "llm")

    def _by_rule_instead(self, question: str, history: Sequence[Turn], why: str) -> Rewrite:
        note = f"{why}; searched the follow-up joined to the earlier questions"
        return Rewrite(self._capped(rule_query(question, history)), "rule", ("condense",), (note,))

    def _capped(self, query: str) -> str:
        """At most the question limit, keeping the end (the follow-up itself)."""
        return query if len(query) <= self.max_query_chars else query[-self.max_query_chars :]


def standalone_line(text: str) -> str:
    """The model's standalone question: its first non-empty line, without quotes or a label."""
    for line in text.splitlines():
        line = re.sub(r"^\s*(standalone question|question|问题)\s*[:：]\s*", "", line, flags=re.IGNORECASE)
        line = line.strip().strip("\"'“”「」").strip()
        if line:
            return line
    return ""
