"""Spaces the OCR recogniser dropped, put back.

RapidOCR's Chinese-English recogniser reads Latin letters faithfully but drops many spaces:
"Therearetwobasicapproaches", "theuserSHALLbe", "Publication201", "07-11,07-18;NIST". A run of
letters is first cut where its case says a word ends ("the|user|SHALL|be", "NIST|Special",
"OTP|verifiers"); a piece that is still no English word is cut where an English unigram model
(wordninja) cuts it best. That model lacks many technical words, so the pieces it leaves are
joined again where together they make a word it knows with a common prefix or suffix
("authentic at or" -> "authenticator", "tele work" -> "telework"), and a short run it can only cut
into scraps ("Mu rug i ah") is kept as written: most likely a name. Then a space goes back after
punctuation that ends a word or a list item.
"""

from __future__ import annotations

import itertools
import math
import re
from functools import cache

_LETTERS = re.compile(r"[A-Za-z]+")
_CASE_SEGMENTS = re.compile(r"[A-Z]+|[a-z]+")
_GLUED_MIN_LETTERS = 5  # shorter runs are words or acronyms as written
_NAME_MAX_LETTERS = 10  # a run this short that splits only into scraps is kept whole
# Words ranked past this in the unigram model are rare enough that a cut beside them is suspect.
_RARE_RANK = 2000
# Words of one or two letters that a cut may leave; any other is a scrap.
_SHORT_WORDS = frozenset("a i am an as at be by do go he if in is it me my no of on or so to up us we".split())  # noqa: SIM905
_CONTRACTIONS = frozenset({"s", "t", "d", "m", "ll", "re", "ve"})  # "organization'swebsite": the run starts after '
# Suffixes that drop a final "e" of their stem (sanitize -> sanitization, authenticate -> authenticator).
_E_DROPPING_SUFFIXES = tuple("ation ations ator ators or ors ing ity ities able er ers ed".split())  # noqa: SIM905
_SUFFIXES = ("s", "es", "ed", "ing", "er", "ers", "ly", "ness", "ment", "ments", "al")
_Y_SUFFIXES = ("ier", "iers", "ies", "ied")  # verify -> verifier
_PREFIXES = ("re", "un", "pre", "non", "tele", "multi", "sub", "anti", "auto", "cyber", "de", "dis", "mis")
_MIN_STEM = 4

# "policies.Organizations", "management:use", "features,such": a space after punctuation ending a
# word, or a heading's number ("3.The Challenges"); a full stop only before a capital, so that
# "www.nist.gov" and "e.g." stay as they are.
_GLUED_PUNCTUATION = re.compile(
    r"(?<=[a-z]{2})([.!?])(?=[A-Z])|(?<=[A-Za-z])([,;:)])(?=[A-Za-z(])|(?<=\b\d)(\.)(?=[A-Z][a-z])"
)
# "Publication201", "07-11,07-18;NIST", "Authentication(Organizational": a word's letters before a
# number or a parenthesis, a list's comma or semicolon before its next item. A comma before exactly
# three digits may be a thousands separator ("1,000") and stays.
_GLUED_NUMBERS = re.compile(
    r"(?<=[a-z]{3})(?=\d)|(?<=;)(?=\w)|(?<=\D,)(?=\d)|(?<=\d,)(?=[A-Za-z])|(?<=\d,)(?=\d)(?!\d{3}(?!\d))"
    r"|(?<=[a-z]{2})(?=\([A-Za-z]{2})"
)


def respace(text: str) -> str:
    """`text` as recognised, with the spaces between words put back."""
    text = _LETTERS.sub(lambda match: _respace_run(match.group(0)), text)
    text = _GLUED_PUNCTUATION.sub(lambda match: match.group(0) + " ", text)
    return _GLUED_NUMBERS.sub(" ", text)


def _respace_run(run: str) -> str:
    # A word is kept as written ("JavaScript"), unless it starts in lower case and holds a capital:
    # the model lists "apc", but "aPC" reads as two words.
    if _is_word(run) and (run.islower() or run[0].isupper()):
        return run
    return " ".join(word for piece in _case_pieces(run) for word in _split_glued(piece))


