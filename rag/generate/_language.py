"""The little language sense the answer side needs: is this Chinese, and where do sentences end."""

from __future__ import annotations

import re

from sentencex import segment

from rag.config import Language

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"  # Han and CJK punctuation
_CJK_LINE_BREAK = re.compile(rf"(?<=[{_CJK}])\s*\n\s*(?=[{_CJK}])")
_LETTER_OR_HAN = re.compile(r"[A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_chinese(text: str) -> bool:
    """Chinese when Han characters are at least a third of the letters (mixed questions that
    name English products are still Chinese questions)."""
    letters = len(_LETTER_OR_HAN.findall(text))
    return letters > 0 and len(_HAN.findall(text)) * 3 >= letters


def sentences(text: str) -> list[str]:
    """Sentences with PDF line breaks folded back into spaces (or nothing, between Han characters)."""
    language = "zh" if is_chinese(text) else "en"
    out = []
    for raw in segment(language, text):
        sentence = _CJK_LINE_BREAK.sub("", raw.strip())
        sentence = " ".join(sentence.split())
        if sentence:
            out.append(sentence)
    return out


def language_of(text: str) -> Language:
    """A question's language as the answer side tells them apart: Chinese (is_chinese) or not."""
    return "zh" if is_chinese(text) else "en"
