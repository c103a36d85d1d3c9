"""Token counts for chunking, from a model's fast tokenizer, without torch."""

from __future__ import annotations

from typing import Any


def counting(tokenizer: Any) -> Any:
    """A `tokenizers.Tokenizer` that counts the text alone: no padding, no truncation (some model
    folders set both: all-MiniLM-L6-v2 pads every text to 128)."""
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