def _case_pieces(run: str) -> list[str]:
    """`run` cut where its case says a word ends: after a lowercase word before a capital
    ("the|PC", "Guidelinesfor|Media"), and between an acronym and the word after it, the acronym's
    last capital going with that word when only then is it a word ("NIST|Special", "OTP|verifiers")."""
    segments = _CASE_SEGMENTS.findall(run)
    starts = [0]
    for segment in segments[:-1]:
        starts.append(starts[-1] + len(segment))
    cuts: set[int] = set()
    # Whether a lowercase segment stands alone, not the tail of a capitalised word before it.
    alone = [segments[0].islower()] + [False] * (len(segments) - 1)
    for i in range(1, len(segments)):
        segment, before = segments[i], segments[i - 1]
        if segment.islower():
            if len(before) == 1 or len(segment) == 1:
                continue  # "Media" (one capital begins the word); "IDs" (an acronym's plural)
            if _is_word(before[-1] + segment) and not _is_word(segment):
                cuts.add(starts[i] - 1)
            else:
                cuts.add(starts[i])
                alone[i] = True
        elif not alone[i - 1] or len(before) >= 2 or before == "a":
            cuts.add(starts[i])
    bounds = [0, *sorted(cuts - {0}), len(run)]
    return [run[start:end] for start, end in itertools.pairwise(bounds)]


def _split_glued(piece: str) -> list[str]:
    """A piece in one case cut into words, if it is none itself."""
    if len(piece) < _GLUED_MIN_LETTERS or not _plain_case(piece) or _is_word(piece):
        return [piece]
    parts, start = [], 0
    for part in _unigram_split(piece):  # lower-cased: cut the piece as written
        parts.append(piece[start : start + len(part)])
        start += len(part)
    words = _rejoin_derived(parts)
    scraps = [
        word
        for position, word in enumerate(words)
        if len(word) <= 2 and word.lower() not in _SHORT_WORDS and not (position == 0 and word in _CONTRACTIONS)
    ]
    if scraps and not piece.isupper() and len(piece) <= _NAME_MAX_LETTERS:
        return [piece]
    return words


def _rejoin_derived(parts: list[str]) -> list[str]:
    """Neighbouring parts joined where they make a derived word the model does not list, and one
    of them is rare enough that the model's cut is suspect ("a longer" stays, "authentic at or" goes)."""
    words: list[str] = []
    i = 0
    while i < len(parts):
        for j in range(len(parts), i + 1, -1):
            joined = "".join(parts[i:j])
            if (
                not _listed(joined)
                and _derived(joined.lower())
                and max(_rank(part) for part in parts[i:j]) > _RARE_RANK
            ):
                words.append(joined)
                i = j
                break
        else:
            words.append(parts[i])
            i += 1
    return words


def _plain_case(run: str) -> bool:
    return run.islower() or run.isupper() or run.istitle()


def _is_word(run: str) -> bool:
    return _listed(run) or _derived(run.lower())


def _listed(run: str) -> bool:
    return run.lower() in _costs()


@cache
def _derived(word: str) -> bool:
    """A word the model lacks that a listed word makes with a common prefix or suffix."""
    for suffix in _E_DROPPING_SUFFIXES:
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= _MIN_STEM and not stem.endswith("e") and _listed(stem + "e"):
            return True
    for suffix in _SUFFIXES:
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= _MIN_STEM and (_listed(stem) or _derived(stem)):
            return True
    for suffix in _Y_SUFFIXES:
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3 and _listed(stem + "y"):
            return True
    for prefix in _PREFIXES:
        rest = word[len(prefix) :]
        if word.startswith(prefix) and len(rest) >= _MIN_STEM and (_listed(rest) or _derived(rest)):
            return True
    return False


def _rank(word: str) -> float:
    """The word's rank by frequency in the model (wordninja's cost is log((rank + 1) * log(N)))."""
    costs = _costs()
    cost = costs.get(word.lower())
    return math.inf if cost is None else math.exp(cost) / math.log(len(costs)) - 1


@cache
def _costs() -> dict[str, float]:
    import wordninja

    return dict(wordninja.DEFAULT_LANGUAGE_MODEL._wordcost)  # no public view of its vocabulary


def _unigram_split(run: str) -> list[str]:
    import wordninja

    return list(wordninja.split(run))
