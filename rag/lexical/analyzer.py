"""Text -> BM25 terms, for English, Chinese and the two mixed in one line.

Runs of Han characters go to jieba's search mode (words and the shorter words inside them, so
that 个人信息 in a question finds 个人信息保护法 in a law); everything else is lowercased, cut
into word tokens of two or more characters (bm25s's own pattern), stripped of English stopwords
and Snowball-stemmed. Documents and queries pass through the same function: that is the whole
contract, so a change here changes `ANALYZER_VERSION` and stored token files are rebuilt.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from typing import Any

from bm25s.stopwords import STOPWORDS_EN

ANALYZER_VERSION = "1"

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"(?u)\b\w\w+\b")
_HAS_WORD_CHAR = re.compile(r"\w")
# Function words that jieba emits as their own tokens; they carry no topic.
_STOPWORDS_ZH = frozenset(
    [
        "的",
        "了",
        "和",
        "与",
        "及",
        "或",
        "是",
        "在",
        "也",
        "就",
        "都",
        "而",
        "并",
        "等",
        "这",
        "那",
        "这些",
        "那些",
        "之",
        "其",
        "把",
        "被",
        "对",
        "将",
        "为",
        "以",
        "于",
        "中",
        "上",
        "下",
        "个",
        "有",
        "我",
        "我们",
        "你",
        "你们",
        "他",
        "她",
        "它",
        "吗",
        "呢",
        "啊",
        "吧",
        "呀",
        "么",
        "什么",
        "怎么",
        "如何",
        "哪些",
        "是否",
        "可以",
        "应该",
        "需要",
        "里",
        "算",
        "不算",
    ]
)
_STOPWORDS = frozenset(STOPWORDS_EN) | _STOPWORDS_ZH

_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)  # it prints its dictionary loading to stderr otherwise
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


@lru_cache(maxsize=1)
def _stem() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english").stemWords


def has_han(text: str) -> bool:
    return _HAN_RUN.search(text) is not None


def analyze(text: str) -> list[str]:
    """The BM25 terms of `text`, in order (repeats kept: term frequency counts)."""
    terms: list[str] = []
    position = 0
    for run in _HAN_RUN.finditer(text):
        terms.extend(_latin_terms(text[position : run.start()]))
        terms.extend(_han_terms(run.group()))
        position = run.end()
    terms.extend(_latin_terms(text[position:]))
    return terms


def _latin_terms(text: str) -> list[str]:
    if not text.strip():
        return []
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
    return list(_stem()(words)) if words else []


def _han_terms(run: str) -> list[str]:
    tokenizer = _jieba()
    with _jieba_lock:  # jieba's tokenizer keeps per-call state; API threads share it
        words = tokenizer.lcut_for_search(run)
    return [w for w in words if w not in _STOPWORDS and _HAS_WORD_CHAR.search(w)]
